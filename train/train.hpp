// ember::train in one include: TrainModule, Trainer, callbacks, loggers, checkpoints.
#pragma once
#include "train/callback.hpp"
#include "train/callbacks/callbacks.hpp"
#include "train/checkpoint.hpp"
#include "train/logger.hpp"
#include "train/loggers/csv.hpp"
#include "train/loggers/svg.hpp"
#include "train/loggers/tensorboard.hpp"
#include "train/metrics.hpp"
#include "train/module.hpp"
#include "train/trainer.hpp"
