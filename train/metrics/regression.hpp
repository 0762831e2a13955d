// Regression and language-model metrics with torchmetrics' names and values: MeanSquaredError (RMSE
// with squared = false), MeanAbsoluteError and Perplexity. Sums accumulate in float64.
#pragma once
#include <cstdint>
#include <optional>

#include "train/metrics/metric.hpp"

namespace ember::metrics {

struct MeanSquaredErrorOptions {
  bool squared = true;  // false: the root of the mean squared error
};

// preds and target of one shape (any floating or integer dtype).
class MeanSquaredError : public Metric {
 public:
  explicit MeanSquaredError(MeanSquaredErrorOptions options = {});
  std::string name() const override { return "MeanSquaredError"; }
  nlohmann::json config() const override { return {{"squared", options_.squared}}; }
  Tensor compute() const override;

 protected:
  void update_state(const Tensor& preds, const Tensor& target) override;

 private:
  MeanSquaredErrorOptions options_;
};

class MeanAbsoluteError : public Metric {
 public:
  MeanAbsoluteError();
  std::string name() const override { return "MeanAbsoluteError"; }
  nlohmann::json config() const override { return nlohmann::json::object(); }
  Tensor compute() const override;

 protected:
  void update_state(const Tensor& preds, const Tensor& target) override;
};

struct PerplexityOptions {
  std::optional<int64_t> ignore_index = std::nullopt;
};

// exp of the mean negative log-likelihood of the targets. preds: logits [..., V] (softmax is applied);
// target: token ids [...] in [0, V), positions equal to ignore_index left out.
class Perplexity : public Metric {
 public:
  explicit Perplexity(PerplexityOptions options = {});
  std::string name() const override { return "Perplexity"; }
  nlohmann::json config() const override;
  Tensor compute() const override;

 protected:
  void update_state(const Tensor& preds, const Tensor& target) override;

 private:
  PerplexityOptions options_;
};

}  // namespace ember::metrics
