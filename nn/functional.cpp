// nn::functional layer forms (thin wrappers over core ops with PyTorch's conventions), group_norm,
// pad's reflect/replicate/circular modes, normalize and scaled dot-product attention. Losses: loss.cpp.
#include "nn/functional.hpp"

#include <cmath>
#include <limits>
#include <string>

#include "core/autocast.hpp"
#include "core/autograd.hpp"
#include "core/ops/attention.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/index.hpp"
#include "core/ops/linalg.hpp"
#include "core/ops/nn.hpp"
#include "core/ops/reduce.hpp"
#include "core/ops/shape.hpp"
#include "core/profiler.hpp"

namespace ember::nn::functional {
namespace {

void check_defined(const char* op, const char* name, const Tensor& t) {
  EMBER_CHECK(t.defined(), ValueError, "[", op, "] ", name, " is undefined");
}

// Operand `name` must match the input's dtype and device (PyTorch does not promote here either).
void check_like(const char* op, const char* name, const Tensor& input, const Tensor& t) {
  if (!t.defined()) return;
  EMBER_CHECK(t.device() == input.device(), DeviceError, "[", op, "] expected all tensors on one device, got input ",
              describe(input), " and ", name, " ", describe(t));
  EMBER_CHECK(t.dtype() == input.dtype(), DTypeError, "[", op, "] expected ", name, " of the input's dtype, got input ",
              describe(input), " and ", name, " ", describe(t));
}

Shape leading(const Tensor& t) { return Shape(t.shape().begin(), t.shape().end() - 1); }

// x [B, in] @ weight.T (+ bias): addmm on the transposed weight view, no copy.
Tensor linear_2d(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  return bias.defined() ? addmm(bias, x, weight.t()) : mm(x, weight.t());
}

}  // namespace

// ------------------------------------------------------------------------------------- layers

Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias) {
  if (autocast::should_cast(CastPolicy::kLowerPrecision, {&input, &weight, &bias}))
    return linear(autocast::lower(input), autocast::lower(weight), autocast::lower(bias));
  const char* op = "linear";
  profiler::OpRecord prof(op, {&input, &weight, &bias});
  check_defined(op, "input", input);
  check_defined(op, "weight", weight);
  EMBER_CHECK(weight.dim() == 2, ShapeError, "[linear] weight must be 2-D [out_features, in_features], got ",
              describe(weight));
  EMBER_CHECK(input.dim() >= 1 && input.size(-1) == weight.size(1), ShapeError, "[linear] input ", describe(input),
              " must end with in_features = ", weight.size(1), " (weight ", describe(weight), ")");
  EMBER_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == weight.size(0)), ShapeError,
              "[linear] bias must be [", weight.size(0), "], got ", describe(bias));
  check_like(op, "weight", input, weight);
  check_like(op, "bias", input, bias);
  if (input.dim() == 2) return linear_2d(input, weight, bias);
  if (input.dim() == 1) return linear_2d(input.unsqueeze(0), weight, bias).squeeze(0);
  Shape out_shape = leading(input);
  out_shape.push_back(weight.size(0));
  return linear_2d(input.reshape({-1, weight.size(1)}), weight, bias).view(out_shape);
}

Tensor linear_gelu(const Tensor& input, const Tensor& weight, const Tensor& bias) {
  const char* op = "linear_gelu";
  check_defined(op, "input", input);
  check_defined(op, "weight", weight);
  check_defined(op, "bias", bias);
  EMBER_CHECK(weight.dim() == 2, ShapeError, "[linear_gelu] weight must be 2-D [out_features, in_features], got ",
              describe(weight));
  EMBER_CHECK(input.dim() >= 1 && input.size(-1) == weight.size(1), ShapeError, "[linear_gelu] input ", describe(input),
              " must end with in_features = ", weight.size(1), " (weight ", describe(weight), ")");
  Shape out_shape = leading(input);
  out_shape.push_back(weight.size(0));
  return addmm_gelu(bias, input.reshape({-1, weight.size(1)}), weight.t()).view(out_shape);
}

