// nn::Module and the layers: registration and names, modes, conversion, state_dict loading, default
// initialisation, and outputs/gradients of every layer against PyTorch's modules (fixtures_modules.py).
#include <cmath>
#include <sstream>

#include "gradcheck.hpp"
#include "test_util.hpp"

using namespace ember;
using ember::testing::allclose;

namespace {

const TensorMap& fx() {
  static TensorMap m = ember::testing::fixtures("modules");
  return m;
}
const Tensor& get(const std::string& key) {
  auto it = fx().find(key);
  if (it == fx().end()) FAIL("fixture key missing: " << key);
  return it->second;
}

// Loads "<name>.sd.*" strictly into m (names and shapes must equal PyTorch's), in f64.
void load_case(nn::Module& m, const std::string& name) {
  m.to(kF64);
  nn::StateDict sd;
  std::string prefix = name + ".sd.";
  for (const auto& [k, v] : fx())
    if (k.starts_with(prefix)) sd[k.substr(prefix.size())] = v;
  m.load_state_dict(sd);
}

// Compares out (and, through backward with "<name>.gy", the input and parameter gradients).
void check_case(nn::Module& m, const std::string& name, const Tensor& out, const std::vector<Tensor>& inputs,
                double rtol = 1e-9) {
  CAPTURE(name);
  CHECK(allclose(out, get(name + ".out"), rtol, 1e-10));
  out.backward(get(name + ".gy"));
  const char* suffix[] = {"x", "x2", "x3"};
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].requires_grad()) CHECK(allclose(inputs[i].grad(), get(name + ".g" + suffix[i]), rtol, 1e-10));
  for (auto& [k_, p] : m.named_parameters()) {
    // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
    const auto& k = k_;
    CAPTURE(k);
    REQUIRE(p.grad().defined());
    CHECK(allclose(p.grad(), get(name + ".g." + k), rtol, 1e-10));
  }
}

Tensor input(const std::string& key) {
  Tensor x = get(key).clone();
  if (x.is_floating_point()) x.requires_grad_();
  return x;
}

template <class H>
void run_unary(H layer, const std::string& name, double rtol = 1e-9) {
  load_case(*layer, name);
  Tensor x = input(name + ".x");
  check_case(*layer, name, layer(x), {x}, rtol);
}

struct Classifier : nn::Module {
  nn::Sequential net{nn::Linear(64, 128), nn::ReLU(), nn::Linear(128, 10)};
  Classifier() { register_module("net", net); }
  Tensor forward(const Tensor& x) { return net(x); }
};

}  // namespace

TEST_CASE("module: registration, dotted names and traversal") {
  Classifier c;
  auto names = c.named_parameters();
  REQUIRE(names.size() == 4);
  CHECK(names[0].first == "net.0.weight");
  CHECK(names[1].first == "net.0.bias");
  CHECK(names[3].first == "net.2.bias");
  CHECK(names[0].second.shape() == Shape{128, 64});
  CHECK(c.num_parameters() == 64 * 128 + 128 + 128 * 10 + 10);
  for (auto& p : c.parameters()) CHECK((p.requires_grad() && p.is_leaf()));
  auto mods = c.named_modules();
  REQUIRE(mods.size() == 5);
  CHECK(mods[0].first == "");
  CHECK(mods[1].first == "net");
  CHECK(mods[2].first == "net.0");
  CHECK(mods[2].second->type_name() == "Linear");
  CHECK(c.forward(randn({3, 64})).shape() == Shape{3, 10});

  // The handle and the registered module are one object.
  nn::Linear fc(4, 2);
  nn::Linear alias = fc;
  CHECK(alias.ptr() == fc.ptr());
  CHECK(fc->param("weight").is_same(fc->weight));

  std::vector<std::string> order;
  c.apply([&](nn::Module& m) { order.push_back(m.type_name()); });
  CHECK(order == std::vector<std::string>{"Linear", "ReLU", "Linear", "Sequential", "Classifier"});
}

