// The built-in callbacks of the Trainer, in one include.
#pragma once
#include "train/callbacks/early_stopping.hpp"
#include "train/callbacks/grad_accum.hpp"
#include "train/callbacks/lambda_callback.hpp"
#include "train/callbacks/lr_monitor.hpp"
#include "train/callbacks/model_checkpoint.hpp"
#include "train/callbacks/model_summary.hpp"
#include "train/callbacks/progress_bar.hpp"
#include "train/callbacks/timer.hpp"
