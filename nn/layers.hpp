// Basic layers: Identity, Linear, Bilinear, Flatten, Dropout, Embedding and the activations.
// the activations. Each XImpl holds its parameters as public members; the handle nn::X shares it.
#pragma once
#include <array>
#include <optional>
#include <string>

#include "nn/module.hpp"

namespace ember::nn {

// A pair of sizes (kernel, stride, padding, ...) written as one number or as {h, w}.
struct Int2 : std::array<int64_t, 2> {
  Int2(int64_t v) : std::array<int64_t, 2>{v, v} {}
  Int2(int64_t h, int64_t w) : std::array<int64_t, 2>{h, w} {}
};

// Device and dtype for a layer's parameters at construction (defaults: CPU, f32).
struct Placement {
  DType dtype = kF32;
  Device device = kCPU;
};

class IdentityImpl : public Module {
 public:
  Tensor forward(const Tensor& x) { return x; }
};
EMBER_MODULE(Identity);

struct LinearOptions {
  bool bias = true;
  Placement placement = {};
};
// y = x W^T + b; W [out, in] initialised kaiming_uniform(a = sqrt(5)), b uniform(+-1/sqrt(in)) as PyTorch.
class LinearImpl : public Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, LinearOptions options = {});
  Tensor forward(const Tensor& x);
  void reset_parameters();
  std::string extra_repr() const override;
  int64_t in_features, out_features;
  Tensor weight, bias;
};
class Linear : public ModuleHolder<LinearImpl> {
 public:
  using ModuleHolder::ModuleHolder;
  Linear(int64_t in_features, int64_t out_features, LinearOptions options = {})
      : ModuleHolder(std::make_shared<LinearImpl>(in_features, out_features, options)) {}
};

// y[n, o] = x1[n, :] W[o] x2[n, :]^T + b[o].
class BilinearImpl : public Module {
 public:
  BilinearImpl(int64_t in1_features, int64_t in2_features, int64_t out_features, LinearOptions options = {});
  Tensor forward(const Tensor& x1, const Tensor& x2);
  void reset_parameters();
  std::string extra_repr() const override;
  int64_t in1_features, in2_features, out_features;
  Tensor weight, bias;
};
class Bilinear : public ModuleHolder<BilinearImpl> {
 public:
  using ModuleHolder::ModuleHolder;
  Bilinear(int64_t in1_features, int64_t in2_features, int64_t out_features, LinearOptions options = {})
      : ModuleHolder(std::make_shared<BilinearImpl>(in1_features, in2_features, out_features, options)) {}
};

class FlattenImpl : public Module {
 public:
  explicit FlattenImpl(int64_t start_dim = 1, int64_t end_dim = -1) : start_dim(start_dim), end_dim(end_dim) {}
  Tensor forward(const Tensor& x) { return x.flatten(start_dim, end_dim); }
  std::string extra_repr() const override;
  int64_t start_dim, end_dim;
};
EMBER_MODULE(Flatten);

class DropoutImpl : public Module {
 public:
  explicit DropoutImpl(double p = 0.5);
  Tensor forward(const Tensor& x);
  std::string extra_repr() const override;
  double p;
};
EMBER_MODULE(Dropout);

struct EmbeddingOptions {
  std::optional<int64_t> padding_idx = {};
  Placement placement = {};
};
// Rows of weight [num_embeddings, embedding_dim] ~ N(0, 1); the padding row is zero and gets no gradient.
class EmbeddingImpl : public Module {
 public:
  EmbeddingImpl(int64_t num_embeddings, int64_t embedding_dim, EmbeddingOptions options = {});
  Tensor forward(const Tensor& indices);
  void reset_parameters();
  std::string extra_repr() const override;
  int64_t num_embeddings, embedding_dim;
  std::optional<int64_t> padding_idx;
  Tensor weight;
};
class Embedding : public ModuleHolder<EmbeddingImpl> {
 public:
  using ModuleHolder::ModuleHolder;
  Embedding(int64_t num_embeddings, int64_t embedding_dim, EmbeddingOptions options = {})
      : ModuleHolder(std::make_shared<EmbeddingImpl>(num_embeddings, embedding_dim, options)) {}
};

// ---- activations ----
class ReLUImpl : public Module {
 public:
  Tensor forward(const Tensor& x) { return x.relu(); }
};
EMBER_MODULE(ReLU);

class LeakyReLUImpl : public Module {
 public:
  explicit LeakyReLUImpl(double negative_slope = 0.01) : negative_slope(negative_slope) {}
  Tensor forward(const Tensor& x);
  std::string extra_repr() const override;
  double negative_slope;
};
EMBER_MODULE(LeakyReLU);

class GELUImpl : public Module {
 public:
  explicit GELUImpl(std::string approximate = "none") : approximate(std::move(approximate)) {}
  Tensor forward(const Tensor& x) { return x.gelu(approximate); }
  std::string extra_repr() const override { return "approximate='" + approximate + "'"; }
  std::string approximate;
};
EMBER_MODULE(GELU);

class SiLUImpl : public Module {
 public:
  Tensor forward(const Tensor& x) { return x.silu(); }
};
EMBER_MODULE(SiLU);

class TanhImpl : public Module {
 public:
  Tensor forward(const Tensor& x) { return x.tanh(); }
};
EMBER_MODULE(Tanh);

class SigmoidImpl : public Module {
 public:
  Tensor forward(const Tensor& x) { return x.sigmoid(); }
};
EMBER_MODULE(Sigmoid);

class ELUImpl : public Module {
 public:
  explicit ELUImpl(double alpha = 1.0) : alpha(alpha) {}
  Tensor forward(const Tensor& x);
  std::string extra_repr() const override;
  double alpha;
};
EMBER_MODULE(ELU);

class SELUImpl : public Module {
 public:
  Tensor forward(const Tensor& x);
};
EMBER_MODULE(SELU);

// clamp to [min_val, max_val] with gradient 0 at and beyond the bounds; ReLU6 is Hardtanh(0, 6).
class HardtanhImpl : public Module {
 public:
  explicit HardtanhImpl(double min_val = -1.0, double max_val = 1.0) : min_val(min_val), max_val(max_val) {}
  Tensor forward(const Tensor& x);
  std::string extra_repr() const override;
  double min_val, max_val;
};
EMBER_MODULE(Hardtanh);

class ReLU6Impl : public Module {
 public:
  Tensor forward(const Tensor& x);
};
EMBER_MODULE(ReLU6);

class MishImpl : public Module {
 public:
  Tensor forward(const Tensor& x);
};
EMBER_MODULE(Mish);

class LogSigmoidImpl : public Module {
 public:
  Tensor forward(const Tensor& x);
};
EMBER_MODULE(LogSigmoid);

class SoftmaxImpl : public Module {
 public:
  explicit SoftmaxImpl(int64_t dim) : dim(dim) {}
  Tensor forward(const Tensor& x) { return x.softmax(dim); }
  std::string extra_repr() const override { return "dim=" + std::to_string(dim); }
  int64_t dim;
};
EMBER_MODULE(Softmax);

}  // namespace ember::nn
