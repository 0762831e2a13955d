// Basic layers: construction with PyTorch's default initialisation, forward through nn::functional.
#include "nn/layers.hpp"

#include <cmath>
#include <sstream>

#include "core/autograd.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/index.hpp"
#include "nn/functional.hpp"
#include "nn/init.hpp"

namespace ember::nn {

namespace {

Tensor new_param(const Shape& shape, const Placement& p) {
  return empty(shape, {.dtype = p.dtype, .device = p.device});
}

// PyTorch's default for Linear/Conv: W ~ kaiming_uniform(a = sqrt(5)) = U(+-1/sqrt(fan_in)), b ~ U(+-1/sqrt(fan_in)).
void reset_linear_like(Tensor& weight, Tensor& bias, int64_t fan_in) {
  init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
    init::uniform_(bias, -bound, bound);
  }
}

void check_positive(int64_t v, const char* layer, const char* what) {
  EMBER_CHECK(v > 0, ValueError, "[nn.", layer, "] ", what, " must be positive, got ", v);
}

}  // namespace

// ---------------------------------------------------------------- Linear

LinearImpl::LinearImpl(int64_t in, int64_t out, LinearOptions o) : in_features(in), out_features(out) {
  check_positive(out, "Linear", "out_features");
  EMBER_CHECK(in >= 0, ValueError, "[nn.Linear] in_features must be non-negative, got ", in);
  weight = register_parameter("weight", new_param({out, in}, o.placement));
  if (o.bias) bias = register_parameter("bias", new_param({out}, o.placement));
  reset_parameters();
}

void LinearImpl::reset_parameters() { reset_linear_like(weight, bias, in_features); }

Tensor LinearImpl::forward(const Tensor& x) { return functional::linear(x, weight, bias); }

std::string LinearImpl::extra_repr() const {
  std::ostringstream os;
  os << "in_features=" << in_features << ", out_features=" << out_features
     << ", bias=" << (bias.defined() ? "True" : "False");
  return os.str();
}

// ---------------------------------------------------------------- Bilinear

BilinearImpl::BilinearImpl(int64_t in1, int64_t in2, int64_t out, LinearOptions o)
    : in1_features(in1), in2_features(in2), out_features(out) {
  check_positive(in1, "Bilinear", "in1_features");
  check_positive(in2, "Bilinear", "in2_features");
  check_positive(out, "Bilinear", "out_features");
  weight = register_parameter("weight", new_param({out, in1, in2}, o.placement));
  if (o.bias) bias = register_parameter("bias", new_param({out}, o.placement));
  reset_parameters();
}

void BilinearImpl::reset_parameters() {
  double bound = 1.0 / std::sqrt(static_cast<double>(in1_features));
  init::uniform_(weight, -bound, bound);
  if (bias.defined()) init::uniform_(bias, -bound, bound);
}

Tensor BilinearImpl::forward(const Tensor& x1, const Tensor& x2) { return functional::bilinear(x1, x2, weight, bias); }

std::string BilinearImpl::extra_repr() const {
  std::ostringstream os;
  os << "in1_features=" << in1_features << ", in2_features=" << in2_features << ", out_features=" << out_features
     << ", bias=" << (bias.defined() ? "True" : "False");
  return os.str();
}

// ---------------------------------------------------------------- Flatten, Dropout

std::string FlattenImpl::extra_repr() const {
  return "start_dim=" + std::to_string(start_dim) + ", end_dim=" + std::to_string(end_dim);
}

DropoutImpl::DropoutImpl(double p) : p(p) {
  EMBER_CHECK(p >= 0.0 && p <= 1.0, ValueError, "[nn.Dropout] probability must be in [0, 1], got ", p);
}

Tensor DropoutImpl::forward(const Tensor& x) { return functional::dropout(x, p, is_training()); }

std::string DropoutImpl::extra_repr() const {
  std::ostringstream os;
  os << "p=" << p;
  return os.str();
}

// ---------------------------------------------------------------- Embedding

EmbeddingImpl::EmbeddingImpl(int64_t num, int64_t dim, EmbeddingOptions o)
    : num_embeddings(num), embedding_dim(dim), padding_idx(o.padding_idx) {
  check_positive(num, "Embedding", "num_embeddings");
  check_positive(dim, "Embedding", "embedding_dim");
  if (padding_idx) {
    EMBER_CHECK(*padding_idx >= -num && *padding_idx < num, IndexError, "[nn.Embedding] padding_idx ", *padding_idx,
                " is out of range for ", num, " embeddings");
    if (*padding_idx < 0) *padding_idx += num;
  }
  weight = register_parameter("weight", new_param({num, dim}, o.placement));
  reset_parameters();
}

void EmbeddingImpl::reset_parameters() {
  init::normal_(weight);
  if (padding_idx) {
    autograd::NoGradGuard no_grad;
    weight.detach()[*padding_idx].zero_();
  }
}

Tensor EmbeddingImpl::forward(const Tensor& indices) { return functional::embedding(indices, weight, padding_idx); }

std::string EmbeddingImpl::extra_repr() const {
  std::string s = std::to_string(num_embeddings) + ", " + std::to_string(embedding_dim);
  if (padding_idx) s += ", padding_idx=" + std::to_string(*padding_idx);
  return s;
}

// ---------------------------------------------------------------- activations

Tensor LeakyReLUImpl::forward(const Tensor& x) { return leaky_relu(x, negative_slope); }

std::string LeakyReLUImpl::extra_repr() const {
  std::ostringstream os;
  os << "negative_slope=" << negative_slope;
  return os.str();
}

Tensor ELUImpl::forward(const Tensor& x) { return elu(x, alpha); }
std::string ELUImpl::extra_repr() const {
  std::ostringstream os;
  os << "alpha=" << alpha;
  return os.str();
}
Tensor SELUImpl::forward(const Tensor& x) { return selu(x); }
Tensor HardtanhImpl::forward(const Tensor& x) { return hardtanh(x, min_val, max_val); }
std::string HardtanhImpl::extra_repr() const {
  std::ostringstream os;
  os << "min_val=" << min_val << ", max_val=" << max_val;
  return os.str();
}
Tensor ReLU6Impl::forward(const Tensor& x) { return relu6(x); }
Tensor MishImpl::forward(const Tensor& x) { return mish(x); }
Tensor LogSigmoidImpl::forward(const Tensor& x) { return logsigmoid(x); }

}  // namespace ember::nn
