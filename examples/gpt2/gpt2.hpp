// GPT-2 (Radford et al. 2019) in nn modules, laid out as Hugging Face's GPT2Model so its weights load from
// and save to HF's safetensors files under HF's names (wte.weight, h.0.attn.c_attn.weight, ...): pre-norm
// blocks, GELU-tanh, tied embeddings, fused causal attention, GPT-2's initialisation, and optional
// activation checkpointing per block. Header-only so the tests run the same code as the example.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ember.hpp"

namespace gpt2 {

using namespace ember;

// The model's shape (HF's GPT2Config names in the comments). Defaults: GPT-2 small, 124M parameters.
struct Config {
  int64_t vocab_size = 50257;  // vocab_size
  int64_t context = 1024;      // n_positions
  int64_t n_layer = 12, n_head = 12, n_embd = 768;
  double dropout = 0.0;  // embd_pdrop = attn_pdrop = resid_pdrop (0 for pre-training, as nanoGPT and llm.c)
  double layer_norm_epsilon = 1e-5;
  bool activation_checkpointing = false;  // recompute each block in backward instead of keeping its activations

  static Config gpt2_124m() { return {}; }
  // The CPU/CI configuration of the same code: byte-level vocabulary, 2 layers of d 64.
  static Config small() { return {.vocab_size = 256, .context = 64, .n_layer = 2, .n_head = 4, .n_embd = 64}; }
};

// Parameters of GPT2Model(c) (the tied head adds none): 124,439,808 for GPT-2 small, as HF's "gpt2".
inline int64_t parameter_count(const Config& c) {
  const int64_t d = c.n_embd;
  const int64_t block = 2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d);
  return c.vocab_size * d + c.context * d + c.n_layer * block + 2 * d;
}

// HF's Conv1D: y = x @ W + b with W stored [in, out] (the transpose of nn.Linear's), one GEMM whose bias
// CUDA adds in cuBLASLt's epilogue. Keeping HF's layout makes loading and saving plain copies.
class Conv1DImpl : public nn::Module {
 public:
  Conv1DImpl(int64_t nx, int64_t nf) : nx(nx), nf(nf) {
    weight = register_parameter("weight", empty({nx, nf}));
    bias = register_parameter("bias", zeros({nf}));
    autograd::NoGradGuard no_grad;
    nn::init::normal_(weight, 0.0, 0.02);
  }
  Tensor forward(const Tensor& x) {
    Shape out = x.shape();
    out.back() = nf;
    return addmm(bias, x.reshape({-1, nx}), weight).view(out);
  }
  // gelu_tanh(forward(x)) as one op (ember::addmm_gelu: one cuBLASLt call on CUDA), for the MLP's c_fc.
  Tensor forward_gelu(const Tensor& x) {
    Shape out = x.shape();
    out.back() = nf;
    return addmm_gelu(bias, x.reshape({-1, nx}), weight).view(out);
  }
  std::string type_name() const override { return "Conv1D"; }
  std::string extra_repr() const override { return "nf=" + std::to_string(nf) + ", nx=" + std::to_string(nx); }
  int64_t nx, nf;
  Tensor weight, bias;
};
EMBER_MODULE(Conv1D);

// Causal self-attention: one c_attn GEMM makes q, k and v; the fused scaled_dot_product_attention (CPU
// blocked; CUDA: cuDNN's fused attention, which reads these views in place, or Ember's flash kernel)
// never stores the T x T scores.
class AttentionImpl : public nn::Module {
 public:
  explicit AttentionImpl(const Config& c) : n_head(c.n_head), dropout(c.dropout) {
    c_attn = register_module("c_attn", Conv1D(c.n_embd, 3 * c.n_embd));
    c_proj = register_module("c_proj", Conv1D(c.n_embd, c.n_embd));
    resid_dropout = register_module("resid_dropout", nn::Dropout(c.dropout));
  }
  Tensor forward(const Tensor& x) {
    const int64_t b = x.size(0), t = x.size(1), d = x.size(2);
    // [B, T, 3 * d] -> q, k, v [B, H, T, d / H] (views; HF splits c_attn's output in this order).
    std::vector<Tensor> qkv = c_attn(x).view({b, t, 3, n_head, d / n_head}).permute({2, 0, 3, 1, 4}).unbind(0);
    Tensor y = nn::functional::scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], Tensor{},
                                                            is_training() ? dropout : 0.0, /*is_causal=*/true);
    return resid_dropout(c_proj(y.transpose(1, 2).reshape({b, t, d})));
  }
  std::string type_name() const override { return "GPT2Attention"; }
  int64_t n_head;
  double dropout;
  Conv1D c_attn{nullptr}, c_proj{nullptr};
  nn::Dropout resid_dropout{nullptr};
};
EMBER_MODULE(Attention);