TEST_CASE("module: bad registrations and empty handles raise clear errors") {
  nn::Module m;
  m.register_parameter("w", zeros({2}));
  CHECK_THROWS_WITH_AS(m.register_parameter("w", zeros({2})), doctest::Contains("already registered"), ValueError);
  CHECK_THROWS_WITH_AS(m.register_buffer("a.b", zeros({2})), doctest::Contains("no '.'"), ValueError);
  CHECK_THROWS_AS(m.register_parameter("", zeros({2})), ValueError);
  CHECK_THROWS_WITH_AS(m.param("v"), doctest::Contains("has: w"), ValueError);
  nn::Linear empty(nullptr);
  CHECK(empty.is_empty());
  CHECK_THROWS_WITH_AS(empty(zeros({1, 2})), doctest::Contains("empty module handle"), ValueError);
  CHECK_THROWS_AS(nn::Conv2d(3, 4, 3, {.groups = 2}), ValueError);
  CHECK_THROWS_AS(nn::MultiheadAttention(10, 3), ValueError);
  nn::BatchNorm2d bn(3);
  CHECK_THROWS_WITH_AS(bn(zeros({2, 3, 4})), doctest::Contains("BatchNorm2d"), ShapeError);
  CHECK_THROWS_WITH_AS(bn(zeros({2, 4, 4, 4})), doctest::Contains("expected 3 channels"), ShapeError);
}

TEST_CASE("module: shared parameters are listed once; state_dict keeps both names") {
  struct Tied : nn::Module {
    nn::Embedding emb{10, 4};
    nn::Linear head{4, 10, nn::LinearOptions{.bias = false}};
    Tied() {
      register_module("emb", emb);
      register_module("head", head);
      head->weight = emb->weight;           // the member now aliases the embedding...
      head->param("weight") = emb->weight;  // ...and so does the registered entry
    }
  } t;
  CHECK(t.parameters().size() == 1);
  auto sd = t.state_dict();
  CHECK(sd.size() == 2);
  CHECK(sd.at("head.weight").raw_data() == sd.at("emb.weight").raw_data());
}

TEST_CASE("module: train/eval reaches every child; dropout is the identity in eval") {
  nn::Sequential s{nn::Linear(8, 8), nn::Dropout(0.5)};
  CHECK(s->is_training());
  Tensor x = ones({4, 8});
  Tensor a = s(x);
  s->eval();
  for (auto* m : s->modules()) CHECK_FALSE(m->is_training());
  Tensor b = s(x), c = s(x);
  CHECK(ember::testing::equal(b, c));
  CHECK((a - b).abs().sum().item<float>() > 0);  // training dropped about half the units
  s->train();
  CHECK(s->at<nn::DropoutImpl>(1)->is_training());
}

TEST_CASE("module: to(dtype) converts in place, keeping the tensors other code holds") {
  nn::Sequential s{nn::Linear(3, 2), nn::BatchNorm1d(2)};
  std::vector<Tensor> held = s->parameters();
  Tensor w = s->at<nn::LinearImpl>(0)->weight;
  Tensor before = w.to(kF64);
  s(randn({4, 3})).sum().backward();
  s->to(kF64);
  for (auto& p : held) CHECK(p.dtype() == kF64);
  CHECK(w.dtype() == kF64);
  CHECK(allclose(w, before));
  CHECK(w.grad().dtype() == kF64);
  CHECK(s->at<nn::BatchNorm1dImpl>(1)->running_mean.dtype() == kF64);
  CHECK(s->at<nn::BatchNorm1dImpl>(1)->num_batches_tracked.dtype() == kI64);  // integers stay
  Tensor y = s(randn({4, 3}, {.dtype = kF64}));
  CHECK(y.dtype() == kF64);
  CHECK_THROWS_AS(s->to(kI32), DTypeError);
}

TEST_CASE("module: zero_grad and requires_grad_") {
  nn::Linear fc(3, 2);
  fc(ones({1, 3})).sum().backward();
  REQUIRE(fc->weight.grad().defined());
  fc->zero_grad(false);
  CHECK(fc->weight.grad().abs().sum().item<float>() == 0.0f);
  fc->zero_grad();
  CHECK_FALSE(fc->weight.grad().defined());
  fc->requires_grad_(false);
  CHECK_FALSE(fc->weight.requires_grad());
  CHECK(fc->num_parameters(true) == 0);
}

