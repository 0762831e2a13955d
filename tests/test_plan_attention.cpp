// Host planning of the fused CUDA flash attention (kernels/attention_plan.hpp) and the per-row math it
// shares with the CPU kernel (kernels/attention_math.hpp): which calls the fused kernel takes, grids that
// cover every tile, shared-memory layouts that fit sm_90 and keep wmma's alignment rules, workspaces,
// tile ranges that visit exactly the tiles holding a visible (query, key) pair, and a host walk of the
// kernels' tile loops (the same order of online-softmax updates, P and dS from the saved lse) against a
// direct double-precision softmax attention and its gradients. Runs without a GPU.
#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "core/half.hpp"
#include "kernels/attention_math.hpp"
#include "kernels/attention_plan.hpp"
#include "test_util.hpp"

using namespace ember;
using namespace ember::kernels;

namespace {

FlashProblem problem(int64_t bh, int64_t l, int64_t s, int64_t e) {
  return {.batch_heads = bh, .l = l, .s = s, .e = e, .ev = e};
}

void check_layout(const FlashSmem& m, int64_t d) {
  CAPTURE(d);
  for (int64_t region : {m.q, m.k, m.v, m.dout, m.p, m.ds, m.s, m.acc, m.rows}) CHECK(region % 32 == 0);
  CHECK(m.total() <= kFlashMaxSmem);
}

}  // namespace

TEST_CASE("plan_attention: the fused kernel takes f16/bf16 CUDA calls of head dim 64 or 128 without mask or dropout") {
  for (int64_t e : {64, 128}) {
    for (int64_t l : {1, 17, 64, 130, 1024}) {
      const FlashPlan p = plan_flash_attention(problem(96, l, 257, e));
      CHECK(p.fused);
      CHECK(p.reason.empty());
      CHECK(p.head_dim == e);
    }
  }
  auto refused = [](FlashProblem pr, const char* why) {
    const FlashPlan p = plan_flash_attention(pr);
    CHECK_FALSE(p.fused);
    CHECK_MESSAGE(p.reason.find(why) != std::string::npos, p.reason);
  };
  FlashProblem pr = problem(8, 16, 16, 64);
  pr.cuda = false;
  refused(pr, "CUDA");
  pr = problem(8, 16, 16, 64);
  pr.low_precision = false;
  refused(pr, "bfloat16");
  pr = problem(8, 16, 16, 64);
  pr.has_mask = true;
  refused(pr, "attn_mask");
  pr = problem(8, 16, 16, 64);
  pr.dropout_p = 0.1;
  refused(pr, "dropout");
  refused(problem(8, 16, 16, 32), "got 32");
  refused(problem(8, 16, 16, 96), "got 96");
  pr = problem(8, 16, 16, 64);
  pr.ev = 128;
  refused(pr, "value's head dim");
  refused(problem(8, 0, 16, 64), "empty");
  refused(problem(8, 16, 0, 64), "empty");
  refused(problem(0, 16, 16, 64), "empty");
  refused(problem(kFlashMaxGridY + 1, 16, 16, 64), "batch * heads");
  CHECK(plan_flash_attention(problem(kFlashMaxGridY, 16, 16, 64)).fused);
  pr = problem(8, 16, 16, 64);
  pr.aligned = false;
  refused(pr, "aligned");
  pr = problem(8, 16, 16, 128);  // sm_80's 163 KiB: head dim 128's backward does not fit, 64's does
  pr.max_smem = 163 * 1024;
  refused(pr, "bytes of shared memory");
  pr.e = pr.ev = 64;
  CHECK(plan_flash_attention(pr).fused);
}

TEST_CASE("plan_attention: grids cover every query and key row once") {
  for (int64_t n : {1, 17, 63, 64, 65, 130, 257, 1024, 4097}) {
    const FlashPlan p = plan_flash_attention(problem(3, n, n + 5, 64));
    CAPTURE(n);
    CHECK(p.query_tiles * p.block_q >= n);
    CHECK((p.query_tiles - 1) * p.block_q < n);
    CHECK(p.key_tiles * p.block_k >= n + 5);
    CHECK((p.key_tiles - 1) * p.block_k < n + 5);
    CHECK(p.grid_y == 3);
    CHECK(p.threads == 32 * kFlashWarps);
    CHECK(p.block_q == 16 * kFlashWarps);  // a warp owns 16 rows
    CHECK(p.block_k == 16 * kFlashWarps);
  }
}

