// Attention layers: MultiheadAttention (PyTorch's parameter names and mask conventions) and
// TransformerEncoderLayer (post-norm by default, pre-norm with norm_first).
#pragma once
#include <tuple>

#include "nn/layers.hpp"
#include "nn/norm.hpp"

namespace ember::nn {

struct MultiheadAttentionOptions {
  double dropout = 0.0;  // on the attention weights, in training
  bool bias = true;
  bool batch_first = false;  // inputs [N, L, E] instead of PyTorch's default [L, N, E]
  Placement placement = {};
};

// Masks follow nn.MultiheadAttention: a bool attn_mask ([L, S] or [N * num_heads, L, S]) or bool
// key_padding_mask ([N, S]) is true where attention is NOT allowed; float masks are added to the scores.
struct AttentionMasks {
  Tensor key_padding_mask = {};
  Tensor attn_mask = {};
  bool need_weights = true;
  bool average_attn_weights = true;
  // Alone: applies the causal mask. With attn_mask: PyTorch's hint that attn_mask is causal (the causal
  // rule is used when need_weights is false and there is no key_padding_mask, else attn_mask).
  bool is_causal = false;
};

class MultiheadAttentionImpl : public Module {
 public:
  MultiheadAttentionImpl(int64_t embed_dim, int64_t num_heads, MultiheadAttentionOptions options = {});
  // Returns (output, attention weights); the weights are undefined unless need_weights.
  std::tuple<Tensor, Tensor> forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                     const AttentionMasks& masks = {});
  void reset_parameters();
  std::string extra_repr() const override;
  int64_t embed_dim, num_heads, head_dim;
  MultiheadAttentionOptions options;
  Tensor in_proj_weight, in_proj_bias;  // [3E, E], [3E]: q, k, v stacked
  Linear out_proj{nullptr};
};
class MultiheadAttention : public ModuleHolder<MultiheadAttentionImpl> {
 public:
  using ModuleHolder::ModuleHolder;
  MultiheadAttention(int64_t embed_dim, int64_t num_heads, MultiheadAttentionOptions options = {})
      : ModuleHolder(std::make_shared<MultiheadAttentionImpl>(embed_dim, num_heads, options)) {}
  std::tuple<Tensor, Tensor> operator()(const Tensor& query, const Tensor& key, const Tensor& value,
                                        const AttentionMasks& masks = {}) const {
    return ModuleHolder::operator()(query, key, value, masks);  // the base's call opens the FlopScope
  }
};

struct TransformerEncoderLayerOptions {
  int64_t dim_feedforward = 2048;
  double dropout = 0.1;
  std::string activation = "relu";  // or "gelu"
  double layer_norm_eps = 1e-5;
  bool batch_first = false;
  bool norm_first = false;  // pre-norm: x + sa(norm1(x)), then x + ff(norm2(x))
  bool bias = true;
  Placement placement = {};
};

class TransformerEncoderLayerImpl : public Module {
 public:
  TransformerEncoderLayerImpl(int64_t d_model, int64_t nhead, TransformerEncoderLayerOptions options = {});
  Tensor forward(const Tensor& src, const Tensor& src_mask = {}, const Tensor& src_key_padding_mask = {},
                 bool is_causal = false);
  TransformerEncoderLayerOptions options;
  MultiheadAttention self_attn{nullptr};
  Linear linear1{nullptr}, linear2{nullptr};
  Dropout dropout{nullptr}, dropout1{nullptr}, dropout2{nullptr};
  LayerNorm norm1{nullptr}, norm2{nullptr};

 private:
  Tensor self_attention_block(const Tensor& x, const Tensor& mask, const Tensor& key_padding_mask, bool is_causal);
  Tensor feed_forward_block(const Tensor& x);
};
class TransformerEncoderLayer : public ModuleHolder<TransformerEncoderLayerImpl> {
 public:
  using ModuleHolder::ModuleHolder;
  TransformerEncoderLayer(int64_t d_model, int64_t nhead, TransformerEncoderLayerOptions options = {})
      : ModuleHolder(std::make_shared<TransformerEncoderLayerImpl>(d_model, nhead, options)) {}
};

}  // namespace ember::nn