TEST_CASE("module: load_state_dict reports missing, unexpected and mis-shaped keys") {
  Classifier a, b;
  b.load_state_dict(a.state_dict());
  CHECK(allclose(b.net->at<nn::LinearImpl>(0)->weight, a.net->at<nn::LinearImpl>(0)->weight, 0, 0));
  // Loading copies values: later changes to a do not reach b.
  {
    autograd::NoGradGuard g;
    a.net->at<nn::LinearImpl>(0)->weight.detach().fill_(0.5);
  }
  CHECK(b.net->at<nn::LinearImpl>(0)->weight.abs().max().item<float>() < 0.2f);

  auto sd = a.state_dict();
  sd.erase("net.2.bias");
  sd["net.9.weight"] = zeros({1});
  CHECK_THROWS_WITH_AS(b.load_state_dict(sd), doctest::Contains("missing keys: [net.2.bias]"), ValueError);
  CHECK_THROWS_WITH_AS(b.load_state_dict(sd), doctest::Contains("unexpected keys: [net.9.weight]"), ValueError);
  auto r = b.load_state_dict(sd, false);
  CHECK(r.missing_keys == std::vector<std::string>{"net.2.bias"});
  CHECK(r.unexpected_keys == std::vector<std::string>{"net.9.weight"});
  auto bad = a.state_dict();
  bad["net.0.weight"] = zeros({128, 63});
  CHECK_THROWS_WITH_AS(b.load_state_dict(bad, false), doctest::Contains("net.0.weight: checkpoint [128, 63]"),
                       ShapeError);
}

TEST_CASE("module: state_dict round-trips through a safetensors file") {
  Classifier a, b;
  std::string path = "/tmp/ember_test_module_sd.safetensors";
  save(path, a.state_dict());
  b.load_state_dict(load(path));
  Tensor x = randn({2, 64});
  CHECK(allclose(b.forward(x), a.forward(x), 0, 0));
  std::remove(path.c_str());
}

TEST_CASE("module: printing follows PyTorch's layout") {
  nn::Sequential s{nn::Linear(4, 2), nn::ReLU(), nn::Conv2d(3, 4, 3, {.padding = 1}), nn::BatchNorm2d(4)};
  CHECK(s->str() ==
        "Sequential(\n"
        "  (0): Linear(in_features=4, out_features=2, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))\n"
        "  (3): BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)\n"
        ")");
}

TEST_CASE("module: default initialisation follows PyTorch's formulas") {
  manual_seed(1);
  auto stats = [](const Tensor& t) {
    double mean = t.mean().item<float>(), sd = t.std().item<float>();
    double lim = t.abs().max().item<float>();
    return std::array<double, 3>{mean, sd, lim};
  };
  // Linear/Conv: U(+-1/sqrt(fan_in)) for weight (kaiming_uniform a=sqrt(5)) and bias.
  nn::Linear fc(400, 300);
  auto [m, sd, lim] = stats(fc->weight);
  double bound = 1 / std::sqrt(400.0);
  CHECK(lim <= bound);
  CHECK(lim > 0.99 * bound);
  CHECK(std::abs(sd - bound / std::sqrt(3.0)) < 0.01 * bound);
  CHECK(std::abs(m) < 0.01 * bound);
  CHECK(stats(fc->bias)[2] <= bound);
  nn::Conv2d conv(16, 32, 3);
  CHECK(stats(conv->weight)[2] <= 1 / std::sqrt(16.0 * 9));
  CHECK(stats(conv->weight)[2] > 0.95 / std::sqrt(16.0 * 9));
  // Embedding N(0, 1); padding row zero.
  nn::Embedding emb(1000, 64, {.padding_idx = 3});
  auto e = stats(emb->weight);
  CHECK(std::abs(e[1] - 1.0) < 0.02);
  CHECK(emb->weight[3].abs().sum().item<float>() == 0.0f);
  // MultiheadAttention: xavier_uniform in_proj, zero biases.
  nn::MultiheadAttention mha(64, 4);
  CHECK(stats(mha->in_proj_weight)[2] <= std::sqrt(6.0 / (64 + 192)));
  CHECK(stats(mha->in_proj_weight)[2] > 0.98 * std::sqrt(6.0 / (64 + 192)));
  CHECK(mha->in_proj_bias.abs().sum().item<float>() == 0.0f);
  CHECK(mha->out_proj->bias.abs().sum().item<float>() == 0.0f);
  // Norms: ones and zeros.
  nn::LayerNorm ln(Shape{8});
  CHECK(ln->weight.sum().item<float>() == 8.0f);
  CHECK(ln->bias.abs().sum().item<float>() == 0.0f);
  // init functions on their own.
  Tensor w = empty({256, 128});
  nn::init::kaiming_normal_(w, 0, "fan_in", "relu");
  CHECK(std::abs(stats(w)[1] - std::sqrt(2.0 / 128)) < 0.01);
  nn::init::xavier_normal_(w);
  CHECK(std::abs(stats(w)[1] - std::sqrt(2.0 / 384)) < 0.005);
  nn::init::trunc_normal_(w, 0.0, 1.0, -0.5, 0.5);
  CHECK(stats(w)[2] <= 0.5);
  CHECK(stats(w)[1] > 0.25);  // uniform-ish on [-0.5, 0.5] has sd ~0.29 (narrow truncation)
}

