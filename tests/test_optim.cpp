// ember::optim against PyTorch (tests/reference/fixtures_optim.py): optimizer trajectories (fused kernels
// and composite in-place ops, f64 and f32), lr schedules, gradient clipping; then state_dict round trips
// through safetensors, resuming, load and option validation errors, zero_grad, and skipped parameters.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "optim_fixtures.hpp"
#include "test_util.hpp"

using namespace ember;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct Fixture {
  TensorMap t;
  json cases;
};
const Fixture& fx() {
  static const Fixture f = [] {
    Fixture r;
    Metadata meta;
    r.t = load(std::string(EMBER_TEST_DIR) + "/reference/optim.safetensors", &meta);
    r.cases = json::parse(meta.at("cases"));
    return r;
  }();
  return f;
}
const Tensor& fixture(const std::string& key) {
  auto it = fx().t.find(key);
  if (it == fx().t.end()) FAIL("fixture has no ", key);
  return it->second;
}

std::shared_ptr<optim::Optimizer> make_optimizer(const std::string& type, std::vector<optim::ParamGroup> groups,
                                                 bool fused) {
  for (auto& g : groups) g.options["fused"] = fused;
  return optim_test::optimizer_by_name(type, std::move(groups));
}

std::vector<Tensor> fixture_params(DType dt) {
  std::vector<Tensor> ps;
  for (int j = 0; j < 3; ++j) ps.push_back(fixture("init." + std::to_string(j)).to(dt, true).requires_grad_());
  return ps;
}

// Replays a fixture case; after step k calls check(k, params).
template <class Check>
void replay(const std::string& name, const json& c, DType dt, bool fused, Check&& check) {
  std::vector<Tensor> ps = fixture_params(dt);
  std::vector<optim::ParamGroup> groups;
  for (const auto& g : c["groups"]) {
    optim::ParamGroup pg{.params = {}, .options = g["options"]};
    for (int i : g["params"]) pg.params.push_back(ps[i]);
    groups.push_back(pg);
  }
  auto opt = make_optimizer(c["optimizer"], groups, fused);
  for (int k = 0; k < 10; ++k) {
    for (int j = 0; j < 3; ++j) {
      bool skip = false;
      if (c["no_grad"].contains(std::to_string(j)))
        for (int s : c["no_grad"][std::to_string(j)]) skip = skip || s == k;
      ps[j].set_grad(skip ? Tensor() : fixture("grad." + std::to_string(k) + "." + std::to_string(j)).to(dt, true));
    }
    opt->step();
    INFO(name, " step ", k);
    check(k, ps);
  }
}

std::string tmp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("ember_test_optim_" + std::to_string(::getpid()) + "_" + name)).string();
}

}  // namespace

TEST_CASE("optim: optimizers match PyTorch step by step in f64, fused and composite") {
  for (bool fused : {true, false})
    for (const auto& [name_, c] : fx().cases.items()) {
      // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
      const auto& name = name_;
      INFO(name, std::string(fused ? " fused" : " composite"));
      replay(name, c, kF64, fused, [&](int k, const std::vector<Tensor>& ps) {
        for (int j = 0; j < 3; ++j)
          CHECK(testing::allclose(ps[j], fixture(name + ".step" + std::to_string(k) + "." + std::to_string(j)), 1e-10,
                                  1e-13));
      });
    }
}

TEST_CASE("optim: optimizers match PyTorch in f32, fused and composite") {
  for (bool fused : {true, false})
    for (const auto& [name_, c] : fx().cases.items()) {
      // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
      const auto& name = name_;
      INFO(name, std::string(fused ? " fused" : " composite"));
      replay(name, c, kF32, fused, [&](int k, const std::vector<Tensor>& ps) {
        if (k != 9) return;
        for (int j = 0; j < 3; ++j) {
          CHECK(ps[j].dtype() == kF32);
          CHECK(testing::allclose(ps[j], fixture(name + ".f32." + std::to_string(j)), 1e-5, 1e-6));
        }
      });
    }
}