Tensor bilinear(const Tensor& input1, const Tensor& input2, const Tensor& weight, const Tensor& bias) {
  const char* op = "bilinear";
  check_defined(op, "input1", input1);
  check_defined(op, "input2", input2);
  check_defined(op, "weight", weight);
  EMBER_CHECK(weight.dim() == 3, ShapeError, "[bilinear] weight must be 3-D [out, in1, in2], got ", describe(weight));
  const int64_t out = weight.size(0), in1 = weight.size(1), in2 = weight.size(2);
  EMBER_CHECK(input1.dim() >= 1 && input2.dim() >= 1 && input1.size(-1) == in1 && input2.size(-1) == in2 &&
                  leading(input1) == leading(input2),
              ShapeError, "[bilinear] expected input1 [*, ", in1, "] and input2 [*, ", in2,
              "] with the same leading dims for weight ", describe(weight), ", got ", describe(input1), " and ",
              describe(input2));
  EMBER_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == out), ShapeError, "[bilinear] bias must be [", out,
              "], got ", describe(bias));
  check_like(op, "input2", input1, input2);
  check_like(op, "weight", input1, weight);
  check_like(op, "bias", input1, bias);
  // t[b, k, j] = sum_i x1[b, i] W[k, i, j] as one GEMM, then y[b, k] = sum_j t[b, k, j] x2[b, j] as a bmm.
  Tensor a = input1.reshape({-1, in1}), b = input2.reshape({-1, in2});
  const int64_t rows = a.size(0);
  Tensor t = mm(a, weight.permute({1, 0, 2}).reshape({in1, out * in2})).view({rows, out, in2});
  Tensor y = bmm(t, b.unsqueeze(2)).view({rows, out});
  if (bias.defined()) y = y + bias;
  Shape out_shape = leading(input1);
  out_shape.push_back(out);
  return y.view(out_shape);
}

Tensor relu(const Tensor& input) { return ember::relu(input); }
Tensor leaky_relu(const Tensor& input, double negative_slope) { return ember::leaky_relu(input, negative_slope); }
Tensor gelu(const Tensor& input, std::string_view approximate) { return ember::gelu(input, std::string(approximate)); }
Tensor silu(const Tensor& input) { return ember::silu(input); }
Tensor tanh(const Tensor& input) { return ember::tanh(input); }
Tensor sigmoid(const Tensor& input) { return ember::sigmoid(input); }
Tensor elu(const Tensor& input, double alpha) { return ember::elu(input, alpha); }
Tensor selu(const Tensor& input) { return ember::selu(input); }
Tensor hardtanh(const Tensor& input, double min_val, double max_val) {
  return ember::hardtanh(input, min_val, max_val);
}
Tensor relu6(const Tensor& input) { return ember::relu6(input); }
Tensor mish(const Tensor& input) { return ember::mish(input); }
Tensor logsigmoid(const Tensor& input) { return ember::logsigmoid(input); }
Tensor softmax(const Tensor& input, int64_t dim) { return ember::softmax(input, dim); }
Tensor log_softmax(const Tensor& input, int64_t dim) { return ember::log_softmax(input, dim); }
Tensor dropout(const Tensor& input, double p, bool training, Generator* gen) {
  return ember::dropout(input, p, training, gen);
}

Tensor conv1d(const Tensor& input, const Tensor& weight, const Tensor& bias, int64_t stride, int64_t padding,
              int64_t dilation, int64_t groups) {
  return ember::conv1d(input, weight, bias, stride, padding, dilation, groups);
}
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, Pair stride, Pair padding, Pair dilation,
              int64_t groups) {
  return ember::conv2d(input, weight, bias, stride, padding, dilation, groups);
}
Tensor conv_transpose2d(const Tensor& input, const Tensor& weight, const Tensor& bias, Pair stride, Pair padding,
                        Pair output_padding, int64_t groups, Pair dilation) {
  return ember::conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation);
}
Tensor max_pool2d(const Tensor& input, Pair kernel_size, std::optional<Pair> stride, Pair padding, Pair dilation,
                  bool ceil_mode) {
  return ember::max_pool2d(input, kernel_size, stride.value_or(kernel_size), padding, dilation, ceil_mode);
}
std::tuple<Tensor, Tensor> max_pool2d_with_indices(const Tensor& input, Pair kernel_size, std::optional<Pair> stride,
                                                   Pair padding, Pair dilation, bool ceil_mode) {
  return ember::max_pool2d_with_indices(input, kernel_size, stride.value_or(kernel_size), padding, dilation, ceil_mode);
}
Tensor avg_pool2d(const Tensor& input, Pair kernel_size, std::optional<Pair> stride, Pair padding, bool ceil_mode,
                  bool count_include_pad) {
  return ember::avg_pool2d(input, kernel_size, stride.value_or(kernel_size), padding, ceil_mode, count_include_pad);
}
Tensor adaptive_avg_pool2d(const Tensor& input, Pair output_size) {
  return ember::adaptive_avg_pool2d(input, output_size);
}

