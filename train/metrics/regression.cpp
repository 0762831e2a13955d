// MeanSquaredError, MeanAbsoluteError and Perplexity: float64 sums and counts, summed across DDP ranks.
#include "train/metrics/regression.hpp"

#include <cmath>

#include "core/error.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/reduce.hpp"

namespace ember::metrics {
namespace {

void check_same_shape(const char* metric, const Tensor& preds, const Tensor& target) {
  EMBER_CHECK(target.defined(), ValueError, "[", metric, ".update] needs a target");
  EMBER_CHECK(preds.shape() == target.shape(), ShapeError, "[", metric, ".update] preds ", describe(preds),
              " and target ", describe(target), " must have the same shape");
}

Tensor count_of(const Tensor& t) { return scalar_tensor(t.numel(), {.dtype = kI64, .device = t.device()}); }

}  // namespace

MeanSquaredError::MeanSquaredError(MeanSquaredErrorOptions options) : options_(options) {
  add_state("sum_squared_error", zeros({}, {.dtype = kF64}), Reduce::kSum);
  add_state("total", zeros({}, {.dtype = kI64}), Reduce::kSum);
}

void MeanSquaredError::update_state(const Tensor& preds, const Tensor& target) {
  check_same_shape("MeanSquaredError", preds, target);
  const Tensor diff = preds.to(kF64) - target.to(kF64);
  accumulate("sum_squared_error", (diff * diff).sum());
  accumulate("total", count_of(preds));
}

Tensor MeanSquaredError::compute() const {
  const Tensor mse = state("sum_squared_error") / state("total").to(kF64);
  return (options_.squared ? mse : mse.sqrt()).to(kF32);
}

MeanAbsoluteError::MeanAbsoluteError() {
  add_state("sum_abs_error", zeros({}, {.dtype = kF64}), Reduce::kSum);
  add_state("total", zeros({}, {.dtype = kI64}), Reduce::kSum);
}

void MeanAbsoluteError::update_state(const Tensor& preds, const Tensor& target) {
  check_same_shape("MeanAbsoluteError", preds, target);
  accumulate("sum_abs_error", (preds.to(kF64) - target.to(kF64)).abs().sum());
  accumulate("total", count_of(preds));
}

Tensor MeanAbsoluteError::compute() const { return (state("sum_abs_error") / state("total").to(kF64)).to(kF32); }

Perplexity::Perplexity(PerplexityOptions options) : options_(options) {
  add_state("total_log_probs", zeros({}, {.dtype = kF64}), Reduce::kSum);
  add_state("count", zeros({}, {.dtype = kI64}), Reduce::kSum);
}

nlohmann::json Perplexity::config() const {
  return {{"ignore_index", options_.ignore_index ? nlohmann::json(*options_.ignore_index) : nlohmann::json()}};
}

void Perplexity::update_state(const Tensor& preds, const Tensor& target) {
  EMBER_CHECK(target.defined(), ValueError, "[Perplexity.update] needs a target");
  EMBER_CHECK(preds.is_floating_point() && !target.is_floating_point(), DTypeError,
              "[Perplexity.update] needs floating logits and integer targets, got ", describe(preds), " and ",
              describe(target));
  bool ok = preds.dim() == target.dim() + 1;
  for (int64_t d = 0; ok && d < target.dim(); ++d) ok = preds.size(d) == target.size(d);
  EMBER_CHECK(ok, ShapeError, "[Perplexity.update] logits ", describe(preds), " must be [..., vocab] for targets ",
              describe(target));
  const int64_t vocab = preds.size(-1);
  const Tensor logp = preds.to(kF64).reshape({-1, vocab}).log_softmax(1);
  const Tensor t = target.reshape({-1}).to(kI64);
  const Tensor valid =
      options_.ignore_index ? t != *options_.ignore_index : ones({t.numel()}, {.dtype = kBool, .device = t.device()});
  EMBER_CHECK(t.numel() == 0 || !(valid & ((t < 0) | (t >= vocab))).any().item<bool>(), ValueError,
              "[Perplexity.update] a target id lies outside [0, ", vocab, ")",
              options_.ignore_index ? " and is not ignore_index" : "");
  const Tensor picked = logp.gather(1, where(valid, t, Scalar(int64_t(0))).unsqueeze(1)).squeeze(1);
  accumulate("total_log_probs", -where(valid, picked, Scalar(0.0)).sum());
  accumulate("count", valid.sum());
}

Tensor Perplexity::compute() const { return (state("total_log_probs") / state("count").to(kF64)).exp().to(kF32); }

}  // namespace ember::metrics