TEST_CASE("optim: fused and composite updates agree on large f32 and on bf16/f16 parameters") {
  // 34000 elements: two oneTBB chunks in the fused kernels.
  const std::vector<std::pair<std::string, json>> configs = {
      {"SGD", {{"lr", 0.1}, {"momentum", 0.9}, {"nesterov", true}, {"weight_decay", 0.01}}},
      {"Adam", {{"lr", 0.01}, {"amsgrad", true}, {"weight_decay", 0.1}}},
      {"AdamW", {{"lr", 0.01}}},
      {"RMSprop", {{"lr", 0.01}, {"centered", true}, {"momentum", 0.5}}},
      {"Adagrad", {{"lr", 0.1}, {"lr_decay", 0.01}}}};
  for (DType dt : {kF32, kBF16, kF16}) {
    for (const auto& [type_, options] : configs) {
      // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
      const auto& type = type_;
      INFO(type, " ", std::string(dtype_name(dt)));
      manual_seed(7);
      Tensor init = randn({34000}).to(dt);
      std::vector<Tensor> grads;
      for (int k = 0; k < 3; ++k) grads.push_back(randn({34000}).to(dt));
      std::vector<Tensor> results;
      for (bool fused : {true, false}) {
        Tensor p = init.clone().requires_grad_();
        json opts = options;
        if (dt == kF16 && type != "SGD" && type != "Adagrad") opts["eps"] = 1e-3;  // 1e-8 is 0 in f16
        // f16's 0.01 * g^2 underflows, so centered RMSprop's square_avg - grad_avg^2 can round below 0 (NaN).
        if (dt == kF16 && type == "RMSprop") opts["centered"] = false;
        auto opt = make_optimizer(type, {{.params = {p}, .options = opts}}, fused);
        for (const Tensor& g : grads) {
          p.set_grad(g.clone());
          opt->step();
        }
        for (const auto& [key, t] : opt->state_dict().state)
          if (!key.ends_with(".step")) CHECK(t.dtype() == dt);
        results.push_back(p.to(kF64));
      }
      const double tol = dt == kF32 ? 1e-6 : 2e-2;
      CHECK(testing::allclose(results[0], results[1], tol, tol));
    }
  }
}

TEST_CASE("optim: the fused kernels refuse operands they can't take") {
  Tensor p = zeros({4}), g = ones({4});
  CHECK(fused_step_supported(p, {&g}));
  Tensor strided = zeros({4, 2}).select(1, 0);
  CHECK_FALSE(fused_step_supported(strided, {&g}));
  Tensor g64 = ones({4}, {.dtype = kF64});
  CHECK_FALSE(fused_step_supported(p, {&g64}));
  CHECK_THROWS_WITH_AS(sgd_step_(p, g64, Tensor(), {}), doctest::Contains("grad [4] float64"), ValueError);
  CHECK_THROWS_WITH_AS(adam_step_(p, g, zeros({4}), Tensor(), Tensor(), {}),
                       doctest::Contains("exp_avg_sq is undefined"), ValueError);
  Tensor leaf = zeros({4}).requires_grad_();  // grad mode on: writing a leaf that requires grad is refused
  CHECK_THROWS_AS(sgd_step_(leaf, g, Tensor(), {}), AutogradError);
}