TEST_CASE("plan_attention: shared memory fits sm_90 and keeps wmma's alignment") {
  for (int64_t d : {64, 128}) {
    check_layout(flash_forward_smem(d), d);
    check_layout(flash_backward_smem(d), d);
    check_layout(flash_dq_smem(d), d);
    // ldm: a multiple of 8 two-byte or 4 float elements; a fragment's first row (every 16th) 32-byte aligned.
    CHECK(flash_ld_half(d) % 8 == 0);
    CHECK(flash_ld_float(d) % 4 == 0);
    CHECK(flash_ld_half(kFlashBlockK) % 8 == 0);
    CHECK((16 * flash_ld_half(d) * 2) % 32 == 0);
    CHECK((16 * flash_ld_float(d) * 4) % 32 == 0);
    CHECK((16 * flash_ld_half(kFlashBlockK) * 2) % 32 == 0);
    CHECK((16 * flash_ld_float(kFlashBlockK) * 4) % 32 == 0);
    // Each row of a tile starts on 16 bytes (the 128-bit tile loads).
    CHECK((flash_ld_half(d) * 2) % 16 == 0);
    // The backward's dQ scratch aliases S and dP: the region holds either.
    const FlashSmem b = flash_backward_smem(d);
    CHECK(b.s >= flash_tile_float(kFlashBlockQ, d));
    CHECK(b.s >= 2 * flash_tile_float(kFlashBlockQ, kFlashBlockK));
    CHECK(b.acc == 2 * flash_tile_float(kFlashBlockK, d));
    CHECK(b.rows == 2 * kFlashBlockQ * 4);
    const FlashPlan p = plan_flash_attention(problem(4, 100, 100, d));
    CHECK(p.forward_smem == flash_forward_smem(d).total());
    CHECK(p.backward_smem == b.total());
    CHECK(p.dq_smem == flash_dq_smem(d).total());
  }
  CHECK(flash_forward_smem(64).total() == 4 * 64 * 72 * 2 + 2 * 64 * 68 * 4);
  CHECK(flash_backward_smem(128).total() <= 190 * 1024);
}

TEST_CASE("plan_attention: workspaces, atomics off in deterministic mode") {
  const FlashPlan p = plan_flash_attention(problem(6, 100, 70, 128));
  CHECK(p.dq_atomic);
  CHECK(p.delta_bytes == 6 * 100 * 4);
  CHECK(p.dq_accum_bytes == 6 * 100 * 128 * 4);
  const FlashPlan det = plan_flash_attention(problem(6, 100, 70, 128), true);
  CHECK_FALSE(det.dq_atomic);
  CHECK(det.dq_accum_bytes == 0);
  CHECK(det.delta_bytes == p.delta_bytes);
}

