// Gradient checks for the reduce ops (gradcheck, gradgradcheck, PyTorch reference gradients).
#include <doctest/doctest.h>

#include "gradcheck.hpp"
#include "test_util.hpp"