TEST_CASE("optim: learning-rate schedulers match PyTorch's get_last_lr") {
  using namespace optim;
  auto sgd = [](double momentum = 0.0) {
    std::vector<ParamGroup> groups = {{.params = {zeros({2}).requires_grad_()}, .options = {{"lr", 0.1}}},
                                      {.params = {zeros({3}).requires_grad_()}, .options = {{"lr", 0.05}}}};
    return std::make_shared<SGD>(groups, SGDOptions{.momentum = momentum});
  };
  auto adam = [] {
    std::vector<ParamGroup> groups = {{.params = {zeros({2}).requires_grad_()}, .options = {{"lr", 0.1}}},
                                      {.params = {zeros({3}).requires_grad_()}, .options = {{"lr", 0.05}}}};
    return std::make_shared<Adam>(groups, AdamOptions{.betas = {0.9, 0.99}});
  };
  auto check = [](const std::string& name, std::shared_ptr<Optimizer> opt, std::shared_ptr<LRScheduler> s,
                  bool plateau = false) {
    INFO(name);
    const Tensor lr = fixture("sched." + name + ".lr"), mom = fixture("sched." + name + ".momentum");
    std::vector<double> metrics;
    if (plateau) metrics = fixture("sched." + name + ".metrics").to_vector<double>();
    const int64_t steps = lr.size(0) - 1;
    for (int64_t k = 0; k <= steps; ++k) {
      if (k > 0) {
        opt->step();
        if (plateau)
          static_cast<ReduceLROnPlateau&>(*s).step(metrics[static_cast<size_t>(k - 1)]);
        else
          s->step();
      }
      INFO("step ", k);
      std::vector<double> got = s->get_last_lr();
      REQUIRE(got.size() == 2);
      for (int64_t g = 0; g < 2; ++g) {
        CHECK(got[static_cast<size_t>(g)] == doctest::Approx(lr[k][g].item<double>()).epsilon(1e-12));
        CHECK(opt->lr(static_cast<size_t>(g)) == got[static_cast<size_t>(g)]);
        if (name.starts_with("onecycle"))
          CHECK(*opt->momentum(static_cast<size_t>(g)) == doctest::Approx(mom[k][g].item<double>()).epsilon(1e-12));
      }
    }
  };
  auto o = sgd();
  check("step", o, std::make_shared<StepLR>(o, 7, 0.5));
  o = sgd();
  check("multistep", o, std::make_shared<MultiStepLR>(o, std::vector<int64_t>{12, 5, 30, 12}, 0.3));
  o = sgd();
  check("exponential", o, std::make_shared<ExponentialLR>(o, 0.95));
  o = sgd();
  check("cosine", o, std::make_shared<CosineAnnealingLR>(o, 30, 0.001));
  o = sgd();
  check("cosine_zero", o, std::make_shared<CosineAnnealingLR>(o, 10));
  o = sgd();
  check("linear_warmup", o, std::make_shared<LinearLR>(o, 0.1, 1.0, 10));
  o = sgd();
  check("linear_decay", o, std::make_shared<LinearLR>(o, 1.0, 0.2, 20));
  o = sgd();
  check("lambda", o,
        std::make_shared<LambdaLR>(o, [](int64_t e) { return 1.0 / (1.0 + 0.1 * static_cast<double>(e)); }));
  o = sgd();
  check("lambda_per_group", o,
        std::make_shared<LambdaLR>(
            o, std::vector<LambdaLR::Lambda>{[](int64_t e) { return std::pow(0.9, static_cast<double>(e)); },
                                             [](int64_t e) { return 1.0 + static_cast<double>(e % 3); }}));
  o = sgd(0.9);
  check("onecycle_cos", o,
        std::make_shared<OneCycleLR>(o, OneCycleLROptions{.max_lrs = {1.0, 0.5}, .total_steps = 50}));
  auto a = adam();
  check("onecycle_linear3", a,
        std::make_shared<OneCycleLR>(a, OneCycleLROptions{.max_lr = 0.2,
                                                          .epochs = 4,
                                                          .steps_per_epoch = 10,
                                                          .pct_start = 0.25,
                                                          .anneal_strategy = "linear",
                                                          .base_momentum = 0.8,
                                                          .max_momentum = 0.9,
                                                          .div_factor = 10,
                                                          .final_div_factor = 100,
                                                          .three_phase = true}));
  CHECK(a->options(0).betas.second == 0.99);  // beta2 untouched by momentum cycling
  o = sgd();
  {
    auto warm = std::make_shared<LinearLR>(o, 0.1, 1.0, 5);
    auto cos = std::make_shared<CosineAnnealingLR>(o, 20, 0.001);
    check("sequential", o,
          std::make_shared<SequentialLR>(o, std::vector<std::shared_ptr<LRScheduler>>{warm, cos},
                                         std::vector<int64_t>{5}));
  }
  o = sgd();
  {
    auto e = std::make_shared<ExponentialLR>(o, 0.9);
    auto st = std::make_shared<StepLR>(o, 3, 0.5);
    auto ms = std::make_shared<MultiStepLR>(o, std::vector<int64_t>{12, 14}, 0.1);
    check("sequential3", o,
          std::make_shared<SequentialLR>(o, std::vector<std::shared_ptr<LRScheduler>>{e, st, ms},
                                         std::vector<int64_t>{4, 10}));
  }
  o = sgd();
  check("plateau_min", o,
        std::make_shared<ReduceLROnPlateau>(
            o,
            ReduceLROnPlateauOptions{
                .factor = 0.5, .patience = 2, .threshold = 0.01, .cooldown = 1, .min_lrs = {0.01, 0.001}}),
        true);
  o = sgd();
  check("plateau_max_abs", o,
        std::make_shared<ReduceLROnPlateau>(
            o,
            ReduceLROnPlateauOptions{
                .mode = "max", .factor = 0.1, .patience = 1, .threshold = 0.02, .threshold_mode = "abs"}),
        true);
}

