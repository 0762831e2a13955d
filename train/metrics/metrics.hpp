// ember::metrics in one include: the Metric base and torchmetrics' common metrics.
#pragma once
#include "train/metrics/aggregation.hpp"
#include "train/metrics/classification.hpp"
#include "train/metrics/metric.hpp"
#include "train/metrics/regression.hpp"