class MLPImpl : public nn::Module {
 public:
  explicit MLPImpl(const Config& c) {
    c_fc = register_module("c_fc", Conv1D(c.n_embd, 4 * c.n_embd));
    c_proj = register_module("c_proj", Conv1D(4 * c.n_embd, c.n_embd));
    dropout = register_module("dropout", nn::Dropout(c.dropout));
  }
  // c_fc and GELU(tanh) fused (HF's c_fc then act); c_fc's forward hooks and FLOP scope are not run.
  Tensor forward(const Tensor& x) { return dropout(c_proj(c_fc->forward_gelu(x))); }
  std::string type_name() const override { return "GPT2MLP"; }
  Conv1D c_fc{nullptr}, c_proj{nullptr};
  nn::Dropout dropout{nullptr};
};
EMBER_MODULE(MLP);

// Pre-norm residual block: x + attn(ln_1(x)), then + mlp(ln_2(x)).
class BlockImpl : public nn::Module {
 public:
  explicit BlockImpl(const Config& c) {
    ln_1 = register_module("ln_1", nn::LayerNorm(Shape{c.n_embd}, {.eps = c.layer_norm_epsilon}));
    attn = register_module("attn", Attention(c));
    ln_2 = register_module("ln_2", nn::LayerNorm(Shape{c.n_embd}, {.eps = c.layer_norm_epsilon}));
    mlp = register_module("mlp", MLP(c));
  }
  Tensor forward(const Tensor& x) {
    Tensor h = x + attn(ln_1(x));
    return h + mlp(ln_2(h));
  }
  std::string type_name() const override { return "GPT2Block"; }
  nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  Attention attn{nullptr};
  MLP mlp{nullptr};
};
EMBER_MODULE(Block);

// HF's GPT2Model: token ids [B, T] -> final hidden states [B, T, n_embd]. Parameter names are HF's.
class GPT2ModelImpl : public nn::Module {
 public:
  explicit GPT2ModelImpl(const Config& c) : config(c) {
    EMBER_CHECK(c.n_embd % c.n_head == 0, ValueError, "[gpt2] n_embd ", c.n_embd, " is not a multiple of n_head ",
                c.n_head);
    wte = register_module("wte", nn::Embedding(c.vocab_size, c.n_embd));
    wpe = register_module("wpe", nn::Embedding(c.context, c.n_embd));
    drop = register_module("drop", nn::Dropout(c.dropout));
    for (int64_t i = 0; i < c.n_layer; ++i) {
      blocks.emplace_back(c);
      h->push_back(blocks.back());
    }
    register_module("h", h);
    ln_f = register_module("ln_f", nn::LayerNorm(Shape{c.n_embd}, {.eps = c.layer_norm_epsilon}));
    // GPT-2's initialisation (HF's _init_weights): N(0, 0.02) for embeddings and Conv1D weights (set by
    // Conv1D), zero biases, unit norms; the residual projections c_proj scaled by 1/sqrt(2 n_layer).
    autograd::NoGradGuard no_grad;
    nn::init::normal_(wte->weight, 0.0, 0.02);
    nn::init::normal_(wpe->weight, 0.0, 0.02);
    const double proj_std = 0.02 / std::sqrt(2.0 * static_cast<double>(c.n_layer));
    for (auto& block : blocks) {
      nn::init::normal_(block->attn->c_proj->weight, 0.0, proj_std);
      nn::init::normal_(block->mlp->c_proj->weight, 0.0, proj_std);
    }
  }
  Tensor forward(const Tensor& idx) {
    const int64_t t = idx.size(1);
    EMBER_CHECK(t <= config.context, ShapeError, "[gpt2] sequence length ", t, " exceeds the context ", config.context);
    Tensor x = drop(wte(idx) + wpe(arange(t, kI64, idx.device())));
    for (auto& block : blocks) {
      if (config.activation_checkpointing)  // under no_grad this is a plain call
        x = nn::checkpoint([block](const Tensor& in) { return block(in); }, x);
      else
        x = block(x);
    }
    return ln_f(x);
  }
  std::string type_name() const override { return "GPT2Model"; }
  Config config;
  nn::Embedding wte{nullptr}, wpe{nullptr};
  nn::Dropout drop{nullptr};
  nn::ModuleList h;           // registers the blocks as h.0, h.1, ...
  std::vector<Block> blocks;  // the same blocks, typed
  nn::LayerNorm ln_f{nullptr};
};
EMBER_MODULE(GPT2Model);