TEST_CASE("optim: scheduler setup, errors and state_dict resume") {
  using namespace optim;
  Tensor w = zeros({2}).requires_grad_();
  SGD opt({w}, {.lr = 0.1, .momentum = 0.9});
  StepLR s(opt, 3);  // a plain reference works as well as a shared_ptr
  CHECK(opt.group_value(0, "initial_lr") == 0.1);
  CHECK(s.last_epoch() == 0);
  CHECK_THROWS_WITH_AS(StepLR(opt, 0), doctest::Contains("step_size"), ValueError);
  CHECK_THROWS_WITH_AS(LinearLR(opt, 0.0), doctest::Contains("Starting multiplicative factor"), ValueError);
  CHECK_THROWS_WITH_AS(OneCycleLR(opt, {.max_lr = 1}), doctest::Contains("total_steps OR (epochs AND steps_per_epoch)"),
                       ValueError);
  CHECK_THROWS_WITH_AS(OneCycleLR(opt, {.max_lr = 1, .total_steps = 10, .anneal_strategy = "exp"}),
                       doctest::Contains("anneal_strategy"), ValueError);
  CHECK_THROWS_WITH_AS(ReduceLROnPlateau(opt, {.factor = 1.0}), doctest::Contains("Factor should be < 1.0"),
                       ValueError);
  ReduceLROnPlateau plateau(opt);
  CHECK_THROWS_WITH_AS(plateau.step(), doctest::Contains("step(metric)"), ValueError);
  {
    Adagrad ada({zeros({1}).requires_grad_()});
    CHECK_FALSE(ada.has_momentum());
    CHECK_THROWS_WITH_AS(OneCycleLR(ada, {.max_lr = 1, .total_steps = 10}), doctest::Contains("momentum or beta1"),
                         ValueError);
    OneCycleLR no_cycle(ada, {.max_lr = 1, .total_steps = 3, .cycle_momentum = false});
    no_cycle.step();
    no_cycle.step();
    no_cycle.step();
    CHECK_THROWS_WITH_AS(no_cycle.step(), doctest::Contains("Tried to step 4 times"), ValueError);
  }
  {
    SGD other({zeros({1}).requires_grad_()});
    auto foreign = std::make_shared<StepLR>(other, 2);
    auto own = std::make_shared<StepLR>(opt, 2);
    CHECK_THROWS_WITH_AS(SequentialLR(opt, {own, foreign}, {3}), doctest::Contains("same optimizer"), ValueError);
    CHECK_THROWS_WITH_AS(SequentialLR(opt, {own}, {3}), doctest::Contains("one milestone fewer"), ValueError);
  }

  // Resume: optimizer + SequentialLR(LinearLR, CosineAnnealingLR) stopped after 7 steps and restored
  // into fresh objects continues with the same learning rates and momentum as an uninterrupted run.
  auto build = [](std::shared_ptr<SGD>& o, std::shared_ptr<LRScheduler>& sch) {
    o = std::make_shared<SGD>(std::vector<Tensor>{zeros({2}).requires_grad_()}, SGDOptions{.lr = 0.1, .momentum = 0.9});
    auto warm = std::make_shared<LinearLR>(o, 0.2, 1.0, 4);
    auto cos = std::make_shared<CosineAnnealingLR>(o, 10, 0.01);
    sch = std::make_shared<SequentialLR>(o, std::vector<std::shared_ptr<LRScheduler>>{warm, cos},
                                         std::vector<int64_t>{4});
  };
  std::shared_ptr<SGD> o1, o2;
  std::shared_ptr<LRScheduler> s1, s2;
  build(o1, s1);
  std::vector<double> full_run;
  json saved_sched;
  StateDict saved_opt;
  for (int k = 0; k < 15; ++k) {
    if (k == 7) {
      saved_sched = json::parse(s1->state_dict().dump());  // through text, as in a checkpoint
      saved_opt = o1->state_dict();
    }
    s1->step();
    full_run.push_back(s1->get_last_lr()[0]);
  }
  build(o2, s2);
  o2->load_state_dict(saved_opt);
  s2->load_state_dict(saved_sched);
  for (int k = 7; k < 15; ++k) {
    s2->step();
    CHECK(s2->get_last_lr()[0] == full_run[static_cast<size_t>(k)]);
  }
  CHECK(o2->group_value(0, "initial_lr") == 0.1);

  // ReduceLROnPlateau keeps best / bad epochs / cooldown; an infinite best survives JSON as null.
  ReduceLROnPlateau p1(opt, {.patience = 1});
  json fresh = json::parse(p1.state_dict().dump());
  p1.step(1.0);
  p1.step(2.0);
  json after = json::parse(p1.state_dict().dump());
  ReduceLROnPlateau p2(opt, {.patience = 1});
  p2.load_state_dict(after);
  CHECK(p2.best() == 1.0);
  CHECK(p2.num_bad_epochs() == 1);
  p2.load_state_dict(fresh);
  CHECK(std::isinf(p2.best()));
  CHECK_THROWS_WITH_AS(p2.load_state_dict(json{{"last_epoch", 1}}), doctest::Contains("lacks"), ValueError);
}