TEST_CASE("plan_attention: cuDNN's operands are read in place where rows sit on 16 bytes") {
  const int64_t b = 2, t = 128, h = 12, d = 64;
  // Contiguous [b, h, t, d], 2-byte elements.
  const std::vector<int64_t> shape{b, h, t, d};
  auto op = sdpa_operand(shape, std::vector<int64_t>{h * t * d, t * d, d, 1}, 4096, 2);
  REQUIRE(op.has_value());
  CHECK(*op == sdpa_contiguous(b, h, t, d));
  // GPT-2's q, k, v: [b, h, t, d] views of the [b, t, 3, h, d] projection, k starting h * d elements in.
  const std::vector<int64_t> qkv_strides{t * 3 * h * d, d, 3 * h * d, 1};
  op = sdpa_operand(shape, qkv_strides, 4096 + h * d * 2, 2);
  REQUIRE(op.has_value());
  CHECK(op->stride == std::array<int64_t, 4>{t * 3 * h * d, d, 3 * h * d, 1});
  // The outputs' [b, t, h, d] memory viewed as [b, h, t, d].
  CHECK(sdpa_bshd(b, h, t, d).stride == std::array<int64_t, 4>{t * h * d, d, h * d, 1});
  CHECK(sdpa_operand(shape, sdpa_bshd(b, h, t, d).stride, 0, 2).has_value());
  // 3 dims: [b, 1, s, d].
  op = sdpa_operand(std::vector<int64_t>{b, t, d}, std::vector<int64_t>{t * d, d, 1}, 0, 2);
  REQUIRE(op.has_value());
  CHECK(op->dim == std::array<int64_t, 4>{b, 1, t, d});
  CHECK(op->stride[1] == t * d);  // a size-1 dim gets a tidy stride
  // Copies needed: a start off 16 bytes, a row stride off 16 bytes, a strided last dim, an expanded
  // (stride 0) dim, another rank.
  CHECK_FALSE(sdpa_operand(shape, std::vector<int64_t>{h * t * d, t * d, d, 1}, 4098, 2).has_value());
  CHECK_FALSE(sdpa_operand(std::vector<int64_t>{b, h, t, 36}, std::vector<int64_t>{h * t * 36, t * 36, 36, 1}, 0, 2)
                  .has_value());
  CHECK_FALSE(sdpa_operand(shape, std::vector<int64_t>{h * t * d * 2, t * d * 2, d * 2, 2}, 0, 2).has_value());
  CHECK_FALSE(sdpa_operand(shape, std::vector<int64_t>{0, t * d, d, 1}, 0, 2).has_value());
  CHECK_FALSE(sdpa_operand(std::vector<int64_t>{t, d}, std::vector<int64_t>{d, 1}, 0, 2).has_value());
  // f32 rows of 4 elements are 16 bytes: fine at 4 bytes per element, not at 2.
  CHECK(sdpa_operand(std::vector<int64_t>{1, 1, 3, 4}, std::vector<int64_t>{12, 12, 4, 1}, 0, 4).has_value());
  CHECK_FALSE(sdpa_operand(std::vector<int64_t>{1, 1, 3, 4}, std::vector<int64_t>{12, 12, 4, 1}, 0, 2).has_value());
}

TEST_CASE("plan_attention: cuDNN's fused attention takes f16/bf16 head dims that are multiples of 8 up to 128") {
  auto problem = [](int64_t e) { return CudnnSdpaProblem{.batch_heads = 8, .l = 100, .s = 77, .e = e, .ev = e}; };
  for (int64_t e : {8, 32, 64, 80, 96, 128}) {
    CAPTURE(e);
    CHECK(cudnn_sdpa_refusal(problem(e)).empty());
  }
  auto refused = [](const CudnnSdpaProblem& pr, const char* why) {
    const std::string r = cudnn_sdpa_refusal(pr);
    CHECK_MESSAGE(r.find(why) != std::string::npos, r);
  };
  refused(problem(36), "multiples of 8");
  refused(problem(136), "up to 128");
  // One change from an accepted problem each, and the words of its refusal.
  const std::vector<std::pair<std::function<void(CudnnSdpaProblem&)>, const char*>> changes = {
      {[](CudnnSdpaProblem& p) { p.ev = 32; }, "value's head dim"},
      {[](CudnnSdpaProblem& p) { p.available = false; }, "frontend"},
      {[](CudnnSdpaProblem& p) { p.sm = 75; }, "7.5"},
      {[](CudnnSdpaProblem& p) { p.low_precision = false; }, "bfloat16"},
      {[](CudnnSdpaProblem& p) { p.has_mask = true; }, "attn_mask"},
      {[](CudnnSdpaProblem& p) { p.dropout_p = 0.1; }, "dropout"},
      {[](CudnnSdpaProblem& p) { p.s = 0; }, "empty"},
      {[](CudnnSdpaProblem& p) { p.cuda = false; }, "CUDA"},
  };
  for (const auto& change : changes) {
    CudnnSdpaProblem pr = problem(64);
    change.first(pr);
    refused(pr, change.second);
  }
}