Tensor batch_norm(const Tensor& input, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps) {
  return ember::batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps);
}
Tensor layer_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  return ember::layer_norm(input, normalized_shape, weight, bias, eps);
}
Tensor rms_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight, std::optional<double> eps) {
  return ember::rms_norm(input, normalized_shape, weight, eps);
}

Tensor group_norm(const Tensor& input, int64_t num_groups, const Tensor& weight, const Tensor& bias, double eps) {
  if (autocast::should_cast(CastPolicy::kFloat32, {&input, &weight, &bias}))
    return group_norm(autocast::to_f32(input), num_groups, autocast::to_f32(weight), autocast::to_f32(bias), eps);
  const char* op = "group_norm";
  check_defined(op, "input", input);
  EMBER_CHECK(input.dim() >= 2, ShapeError, "[group_norm] expected an input [N, C, *] of at least 2 dims, got ",
              describe(input));
  const int64_t n = input.size(0), c = input.size(1);
  EMBER_CHECK(num_groups > 0 && c % num_groups == 0, ValueError, "[group_norm] expected the ", c, " channels of input ",
              describe(input), " to be divisible by num_groups = ", num_groups);
  for (const auto& [name, t] : {std::pair{"weight", &weight}, std::pair{"bias", &bias}}) {
    EMBER_CHECK(!t->defined() || (t->dim() == 1 && t->size(0) == c), ShapeError, "[group_norm] ", name, " must be [", c,
                "] (the channels of ", describe(input), "), got ", describe(*t));
    EMBER_CHECK(!t->defined() || t->device() == input.device(), DeviceError, "[group_norm] expected ", name,
                " on the input's device, got input ", describe(input), " and ", name, " ", describe(*t));
  }
  // Each (sample, group) is one row of a layer norm without affine (its fused kernel and recorded
  // backward), then the per-channel affine in one addcmul.
  const int64_t cols = n * num_groups == 0 ? 0 : input.numel() / (n * num_groups);
  Tensor xhat = ember::layer_norm(input.reshape({n, num_groups, cols}), {cols}, {}, {}, eps).view(input.shape());
  if (!weight.defined() && !bias.defined()) return xhat;
  Shape channel(static_cast<size_t>(input.dim()), 1);
  channel[1] = c;
  if (!weight.defined()) return xhat + bias.reshape(channel);
  if (!bias.defined()) return xhat * weight.reshape(channel);
  return addcmul(bias.reshape(channel), xhat, weight.reshape(channel));
}

Tensor embedding(const Tensor& input, const Tensor& weight, std::optional<int64_t> padding_idx) {
  check_defined("embedding", "input", input);
  check_defined("embedding", "weight", weight);
  return ember::embedding(input, weight, padding_idx);
}

Tensor one_hot(const Tensor& input, int64_t num_classes) { return ember::one_hot(input, num_classes); }