TEST_CASE("optim: clip_grad_norm_ and clip_grad_value_ match PyTorch") {
  for (DType dt : {kF64, kF32}) {
    const double tol = dt == kF64 ? 1e-12 : 1e-5;
    auto params = [&] {
      std::vector<Tensor> ps;
      for (int j = 0; j < 3; ++j) {
        Tensor g = fixture("clip.grad." + std::to_string(j)).to(dt, true);
        ps.push_back(zeros(g.shape(), {.dtype = dt}).requires_grad_());
        ps.back().set_grad(g);
      }
      ps.push_back(zeros({2}, {.dtype = dt}).requires_grad_());  // no grad: skipped
      return ps;
    };
    for (auto [name_, max_norm, norm_type] : std::vector<std::tuple<std::string, double, double>>{
             {"l2", 1.0, 2.0}, {"l1", 2.0, 1.0}, {"inf", 0.5, INFINITY}, {"l2_noclip", 100.0, 2.0}, {"l3", 1.0, 3.0}}) {
      // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
      const auto& name = name_;
      INFO(name, " ", dt);
      auto ps = params();
      Tensor total = nn::clip_grad_norm_(ps, max_norm, norm_type);
      CHECK(total.dim() == 0);
      CHECK(total.dtype() == dt);
      CHECK(testing::allclose(total.to(kF64), fixture("clip." + name + ".total"), tol, tol));
      for (int j = 0; j < 3; ++j)
        CHECK(testing::allclose(ps[j].grad().to(kF64), fixture("clip." + name + "." + std::to_string(j)), tol, tol));
      CHECK_FALSE(ps[3].grad().defined());
    }
    auto ps = params();
    nn::clip_grad_value_(ps, 0.5);
    for (int j = 0; j < 3; ++j)
      CHECK(testing::allclose(ps[j].grad().to(kF64), fixture("clip.value." + std::to_string(j)), tol, tol));
  }
  Tensor w = zeros({2}).requires_grad_();
  CHECK(nn::clip_grad_norm_({w}, 1.0).item<float>() == 0.0f);  // no gradients: norm 0
  w.set_grad(tensor({NAN, 1.0f}));
  CHECK_THROWS_WITH_AS(nn::clip_grad_norm_({w}, 1.0, 2.0, true), doctest::Contains("non-finite"), ValueError);
}

TEST_CASE("optim: state_dict has PyTorch's layout and round-trips through a safetensors file") {
  using namespace optim;
  manual_seed(3);
  std::vector<Tensor> ps = {randn({3, 2}).requires_grad_(), randn({4}).requires_grad_(), randn({2}).requires_grad_()};
  Adam opt(std::vector<ParamGroup>{{.params = {ps[0], ps[1]}}, {.params = {ps[2]}, .options = {{"lr", 0.1}}}},
           {.amsgrad = true});
  ps[0].set_grad(ones({3, 2}));
  ps[2].set_grad(ones({2}));  // ps[1] has no grad: no state
  opt.step();
  StateDict sd = opt.state_dict();
  CHECK(sd.state.size() == 8);
  CHECK(sd.state.count("state.0.exp_avg"));
  CHECK(sd.state.count("state.2.max_exp_avg_sq"));
  CHECK_FALSE(sd.state.count("state.1.exp_avg"));
  CHECK(sd.state.at("state.0.step").dtype() == kF32);
  CHECK(sd.state.at("state.0.step").dim() == 0);
  CHECK(sd.state.at("state.2.step").item<float>() == 1.0f);
  CHECK(sd.param_groups.size() == 2);
  CHECK(sd.param_groups[0]["params"] == json::array({0, 1}));
  CHECK(sd.param_groups[1]["params"] == json::array({2}));
  CHECK(sd.param_groups[1]["lr"] == 0.1);
  CHECK(sd.param_groups[0]["betas"] == json::array({0.9, 0.999}));
  CHECK(sd.param_groups[0]["amsgrad"] == true);

  const std::string path = tmp_path("adam.safetensors");
  TensorMap tensors;
  Metadata meta;
  sd.to_safetensors(tensors, meta);
  tensors["model.w0"] = ps[0];
  save(path, tensors, meta);
  Metadata meta2;
  TensorMap loaded = load(path, &meta2);
  fs::remove(path);
  StateDict back = StateDict::from_safetensors(loaded, meta2);
  CHECK(back.state.size() == sd.state.size());
  CHECK(back.param_groups == sd.param_groups);
  for (const auto& [k, t] : sd.state) CHECK(testing::equal(back.state.at(k), t));

  Adam fresh(std::vector<ParamGroup>{
      {.params = {ps[0].detach().clone().requires_grad_(), ps[1].detach().clone().requires_grad_()}},
      {.params = {ps[2].detach().clone().requires_grad_()}}});
  fresh.load_state_dict(back);
  CHECK(fresh.options(1).lr == 0.1);
  CHECK(fresh.options(0).amsgrad);
  CHECK(fresh.state(0, 0).step == 1);
  CHECK_FALSE(fresh.state(0, 1).exp_avg.defined());
  CHECK(testing::equal(fresh.state(1, 0).max_exp_avg_sq, opt.state(1, 0).max_exp_avg_sq));
  // Loading an in-memory state dict copies it: stepping the original leaves the copy alone.
  Adam twin(std::vector<ParamGroup>{
      {.params = {ps[0].detach().clone().requires_grad_(), ps[1].detach().clone().requires_grad_()}},
      {.params = {ps[2].detach().clone().requires_grad_()}}});
  twin.load_state_dict(opt.state_dict());
  Tensor before = twin.state(0, 0).exp_avg.clone();
  opt.step();
  CHECK(testing::equal(twin.state(0, 0).exp_avg, before));
  CHECK(opt.state(0, 0).exp_avg.to_vector<float>() != before.to_vector<float>());
  CHECK_THROWS_WITH_AS(StateDict::from_safetensors(loaded, {}), doctest::Contains("optimizer.param_groups"),
                       FormatError);
}