TEST_CASE("attention_math: tile ranges visit exactly the tiles with a visible pair") {
  constexpr int64_t br = kFlashBlockQ, bc = kFlashBlockK;
  for (bool causal : {false, true}) {
    for (int64_t l : {1, 17, 64, 130, 257}) {
      for (int64_t s : {1, 17, 65, 130, 257}) {
        CAPTURE(causal);
        CAPTURE(l);
        CAPTURE(s);
        const int64_t nq = (l + br - 1) / br, nk = (s + bc - 1) / bc;
        for (int64_t qt = 0; qt < nq; ++qt) {
          const int64_t i1 = std::min(l, (qt + 1) * br);
          for (int64_t kt = 0; kt < nk; ++kt) {
            bool any = false;
            for (int64_t i = qt * br; i < i1 && !any; ++i)
              for (int64_t j = kt * bc; j < std::min(s, (kt + 1) * bc) && !any; ++j)
                any = attn_visible(i, j, s, causal);
            const bool fwd = kt < attn_key_tiles(i1, s, bc, causal);
            const bool bwd = qt >= attn_first_query_tile(kt * bc, br, causal);
            CHECK(fwd == any);
            CHECK(bwd == any);
          }
        }
        // attn_visible agrees with the CPU kernel's row bound within any tile.
        for (int64_t i = 0; i < l; i += 7)
          for (int64_t j0 = 0; j0 < s; j0 += bc) {
            const int64_t j1 = std::min(s, j0 + bc), end = attn_row_key_end(i, j1, causal);
            for (int64_t j = j0; j < j1; ++j) CHECK(attn_visible(i, j, s, causal) == (j < end));
          }
        CHECK_FALSE(attn_visible(0, s, s, causal));  // padding keys never
      }
    }
  }
}

TEST_CASE("attention_math: attn_row_delta accumulates 2-byte rows in float") {
  std::vector<bfloat16> a, b;
  double want = 0;
  for (int x = 0; x < 128; ++x) {
    a.emplace_back(0.01f * static_cast<float>(x) - 0.3f);
    b.emplace_back(1.0f + 0.5f * static_cast<float>(x % 5));
    want += static_cast<double>(static_cast<float>(a.back())) * static_cast<float>(b.back());
  }
  CHECK(attn_row_delta<float>(a.data(), b.data(), 128) == doctest::Approx(want).epsilon(1e-5));
  CHECK(attn_row_delta<float>(a.data(), b.data(), 0) == 0.0f);
}

