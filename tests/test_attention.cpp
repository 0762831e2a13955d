// The blocked (flash-style) CPU attention of core/ops/attention.hpp against the composed matmul/softmax
// path (its oracle): forward and the three input gradients over a sweep of shapes that straddle the
// tiles, causal and not, masks, broadcast batch dims, rows with no key; gradcheck and gradgradcheck in
// f64; which path scaled_dot_product_attention picks; FLOP counts; the peak memory it saves; the per-row
// math of kernels/attention_math.hpp; and its errors.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "ember.hpp"
#include "gradcheck.hpp"
#include "kernels/attention.hpp"
#include "kernels/attention_math.hpp"
#include "test_util.hpp"

using namespace ember;
namespace F = ember::nn::functional;
using ember::testing::allclose;
using ember::testing::gradcheck;
using ember::testing::gradgradcheck;

namespace {

struct Run {
  Tensor out, dq, dk, dv;
};

// Forward and the gradients of <out, g> with fresh leaves, through the blocked op or the composed path.
Run run(bool blocked, const Tensor& q0, const Tensor& k0, const Tensor& v0, const Tensor& mask, bool causal,
        const Tensor& g, std::optional<double> scale = {}) {
  Tensor q = q0.detach().requires_grad_(), k = k0.detach().requires_grad_(), v = v0.detach().requires_grad_();
  Tensor out;
  if (blocked) {
    out = blocked_attention(q, k, v, mask, causal, scale);
  } else {
    SdpaBackendGuard math(SdpaBackend::Math);
    out = F::scaled_dot_product_attention(q, k, v, mask, 0.0, causal, scale);
  }
  out.backward(g);
  return {out.detach(), q.grad(), k.grad(), v.grad()};
}

bool close_runs(const Run& a, const Run& b, double rtol, double atol) {
  bool ok = true;
  const char* names[] = {"out", "dq", "dk", "dv"};
  const Tensor* xs[] = {&a.out, &a.dq, &a.dk, &a.dv};
  const Tensor* ys[] = {&b.out, &b.dq, &b.dk, &b.dv};
  for (int i = 0; i < 4; ++i) {
    if (!allclose(*xs[i], *ys[i], rtol, atol)) {
      MESSAGE("mismatch in " << names[i]);
      ok = false;
    }
  }
  return ok;
}

std::string grad_fn_name(const Tensor& t) { return t.grad_fn() ? t.grad_fn()->name() : "<none>"; }

}  // namespace