TEST_CASE("optim: stopping, saving and resuming gives bit-identical training") {
  using namespace optim;
  const std::vector<std::pair<std::string, json>> configs = {
      {"SGD", {{"lr", 0.1}, {"momentum", 0.9}, {"nesterov", true}}},
      {"Adam", {{"lr", 0.01}, {"amsgrad", true}}},
      {"AdamW", {{"lr", 0.01}, {"betas", {0.8, 0.95}}}},
      {"RMSprop", {{"lr", 0.01}, {"centered", true}, {"momentum", 0.5}}},
      {"Adagrad", {{"lr", 0.1}, {"initial_accumulator_value", 0.1}}}};
  for (const auto& [type_, options] : configs) {
    // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
    const auto& type = type_;
    INFO(type);
    manual_seed(11);
    Tensor init = randn({5, 3}), init2 = randn({7});
    std::vector<std::vector<Tensor>> grads;
    for (int k = 0; k < 8; ++k) grads.push_back({randn({5, 3}), randn({7})});
    auto run = [&](std::vector<Tensor>& ps, optim::Optimizer& o, int from, int to) {
      for (int k = from; k < to; ++k) {
        ps[0].set_grad(grads[k][0].clone());
        ps[1].set_grad(grads[k][1].clone());
        o.step();
      }
    };
    std::vector<Tensor> a = {init.clone().requires_grad_(), init2.clone().requires_grad_()};
    auto oa = make_optimizer(type, {{.params = {a[0]}, .options = options}, {.params = {a[1]}}}, true);
    run(a, *oa, 0, 8);

    std::vector<Tensor> b = {init.clone().requires_grad_(), init2.clone().requires_grad_()};
    auto ob = make_optimizer(type, {{.params = {b[0]}, .options = options}, {.params = {b[1]}}}, true);
    run(b, *ob, 0, 4);
    const std::string path = tmp_path(type + ".safetensors");
    TensorMap tensors{{"w0", b[0]}, {"w1", b[1]}};
    Metadata meta;
    ob->state_dict().to_safetensors(tensors, meta);
    save(path, tensors, meta);

    Metadata meta2;
    TensorMap ck = load(path, &meta2);
    fs::remove(path);
    std::vector<Tensor> c = {ck.at("w0").requires_grad_(), ck.at("w1").requires_grad_()};
    auto oc = make_optimizer(type, {{.params = {c[0]}}, {.params = {c[1]}}}, true);  // options come from the file
    oc->load_state_dict(StateDict::from_safetensors(ck, meta2));
    run(c, *oc, 4, 8);
    CHECK(testing::equal(c[0], a[0]));
    CHECK(testing::equal(c[1], a[1]));
    CHECK(oc->group_options(0) == oa->group_options(0));
  }
}