TEST_CASE("module: layers match PyTorch (outputs, input and parameter gradients)") {
  SUBCASE("linear") { run_unary(nn::Linear(5, 3), "linear"); }
  SUBCASE("linear_nobias") { run_unary(nn::Linear(5, 3, {.bias = false}), "linear_nobias"); }
  SUBCASE("bilinear") {
    nn::Bilinear b(3, 4, 2);
    load_case(*b, "bilinear");
    Tensor x1 = input("bilinear.x"), x2 = input("bilinear.x2");
    check_case(*b, "bilinear", b(x1, x2), {x1, x2});
  }
  SUBCASE("conv1d") { run_unary(nn::Conv1d(4, 6, 3, {.stride = 2, .padding = 1, .groups = 2}), "conv1d"); }
  SUBCASE("conv2d") {
    run_unary(nn::Conv2d(4, 6, {3, 2}, {.stride = {2, 1}, .padding = 1, .dilation = {1, 2}, .groups = 2}), "conv2d");
  }
  SUBCASE("convt2d") {
    run_unary(nn::ConvTranspose2d(4, 6, 3, {.stride = 2, .padding = 1, .output_padding = 1, .groups = 2}), "convt2d");
  }
  SUBCASE("layernorm") { run_unary(nn::LayerNorm(Shape{4, 5}), "layernorm"); }
  SUBCASE("rmsnorm") { run_unary(nn::RMSNorm(Shape{5}, {.eps = 1e-6}), "rmsnorm"); }
  SUBCASE("groupnorm") { run_unary(nn::GroupNorm(2, 6), "groupnorm"); }
  SUBCASE("embedding") { run_unary(nn::Embedding(10, 4, {.padding_idx = 0}), "embedding"); }
  SUBCASE("pools") {
    run_unary(nn::MaxPool2d(2), "maxpool");
    run_unary(nn::AvgPool2d(3, {.stride = 2, .padding = 1}), "avgpool");
    run_unary(nn::AdaptiveAvgPool2d({2, 3}), "adaptive");
    run_unary(nn::LeakyReLU(0.2), "leaky");
  }
}

TEST_CASE("module: BatchNorm running statistics, cumulative momentum and eval match PyTorch") {
  for (std::string name : {"bn1d_train", "bn2d_train", "bn2d_eval"}) {
    CAPTURE(name);
    std::shared_ptr<nn::BatchNormImpl> bn;
    if (name == "bn1d_train")
      bn = nn::BatchNorm1d(3).ptr();
    else
      bn = nn::BatchNorm2d(3, {.momentum = name == "bn2d_train" ? std::nullopt : std::optional<double>(0.1)}).ptr();
    load_case(*bn, name);
    bn->train(name != "bn2d_eval");
    Tensor x = input(name + ".x");
    check_case(*bn, name, bn->forward(x), {x});
    for (auto& [k, v] : bn->state_dict()) CHECK(allclose(v, get(name + ".after." + k), 1e-12, 1e-12));
  }
}