Tensor pad(const Tensor& input, const std::vector<int64_t>& pad, std::string_view mode, double value) {
  check_defined("pad", "input", input);
  if (mode == "constant") return ember::pad(input, pad, value);
  EMBER_CHECK(mode == "reflect" || mode == "replicate" || mode == "circular", ValueError,
              "[pad] mode must be 'constant', 'reflect', 'replicate' or 'circular', got '", mode, "'");
  const auto dims = static_cast<int64_t>(pad.size() / 2);
  EMBER_CHECK(pad.size() % 2 == 0 && dims >= 1 && dims <= 3, ValueError, "[pad] ", mode,
              " padding takes 2, 4 or 6 entries ((before, after) for up to 3 trailing dims), got ", pad.size());
  EMBER_CHECK(input.dim() == dims + 1 || input.dim() == dims + 2, ShapeError, "[pad] ", mode, " padding of ", dims,
              " dim(s) expects a ", dims + 1, "-D or ", dims + 2, "-D input, got ", describe(input));
  Tensor out = input;
  for (int64_t i = 0; i < dims; ++i) {
    const int64_t d = input.dim() - 1 - i, n = input.size(d);
    const int64_t before = pad[2 * i], after = pad[2 * i + 1];
    EMBER_CHECK(before >= 0 && after >= 0, ValueError, "[pad] ", mode, " padding amounts must be non-negative, got ",
                before, " and ", after, " for dim ", d);
    if (before == 0 && after == 0) continue;
    EMBER_CHECK(n > 0, ShapeError, "[pad] ", mode, " padding needs a non-empty dim ", d, ", got ", describe(input));
    if (mode == "reflect")
      EMBER_CHECK(before < n && after < n, ValueError, "[pad] reflect padding (", before, ", ", after, ") of dim ", d,
                  " must be below its size ", n, " (input ", describe(input), ")");
    if (mode == "circular")
      EMBER_CHECK(before <= n && after <= n, ValueError, "[pad] circular padding (", before, ", ", after, ") of dim ",
                  d, " must not exceed its size ", n, " (input ", describe(input), ")");
    // The source index of every output position j, made on the input's device (no copy from the host,
    // so no host sync on CUDA); index_select gathers it and scatters the gradient back. The checks above
    // keep j within one period of [0, n) for reflect and circular.
    const Tensor j = arange(-before, n + after, 1, kI64, input.device());
    Tensor src;
    if (mode == "reflect")
      src = where(j < Scalar(0), -j, where(j >= Scalar(n), Scalar(2 * (n - 1)) - j, j));
    else if (mode == "replicate")
      src = clamp(j, Scalar(0), Scalar(n - 1));
    else
      src = where(j < Scalar(0), j + Scalar(n), where(j >= Scalar(n), j - Scalar(n), j));
    out = index_select(out, d, src);
  }
  return out;
}

Tensor normalize(const Tensor& input, double p, int64_t dim, double eps) {
  check_defined("normalize", "input", input);
  return input / clamp(norm(input, p, {dim}, true), Scalar(eps));
}

// ------------------------------------------------------------------------------------- attention

