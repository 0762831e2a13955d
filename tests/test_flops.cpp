// Tests of FlopCounter (core/flop_counter.hpp) against torch.utils.flop_counter.FlopCounterMode's counts
// (tests/reference/fixtures_flops.py), its scopes, nesting and threads, and ModelSummary's FLOPs column
// for a TrainModule with example_input_array: Lightning's table, and a forward that changes nothing.
#include <doctest/doctest.h>

#include <sstream>
#include <string>
#include <thread>

#include "ember.hpp"
#include "test_util.hpp"
#include "train/callbacks/callbacks.hpp"
#include "train/trainer.hpp"
#include "trainer_fixtures.hpp"

using namespace ember;
using namespace ember::train;
using namespace ember::testing;
namespace F = ember::nn::functional;

namespace {

const TensorMap& refs() {
  static const TensorMap f = fixtures("flops");
  return f;
}

int64_t torch_flops(const std::string& name) { return refs().at("ref." + name).item<int64_t>(); }

template <class Fn>
int64_t flops_of(Fn&& fn) {
  FlopCounter counter;
  fn();
  return counter.total();
}

// fixtures_flops.py's LeNet: conv, BatchNorm, ReLU and pools, then Flatten and three Linears with Dropout.
struct FlopLeNet : TrainModule {
  nn::Sequential features{nn::Conv2d(1, 6, 5, {.padding = 2}),
                          nn::BatchNorm2d(6),
                          nn::ReLU(),
                          nn::MaxPool2d(2),
                          nn::Conv2d(6, 16, 5),
                          nn::ReLU(),
                          nn::MaxPool2d(2)};
  nn::Sequential classifier{nn::Flatten(),       nn::Linear(400, 120), nn::ReLU(),        nn::Dropout(0.5),
                            nn::Linear(120, 84), nn::ReLU(),           nn::Linear(84, 10)};
  FlopLeNet() {
    register_module("features", features);
    register_module("classifier", classifier);
  }
  Tensor forward(const Tensor& x) override { return classifier(features(x)); }
  Tensor training_step(const data::Batch& b, int64_t) override { return F::cross_entropy(forward(b.input), b.target); }
  OptimizerConfig configure_optimizers() override {
    return {std::make_shared<optim::SGD>(parameters(), optim::SGDOptions{.lr = 0.1})};
  }
};

// Records the mode its forward ran in and draws from the default generator when training (as Dropout).
struct ModeProbeImpl : nn::Module {
  bool ran_training = true;
  bool throws = false;
  Tensor forward(const Tensor& x) {
    ran_training = is_training();
    EMBER_CHECK(!throws, ValueError, "[ModeProbe] asked to throw");
    return is_training() ? x * rand(x.shape()) : x;
  }
};
EMBER_MODULE(ModeProbe);

struct ProbeModel : TrainModule {
  nn::Linear fc{4, 8};
  nn::BatchNorm1d bn{8};
  ModeProbe probe;
  nn::Dropout drop{0.5};
  ProbeModel() {
    register_module("fc", fc);
    register_module("bn", bn);
    register_module("probe", probe);
    register_module("drop", drop);
  }
  Tensor forward(const Tensor& x) override { return drop(probe(bn(fc(x)))); }
  Tensor training_step(const data::Batch& b, int64_t) override { return forward(b.input).sum(); }
  OptimizerConfig configure_optimizers() override {
    return {std::make_shared<optim::SGD>(parameters(), optim::SGDOptions{.lr = 0.1})};
  }
};

// TinyRegression with a forward and an example input: the Trainer's summary shows its FLOPs.
struct FlopRegression : trainer_test::TinyRegression {
  FlopRegression() { example_input_array = ones({3, 4}); }
  Tensor forward(const Tensor& x) override { return fc(x); }
};

}  // namespace