TEST_CASE("module: MultiheadAttention matches PyTorch with padding, bool, float and causal masks") {
  SUBCASE("self-attention, batch_first, key padding mask, averaged weights") {
    nn::MultiheadAttention mha(8, 2, {.batch_first = true});
    load_case(*mha, "mha_self");
    Tensor x = input("mha_self.x");
    auto [out, w] = mha(x, x, x, nn::AttentionMasks{.key_padding_mask = get("mha_self.kpm")});
    CHECK(allclose(w, get("mha_self.weights"), 1e-9, 1e-12));
    check_case(*mha, "mha_self", out, {x});
  }
  SUBCASE("cross-attention, sequence first, bool attn_mask, per-head weights") {
    nn::MultiheadAttention mha(6, 3);
    load_case(*mha, "mha_cross");
    Tensor q = input("mha_cross.x"), k = input("mha_cross.x2"), v = input("mha_cross.x3");
    auto [out, w] = mha(q, k, v, {.attn_mask = get("mha_cross.am"), .average_attn_weights = false});
    CHECK(w.shape() == Shape{2, 3, 3, 5});
    CHECK(allclose(w, get("mha_cross.weights"), 1e-9, 1e-12));
    check_case(*mha, "mha_cross", out, {q, k, v});
  }
  SUBCASE("float mask per head, no weights (the fused attention path)") {
    nn::MultiheadAttention mha(4, 2, {.batch_first = true});
    load_case(*mha, "mha_float");
    Tensor x = input("mha_float.x");
    auto [out, w] = mha(x, x, x, {.attn_mask = get("mha_float.fm"), .need_weights = false});
    CHECK_FALSE(w.defined());
    check_case(*mha, "mha_float", out, {x});
  }
  SUBCASE("is_causal") {
    nn::MultiheadAttention mha(4, 2, {.batch_first = true});
    load_case(*mha, "mha_causal");
    Tensor x = input("mha_causal.x");
    auto [out, w] = mha(x, x, x, {.need_weights = false, .is_causal = true});
    check_case(*mha, "mha_causal", out, {x});
  }
}

TEST_CASE("module: TransformerEncoderLayer (post-norm and pre-norm) matches PyTorch") {
  nn::TransformerEncoderLayer post(8, 2, {.dim_feedforward = 16, .dropout = 0.0, .batch_first = true});
  load_case(*post, "enc_post");
  Tensor x = input("enc_post.x");
  check_case(*post, "enc_post", post(x, Tensor{}, get("mha_self.kpm")), {x});

  nn::TransformerEncoderLayer pre(
      8, 2, {.dim_feedforward = 16, .dropout = 0.0, .activation = "gelu", .batch_first = true, .norm_first = true});
  load_case(*pre, "enc_pre");
  Tensor y = input("enc_pre.x");
  check_case(*pre, "enc_pre", pre(y, Tensor{}, Tensor{}, true), {y});
}

TEST_CASE("module: a PyTorch model's state_dict loads by name and gives PyTorch's output") {
  struct Net : nn::Module {
    nn::Sequential features{nn::Conv2d(1, 4, 3), nn::BatchNorm2d(4), nn::ReLU(), nn::MaxPool2d(2)};
    nn::Sequential head{nn::Flatten(), nn::Linear(4 * 3 * 3, 5), nn::GELU(), nn::Dropout(0.1), nn::Linear(5, 3)};
    Net() {
      register_module("features", features);
      register_module("head", head);
    }
    Tensor forward(const Tensor& x) { return head(features(x)); }
  } net;
  load_case(net, "net");
  net.eval();
  Tensor x = input("net.x");
  check_case(net, "net", net.forward(x), {x});
}

TEST_CASE("module: MultiheadAttention gradcheck through the weights path") {
  nn::MultiheadAttention mha(4, 2, {.batch_first = true});
  mha->to(kF64);
  mha->to(ember::testing::test_device());
  Tensor kpm = ember::testing::dev(tensor<int64_t>({0, 0, 1, 0, 0, 0}, Shape{2, 3}).to(kBool));
  auto f = [&](const std::vector<Tensor>& in) {
    auto [out, w] = mha(in[0], in[1], in[1], {.key_padding_mask = kpm});
    return out.sum() + (w * w).sum();
  };
  CHECK(ember::testing::gradcheck(f, {randn({2, 3, 4}, {.dtype = kF64, .requires_grad = true}),
                                      randn({2, 3, 4}, {.dtype = kF64, .requires_grad = true})}));
}
