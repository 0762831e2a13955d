// ember::nn: modules, layers, containers and initialisers (functional forms in nn/functional.hpp,
// optimizers in nn/optim/optim.hpp).
#pragma once
#include "nn/attention.hpp"
#include "nn/checkpoint.hpp"
#include "nn/clip_grad.hpp"
#include "nn/container.hpp"
#include "nn/conv.hpp"
#include "nn/init.hpp"
#include "nn/layers.hpp"
#include "nn/module.hpp"
#include "nn/norm.hpp"
#include "nn/spatial.hpp"
