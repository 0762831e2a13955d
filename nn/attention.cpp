// MultiheadAttention and TransformerEncoderLayer: projections, mask conversion to
// scaled_dot_product_attention's convention, and the explicit path when the weights are wanted.
#include "nn/attention.hpp"

#include <cmath>
#include <sstream>

#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/linalg.hpp"
#include "nn/functional.hpp"
#include "nn/init.hpp"

namespace ember::nn {

namespace F = functional;

MultiheadAttentionImpl::MultiheadAttentionImpl(int64_t e, int64_t h, MultiheadAttentionOptions o)
    : embed_dim(e), num_heads(h), head_dim(h > 0 ? e / h : 0), options(o) {
  EMBER_CHECK(e > 0 && h > 0 && e % h == 0, ValueError, "[nn.MultiheadAttention] embed_dim ", e,
              " must be divisible by num_heads ", h);
  EMBER_CHECK(o.dropout >= 0 && o.dropout < 1, ValueError, "[nn.MultiheadAttention] dropout must be in [0, 1), got ",
              o.dropout);
  TensorOptions t{.dtype = o.placement.dtype, .device = o.placement.device};
  in_proj_weight = register_parameter("in_proj_weight", empty({3 * e, e}, t));
  if (o.bias) in_proj_bias = register_parameter("in_proj_bias", empty({3 * e}, t));
  out_proj = register_module("out_proj", Linear(e, e, LinearOptions{.bias = o.bias, .placement = o.placement}));
  reset_parameters();
}

void MultiheadAttentionImpl::reset_parameters() {
  init::xavier_uniform_(in_proj_weight);
  if (in_proj_bias.defined()) {
    init::zeros_(in_proj_bias);
    init::zeros_(out_proj->bias);
  }
}

std::string MultiheadAttentionImpl::extra_repr() const {
  std::ostringstream os;
  os << "embed_dim=" << embed_dim << ", num_heads=" << num_heads << ", dropout=" << options.dropout
     << ", batch_first=" << (options.batch_first ? "True" : "False");
  return os.str();
}

std::tuple<Tensor, Tensor> MultiheadAttentionImpl::forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                                           const AttentionMasks& m) {
  const char* op = "[nn.MultiheadAttention]";
  EMBER_CHECK(query.dim() == key.dim() && key.dim() == value.dim() && (query.dim() == 2 || query.dim() == 3),
              ShapeError, op, " query, key and value must all be 2-D (unbatched) or 3-D, got ", describe(query), ", ",
              describe(key), ", ", describe(value));
  EMBER_CHECK(query.size(-1) == embed_dim && key.size(-1) == embed_dim && value.size(-1) == embed_dim, ShapeError, op,
              " expected embedding size ", embed_dim, ", got ", describe(query), ", ", describe(key), ", ",
              describe(value));
  // is_causal with attn_mask is PyTorch's hint that attn_mask is the causal mask: as its
  // multi_head_attention_forward, the causal rule alone is used when neither weights nor a
  // key_padding_mask are asked for, else attn_mask alone. (is_causal alone applies the causal mask;
  // PyTorch refuses that.)
  const bool hint_only = m.is_causal && m.attn_mask.defined() && !m.key_padding_mask.defined() && !m.need_weights;
  const bool causal = m.is_causal && (!m.attn_mask.defined() || hint_only);
  bool batched = query.dim() == 3;
  // Work in [N, L, E].
  auto to_nle = [&](const Tensor& t) {
    return !batched ? t.unsqueeze(0) : options.batch_first ? t : t.transpose(0, 1);
  };
  Tensor q = to_nle(query), k = to_nle(key), v = to_nle(value);
  int64_t n = q.size(0), l = q.size(1), s = k.size(1), e = embed_dim, h = num_heads;
  EMBER_CHECK(k.size(0) == n && v.size(0) == n && v.size(1) == s, ShapeError, op,
              " batch and source lengths of query, key and value disagree: ", describe(query), ", ", describe(key),
              ", ", describe(value));

  auto proj = [&](const Tensor& x, int64_t i) {
    Tensor w = in_proj_weight.narrow(0, i * e, e);
    Tensor b = in_proj_bias.defined() ? in_proj_bias.narrow(0, i * e, e) : Tensor{};
    return F::linear(x, w, b);
  };
  Tensor qp, kp, vp;
  if (query.is_same(key) && key.is_same(value)) {  // self-attention: one projection, then split
    auto qkv = F::linear(q, in_proj_weight, in_proj_bias).chunk(3, -1);
    qp = qkv[0], kp = qkv[1], vp = qkv[2];
  } else {
    qp = proj(q, 0), kp = proj(k, 1), vp = proj(v, 2);
  }
  auto heads = [&](const Tensor& x, int64_t len) { return x.reshape({n, len, h, head_dim}).transpose(1, 2); };
  qp = heads(qp, l), kp = heads(kp, s), vp = heads(vp, s);

  // One additive-or-boolean mask [N, H|1, L|1, S] in sdpa's convention (bool true = attend).
  Tensor mask;
  auto merge = [&](Tensor extra) {
    if (!mask.defined()) {
      mask = extra;
    } else if (mask.dtype() == kBool && extra.dtype() == kBool) {
      mask = mask.logical_and(extra);
    } else {
      auto as_float = [&](const Tensor& t) {
        return t.dtype() == kBool ? zeros(t.shape(), {.dtype = qp.dtype(), .device = qp.device()})
                                        .masked_fill(t.logical_not(), -INFINITY)
                                  : t.to(qp.dtype());
      };
      mask = as_float(mask) + as_float(extra);
    }
  };
  if (m.attn_mask.defined() && !hint_only) {
    const Tensor& a = m.attn_mask;
    bool ok2 = a.dim() == 2 && a.size(0) == l && a.size(1) == s;
    bool ok3 = a.dim() == 3 && a.size(0) == n * h && a.size(1) == l && a.size(2) == s;
    EMBER_CHECK(ok2 || ok3, ShapeError, op, " attn_mask must be [", l, ", ", s, "] or [", n * h, ", ", l, ", ", s,
                "], got ", describe(a));
    Tensor a4 = ok2 ? a : a.reshape({n, h, l, s});
    merge(a.dtype() == kBool ? a4.logical_not() : a4);
  }
  if (m.key_padding_mask.defined()) {
    const Tensor& kpm = m.key_padding_mask;
    Shape want = batched ? Shape{n, s} : Shape{s};
    EMBER_CHECK(kpm.shape() == want, ShapeError, op, " key_padding_mask must be ", want, ", got ", describe(kpm));
    Tensor k4 = kpm.reshape({n, 1, 1, s});
    merge(kpm.dtype() == kBool ? k4.logical_not() : k4);
  }
  double p = is_training() ? options.dropout : 0.0;

  Tensor out, weights;
  if (!m.need_weights) {
    out = F::scaled_dot_product_attention(qp, kp, vp, mask, p, causal);
  } else {
    Tensor scores = matmul(qp, kp.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(head_dim)));
    if (causal) {
      Tensor i = arange(l, kI64, qp.device()).unsqueeze(1);
      Tensor j = arange(s, kI64, qp.device()).unsqueeze(0);
      scores = scores.masked_fill(j.gt(i), -INFINITY);  // query i sees keys j <= i
    }
    if (mask.defined())
      scores = mask.dtype() == kBool ? scores.masked_fill(mask.logical_not(), -INFINITY) : scores + mask;
    weights = scores.softmax(-1);
    if (p > 0) weights = F::dropout(weights, p, true);  // PyTorch returns the weights after dropout too
    out = matmul(weights, vp);
    if (m.average_attn_weights) weights = weights.mean({1});
    if (!batched) weights = weights.squeeze(0);
  }
  out = out_proj(out.transpose(1, 2).reshape({n, l, e}));
  out = !batched ? out.squeeze(0) : options.batch_first ? out : out.transpose(0, 1);
  return {out, weights};
}

