// The optimizers and gradient clipping on each device: a few steps of every optimizer (fused, so CUDA
// takes its multi-tensor kernels) over parameters of mixed sizes, run on the CPU and, when a CUDA device
// exists, on CUDA, comparing the parameters and states. Without a device the CUDA half is skipped with a
// message (EMBER_REQUIRE_CUDA=1 makes that a failure), as the parity sweep does.
#include <nlohmann/json.hpp>

#include "optim_fixtures.hpp"
#include "test_util.hpp"

using namespace ember;
using nlohmann::json;

namespace {

struct Config {
  std::string type;
  json options;
};

std::shared_ptr<optim::Optimizer> make(const std::string& type, std::vector<Tensor> params, json options) {
  std::vector<optim::ParamGroup> groups = {{.params = std::move(params), .options = std::move(options)}};
  return optim_test::optimizer_by_name(type, std::move(groups));
}

// Runs `steps` steps on `device` from the same initial values and gradients; returns the parameters and
// every state tensor on the CPU. Parameter 2 has no gradient at step 1 (its step count falls behind).
std::vector<Tensor> run(const Config& c, DType dt, Device device, int steps) {
  manual_seed(11);
  const std::vector<Shape> shapes = {{3, 4}, {70000}, {5}, {0}, {2, 3, 4}};
  std::vector<Tensor> init, params;
  for (const Shape& s : shapes) init.push_back(randn(s).to(dt));
  std::vector<std::vector<Tensor>> grads(static_cast<size_t>(steps));
  for (auto& g : grads)
    for (const Shape& s : shapes) g.push_back(randn(s).to(dt));
  for (const Tensor& t : init) params.push_back(t.to(device).requires_grad_());
  auto opt = make(c.type, params, c.options);
  for (int k = 0; k < steps; ++k) {
    for (size_t j = 0; j < params.size(); ++j)
      params[j].set_grad(k == 1 && j == 2 ? Tensor() : grads[static_cast<size_t>(k)][j].to(device));
    opt->step();
  }
  std::vector<Tensor> out;
  for (const Tensor& p : params) out.push_back(p.detach().cpu());
  for (const auto& [key, t] : opt->state_dict().state) out.push_back(t.cpu());
  return out;
}

// Weight decays that are no ratio of two bf16 values: with 0.1, g + 0.1 p was zero for a bf16 gradient of
// -0.1640625 and a weight of 1.640625, or one ulp off it where the multiply-add is contracted, and the
// first Adagrad/RMSprop step (g' / sqrt(g'^2)) turned that into a step of +-lr on one device only.
const std::vector<Config>& configs() {
  static const std::vector<Config> c = {
      {"SGD", {{"lr", 0.1}}},
      {"SGD", {{"lr", 0.1}, {"momentum", 0.9}, {"nesterov", true}, {"weight_decay", 0.01}}},
      {"SGD", {{"lr", 0.1}, {"momentum", 0.5}, {"dampening", 0.2}, {"maximize", true}}},
      {"Adam", {{"lr", 0.01}}},
      {"Adam", {{"lr", 0.01}, {"amsgrad", true}, {"weight_decay", 0.0987654}}},
      {"AdamW", {{"lr", 0.01}, {"weight_decay", 0.05}, {"betas", {0.3, 0.9}}}},
      {"RMSprop", {{"lr", 0.01}}},
      {"RMSprop", {{"lr", 0.01}, {"centered", true}, {"momentum", 0.5}, {"weight_decay", 0.0987654}}},
      {"Adagrad", {{"lr", 0.1}, {"lr_decay", 0.01}, {"weight_decay", 0.0987654}}},
  };
  return c;
}

}  // namespace

TEST_CASE("optim device: every optimizer's fused steps give the same parameters on the CPU and CUDA") {
  // The CPU half: fused (multi-tensor list) steps equal the composite in-place ops.
  for (const Config& c : configs()) {
    INFO(c.type, " ", c.options.dump());
    json composite = c.options;
    composite["fused"] = false;
    const auto fused = run(c, kF32, kCPU, 3), plain = run({c.type, composite}, kF32, kCPU, 3);
    REQUIRE(fused.size() == plain.size());
    for (size_t j = 0; j < fused.size(); ++j) CHECK(testing::allclose(fused[j], plain[j], 1e-4, 1e-5));
  }
  CUDA_OR_SKIP();
  const Device gpu{Device::Kind::CUDA, 0};
  for (DType dt : {kF32, kF64, kBF16}) {
    for (const Config& c : configs()) {
      INFO(c.type, " ", c.options.dump(), " ", dtype_name(dt));
      const auto want = run(c, dt, kCPU, 3), got = run(c, dt, gpu, 3);
      REQUIRE(want.size() == got.size());
      // The two compilers contract different multiply-adds (FMA): f32 agrees to a few ulps, not bits, and
      // centered RMSprop's sqrt(square_avg - grad_avg^2) magnifies that where the two nearly cancel.
      const double tol = dt == kF64 ? 1e-10 : dt == kF32 ? 1e-4 : 2e-2;
      for (size_t j = 0; j < want.size(); ++j) CHECK(testing::allclose(got[j], want[j], tol, tol));
    }
  }
}

TEST_CASE("optim device: clip_grad_norm_ gives the same total norm and gradients on the CPU and CUDA") {
  auto clip = [](Device d, double norm_type, DType dt) {
    manual_seed(12);
    std::vector<Tensor> ps;
    for (const Shape& s : std::vector<Shape>{{3, 4}, {70000}, {5}}) {
      Tensor p = zeros(s, {.dtype = dt}).to(d).requires_grad_();
      p.set_grad((randn(s) * 0.01).to(dt).to(d));
      ps.push_back(p);
    }
    Tensor total = nn::clip_grad_norm_(ps, 1.0, norm_type);
    std::vector<Tensor> out = {total.cpu()};
    for (const Tensor& p : ps) out.push_back(p.grad().cpu());
    return out;
  };
  constexpr double kInf = std::numeric_limits<double>::infinity();
  for (double norm_type : {2.0, 1.0, kInf, -kInf}) {
    INFO(norm_type);
    const auto cpu = clip(kCPU, norm_type, kF32);
    CHECK(cpu[0].dim() == 0);
    if (!cuda_is_available()) continue;
    for (DType dt : {kF32, kF64}) {
      const auto want = clip(kCPU, norm_type, dt), got = clip({Device::Kind::CUDA, 0}, norm_type, dt);
      for (size_t j = 0; j < want.size(); ++j) CHECK(testing::allclose(got[j], want[j], 1e-5, 1e-7));
    }
  }
  CUDA_OR_SKIP();
  // f32 gradients of 2e19: their squares overflow a float, so the sum of squares is kept in double on
  // both devices (the norm is 2e19 * sqrt(2), not inf).
  for (Device d : {kCPU, Device(Device::Kind::CUDA, 0)}) {
    CAPTURE(d);
    Tensor p = zeros({2}).to(d).requires_grad_();
    p.set_grad(full({2}, 2e19).to(d));
    const double total = nn::clip_grad_norm_({p}, 1e30).item<double>();
    CHECK(total == doctest::Approx(2e19 * std::sqrt(2.0)).epsilon(1e-6));
  }
}