TEST_SUITE("flops") {
  TEST_CASE("flops: layers and products count as PyTorch's FlopCounterMode") {
    manual_seed(0);
    CHECK(flops_of([] { nn::Linear(64, 32)(randn({8, 64})); }) == torch_flops("linear_2d"));
    CHECK(torch_flops("linear_2d") == 2 * 8 * 64 * 32);
    CHECK(flops_of([] { nn::Linear(16, 24, {.bias = false})(randn({4, 5, 16})); }) == torch_flops("linear_3d_nobias"));
    // Grouped and strided: out [2, 12, 8, 8], 2 * 1536 * (8 / 4) * 3 * 3.
    CHECK(flops_of([] {
            nn::Conv2d(8, 12, 3, {.stride = 2, .padding = 1, .groups = 4})(randn({2, 8, 15, 15}));
          }) == torch_flops("conv2d_groups_stride"));
    CHECK(torch_flops("conv2d_groups_stride") == 2 * (2 * 12 * 8 * 8) * 2 * 9);
    CHECK(flops_of([] {
            nn::Conv2d(3, 5, {3, 2}, {.stride = {1, 2}, .dilation = 2})(randn({1, 3, 11, 9}));
          }) == torch_flops("conv2d_dilation"));
    CHECK(flops_of([] { nn::Conv1d(3, 6, 5, {.stride = 2})(randn({2, 3, 20})); }) == torch_flops("conv1d"));
    CHECK(flops_of([] {
            F::conv3d(randn({1, 2, 5, 8, 8}), randn({4, 1, 2, 3, 3}), {}, {1, 2, 2}, 1, 1, 2);
          }) == torch_flops("conv3d"));
    CHECK(flops_of([] {
            nn::ConvTranspose2d(6, 4, 3, {.stride = 2, .groups = 2})(randn({2, 6, 5, 5}));
          }) == torch_flops("conv_transpose2d"));
    CHECK(flops_of([] {
            F::conv_transpose1d(randn({2, 4, 7}), randn({4, 3, 3}), {}, 2);
          }) == torch_flops("conv_transpose1d"));
    CHECK(flops_of([] { mm(randn({7, 3}), randn({3, 5})); }) == torch_flops("mm"));
    CHECK(flops_of([] { addmm(randn({5}), randn({7, 3}), randn({3, 5})); }) == torch_flops("addmm"));
    CHECK(flops_of([] { bmm(randn({3, 4, 5}), randn({3, 5, 6})); }) == torch_flops("bmm"));
    CHECK(torch_flops("bmm") == 2 * 3 * 4 * 6 * 5);
    CHECK(flops_of([] { baddbmm(randn({3, 4, 6}), randn({3, 4, 5}), randn({3, 5, 6})); }) == torch_flops("baddbmm"));
    CHECK(flops_of([] { matmul(randn({2, 4, 5}), randn({5, 3})); }) == torch_flops("matmul_3d_2d"));
    CHECK(flops_of([] { matmul(randn({2, 1, 4, 5}), randn({3, 5, 6})); }) == torch_flops("matmul_broadcast"));
    CHECK(flops_of([] { matmul(randn({5}), randn({5, 3})); }) == torch_flops("matmul_1d_2d"));
    CHECK(flops_of([] {
            F::scaled_dot_product_attention(randn({2, 4, 5, 8}), randn({2, 4, 7, 8}), randn({2, 4, 7, 3}));
          }) == torch_flops("sdpa"));
    {  // the blocked CPU kernel counts as the composed path's two products
      SdpaBackendGuard blocked(SdpaBackend::Blocked);
      CHECK(flops_of([] {
              F::scaled_dot_product_attention(randn({2, 4, 5, 8}), randn({2, 4, 7, 8}), randn({2, 4, 7, 3}));
            }) == torch_flops("sdpa"));
    }
    Tensor x = randn({2, 5, 16});
    nn::MultiheadAttention mha(16, 4, {.batch_first = true});
    CHECK(flops_of([&] { mha(x, x, x, {.need_weights = false}); }) == torch_flops("mha_self"));
    CHECK(flops_of([&] { mha(x, x, x); }) == torch_flops("mha_self"));  // the explicit path: the same products
    // Where PyTorch counts 0 (no formula for dot and mv), Ember counts the multiply-adds.
    CHECK(flops_of([] { dot(randn({5}), randn({5})); }) == 10);
    CHECK(flops_of([] { matmul(randn({4, 5}), randn({5})); }) == 40);
    // Elementwise, reductions, norms, pools: 0.
    CHECK(flops_of([] {
            Tensor t = randn({2, 3, 8, 8});
            F::max_pool2d(F::relu(t * 2 + 1), 2).sum();
          }) == 0);
  }

  TEST_CASE("flops: per op, nested counters, scopes and threads") {
    manual_seed(1);
    Tensor a = randn({4, 3}), b = randn({3, 2});
    mm(a, b);  // no counter: nothing to see, nothing fails
    FlopCounter outer;
    mm(a, b);
    int64_t inner_total = 0;
    {
      FlopCounter inner;
      bmm(randn({2, 4, 3}), randn({2, 3, 2}));
      inner_total = inner.total();
      CHECK(inner.by_op().size() == 1);
    }
    CHECK(inner_total == 96);
    CHECK(outer.total() == 48 + 96);  // the outer counter saw the inner's ops too
    CHECK(outer.by_op().at("mm") == 48);
    CHECK(outer.by_op().at("bmm") == 96);

    // Another thread's ops are its own.
    std::thread([&] { mm(randn({10, 10}), randn({10, 10})); }).join();
    CHECK(outer.total() == 144);

    // Scopes: a handle's call and a Sequential's step attribute to the layer and to enclosing scopes.
    nn::Linear fc(3, 5);
    nn::Sequential seq{nn::Linear(5, 2), nn::ReLU()};
    outer.reset();
    int64_t key = 0;
    {
      FlopScope scope(&key);
      seq(fc(a));
    }
    CHECK(outer.flops_of(fc.ptr().get()) == 2 * 4 * 3 * 5);
    CHECK(outer.flops_of((*seq)[0].get()) == 2 * 4 * 5 * 2);
    CHECK(outer.flops_of(seq.ptr().get()) == 2 * 4 * 5 * 2);
    CHECK(outer.flops_of((*seq)[1].get()) == 0);
    CHECK(outer.flops_of(&key) == outer.total());
    CHECK(outer.total() == 120 + 80);
    fc(a);  // called twice: counted twice
    CHECK(outer.flops_of(fc.ptr().get()) == 240);
    CHECK(outer.flops_of(&key) == 200);  // closed
  }

  TEST_CASE("flops: a backward inside the counter adds its products") {
    manual_seed(2);
    Tensor w = randn({3, 5}, {.requires_grad = true});
    Tensor x = randn({4, 3}, {.requires_grad = true});
    FlopCounter counter;
    Tensor y = mm(x, w);
    CHECK(counter.total() == 120);
    y.sum().backward();
    CHECK(counter.total() == 3 * 120);  // grad_x = g @ w^T, grad_w = x^T @ g, as PyTorch counts
  }

  TEST_CASE("flops: a LeNet's per-layer FLOPs match FlopCounterMode's module counts") {
    manual_seed(3);
    FlopLeNet model;
    model.example_input_array = randn({2, 1, 28, 28});
    const ModelSummaryData deep = summarize_model(model, -1);
    REQUIRE(deep.total_flops.has_value());
    CHECK(*deep.total_flops == torch_flops("lenet.total"));
    REQUIRE(deep.layers.size() == 16);
    for (const LayerSummary& l : deep.layers) {
      INFO(l.name);
      CHECK(l.flops == torch_flops("lenet." + l.name));
    }
    // By hand: conv1 out [2, 6, 28, 28] * 1 * 25, conv2 out [2, 16, 10, 10] * 6 * 25, the Linears 2*B*in*out.
    CHECK(torch_flops("lenet.features.0") == 2 * (2 * 6 * 28 * 28) * 25);
    CHECK(torch_flops("lenet.features.4") == 2 * (2 * 16 * 10 * 10) * 6 * 25);
    CHECK(torch_flops("lenet.classifier.1") == 2 * 2 * 400 * 120);
  }

  TEST_CASE("flops: format_summary adds Lightning's FLOPs column and Total Flops line") {
    manual_seed(4);
    FlopLeNet model;
    CHECK(format_summary(model, 1).find("FLOPs") == std::string::npos);  // no example input: unchanged
    model.example_input_array = randn({2, 1, 28, 28});
    // Lightning's _format_summary_table for the PyTorch twin with this example_input_array, without the
    // In sizes / Out sizes columns it adds as well.
    const std::string depth1 =
        "  | Name       | Type       | Params | Mode  | FLOPs\n"
        "----------------------------------------------------------\n"
        "0 | features   | Sequential | 2.6 K  | train | 1.4 M\n"
        "1 | classifier | Sequential | 59.1 K | train | 235 K\n"
        "----------------------------------------------------------\n"
        "61.7 K    Trainable params\n"
        "0         Non-trainable params\n"
        "61.7 K    Total params\n"
        "0.247     Total estimated model params size (MB)\n"
        "16        Modules in train mode\n"
        "0         Modules in eval mode\n"
        "1.7 M     Total Flops";
    CHECK(format_summary(model, 1) == depth1);
    CHECK(human_readable_count(torch_flops("lenet.features")) == "1.4 M");
    CHECK(human_readable_count(torch_flops("lenet.classifier")) == "235 K");

    // A parameter outside the layers: its row shows n/a for FLOPs, as Lightning's.
    model.register_parameter("temperature", ones({1}));
    const std::string text = format_summary(model, 1);
    CHECK(text.find("  | other params | n/a        | 1      | n/a   | n/a  \n") != std::string::npos);
    // A float64 model takes the float32 example input converted, and counts the same.
    model.to(kF64);
    CHECK(*summarize_model(model, 1).total_flops == torch_flops("lenet.total"));
    CHECK(model.example_input_array.dtype() == kF32);
  }

  TEST_CASE("flops: the summary's forward keeps modes, RNG, parameters and buffers") {
    manual_seed(5);
    ProbeModel model;
    model.example_input_array = randn({6, 4});
    model.fc->eval();  // mixed modes must come back as they were
    const nn::StateDict before = model.state_dict();
    std::map<std::string, Tensor> copies;
    for (const auto& [name, t] : before) copies[name] = t.clone();
    const GeneratorState rng = default_generator().state();

    const ModelSummaryData data = summarize_model(model, 1);
    CHECK_FALSE(model.probe->ran_training);  // the forward ran in eval mode
    CHECK(*data.total_flops == 2 * 6 * 4 * 8);
    CHECK(data.layers[0].flops == 2 * 6 * 4 * 8);
    CHECK(model.is_training());
    CHECK_FALSE(model.fc->is_training());
    CHECK(model.bn->is_training());
    CHECK(model.probe->is_training());
    CHECK(model.drop->is_training());
    CHECK(default_generator().state().seed == rng.seed);
    CHECK(default_generator().state().offset == rng.offset);
    for (const auto& [name_, t] : model.state_dict()) {
      // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
      const auto& name = name_;
      INFO(name);
      CHECK(equal(t, copies.at(name)));  // BatchNorm's running stats too: eval mode, no update
    }
    for (const Tensor& p : model.parameters()) CHECK_FALSE(p.grad().defined());

    // A forward that throws leaves the modes and the generator as they were, and the error goes on.
    model.probe->throws = true;
    CHECK_THROWS_AS(summarize_model(model, 1), ValueError);
    CHECK(model.is_training());
    CHECK_FALSE(model.fc->is_training());
    CHECK(model.probe->is_training());
    CHECK(default_generator().state().offset == rng.offset);
    CHECK_THROWS_AS(summarize_model(model, -2), ValueError);
  }

  TEST_CASE("flops: fit's ModelSummary prints the FLOPs of example_input_array") {
    std::ostringstream out;
    auto summary = std::make_shared<ModelSummary>(1, &out);
    Trainer trainer(trainer_test::run_options(1, {summary}));
    FlopRegression model;
    trainer.fit(model, trainer_test::regression_loader());
    const std::string table = out.str();
    CHECK(table.find("  | Name | Type   | Params | Mode  | FLOPs\n") != std::string::npos);
    CHECK(table.find("0 | fc   | Linear | 5      | train | 24   \n") != std::string::npos);  // 2 * 3 * 4 * 1
    CHECK(table.find("24        Total Flops") != std::string::npos);
  }
}