TEST_CASE("optim: load_state_dict names what doesn't match and changes nothing") {
  using namespace optim;
  Tensor w = zeros({3}).requires_grad_(), v = zeros({2}).requires_grad_();
  Adam opt(std::vector<Tensor>{w, v});
  w.set_grad(ones({3}));
  v.set_grad(ones({2}));
  opt.step();
  const StateDict good = opt.state_dict();
  auto expect = [&](StateDict sd, const std::string& what) {
    INFO(what);
    Adam target(std::vector<Tensor>{w.detach().clone().requires_grad_(), v.detach().clone().requires_grad_()},
                {.lr = 0.5});
    CHECK_THROWS_WITH_AS(target.load_state_dict(sd), doctest::Contains(what.c_str()), Error);
    CHECK(target.options(0).lr == 0.5);  // nothing changed
    CHECK_FALSE(target.state(0, 0).exp_avg.defined());
  };
  StateDict sd = good;
  sd.param_groups.push_back(sd.param_groups[0]);
  expect(sd, "2 parameter groups, the optimizer has 1");
  sd = good;
  sd.param_groups[0]["params"] = json::array({0});
  expect(sd, "loaded parameter group 0 has 1 parameters, the optimizer's group has 2");
  sd = good;
  sd.state["state.0.exp_avg"] = zeros({4});
  expect(sd, "state.0.exp_avg has shape [4] but its parameter has shape [3]");
  sd = good;
  sd.state["state.1.exp_avg_sq"] = zeros({2}, {.dtype = kF64});
  expect(sd, "state.1.exp_avg_sq has dtype float64 but its parameter has dtype float32");
  sd = good;
  sd.state["state.0.momentum_buffer"] = zeros({3});
  expect(sd, "unknown state 'momentum_buffer'");
  sd = good;
  sd.state.erase("state.1.exp_avg_sq");
  expect(sd, "state.1: state lacks 'exp_avg_sq'");
  sd = good;
  sd.state["state.5.exp_avg"] = zeros({3});
  expect(sd, "names parameter 5");
  sd = good;
  sd.state["bogus"] = zeros({3});
  expect(sd, "'bogus' is not of the form");
  sd = good;
  sd.state["state.0.step"] = zeros({2});
  expect(sd, "one-element floating tensor");
  sd = good;
  sd.param_groups[0]["betas"] = "fast";
  expect(sd, "option 'betas' has the wrong type");
  sd = good;
  sd.param_groups[0]["lr"] = -1.0;
  expect(sd, "Invalid learning rate: -1");
}