Tensor scaled_dot_product_attention(const Tensor& query, const Tensor& key, const Tensor& value,
                                    const Tensor& attn_mask, double dropout_p, bool is_causal,
                                    std::optional<double> scale, Generator* gen) {
  const char* op = "scaled_dot_product_attention";
  check_defined(op, "query", query);
  check_defined(op, "key", key);
  check_defined(op, "value", value);
  EMBER_CHECK(query.is_floating_point(), DTypeError, "[", op, "] needs floating query, key and value, got query ",
              describe(query));
  check_like(op, "key", query, key);
  check_like(op, "value", query, value);
  EMBER_CHECK(query.dim() >= 2 && key.dim() >= 2 && value.dim() >= 2, ShapeError, "[", op,
              "] query, key and value need at least 2 dims ([..., L, E], [..., S, E], [..., S, Ev]), got ",
              describe(query), ", ", describe(key), ", ", describe(value));
  const int64_t l = query.size(-2), s = key.size(-2), e = query.size(-1);
  EMBER_CHECK(key.size(-1) == e && value.size(-2) == s, ShapeError, "[", op,
              "] expected query [..., L, E], key [..., S, E] and value [..., S, Ev], got ", describe(query), ", ",
              describe(key), ", ", describe(value));
  const Shape qb(query.shape().begin(), query.shape().end() - 2), kb(key.shape().begin(), key.shape().end() - 2),
      vb(value.shape().begin(), value.shape().end() - 2);
  const std::string tag = std::string("[") + op + "] batch dims of query, key and value";
  const Shape batch = broadcast_shapes(broadcast_shapes(qb, kb, tag.c_str()), vb, tag.c_str());
  EMBER_CHECK(!(is_causal && attn_mask.defined()), ValueError, "[", op,
              "] is_causal=true excludes an explicit attn_mask (got ", describe(attn_mask), ")");
  EMBER_CHECK(dropout_p >= 0 && dropout_p <= 1, ValueError, "[", op, "] dropout_p must be in [0, 1], got ", dropout_p);

  const double sc = scale.value_or(1.0 / std::sqrt(static_cast<double>(e)));
  // On the CPU, from a moderate L * S on, the blocked kernel (core/ops/attention.hpp): same result,
  // O(L + S) memory per head instead of the [L, S] scores and their softmax. The composition below
  // stays for everything else and is its test oracle.
  // On CUDA in f16/bf16 (autocast included), a fused kernel (cuDNN's or Ember's) where one applies.
  if (use_fused_attention(query, key, value, attn_mask, dropout_p)) {
    Tensor out = fused_attention(query, key, value, is_causal, sc);
    if (out.defined()) return out;  // undefined: the device's cuDNN refused it and Ember's kernel does not apply
  }
  if (use_blocked_attention(query, key, value, attn_mask, dropout_p, is_causal))
    return blocked_attention(query, key, value, attn_mask, is_causal, sc);
  // Scale whichever of q [L, E] and the scores [L, S] is smaller.
  Tensor scores = e <= s ? matmul(query * sc, key.mT()) : matmul(query, key.mT()) * sc;
  Shape scores_shape = batch;
  scores_shape.push_back(l);
  scores_shape.push_back(s);
  const double neg_inf = -std::numeric_limits<double>::infinity();
  Tensor dead;  // [..., L, 1]: query rows that may attend no key
  if (is_causal) {
    Tensor causal = arange(l, kI64, query.device()).unsqueeze(1) >= arange(s, kI64, query.device()).unsqueeze(0);
    scores = where(causal, scores, neg_inf);  // row i always sees key 0: no fully masked rows
  } else if (attn_mask.defined()) {
    const Tensor mask = attn_mask.dim() == 0 ? attn_mask.reshape({1}) : attn_mask;
    EMBER_CHECK(attn_mask.device() == query.device(), DeviceError, "[", op,
                "] expected attn_mask on the query's device, got query ", describe(query), " and attn_mask ",
                describe(attn_mask));
    EMBER_CHECK(attn_mask.dtype() == kBool || attn_mask.is_floating_point(), DTypeError, "[", op,
                "] attn_mask must be bool (true = take part) or floating (added to the scores), got ",
                describe(attn_mask));
    // The mask broadcasts to the scores, never the other way round (as PyTorch's in-place add).
    bool ok = attn_mask.dim() <= static_cast<int64_t>(scores_shape.size());
    for (int64_t i = 1; ok && i <= attn_mask.dim(); ++i) {
      const int64_t m = attn_mask.size(-i), want = scores_shape[scores_shape.size() - static_cast<size_t>(i)];
      ok = m == 1 || m == want;
    }
    EMBER_CHECK(ok, ShapeError, "[", op, "] attn_mask ", describe(attn_mask), " does not broadcast to the scores ",
                scores_shape, " of query ", describe(query), " and key ", describe(key));
    if (mask.dtype() == kBool) {
      scores = where(mask, scores, neg_inf);
      dead = ~any(mask, {-1}, true);
    } else {
      scores = scores + mask.to(scores.dtype());
      dead = all(mask == neg_inf, {-1}, true);
    }
  }
  // On the CPU, skip the two masking passes when no row is dead; on CUDA that test would be a host read,
  // so the passes always run there.
  if (dead.defined() && (s == 0 || (!query.device().is_cuda() && !any(dead).item<bool>()))) dead = Tensor();
  // Fully masked rows: softmax over finite zeros, then zeroed, so neither the output nor the
  // gradients see NaN (PyTorch's math path does the same since 2.5).
  if (dead.defined()) scores = where(dead, 0.0, scores);
  Tensor attn = ember::softmax(scores, -1);
  if (dead.defined()) attn = where(dead, 0.0, attn);
  if (dropout_p > 0) attn = ember::dropout(attn, dropout_p, true, gen);
  return matmul(attn, value);
}

}  // namespace ember::nn::functional