// The language-model head, tied to the token embedding (HF's lm_head.weight is wte.weight): hidden
// [B, T, d] -> logits [B, T, vocab].
inline Tensor lm_logits(GPT2ModelImpl& m, const Tensor& idx) {
  return nn::functional::linear(m.forward(idx), m.wte->weight);
}

// ------------------------------------------------------------------------------------- HF safetensors

namespace detail {
// The causal-mask buffers older HF GPT-2 files hold (h.N.attn.bias, h.N.attn.masked_bias): not parameters.
inline bool is_hf_buffer(const std::string& key) {
  if (key.rfind("h.", 0) != 0) return false;
  size_t i = 2;
  while (i < key.size() && key[i] >= '0' && key[i] <= '9') ++i;
  if (i == 2) return false;
  const std::string rest = key.substr(i);
  return rest == ".attn.bias" || rest == ".attn.masked_bias";
}
}  // namespace detail

// Loads HF GPT-2 weights (GPT2Model's names, or GPT2LMHeadModel's with the "transformer." prefix) into m,
// converting the dtype. A missing, unexpected or mis-shaped tensor raises, naming the key and the shapes.
inline void load_hf(GPT2ModelImpl& m, const std::string& path) {
  const std::string op = "[gpt2 load_hf] " + path + ": ";
  TensorMap file = load(path);
  const nn::StateDict expected = m.state_dict();
  nn::StateDict state;
  for (auto& [raw_key, t] : file) {
    std::string key = raw_key.rfind("transformer.", 0) == 0 ? raw_key.substr(12) : raw_key;
    if (detail::is_hf_buffer(key)) continue;
    if (key == "lm_head.weight") {  // tied: must be the embedding's shape (its values are wte's)
      EMBER_CHECK(t.shape() == m.wte->weight.shape(), ShapeError, op, "lm_head.weight has shape ", t.shape(),
                  " but the tied wte.weight is ", m.wte->weight.shape());
      continue;
    }
    auto it = expected.find(key);
    EMBER_CHECK(it != expected.end(), ValueError, op, "unexpected tensor '", raw_key,
                "' (not a GPT-2 parameter of this configuration)");
    EMBER_CHECK(t.shape() == it->second.shape(), ShapeError, op, "tensor '", raw_key, "' has shape ", t.shape(),
                " but the model expects ", it->second.shape());
    EMBER_CHECK(state.emplace(key, t).second, ValueError, op, "tensor '", key,
                "' appears twice (with and without the transformer. prefix)");
  }
  for (const auto& [key, t] : expected)
    EMBER_CHECK(state.count(key), ValueError, op, "missing tensor '", key, "' (expected shape ", t.shape(), ")");
  m.load_state_dict(state, /*strict=*/true);
}

// Writes m's weights as HF's GPT2Model file: HF's names (with `prefix` before each, "transformer." for
// GPT2LMHeadModel's layout), Conv1D weights [in, out], f32 or the model's dtype, metadata format "pt"
// (what transformers' from_pretrained checks).
inline void save_hf(const GPT2ModelImpl& m, const std::string& path, const std::string& prefix = "") {
  TensorMap out;
  for (auto& [key, t] : m.state_dict()) out.emplace(prefix + key, t.to(kCPU).contiguous());
  save(path, out, {{"format", "pt"}});
}

}  // namespace gpt2