TEST_CASE("optim: options and parameters are validated as PyTorch does") {
  using namespace optim;
  Tensor w = zeros({2}).requires_grad_();
  CHECK_THROWS_WITH_AS(SGD({w}, {.lr = -0.1}), doctest::Contains("Invalid learning rate: -0.1"), ValueError);
  CHECK_THROWS_WITH_AS(SGD({w}, {.momentum = -1}), doctest::Contains("Invalid momentum value"), ValueError);
  CHECK_THROWS_WITH_AS(SGD({w}, {.nesterov = true}), doctest::Contains("Nesterov momentum requires a momentum"),
                       ValueError);
  CHECK_THROWS_WITH_AS(SGD({w}, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}),
                       doctest::Contains("zero dampening"), ValueError);
  CHECK_THROWS_WITH_AS(Adam({w}, {.betas = {1.0, 0.999}}), doctest::Contains("Invalid beta parameter at index 0: 1"),
                       ValueError);
  CHECK_THROWS_WITH_AS(AdamW({w}, {.betas = {0.9, -0.1}}), doctest::Contains("Invalid beta parameter at index 1"),
                       ValueError);
  CHECK_THROWS_WITH_AS(Adam({w}, {.eps = -1e-8}), doctest::Contains("Invalid epsilon value"), ValueError);
  CHECK_THROWS_WITH_AS(AdamW({w}, {.weight_decay = -1}), doctest::Contains("Invalid weight_decay value"), ValueError);
  CHECK_THROWS_WITH_AS(RMSprop({w}, {.alpha = -0.5}), doctest::Contains("Invalid alpha value"), ValueError);
  CHECK_THROWS_WITH_AS(Adagrad({w}, {.lr_decay = -1}), doctest::Contains("Invalid lr_decay value"), ValueError);
  CHECK_THROWS_WITH_AS(Adagrad({w}, {.initial_accumulator_value = -1}),
                       doctest::Contains("Invalid initial_accumulator_value value"), ValueError);
  CHECK_THROWS_WITH_AS(SGD(std::vector<Tensor>{}), doctest::Contains("empty parameter list"), ValueError);
  {  // as PyTorch: a frozen parameter is accepted and skipped (it never gets a gradient)
    Tensor frozen = ones({2});
    SGD frozen_ok({frozen}, {.lr = 0.1});
    frozen_ok.step();
    CHECK(frozen.sum().item<float>() == 2.0f);
  }
  CHECK_THROWS_WITH_AS(SGD({w * 2}), doctest::Contains("can't optimize a non-leaf Tensor"), ValueError);
  CHECK_THROWS_WITH_AS(SGD({w, w}), doctest::Contains("appears twice"), ValueError);
  CHECK_THROWS_WITH_AS(SGD({zeros({2}, {.dtype = kI64})}), doctest::Contains("floating-point"), DTypeError);
  CHECK_THROWS_WITH_AS(SGD(std::vector<ParamGroup>{{.params = {w}}, {.params = {w}}}),
                       doctest::Contains("more than one parameter group"), ValueError);
  CHECK_THROWS_WITH_AS(SGD(std::vector<ParamGroup>{{.params = {w}, .options = {{"lrr", 0.1}}}}),
                       doctest::Contains("unknown option 'lrr'"), ValueError);
  CHECK_THROWS_WITH_AS(SGD(std::vector<ParamGroup>{{.params = {w}, .options = {{"nesterov", 1}}}}),
                       doctest::Contains("option 'nesterov' has the wrong type"), ValueError);
  CHECK_THROWS_WITH_AS(SGD(std::vector<ParamGroup>{{.params = {w}, .options = {{"lr", -2}}}}),
                       doctest::Contains("param group 0: Invalid learning rate: -2"), ValueError);

  // A failed add_param_group leaves the optimizer as it was.
  SGD opt({w}, {.lr = 0.1});
  Tensor v = zeros({3}).requires_grad_();
  CHECK_THROWS_AS(opt.add_param_group({.params = {v, w}}), ValueError);
  CHECK(opt.num_param_groups() == 1);
  opt.add_param_group({.params = {v}, .options = {{"momentum", 0.5}}});
  CHECK(opt.num_param_groups() == 2);
  CHECK(opt.options(1).momentum == 0.5);
  CHECK(opt.options(1).lr == 0.1);  // from the defaults
  CHECK(opt.parameters().size() == 2);
  CHECK_THROWS_AS(opt.lr(2), IndexError);

  // The exact user code of DESIGN.md section 12 and the brief.
  std::vector<Tensor> parameters = {zeros({2, 2}).requires_grad_()};
  auto adamw = std::make_shared<optim::AdamW>(parameters, optim::AdamWOptions{.lr = 1e-3});
  CHECK(adamw->options(0).weight_decay == 1e-2);
  auto sgd = optim::SGD(parameters, optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
  CHECK(sgd.lr(0) == 0.1);
  std::shared_ptr<optim::Optimizer> base = adamw;
  base->set_lr(0, 0.5);
  CHECK(adamw->options(0).lr == 0.5);
  base->set_momentum(0, 0.7);
  CHECK(adamw->options(0).betas.first == 0.7);
  CHECK(base->defaults()["weight_decay"] == 1e-2);
}

TEST_CASE("optim: zero_grad, skipped parameters, closures and no-grad steps") {
  using namespace optim;
  Tensor w = ones({3}).requires_grad_(), v = ones({2}).requires_grad_();
  SGD opt({w, v}, {.lr = 0.5, .momentum = 0.9});
  (w * w).sum().backward();
  REQUIRE(w.grad().defined());
  CHECK_FALSE(v.grad().defined());
  opt.step();  // v has no grad: unchanged, no state
  CHECK(testing::allclose(w, full({3}, 0.0)));
  CHECK(testing::equal(v, ones({2})));
  CHECK(w.is_leaf());
  CHECK_FALSE(w.grad_fn());
  CHECK(opt.state_dict().state.size() == 1);
  CHECK_FALSE(opt.state(0, 1).momentum_buffer.defined());

  Tensor g = w.grad();
  opt.zero_grad(false);
  REQUIRE(w.grad().defined());
  CHECK(w.grad().is_same(g));  // zeroed in place
  CHECK(testing::equal(g, zeros({3})));
  opt.zero_grad();
  CHECK_FALSE(w.grad().defined());

  // step(closure) evaluates the loss with grad mode on, even when called under NoGradGuard.
  Tensor x = full({2}, 2.0).requires_grad_();
  SGD opt2({x}, {.lr = 0.25});
  autograd::NoGradGuard no_grad;
  Tensor loss = opt2.step([&] {
    opt2.zero_grad();
    Tensor l = (x * x).sum();
    l.backward();
    return l;
  });
  CHECK(loss.item<float>() == 8.0f);
  CHECK(testing::allclose(x, full({2}, 1.0)));
}
