// Training parity with PyTorch: an MLP, a small CNN and a 2-layer causal transformer, started from
// PyTorch's weights, take 10 steps with each optimizer; every loss matches PyTorch's within 1e-5
// relative in f64 and 1e-4 in f32 (fixtures_parity.py).
#include <functional>
#include <memory>

#include "test_util.hpp"

using namespace ember;
namespace F = ember::nn::functional;

namespace {

const TensorMap& fx() {
  static TensorMap m = ember::testing::fixtures("parity");
  return m;
}

struct Mlp : nn::Module {
  nn::Sequential net{nn::Linear(8, 16), nn::Tanh(), nn::Linear(16, 4)};
  Mlp() { register_module("net", net); }
  Tensor forward(const Tensor& x) { return net(x); }
};

struct Cnn : nn::Module {
  nn::Sequential net{nn::Conv2d(1, 4, 3), nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(), nn::Linear(4 * 3 * 3, 5)};
  Cnn() { register_module("net", net); }
  Tensor forward(const Tensor& x) { return net(x); }
};

struct Gpt : nn::Module {
  nn::Embedding tok{11, 16}, pos{6, 16};
  nn::ModuleList blocks;
  std::vector<nn::TransformerEncoderLayer> layers;
  nn::LayerNorm ln_f{Shape{16}};
  nn::Linear head{16, 11};
  Gpt() {
    register_module("tok", tok);
    register_module("pos", pos);
    for (int i = 0; i < 2; ++i) {
      layers.emplace_back(
          16, 2,
          nn::TransformerEncoderLayerOptions{
              .dim_feedforward = 32, .dropout = 0.0, .activation = "gelu", .batch_first = true, .norm_first = true});
      blocks->push_back(layers.back());
    }
    register_module("blocks", blocks);
    register_module("ln_f", ln_f);
    register_module("head", head);
  }
  Tensor forward(const Tensor& idx) {
    Tensor x = tok(idx) + pos(arange(idx.size(1), kI64));
    for (auto& b : layers) x = b(x, Tensor{}, Tensor{}, true);
    return head(ln_f(x));
  }
};

using MakeOpt = std::function<std::unique_ptr<optim::Optimizer>(std::vector<Tensor>)>;

// The settings of fixtures_parity.py's OPTIMIZERS.
std::vector<std::pair<std::string, MakeOpt>> optimizers() {
  return {
      {"sgd",
       [](auto p) {
         return std::make_unique<optim::SGD>(
             p, optim::SGDOptions{.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-3, .nesterov = true});
       }},
      {"adam",
       [](auto p) { return std::make_unique<optim::Adam>(p, optim::AdamOptions{.lr = 1e-2, .amsgrad = true}); }},
      {"adamw",
       [](auto p) { return std::make_unique<optim::AdamW>(p, optim::AdamWOptions{.lr = 1e-2, .weight_decay = 0.1}); }},
      {"rmsprop",
       [](auto p) {
         return std::make_unique<optim::RMSprop>(p,
                                                 optim::RMSpropOptions{.lr = 1e-3, .momentum = 0.5, .centered = true});
       }},
      {"adagrad",
       [](auto p) { return std::make_unique<optim::Adagrad>(p, optim::AdagradOptions{.lr = 0.1, .lr_decay = 1e-3}); }},
  };
}

template <class Model>
void check_parity(const std::string& name) {
  nn::StateDict init;
  std::string prefix = name + ".sd.";
  for (const auto& [k, v] : fx())
    if (k.starts_with(prefix)) init[k.substr(prefix.size())] = v;
  for (auto& [opt_name_, make_opt] : optimizers()) {
    // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
    const auto& opt_name = opt_name_;
    for (DType dt : {kF64, kF32}) {
      CAPTURE(name);
      CAPTURE(opt_name);
      CAPTURE(dt);
      Model model;
      model.to(dt);
      model.load_state_dict(init);
      auto opt = make_opt(model.parameters());
      auto want = fx().at(name + "." + opt_name + (dt == kF64 ? ".f64" : ".f32")).template to_vector<double>();
      double rtol = dt == kF64 ? 1e-5 : 1e-4;
      for (size_t i = 0; i < want.size(); ++i) {
        Tensor x = fx().at(name + ".x" + std::to_string(i)), y = fx().at(name + ".y" + std::to_string(i));
        if (x.is_floating_point()) x = x.to(dt);
        Tensor loss = F::cross_entropy(model.forward(x).flatten(0, -2), y.flatten());
        opt->zero_grad();
        loss.backward();
        opt->step();
        double got = loss.item<double>();
        CAPTURE(i);
        CHECK(std::abs(got - want[i]) <= rtol * std::abs(want[i]));
      }
    }
  }
}

}  // namespace

TEST_CASE("parity: an MLP trains exactly as in PyTorch with every optimizer") { check_parity<Mlp>("mlp"); }
TEST_CASE("parity: a small CNN trains exactly as in PyTorch with every optimizer") { check_parity<Cnn>("cnn"); }
TEST_CASE("parity: a 2-layer causal transformer trains exactly as in PyTorch with every optimizer") {
  check_parity<Gpt>("gpt");
}
