// The models of the training workloads, each defined exactly as its PyTorch twin in
// bench/reference/models.py: MLP 784-1024-1024-10, LeNet-5, a small ResNet, and a GPT (char-sized or GPT-2 124M).
#pragma once
#include <string>
#include <vector>

#include "ember.hpp"

namespace bench {

using namespace ember;

struct Mlp : nn::Module {
  nn::Sequential net{nn::Linear(784, 1024), nn::ReLU(), nn::Linear(1024, 1024), nn::ReLU(), nn::Linear(1024, 10)};
  Mlp() { register_module("net", net); }
  Tensor forward(const Tensor& x) { return net(x); }
};

struct LeNet : nn::Module {
  nn::Sequential net{nn::Conv2d(1, 6, 5, {.padding = 2}),
                     nn::ReLU(),
                     nn::MaxPool2d(2),
                     nn::Conv2d(6, 16, 5),
                     nn::ReLU(),
                     nn::MaxPool2d(2),
                     nn::Flatten(),
                     nn::Linear(400, 120),
                     nn::ReLU(),
                     nn::Linear(120, 84),
                     nn::ReLU(),
                     nn::Linear(84, 10)};
  LeNet() { register_module("net", net); }
  Tensor forward(const Tensor& x) { return net(x); }
};

// conv 32 + BN stem, two residual blocks of (conv, BN, ReLU, conv, BN) + skip, global pool, linear.
struct ResNet : nn::Module {
  nn::Conv2d stem{3, 32, 3, {.padding = 1, .bias = false}};
  nn::BatchNorm2d bn{32};
  std::vector<nn::Sequential> blocks;
  nn::Linear fc{32, 10};
  ResNet() {
    register_module("stem", stem);
    register_module("bn", bn);
    for (int i = 0; i < 2; ++i) {
      blocks.emplace_back(nn::Conv2d(32, 32, 3, {.padding = 1, .bias = false}), nn::BatchNorm2d(32), nn::ReLU(),
                          nn::Conv2d(32, 32, 3, {.padding = 1, .bias = false}), nn::BatchNorm2d(32));
      register_module("block" + std::to_string(i), blocks.back());
    }
    register_module("fc", fc);
  }
  Tensor forward(const Tensor& x) {
    Tensor h = bn(stem(x)).relu();
    for (auto& b : blocks) h = (h + b(h)).relu();
    return fc(adaptive_avg_pool2d(h, {1, 1}).flatten(1));
  }
};

// A pre-norm GPT of TransformerEncoderLayers with a causal mask. tied: the output projection is the token
// embedding (GPT-2); else a separate bias-free head.
struct GptConfig {
  int64_t vocab = 65, context = 64, d_model = 128, heads = 4, layers = 4;
  double dropout = 0.1;
  bool tied = false;
};
inline constexpr GptConfig kCharGpt{};
inline constexpr GptConfig kGpt2{
    .vocab = 50257, .context = 1024, .d_model = 768, .heads = 12, .layers = 12, .dropout = 0.0, .tied = true};

struct Gpt : nn::Module {
  GptConfig cfg;
  nn::Embedding tok, pos;
  std::vector<nn::TransformerEncoderLayer> layers;
  nn::LayerNorm ln;
  nn::Linear head{nullptr};
  explicit Gpt(GptConfig c = kCharGpt)
      : cfg(c), tok(c.vocab, c.d_model), pos(c.context, c.d_model), ln(Shape{c.d_model}) {
    register_module("tok", tok);
    register_module("pos", pos);
    for (int64_t i = 0; i < c.layers; ++i) {
      layers.emplace_back(c.d_model, c.heads,
                          nn::TransformerEncoderLayerOptions{.dim_feedforward = 4 * c.d_model,
                                                             .dropout = c.dropout,
                                                             .activation = "gelu",
                                                             .batch_first = true,
                                                             .norm_first = true});
      register_module("block" + std::to_string(i), layers.back());
    }
    register_module("ln", ln);
    if (!c.tied) {
      head = nn::Linear(c.d_model, c.vocab, {.bias = false});
      register_module("head", head);
    }
  }
  Tensor forward(const Tensor& idx) {
    Tensor x = tok(idx) + pos(arange(idx.size(1), kI64, idx.device()));
    for (auto& l : layers) x = l(x, Tensor{}, Tensor{}, true);
    x = ln(x);
    return cfg.tied ? matmul(x, tok->weight.t()) : head(x);
  }
};

}  // namespace bench