TEST_SUITE("attention") {
  TEST_CASE("attention: blocked matches composed, forward and gradients, over shapes that straddle the tiles") {
    // Tiles are 64 query rows x 128 keys: 1, 7, 64, 130 give single, partial and multiple tiles both ways.
    static_assert(kernels::kAttnQueryBlock == 64 && kernels::kAttnKeyBlock == 128);
    manual_seed(18);
    int cases = 0;
    for (DType dt : {kF64, kF32}) {
      const double rtol = dt == kF64 ? 1e-10 : 2e-4, atol = dt == kF64 ? 1e-12 : 2e-5;
      for (int64_t l : {1, 7, 64, 130})
        for (int64_t s : {1, 7, 64, 130})
          for (int64_t e : {8, 64, 80})
            for (bool causal : {false, true}) {
              const int64_t ev = e == 64 ? 64 : 5;
              // Batch dims broadcast: q [2, 3], k [3] (shared by the batch), v [2, 1] (shared by heads).
              Tensor q = randn({2, 3, l, e}, {.dtype = dt}), k = randn({3, s, e}, {.dtype = dt});
              Tensor v = randn({2, 1, s, ev}, {.dtype = dt}), g = randn({2, 3, l, ev}, {.dtype = dt});
              INFO("dtype " << dtype_name(dt) << " L " << l << " S " << s << " E " << e << " causal " << causal);
              CHECK(close_runs(run(true, q, k, v, {}, causal, g), run(false, q, k, v, {}, causal, g), rtol, atol));
              ++cases;
            }
    }
    CHECK(cases == 192);
  }

  TEST_CASE("attention: blocked masks, scale, non-contiguous inputs and rows with no key") {
    manual_seed(19);
    const int64_t l = 70, s = 150, e = 16;
    Tensor q = randn({2, 2, l, e}, {.dtype = kF64}), k = randn({2, 2, s, e}, {.dtype = kF64});
    Tensor v = randn({2, 2, s, 6}, {.dtype = kF64}), g = randn({2, 2, l, 6}, {.dtype = kF64});
    // A bool mask shared by batch and heads, with rows 3 and 65 masked entirely (those give zeros).
    Tensor bmask = rand({l, s}) > 0.4;
    bmask.select(0, 3).fill_(false);
    bmask.select(0, 65).fill_(false);
    Run b = run(true, q, k, v, bmask, false, g), c = run(false, q, k, v, bmask, false, g);
    CHECK(close_runs(b, c, 1e-10, 1e-12));
    CHECK(b.out.select(2, 3).abs().sum().item<double>() == 0.0);
    CHECK(b.out.select(2, 65).abs().sum().item<double>() == 0.0);
    CHECK(b.dq.select(2, 65).abs().sum().item<double>() == 0.0);
    CHECK(std::isfinite(b.dk.abs().sum().item<double>()));
    // A float mask [2, 1, L, S] (broadcast over the heads) with -inf entries and one fully -inf row,
    // and an explicit scale.
    Tensor fmask = randn({2, 1, l, s}, {.dtype = kF64});
    fmask = where(rand({2, 1, l, s}) > 0.8, -INFINITY, fmask);
    fmask[0][0][5].fill_(-INFINITY);
    Run fb = run(true, q, k, v, fmask, false, g, 0.3), fc = run(false, q, k, v, fmask, false, g, 0.3);
    CHECK(close_runs(fb, fc, 1e-10, 1e-12));
    CHECK(fb.out[0][0][5].abs().sum().item<double>() == 0.0);
    CHECK(fb.out[0][1][5].abs().sum().item<double>() == 0.0);
    // Transposed views (the [N, L, H, E] -> [N, H, L, E] of multi-head attention) and L > S with causal.
    Tensor qt = randn({2, 130, 2, e}, {.dtype = kF64}).transpose(1, 2),
           kt = randn({2, 7, 2, e}, {.dtype = kF64}).transpose(1, 2);
    Tensor vt = randn({2, 7, 2, 4}, {.dtype = kF64}).transpose(1, 2), gt = randn({2, 2, 130, 4}, {.dtype = kF64});
    CHECK(close_runs(run(true, qt, kt, vt, {}, true, gt), run(false, qt, kt, vt, {}, true, gt), 1e-10, 1e-12));
    // The f32 masked case within float tolerance.
    Run b32 = run(true, q.to(kF32), k.to(kF32), v.to(kF32), bmask, false, g.to(kF32));
    Run c32 = run(false, q.to(kF32), k.to(kF32), v.to(kF32), bmask, false, g.to(kF32));
    CHECK(close_runs(b32, c32, 2e-4, 2e-5));
  }

  TEST_CASE("attention: blocked gradcheck and gradgradcheck in f64") {
    if (!ember::testing::test_device().is_cpu()) return;  // a CPU kernel: nothing to check on CUDA
    manual_seed(20);
    auto rnd = [](Shape s) { return randn(s, {.dtype = kF64}).requires_grad_(); };
    auto op = [](Tensor mask, bool causal) {
      return [mask, causal](const std::vector<Tensor>& a) { return blocked_attention(a[0], a[1], a[2], mask, causal); };
    };
    CHECK(gradcheck(op({}, false), {rnd({2, 3, 2}), rnd({2, 4, 2}), rnd({2, 4, 3})}));
    CHECK(gradcheck(op({}, true), {rnd({1, 2, 5, 2}), rnd({2, 1, 3, 2}), rnd({2, 1, 3, 2})}));
    Tensor bmask = tensor<bool>({{true, false, true, true}, {true, true, false, false}, {false, false, false, false}});
    CHECK(gradcheck(op(bmask, false), {rnd({2, 3, 2}), rnd({2, 4, 2}), rnd({2, 4, 3})}));
    CHECK(gradcheck(op(randn({1, 3, 4}, {.dtype = kF64}), false), {rnd({2, 3, 2}), rnd({2, 4, 2}), rnd({2, 4, 3})}));
    // Across tiles: 70 query rows (two blocks), 130 keys (two blocks), causal.
    CHECK(gradcheck(op({}, true), {rnd({70, 2}), rnd({130, 2}), rnd({130, 2})}));
    // Under create_graph the backward is public ops, so it differentiates again.
    CHECK(gradgradcheck(op(bmask, false), {rnd({1, 3, 2}), rnd({1, 4, 2}), rnd({1, 4, 2})}));
    CHECK(gradgradcheck(op({}, true), {rnd({3, 2}), rnd({3, 2}), rnd({3, 2})}));
  }

  TEST_CASE("attention: scaled_dot_product_attention picks the blocked op where it applies and pays") {
    manual_seed(21);
    Tensor q = randn({2, 256, 8}).requires_grad_(), k = randn({2, 256, 8}), v = randn({2, 256, 8});
    CHECK(256 * 256 >= kBlockedAttentionMinScores);
    CHECK(sdpa_backend() == SdpaBackend::Auto);
    CHECK(grad_fn_name(F::scaled_dot_product_attention(q, k, v)) == "scaled_dot_product_attention");
    CHECK(grad_fn_name(F::scaled_dot_product_attention(q, k, v, {}, 0.0, true)) == "scaled_dot_product_attention");
    // Causal from a smaller size on (it skips the masked tiles); not causal there the composed path.
    Tensor q64 = randn({2, 64, 8}).requires_grad_();
    CHECK(64 * 64 >= kBlockedCausalAttentionMinScores);
    CHECK(grad_fn_name(F::scaled_dot_product_attention(q64, q64, q64, {}, 0.0, true)) ==
          "scaled_dot_product_attention");
    CHECK(grad_fn_name(F::scaled_dot_product_attention(q64, q64, q64)) == "matmul");
    // Short sequences, dropout, f16, a float mask that takes a gradient: the composed path.
    Tensor qs = randn({2, 4, 8}).requires_grad_();
    CHECK(grad_fn_name(F::scaled_dot_product_attention(qs, qs, qs)) == "matmul");
    CHECK(grad_fn_name(F::scaled_dot_product_attention(q, k, v, {}, 0.1)) != "scaled_dot_product_attention");
    Tensor qh = randn({2, 256, 8}, {.dtype = kF16}).requires_grad_();
    CHECK(grad_fn_name(F::scaled_dot_product_attention(qh, qh, qh)) == "matmul");
    Tensor fm = zeros({256, 256}).requires_grad_();
    CHECK(grad_fn_name(F::scaled_dot_product_attention(q, k, v, fm)) != "scaled_dot_product_attention");
    CHECK(grad_fn_name(F::scaled_dot_product_attention(q, k, v, fm.detach())) == "scaled_dot_product_attention");
    {
      SdpaBackendGuard math(SdpaBackend::Math);
      CHECK(grad_fn_name(F::scaled_dot_product_attention(q, k, v)) == "matmul");
      SdpaBackendGuard blocked(SdpaBackend::Blocked);
      CHECK(grad_fn_name(F::scaled_dot_product_attention(qs, qs, qs)) == "scaled_dot_product_attention");
    }
    CHECK(sdpa_backend() == SdpaBackend::Auto);
    // Without grad the forward alone runs, with the same values.
    autograd::NoGradGuard no_grad;
    CHECK(allclose(blocked_attention(q, k, v), F::scaled_dot_product_attention(q, k, v), 1e-6, 1e-7));
  }

  TEST_CASE("attention: the blocked op counts the composed path's FLOPs, forward and backward") {
    manual_seed(22);
    for (bool need_q : {true, false}) {
      Tensor q = randn({2, 4, 70, 8}), k = randn({1, 4, 130, 8}), v = randn({2, 1, 130, 5});
      if (need_q) q.requires_grad_();
      v.requires_grad_();
      int64_t flops[2][2];  // [blocked][forward, forward + backward]
      for (int b = 0; b < 2; ++b) {
        SdpaBackendGuard guard(b ? SdpaBackend::Blocked : SdpaBackend::Math);
        FlopCounter counter;
        Tensor out = F::scaled_dot_product_attention(q, k, v, {}, 0.0, true);
        CHECK(grad_fn_name(out) == (b ? "scaled_dot_product_attention" : "matmul"));
        flops[b][0] = counter.total();
        out.sum().backward();
        flops[b][1] = counter.total();
      }
      INFO("need_q " << need_q);
      CHECK(flops[1][0] == flops[0][0]);
      CHECK(flops[1][1] == flops[0][1]);
      CHECK(flops[1][0] == 2 * 2 * 4 * 70 * 130 * (8 + 5));
    }
  }

  TEST_CASE("attention: the blocked op's peak memory is far below the composed path's") {
    manual_seed(23);
    const int64_t heads = 4, len = 2048, e = 64;
    Tensor q = randn({heads, len, e}), k = randn({heads, len, e}), v = randn({heads, len, e});
    Tensor g = randn({heads, len, e});
    int64_t peak[2];
    for (int b = 0; b < 2; ++b) {
      SdpaBackendGuard guard(b ? SdpaBackend::Blocked : SdpaBackend::Math);
      Tensor ql = q.detach().requires_grad_(), kl = k.detach().requires_grad_(), vl = v.detach().requires_grad_();
      const int64_t base = memory_stats(Device()).current_bytes;
      reset_peak_memory_stats(Device());
      F::scaled_dot_product_attention(ql, kl, vl).backward(g);
      peak[b] = memory_stats(Device()).peak_bytes - base;
    }
    const int64_t scores = heads * len * len * 4, input = heads * len * e * 4;  // 64 MiB and 2 MiB
    MESSAGE("peak bytes above the inputs: composed " << peak[0] << ", blocked " << peak[1]);
    CHECK(peak[0] >= 2 * scores);   // the composed path keeps the scores and their softmax
    CHECK(peak[1] <= 8 * input);    // the blocked one: the output, three gradients, small partials
    CHECK(peak[1] * 10 < peak[0]);  // measured: 12 MiB against 198 MiB
  }

  TEST_CASE("attention: the per-row math (kernels/attention_math.hpp)") {
    using kernels::OnlineSoftmax;
    const double inf = std::numeric_limits<double>::infinity();
    // Tiles folded one by one equal the full logsumexp, whatever the split.
    const std::vector<double> x{0.5, -1.0, 3.0, 2.0, -inf, 0.25};
    double m = -inf, sum = 0;
    for (double xi : x) m = std::max(m, xi);
    for (double xi : x) sum += std::exp(xi - m);
    for (size_t split : {1, 2, 3, 6}) {
      OnlineSoftmax<double> st;
      double out = 0;  // the partial output of a value vector of all ones: sum of the weights
      for (size_t t = 0; t < x.size(); t += split) {
        double tmax = -inf;
        for (size_t j = t; j < std::min(x.size(), t + split); ++j) tmax = std::max(tmax, x[j]);
        out *= st.advance(tmax);
        double ts = 0;
        for (size_t j = t; j < std::min(x.size(), t + split); ++j) ts += std::exp(x[j] - st.shift());
        st.add(ts);
        out += ts;
      }
      CHECK(st.lse() == doctest::Approx(m + std::log(sum)).epsilon(1e-14));
      CHECK(out * st.inv_sum() == doctest::Approx(1.0).epsilon(1e-14));
    }
    // A row that sees only -inf: no key, lse -inf, output factor 0, probabilities 0.
    OnlineSoftmax<double> dead;
    CHECK(dead.advance(-inf) == 1.0);
    CHECK(dead.lse() == -inf);
    CHECK(dead.inv_sum() == 0.0);
    CHECK(kernels::attn_prob(1.0, -inf, [](double t) { return std::exp(t); }) == 0.0);
    CHECK(kernels::attn_prob(-inf, 0.5, [](double t) { return std::exp(t); }) == 0.0);
    CHECK(kernels::attn_dscore(0.5, 2.0, 1.0, 0.25) == 0.125);
    CHECK(kernels::attn_masked(2.0, false, 1.0) == -inf);
    CHECK(kernels::attn_masked(2.0, true, 1.0) == 3.0);
    // Causal (top-left) ranges: block [64, 128) needs keys [0, 128) of S = 200, [0, 100) of S = 100.
    CHECK(kernels::attn_key_end(128, 200, true) == 128);
    CHECK(kernels::attn_key_end(128, 100, true) == 100);
    CHECK(kernels::attn_key_end(128, 200, false) == 200);
    CHECK(kernels::attn_row_key_end(5, 128, true) == 6);
    CHECK(kernels::attn_row_key_end(200, 128, true) == 128);
    CHECK(kernels::attn_first_row(128, true) == 128);
    CHECK(kernels::attn_first_row(128, false) == 0);
  }

  TEST_CASE("attention: blocked_attention refuses what it does not take") {
    Tensor q = randn({2, 3, 4}), k = randn({2, 5, 4}), v = randn({2, 5, 6});
    const std::string tag = "[scaled_dot_product_attention]";
    CHECK(testing::throws_with<ShapeError>([&] { blocked_attention(q, randn({2, 5, 3}), v); }, tag));
    CHECK(testing::throws_with<ShapeError>([&] { blocked_attention(q, k, randn({2, 4, 6})); }, tag));
    CHECK(testing::throws_with<ShapeError>([&] { blocked_attention(q, randn({3, 5, 4}), randn({3, 5, 6})); }, tag));
    CHECK(testing::throws_with<ShapeError>(
        [&] {
          blocked_attention(q, k, v, ones({4, 5}, {.dtype = kBool}));
        },
        "does not broadcast"));
    CHECK(testing::throws_with<ValueError>(
        [&] {
          blocked_attention(q, k, v, ones({3, 5}, {.dtype = kBool}), true);
        },
        "is_causal"));
    CHECK(testing::throws_with<ValueError>([&] { blocked_attention(q.to(kF16), k.to(kF16), v.to(kF16)); }, "float16"));
    CHECK(testing::throws_with<ValueError>(
        [&] {
          blocked_attention(q, k, v, zeros({3, 5}).requires_grad_());
        },
        "requires_grad"));
    CHECK(testing::throws_with<ValueError>([&] { blocked_attention(q, k.to(kF64), v); }, tag));
    CHECK(testing::throws_with<ValueError>([&] { blocked_attention(q, k, v, ones({3, 5}, {.dtype = kI64})); }, tag));
  }
}