// The kernels' tile loops on the host (float, 64x64 tiles, padded rows and keys), built from the same
// math functions, against direct double-precision attention: a wrong bound, a missing rescale or a
// padding key that leaks would show here before a GPU ever runs the kernels.
TEST_CASE("attention_math: a host walk of the fused kernels' tile loops matches direct attention") {
  constexpr int64_t br = kFlashBlockQ, bc = kFlashBlockK, d = 16;
  std::mt19937 gen(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const float ninf = -std::numeric_limits<float>::infinity();
  for (bool causal : {false, true}) {
    for (const auto& shape : {std::pair<int64_t, int64_t>{1, 1}, {17, 130}, {130, 17}, {130, 130}, {65, 257}}) {
      const int64_t l = shape.first, s = shape.second;  // not a structured binding: clang 14's CAPTURE
      CAPTURE(causal);
      CAPTURE(l);
      CAPTURE(s);
      std::vector<float> q(l * d), k(s * d), v(s * d), g(l * d);
      for (auto* x : {&q, &k, &v, &g})
        for (float& y : *x) y = nd(gen);
      const float scale = 1.0f / std::sqrt(float(d));
      // Direct reference (double): out, and the gradients of <out, g>.
      std::vector<double> ro(l * d, 0), rdq(l * d, 0), rdk(s * d, 0), rdv(s * d, 0);
      for (int64_t i = 0; i < l; ++i) {
        std::vector<double> p(s, 0);
        double m = -1e300, sum = 0;
        for (int64_t j = 0; j < s; ++j)
          if (!causal || j <= i) {
            double sc = 0;
            for (int64_t x = 0; x < d; ++x) sc += double(q[i * d + x]) * k[j * d + x];
            p[j] = sc * scale;
            m = std::max(m, p[j]);
          }
        for (int64_t j = 0; j < s; ++j) {
          p[j] = (!causal || j <= i) ? std::exp(p[j] - m) : 0.0;
          sum += p[j];
        }
        for (int64_t j = 0; j < s; ++j) p[j] /= sum;
        for (int64_t j = 0; j < s; ++j)
          for (int64_t x = 0; x < d; ++x) ro[i * d + x] += p[j] * v[j * d + x];
        std::vector<double> dp(s, 0);
        double dd = 0;
        for (int64_t j = 0; j < s; ++j) {
          for (int64_t x = 0; x < d; ++x) dp[j] += double(g[i * d + x]) * v[j * d + x];
          dd += p[j] * dp[j];
        }
        for (int64_t j = 0; j < s; ++j) {
          const double ds = p[j] * (dp[j] - dd) * scale;
          for (int64_t x = 0; x < d; ++x) {
            rdq[i * d + x] += ds * k[j * d + x];
            rdk[j * d + x] += ds * q[i * d + x];
            rdv[j * d + x] += p[j] * g[i * d + x];
          }
        }
      }
      // Forward walk: query tiles, key tiles up to attn_key_tiles, padded rows computed and dropped.
      std::vector<float> out(l * d), lse(l);
      const int64_t nq = (l + br - 1) / br;
      for (int64_t qt = 0; qt < nq; ++qt) {
        const int64_t i0 = qt * br;
        std::vector<OnlineSoftmax<float>> st(br);
        std::vector<float> o(br * d, 0.0f);
        for (int64_t t = 0; t < attn_key_tiles(std::min(i0 + br, l), s, bc, causal); ++t) {
          const int64_t j0 = t * bc;
          for (int64_t r = 0; r < br; ++r) {
            const int64_t i = i0 + r;
            float x[bc], mx = ninf;
            for (int64_t c = 0; c < bc; ++c) {
              float sc = 0;
              if (i < l && j0 + c < s)
                for (int64_t y = 0; y < d; ++y) sc += q[i * d + y] * k[(j0 + c) * d + y];
              x[c] = attn_visible(i, j0 + c, s, causal) ? sc * scale : ninf;
              mx = std::max(mx, x[c]);
            }
            const float alpha = st[r].advance(mx), m = st[r].shift();
            float psum = 0;
            for (int64_t y = 0; y < d; ++y) o[r * d + y] *= alpha;
            for (int64_t c = 0; c < bc; ++c) {
              const float p = m == ninf ? 0.0f : std::exp(x[c] - m);
              psum += p;
              if (j0 + c < s)
                for (int64_t y = 0; y < d; ++y) o[r * d + y] += p * v[(j0 + c) * d + y];
            }
            st[r].add(psum);
          }
        }
        for (int64_t r = 0; r < br && i0 + r < l; ++r) {
          for (int64_t y = 0; y < d; ++y) out[(i0 + r) * d + y] = o[r * d + y] * st[r].inv_sum();
          lse[i0 + r] = st[r].lse();
        }
      }
      double err = 0;
      for (int64_t x = 0; x < l * d; ++x) err = std::max(err, std::abs(out[x] - ro[x]));
      CHECK(err < 1e-4);
      // Backward walk (dK/dV pass: key tiles x query tiles from attn_first_query_tile; dQ summed per tile).
      std::vector<float> delta(l), dq(l * d, 0), dk(s * d, 0), dv(s * d, 0);
      for (int64_t i = 0; i < l; ++i) delta[i] = attn_row_delta<float>(g.data() + i * d, out.data() + i * d, d);
      const int64_t nk = (s + bc - 1) / bc;
      for (int64_t kt = 0; kt < nk; ++kt) {
        const int64_t j0 = kt * bc;
        for (int64_t qt = attn_first_query_tile(j0, br, causal); qt < nq; ++qt) {
          for (int64_t r = 0; r < br; ++r) {
            const int64_t i = qt * br + r;
            for (int64_t c = 0; c < bc; ++c) {
              const int64_t j = j0 + c;
              if (!(i < l && attn_visible(i, j, s, causal))) continue;
              float sc = 0, dp = 0;
              for (int64_t y = 0; y < d; ++y) {
                sc += q[i * d + y] * k[j * d + y];
                dp += g[i * d + y] * v[j * d + y];
              }
              const float p = attn_prob(sc * scale, lse[i], [](float z) { return std::exp(z); });
              const float ds = attn_dscore(p, dp, delta[i], scale);
              for (int64_t y = 0; y < d; ++y) {
                dv[j * d + y] += p * g[i * d + y];
                dk[j * d + y] += ds * q[i * d + y];
                dq[i * d + y] += ds * k[j * d + y];
              }
            }
          }
        }
      }
      auto max_err = [](const std::vector<float>& a, const std::vector<double>& b) {
        double e = 0;
        for (size_t x = 0; x < a.size(); ++x) e = std::max(e, std::abs(a[x] - b[x]));
        return e;
      };
      CHECK(max_err(dq, rdq) < 1e-3);
      CHECK(max_err(dk, rdk) < 1e-3);
      CHECK(max_err(dv, rdv) < 1e-3);
    }
  }
}