// ---------------------------------------------------------------- TransformerEncoderLayer

TransformerEncoderLayerImpl::TransformerEncoderLayerImpl(int64_t d, int64_t nhead, TransformerEncoderLayerOptions o)
    : options(o) {
  EMBER_CHECK(o.activation == "relu" || o.activation == "gelu", ValueError,
              "[nn.TransformerEncoderLayer] activation must be relu or gelu, got '", o.activation, "'");
  self_attn = register_module("self_attn", MultiheadAttention(d, nhead,
                                                              MultiheadAttentionOptions{.dropout = o.dropout,
                                                                                        .bias = o.bias,
                                                                                        .batch_first = o.batch_first,
                                                                                        .placement = o.placement}));
  LinearOptions lo{.bias = o.bias, .placement = o.placement};
  linear1 = register_module("linear1", Linear(d, o.dim_feedforward, lo));
  dropout = register_module("dropout", Dropout(o.dropout));
  linear2 = register_module("linear2", Linear(o.dim_feedforward, d, lo));
  LayerNormOptions no{.eps = o.layer_norm_eps, .elementwise_affine = true, .bias = o.bias, .placement = o.placement};
  norm1 = register_module("norm1", LayerNorm(Shape{d}, no));
  norm2 = register_module("norm2", LayerNorm(Shape{d}, no));
  dropout1 = register_module("dropout1", Dropout(o.dropout));
  dropout2 = register_module("dropout2", Dropout(o.dropout));
}

Tensor TransformerEncoderLayerImpl::self_attention_block(const Tensor& x, const Tensor& mask, const Tensor& kpm,
                                                         bool is_causal) {
  auto [y, w] = self_attn(x, x, x,
                          AttentionMasks{.key_padding_mask = kpm,
                                         .attn_mask = mask,
                                         .need_weights = false,
                                         .average_attn_weights = true,
                                         .is_causal = is_causal});
  return dropout1(y);
}

Tensor TransformerEncoderLayerImpl::feed_forward_block(const Tensor& x) {
  Tensor hidden = linear1(x);
  hidden = options.activation == "gelu" ? hidden.gelu() : hidden.relu();
  return dropout2(linear2(dropout(hidden)));
}

Tensor TransformerEncoderLayerImpl::forward(const Tensor& src, const Tensor& src_mask, const Tensor& kpm,
                                            bool is_causal) {
  Tensor x = src;
  if (options.norm_first) {
    x = x + self_attention_block(norm1(x), src_mask, kpm, is_causal);
    return x + feed_forward_block(norm2(x));
  }
  x = norm1(x + self_attention_block(x, src_mask, kpm, is_causal));
  return norm2(x + feed_forward_block(x));
}

}  // namespace ember::nn
