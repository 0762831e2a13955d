// addmm_gelu (gelu_tanh(x @ w + bias) as one op) and the cuBLASLt epilogues behind it and behind every
// bias gradient of a 2-D product: the plans of GELU_AUX_BIAS (aux ld, alignment, refusals with a reason)
// and of BGRADA/BGRADB (which epilogue goes with which operand order, checked by summing the operand
// exactly as the plan's layout hands it to cuBLASLt), all on the CPU; the op against the composed addmm +
// gelu(tanh) (bit-equal forward on CPU, f32 and bf16 autocast), f64 gradcheck, FLOPs, the profiler, and
// CUDA rows (skipped with a reason without a device) that compare the fused paths with the CPU.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/flop_counter.hpp"
#include "core/profiler.hpp"
#include "ember.hpp"
#include "gradcheck.hpp"
#include "kernels/linalg.hpp"
#include "kernels/linalg_math.hpp"
#include "kernels/linalg_plan.hpp"
#include "test_util.hpp"

using namespace ember;
using namespace ember::testing;
namespace lp = ember::kernels::linalg_plan;
using lp::Epilogue;

namespace {

const Device kCuda{Device::Kind::CUDA, 0};

Tensor rnd(const Shape& s, DType dt = kF32) { return randn(s, {.dtype = kF64}).to(dt); }

lp::Plan plan_of(const Tensor& out, const Tensor& a, const Tensor& b, Epilogue e) {
  return lp::plan_gemm(lp::make_problem(out, a, b, e, false));
}

// Sums over k of cuBLASLt's A (BGRADA: one per row of D) or B (BGRADB: one per column of D), reading the
// operands exactly as the plan's layouts and transpose flags say (as linalg_plan::lt_element does).
std::vector<double> bgrad_sums(const lp::Plan& p, const float* A, const float* B) {
  std::vector<double> s;
  if (p.epilogue == Epilogue::BgradA) {
    for (int64_t i = 0; i < p.m; ++i) {
      double acc = 0;
      for (int64_t kk = 0; kk < p.k; ++kk) acc += p.op_a == lp::Op::N ? A[i + kk * p.la.ld] : A[kk + i * p.la.ld];
      s.push_back(acc);
    }
  } else {
    for (int64_t j = 0; j < p.n; ++j) {
      double acc = 0;
      for (int64_t kk = 0; kk < p.k; ++kk) acc += p.op_b == lp::Op::N ? B[kk + j * p.lb.ld] : B[j + kk * p.lb.ld];
      s.push_back(acc);
    }
  }
  return s;
}

bool close_to(const std::vector<double>& got, const Tensor& want) {
  const std::vector<double> w = want.to(kF64).to_vector<double>();
  if (got.size() != w.size()) return false;
  for (size_t i = 0; i < w.size(); ++i)
    if (std::abs(got[i] - w[i]) > 1e-4 * (1 + std::abs(w[i]))) return false;
  return true;
}

Tensor composed(const Tensor& bias, const Tensor& x, const Tensor& w) { return gelu(addmm(bias, x, w), "tanh"); }

}  // namespace

