// MeanMetric, SumMetric, MaxMetric, MinMetric: float64 states joined by sum, max or min; NaN handling.
#include "train/metrics/aggregation.hpp"

#include <iostream>
#include <limits>

#include "core/error.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/reduce.hpp"

namespace ember::metrics {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

void check_no_weight(const char* metric, const Tensor& weight) {
  EMBER_CHECK(!weight.defined(), ValueError, "[", metric, ".update] takes one value (weights are MeanMetric's)");
}

}  // namespace

Aggregator::Aggregator(AggregationOptions options, const char* metric_name) : options_(std::move(options)) {
  const std::string& s = options_.nan_strategy;
  EMBER_CHECK(s == "warn" || s == "ignore" || s == "error" || s == "disable", ValueError, "[", metric_name,
              "] nan_strategy must be \"warn\", \"ignore\", \"error\" or \"disable\", got \"", s, "\"");
}

void Aggregator::update(double value, double weight) {
  const TensorOptions o{.dtype = kF64, .device = device()};
  Metric::update(scalar_tensor(value, o), weight != 1.0 ? scalar_tensor(weight, o) : Tensor());
}

Tensor Aggregator::clean(const Tensor& value, Tensor* weight, double neutral) const {
  Tensor v = value.to(kF64);
  if (weight != nullptr) {
    *weight = weight->defined() ? weight->to(kF64).expand(v.shape()) : ones_like(v);
  }
  if (options_.nan_strategy == "disable" || v.numel() == 0) return v;
  const Tensor nan = v.isnan();
  if (!nan.any().item<bool>()) return v;
  EMBER_CHECK(options_.nan_strategy != "error", ValueError, "[", name(),
              ".update] got a NaN value (nan_strategy \"error\")");
  if (options_.nan_strategy == "warn")
    std::cerr << "[" << name() << "] warning: NaN values were left out (set nan_strategy to silence this)\n";
  if (weight != nullptr) *weight = where(nan, Scalar(0.0), *weight);
  return where(nan, Scalar(neutral), v);
}

MeanMetric::MeanMetric(AggregationOptions options) : Aggregator(std::move(options), "MeanMetric") {
  add_state("mean_value", zeros({}, {.dtype = kF64}), Reduce::kSum);
  add_state("weight", zeros({}, {.dtype = kF64}), Reduce::kSum);
}

void MeanMetric::update_state(const Tensor& value, const Tensor& weight) {
  Tensor w = weight;  // broadcast to the value's shape (expand names both shapes if it cannot)
  const Tensor v = clean(value, &w, 0.0);
  accumulate("mean_value", (v * w).sum());
  accumulate("weight", w.sum());
}

Tensor MeanMetric::compute() const { return (state("mean_value") / state("weight")).to(kF32); }

SumMetric::SumMetric(AggregationOptions options) : Aggregator(std::move(options), "SumMetric") {
  add_state("sum_value", zeros({}, {.dtype = kF64}), Reduce::kSum);
}

void SumMetric::update_state(const Tensor& value, const Tensor& weight) {
  check_no_weight("SumMetric", weight);
  accumulate("sum_value", clean(value, nullptr, 0.0).sum());
}

Tensor SumMetric::compute() const { return state("sum_value").to(kF32); }

MaxMetric::MaxMetric(AggregationOptions options) : Aggregator(std::move(options), "MaxMetric") {
  add_state("max_value", full({}, -kInf, {.dtype = kF64}), Reduce::kMax);
}

void MaxMetric::update_state(const Tensor& value, const Tensor& weight) {
  check_no_weight("MaxMetric", weight);
  if (value.numel() > 0) accumulate("max_value", clean(value, nullptr, -kInf).max());
}

Tensor MaxMetric::compute() const { return state("max_value").to(kF32); }

MinMetric::MinMetric(AggregationOptions options) : Aggregator(std::move(options), "MinMetric") {
  add_state("min_value", full({}, kInf, {.dtype = kF64}), Reduce::kMin);
}

void MinMetric::update_state(const Tensor& value, const Tensor& weight) {
  check_no_weight("MinMetric", weight);
  if (value.numel() > 0) accumulate("min_value", clean(value, nullptr, kInf).min());
}

Tensor MinMetric::compute() const { return state("min_value").to(kF32); }

}  // namespace ember::metrics
