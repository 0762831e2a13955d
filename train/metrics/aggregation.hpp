// Aggregation metrics (torchmetrics' MeanMetric, SumMetric, MaxMetric, MinMetric): a running weighted
// mean, sum, max or min of the values given to update, kept in float64. NaN values follow
// nan_strategy: "warn" (left out, with a warning; torchmetrics' default), "ignore" (left out
// silently), "error" (ValueError) or "disable" (kept, so the result is NaN).
#pragma once
#include <string>

#include "train/metrics/metric.hpp"

namespace ember::metrics {

struct AggregationOptions {
  std::string nan_strategy = "warn";
};

class Aggregator : public Metric {
 public:
  using Metric::update;
  // update(value) and update(value, weight) with plain numbers.
  void update(double value, double weight = 1.0);
  nlohmann::json config() const override { return {{"nan_strategy", options_.nan_strategy}}; }

 protected:
  Aggregator(AggregationOptions options, const char* metric_name);
  // The values as float64, NaNs replaced by `neutral` (and their weights, if given, by 0) per nan_strategy.
  Tensor clean(const Tensor& value, Tensor* weight, double neutral) const;
  AggregationOptions options_;
};

// update(value, weight = 1): value of any shape; weight broadcasts to it. compute: sum(w v) / sum(w).
class MeanMetric : public Aggregator {
 public:
  explicit MeanMetric(AggregationOptions options = {});
  std::string name() const override { return "MeanMetric"; }
  Tensor compute() const override;

 protected:
  void update_state(const Tensor& value, const Tensor& weight) override;
};

class SumMetric : public Aggregator {
 public:
  explicit SumMetric(AggregationOptions options = {});
  std::string name() const override { return "SumMetric"; }
  Tensor compute() const override;

 protected:
  void update_state(const Tensor& value, const Tensor& weight) override;
};

// -inf before any value.
class MaxMetric : public Aggregator {
 public:
  explicit MaxMetric(AggregationOptions options = {});
  std::string name() const override { return "MaxMetric"; }
  Tensor compute() const override;

 protected:
  void update_state(const Tensor& value, const Tensor& weight) override;
};

// +inf before any value.
class MinMetric : public Aggregator {
 public:
  explicit MinMetric(AggregationOptions options = {});
  std::string name() const override { return "MinMetric"; }
  Tensor compute() const override;

 protected:
  void update_state(const Tensor& value, const Tensor& weight) override;
};

}  // namespace ember::metrics