TEST_SUITE("addmm_gelu") {
  TEST_CASE("linalg plan: GELU_AUX_BIAS writes the aux as a contiguous [M, N] pre-activation, ld % 8 == 0") {
    Tensor x = rnd({5, 7}), w = rnd({7, 16}), bias = rnd({16}), out = zeros({5, 16}), pre = zeros({5, 16});
    const lp::Plan p = plan_of(out, x, w, Epilogue::GeluAuxBias);
    CHECK(p.swap);
    CHECK(p.epilogue == Epilogue::GeluAuxBias);
    CHECK(p.epilogue_refused == nullptr);
    const lp::AuxPlan aux = lp::plan_aux(p, reinterpret_cast<uint64_t>(pre.raw_data()));
    REQUIRE(aux.ok);
    CHECK(aux.ld == 16);
    CHECK(aux.ld == p.lc.ld);  // the aux has D's layout, and D is the contiguous [M, N] output
    CHECK(aux.ld % 8 == 0);
    // The plan evaluated as cuBLASLt reads it: D is gelu(pre) and the aux (pre) is D before GELU.
    const float* A = w.data_ptr<float>();
    const float* B = x.data_ptr<float>();
    float* D = out.data_ptr<float>();
    float* aux_p = pre.data_ptr<float>();
    for (int64_t i = 0; i < p.m; ++i)
      for (int64_t j = 0; j < p.n; ++j) {
        lp::Plan none = p;
        none.epilogue = Epilogue::Bias;
        aux_p[i + j * aux.ld] = lp::lt_element<float>(none, A, B, D, bias.data_ptr<float>(), 1.f, 0.f, true, 0, i, j);
        D[i + j * p.lc.ld] = lp::lt_element<float>(p, A, B, D, bias.data_ptr<float>(), 1.f, 0.f, true, 0, i, j);
      }
    Tensor want_out = zeros({5, 16}), want_pre = zeros({5, 16});
    kernels::cpu::gemm_bias_gelu(want_out, want_pre, x, w, bias);
    CHECK(allclose(out, want_out, 1e-5, 1e-5));
    CHECK(allclose(pre, want_pre, 1e-5, 1e-5));
    CHECK(allclose(out, gelu(pre, "tanh"), 1e-6, 1e-6));
  }

  TEST_CASE("linalg plan: GELU_AUX_BIAS refusals say why (f64, batch, ld not a multiple of 8, unaligned aux)") {
    Tensor x = rnd({4, 3}), w = rnd({3, 16}), out = zeros({4, 16});
    const lp::Plan ok = plan_of(out, x, w, Epilogue::GeluAuxBias);
    const lp::AuxPlan odd = lp::plan_aux(ok, 64 + 2);
    CHECK_FALSE(odd.ok);
    CHECK(std::string(odd.reason).find("16-byte") != std::string::npos);

    Tensor w12 = rnd({3, 12}), out12 = zeros({4, 12});
    const lp::AuxPlan narrow = lp::plan_aux(plan_of(out12, x, w12, Epilogue::GeluAuxBias), 256);
    CHECK_FALSE(narrow.ok);
    CHECK(std::string(narrow.reason).find("multiple of 8") != std::string::npos);

    Tensor x64 = rnd({4, 3}, kF64), w64 = rnd({3, 16}, kF64), out64 = zeros({4, 16}, {.dtype = kF64});
    const lp::Plan f64 = plan_of(out64, x64, w64, Epilogue::GeluAuxBias);
    CHECK(f64.epilogue == Epilogue::None);
    REQUIRE(f64.epilogue_refused != nullptr);
    CHECK(std::string(f64.epilogue_refused).find("f32, f16 and bf16") != std::string::npos);
    CHECK_FALSE(lp::plan_aux(f64, 256).ok);
    CHECK(std::string(lp::plan_aux(f64, 256).reason) == f64.epilogue_refused);

    Tensor xb = rnd({2, 4, 3}), wb = rnd({2, 3, 16}), outb = zeros({2, 4, 16});
    const lp::Plan batched = plan_of(outb, xb, wb, Epilogue::GeluAuxBias);
    CHECK(batched.epilogue == Epilogue::None);
    REQUIRE(batched.epilogue_refused != nullptr);
    CHECK(std::string(batched.epilogue_refused).find("batch") != std::string::npos);

    CHECK_FALSE(lp::plan_aux(plan_of(out, x, w, Epilogue::Bias), 256).ok);  // no aux without the epilogue
  }

  TEST_CASE("linalg plan: BGRAD epilogues follow the operand order (Conv1D's x^T @ g, Linear's (g^T @ x)^T)") {
    const int64_t m = 6, k_in = 5, n = 8;  // x [m, k_in], g [m, n]: the bias gradient is g summed over rows
    Tensor x = rnd({m, k_in}), g = rnd({m, n});
    const Tensor want = sum(g, {0});
    SUBCASE("Conv1D / HF layout: dW [k_in, n] = x^T @ g, g is Ember's b") {
      Tensor dw = zeros({k_in, n});
      const lp::Plan p = plan_of(dw, x.t(), g, Epilogue::BgradB);
      CHECK(p.swap);                          // row-major D: cuBLASLt's A is g^T
      CHECK(p.epilogue == Epilogue::BgradA);  // so Ember's b's sums are cuBLASLt's BGRADA
      CHECK(p.m == n);                        // bias length = D's rows
      CHECK(p.k == m);
      CHECK(close_to(bgrad_sums(p, g.data_ptr<float>(), x.data_ptr<float>()), want));
    }
    SUBCASE("Linear layout: dW^T [n, k_in] = g^T @ x, g is Ember's a") {
      Tensor dwt = zeros({n, k_in});
      const lp::Plan p = plan_of(dwt, g.t(), x, Epilogue::BgradA);
      CHECK(p.swap);
      CHECK(p.epilogue == Epilogue::BgradB);  // cuBLASLt's B is g (read as A^T)
      CHECK(p.n == n);                        // bias length = D's columns
      CHECK(p.k == m);
      CHECK(close_to(bgrad_sums(p, x.data_ptr<float>(), g.data_ptr<float>()), want));
    }
    SUBCASE("the wrong pairing would sum the other operand: the check can fail") {
      Tensor dw = zeros({k_in, n});
      lp::Plan p = plan_of(dw, x.t(), g, Epilogue::BgradB);
      p.epilogue = Epilogue::BgradB;
      CHECK_FALSE(close_to(bgrad_sums(p, g.data_ptr<float>(), x.data_ptr<float>()), want));
    }
    SUBCASE("refused: f64 and batches keep the unfused sum") {
      Tensor x64 = x.to(kF64), g64 = g.to(kF64), dw64 = zeros({k_in, n}, {.dtype = kF64});
      const lp::Plan p64 = plan_of(dw64, x64.t(), g64, Epilogue::BgradB);
      CHECK(p64.epilogue == Epilogue::None);
      CHECK(p64.epilogue_refused != nullptr);
      Tensor xb = rnd({2, m, k_in}), gb = rnd({2, m, n}), dwb = zeros({2, k_in, n});
      const lp::Plan pb = plan_of(dwb, xb.transpose(1, 2), gb, Epilogue::BgradB);
      CHECK(pb.epilogue == Epilogue::None);
      CHECK(pb.epilogue_refused != nullptr);
    }
    SUBCASE("the epilogue is part of the algorithm cache key") {
      Tensor dw = zeros({k_in, n});
      const lp::Plan p = plan_of(dw, x.t(), g, Epilogue::BgradB);
      const lp::Plan q = plan_of(dw, x.t(), g, Epilogue::None);
      CHECK(lp::cache_key(p) != lp::cache_key(q));
    }
  }

  TEST_CASE("addmm_gelu on CPU: the bits of addmm + gelu(tanh), gradients close to the composition's") {
    Tensor x = rnd({6, 5}), w = rnd({5, 12}), bias = rnd({12});
    CHECK(equal(addmm_gelu(bias, x, w), composed(bias, x, w)));
    Tensor wt = rnd({12, 5});  // Linear's weight, used as w.t()
    CHECK(equal(addmm_gelu(bias, x, wt.t()), composed(bias, x, wt.t())));
    CHECK(equal(nn::functional::linear_gelu(x.reshape({2, 3, 5}), wt, bias),
                nn::functional::gelu(nn::functional::linear(x.reshape({2, 3, 5}), wt, bias), "tanh")));

    auto grads = [&](bool fused, const Tensor& weight) {
      Tensor xi = x.detach().requires_grad_(), wi = weight.detach().requires_grad_(),
             bi = bias.detach().requires_grad_();
      Tensor y = fused ? addmm_gelu(bi, xi, wi) : composed(bi, xi, wi);
      (y * rnd({6, 12}).detach()).sum().backward();
      return std::vector<Tensor>{xi.grad(), wi.grad(), bi.grad()};
    };
    manual_seed(3);
    auto f = grads(true, w);
    manual_seed(3);
    auto c = grads(false, w);
    for (int i = 0; i < 3; ++i) CHECK(allclose(f[i], c[i], 1e-5, 1e-5));
  }

  TEST_CASE("addmm_gelu: f64 gradcheck and gradgradcheck, weight used as w.t() gets a contiguous gradient") {
    auto f = [](const std::vector<Tensor>& v) { return addmm_gelu(v[0], v[1], v[2]); };
    auto r = [](const Shape& s) { return randn(s, {.dtype = kF64, .requires_grad = true}); };
    CHECK(gradcheck(f, {r({4}), r({3, 2}), r({2, 4})}));
    CHECK(gradcheck(f, {r({4}), r({3, 2}), r({4, 2}).t()}));
    CHECK(gradgradcheck(f, {r({3}), r({2, 2}), r({2, 3})}));
    Tensor w = r({4, 2});
    addmm_gelu(r({4}), r({3, 2}), w.t()).sum().backward();
    CHECK(w.grad().is_contiguous());
  }

  TEST_CASE("addmm_gelu: bf16 under autocast, FLOPs and the profiler record it like addmm, bad input") {
    Tensor x = rnd({4, 8}), w = rnd({8, 16}), bias = rnd({16});
    {
      Autocast amp(kCPU, kBF16);
      Tensor y = addmm_gelu(bias, x, w);
      CHECK(y.dtype() == kBF16);
      CHECK(equal(y, composed(bias, x, w)));  // the same rounding steps as the composition under autocast
    }
    FlopCounter fc;
    addmm_gelu(bias, x, w);
    CHECK(fc.by_op().at("addmm_gelu") == 2 * 4 * 16 * 8);
    CHECK(fc.total() == 2 * 4 * 16 * 8);

    profiler::Profiler prof;  // the forward and its backward node are recorded like addmm's
    Tensor xr = x.detach().requires_grad_();
    prof.start();
    addmm_gelu(bias, xr, w).sum().backward();
    prof.stop();
    int forward = 0, backward = 0;
    for (const auto& e : prof.events()) {
      forward += e.name == "addmm_gelu" && e.category == profiler::Category::kOp;
      backward += e.name == "addmm_gelu_backward";
    }
    CHECK(forward == 1);
    CHECK(backward == 1);

    CHECK_THROWS_AS(addmm_gelu(rnd({15}), x, w), ShapeError);
    CHECK_THROWS_AS(addmm_gelu(rnd({1, 16}), x, w), ShapeError);
    CHECK_THROWS_AS(addmm_gelu(bias, x, rnd({7, 16})), ShapeError);
    CHECK_THROWS_AS(addmm_gelu(bias.to(kF64), x, w), DTypeError);
    CHECK_THROWS_AS(addmm_gelu(zeros({16}, {.dtype = kI32}), x.to(kI32), w.to(kI32)), DTypeError);
    try {
      addmm_gelu(rnd({15}), x, w);
    } catch (const Error& e) {
      CHECK(std::string(e.what()).rfind("[addmm_gelu]", 0) == 0);
    }
  }

  TEST_CASE("gelu_tanh_backward: the fused functor equals the composed derivative") {
    Tensor x = randn({200}, {.dtype = kF64}) * 3, g = randn({200}, {.dtype = kF64});
    Tensor fused = gelu_tanh_backward(g, x);
    Tensor xr = x.detach().requires_grad_();
    gelu(xr, "tanh").backward(g);
    CHECK(allclose(fused, xr.grad(), 1e-12, 1e-12));
  }

  TEST_CASE("CUDA addmm_gelu (GELU_AUX_BIAS) and BGRAD bias gradients against the CPU") {
    CUDA_OR_SKIP();
    for (DType dt : {kF32, kBF16}) {
      const double tol = dt == kF32 ? 2e-3 : 3e-2;
      for (int64_t n : {16, 12}) {  // 12: the aux ld is refused, the unfused path runs
        Tensor x = rnd({10, 24}, dt), w = rnd({24, n}, dt), bias = rnd({n}, dt), gy = rnd({10, n}, dt);
        // One backward of addmm_gelu (fused forward, BGRAD dW), one of addmm alone (its BGRAD backward).
        auto run = [&](Device d, bool linear_layout, bool fused) {
          // Copies (to(d, true)): to(kCPU) of a CPU tensor is the tensor itself, whose grads would pile up.
          Tensor xi = x.to(d, true).requires_grad_(), bi = bias.to(d, true).requires_grad_();
          Tensor wi = (linear_layout ? w.t().contiguous() : w).to(d, true).requires_grad_();
          const Tensor wv = linear_layout ? wi.t() : wi;
          Tensor y = fused ? addmm_gelu(bi, xi, wv) : addmm(bi, xi, wv);
          y.backward(gy.to(d));
          return std::vector<Tensor>{y, xi.grad(), wi.grad(), bi.grad()};
        };
        for (bool lin : {false, true})
          for (bool fused : {true, false}) {
            auto c = run(kCPU, lin, fused), g = run(kCuda, lin, fused);
            for (size_t i = 0; i < c.size(); ++i)
              CHECK_MESSAGE(allclose(g[i].to(kCPU).to(kF32), c[i].to(kF32), tol, tol), "dtype ", dt, " n ", n,
                            " linear ", lin, " fused ", fused, " tensor ", i);
          }
      }
    }
  }
}
