// The fused CUDA attention (core/ops/attention.hpp's fused_attention) by both implementations, Ember's
// flash kernels (kernels/cuda/attention.cu, SdpaBackend::Blocked) and cuDNN's fused attention
// (kernels/cuda/attention_cudnn.cpp, SdpaBackend::Cudnn), against the composed path in f32 on the same
// (rounded) inputs: forward and the three input gradients for head dims 64 and 128, causal or not, L and
// S off the 64-row tiles and unequal, f16 and bf16; that scaled_dot_product_attention takes a fused path
// (autocast included) and leaves masks, dropout and head dims neither kernel takes to the composed
// path; the deterministic backward; strided and broadcast inputs, GPT-2's layout read in place by cuDNN;
// and memory that does not grow as L * S. Every case skips with the reason when there is no CUDA device.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "core/determinism.hpp"
#include "ember.hpp"
#include "kernels/attention.hpp"
#include "kernels/cuda_device.hpp"
#include "test_util.hpp"

using namespace ember;
namespace F = ember::nn::functional;

namespace {

const Device kCuda{Device::Kind::CUDA, 0};

struct Grads {
  Tensor out, dq, dk, dv;
};

// out and the gradients of <out, g> (f32 copies on the CPU), through sdpa with the backend given.
Grads run(SdpaBackend backend, const Tensor& q0, const Tensor& k0, const Tensor& v0, const Tensor& g, bool causal) {
  SdpaBackendGuard guard(backend);
  Tensor q = q0.detach().requires_grad_(), k = k0.detach().requires_grad_(), v = v0.detach().requires_grad_();
  Tensor out = F::scaled_dot_product_attention(q, k, v, {}, 0.0, causal);
  out.backward(g.to(out.dtype()));
  auto host = [](const Tensor& t) { return t.to(kF32).to(kCPU); };
  return {host(out.detach()), host(q.grad()), host(k.grad()), host(v.grad())};
}

// max |a - b| / max |b|: one number per tensor that bf16 rounding keeps near 1e-2.
double rel_err(const Tensor& a, const Tensor& b) {
  const double den = max(abs(b)).item<float>();
  return max(abs(a - b)).item<float>() / (den > 0 ? den : 1.0);
}

void check_close(const Grads& got, const Grads& want, double tol) {
  const char* names[] = {"out", "dq", "dk", "dv"};
  const Tensor* a[] = {&got.out, &got.dq, &got.dk, &got.dv};
  const Tensor* b[] = {&want.out, &want.dq, &want.dk, &want.dv};
  for (int i = 0; i < 4; ++i) {
    const double e = rel_err(*a[i], *b[i]);
    CHECK_MESSAGE(e < tol, names[i], " relative error ", e);
  }
}

Tensor cuda_randn(Shape shape, DType dt) { return randn(shape).to(kCuda).to(dt); }

// The fused implementations this build has: Ember's kernels always, cuDNN's with its frontend (unless
// EMBER_TEST_SDPA=ember: tools/gpu_check.sh's sanitizer runs look at Ember's kernels only).
std::vector<SdpaBackend> fused_backends() {
  const char* only = std::getenv("EMBER_TEST_SDPA");
  if (only != nullptr && std::string(only) == "ember") return {SdpaBackend::Blocked};
  if (kernels::cuda::cudnn_attention_available()) return {SdpaBackend::Blocked, SdpaBackend::Cudnn};
  MESSAGE("built without cuDNN's frontend: only Ember's flash kernel is tested");
  return {SdpaBackend::Blocked};
}
const char* name(SdpaBackend b) { return b == SdpaBackend::Cudnn ? "cudnn" : "ember flash"; }

// Runs `body` and checks that the fused path of `backend` took exactly `calls` forwards.
template <class F>
void expect_fused(SdpaBackend backend, int64_t calls, F&& body) {
  const int64_t fused = fused_attention_calls(), cudnn = cudnn_attention_calls();
  body();
  CHECK(fused_attention_calls() == fused + calls);
  CHECK(cudnn_attention_calls() == cudnn + (backend == SdpaBackend::Cudnn ? calls : 0));
}

}  // namespace

TEST_CASE("cuda: fused attention: fused forward and backward match the composed f32 path") {
  CUDA_OR_SKIP();
  manual_seed(0);
  std::vector<std::pair<int64_t, int64_t>> shapes{{1, 1}, {17, 17}, {130, 257}, {257, 130}, {1024, 1024}};
  if (std::getenv("EMBER_TEST_SMALL")) shapes.pop_back();  // the CUDA emulator's run (minutes for 1024^2)
  for (SdpaBackend backend : fused_backends()) {
    for (DType dt : {kBF16, kF16}) {
      for (int64_t e : {64, 128}) {
        for (bool causal : {false, true}) {
          for (const auto& shape : shapes) {
            const int64_t l = shape.first, s = shape.second;  // not a structured binding: clang 14's CAPTURE
            // cuDNN builds a graph per signature (a second or so each): fewer of its shapes.
            if (backend == SdpaBackend::Cudnn && (l == 1 || l == 257)) continue;
            CAPTURE(name(backend));
            CAPTURE(dt);
            CAPTURE(e);
            CAPTURE(causal);
            CAPTURE(l);
            CAPTURE(s);
            Tensor q = cuda_randn({2, 3, l, e}, dt), k = cuda_randn({2, 3, s, e}, dt), v = cuda_randn({2, 3, s, e}, dt);
            Tensor g = cuda_randn({2, 3, l, e}, kF32);
            Grads fused;
            expect_fused(backend, 1, [&] { fused = run(backend, q, k, v, g, causal); });
            Grads ref = run(SdpaBackend::Math, q.to(kF32), k.to(kF32), v.to(kF32), g, causal);
            check_close(fused, ref, dt == kBF16 ? 2e-2 : 5e-3);
          }
        }
      }
    }
  }
}

TEST_CASE("cuda: fused attention: cuDNN takes head dims Ember's kernel does not, and GPT-2's layout in place") {
  CUDA_OR_SKIP();
  if (!kernels::cuda::cudnn_attention_available()) {
    MESSAGE("skipped: built without cuDNN's frontend (tools/setup.sh fetches it)");
    return;
  }
  manual_seed(5);
  for (int64_t e : {32, 80, 96}) {
    CAPTURE(e);
    Tensor q = cuda_randn({2, 2, 100, e}, kBF16), k = cuda_randn({2, 2, 77, e}, kBF16),
           v = cuda_randn({2, 2, 77, e}, kBF16);
    Tensor g = cuda_randn({2, 2, 100, e}, kF32);
    Grads fused;
    expect_fused(SdpaBackend::Cudnn, 1, [&] { fused = run(SdpaBackend::Auto, q, k, v, g, true); });
    check_close(fused, run(SdpaBackend::Math, q.to(kF32), k.to(kF32), v.to(kF32), g, true), 2e-2);
  }
  // GPT-2: q, k, v are [B, H, T, D] views of the [B, T, 3, H, D] projection; the output is [B, T, H, D]
  // memory, so transpose(1, 2) is contiguous (no copy before c_proj), as PyTorch's.
  const int64_t b = 2, t = 128, h = 4, d = 64;
  Tensor qkv = cuda_randn({b, t, 3, h, d}, kBF16).requires_grad_();
  Tensor q = qkv.select(2, 0).transpose(1, 2), k = qkv.select(2, 1).transpose(1, 2),
         v = qkv.select(2, 2).transpose(1, 2);
  Tensor out;
  expect_fused(SdpaBackend::Cudnn, 1, [&] { out = F::scaled_dot_product_attention(q, k, v, {}, 0.0, true); });
  CHECK(out.transpose(1, 2).is_contiguous());
  Tensor g = cuda_randn({b, t, h, d}, kBF16);
  out.transpose(1, 2).backward(g);
  Tensor qkv32 = qkv.detach().to(kF32).requires_grad_();
  Tensor ref;
  {
    SdpaBackendGuard math(SdpaBackend::Math);
    ref = F::scaled_dot_product_attention(qkv32.select(2, 0).transpose(1, 2), qkv32.select(2, 1).transpose(1, 2),
                                          qkv32.select(2, 2).transpose(1, 2), {}, 0.0, true);
    ref.transpose(1, 2).backward(g.to(kF32));
  }
  CHECK(rel_err(out.to(kF32).to(kCPU), ref.detach().to(kCPU)) < 2e-2);
  CHECK(rel_err(qkv.grad().to(kF32).to(kCPU), qkv32.grad().to(kCPU)) < 2e-2);
}

TEST_CASE("cuda: fused attention: sdpa takes the fused path only where it applies") {
  CUDA_OR_SKIP();
  manual_seed(1);
  Tensor q = cuda_randn({2, 4, 33, 64}, kBF16), k = cuda_randn({2, 4, 40, 64}, kBF16),
         v = cuda_randn({2, 4, 40, 64}, kBF16);
  for (SdpaBackend backend : fused_backends()) {
    CAPTURE(name(backend));
    SdpaBackendGuard guard(backend);
    expect_fused(backend, 1, [&] { (void)F::scaled_dot_product_attention(q, k, v, {}, 0.0, true); });
    expect_fused(backend, 1, [&] {  // autocast: f32 inputs run fused in the scope's dtype, as torch
      Autocast amp(kCuda, kBF16);
      Tensor out = F::scaled_dot_product_attention(q.to(kF32), k.to(kF32), v.to(kF32));
      CHECK(out.dtype() == kBF16);
    });
    expect_fused(backend, 0, [&] {
      (void)F::scaled_dot_product_attention(q, k, v, ones({33, 40}, {.dtype = kBool}).to(kCuda));  // a mask
      (void)F::scaled_dot_product_attention(q.to(kF32), k.to(kF32), v.to(kF32));                   // f32, no autocast
      (void)F::scaled_dot_product_attention(q.narrow(-1, 0, 36), k.narrow(-1, 0, 36), v.narrow(-1, 0, 36));  // E 36
      (void)F::scaled_dot_product_attention(q, k, v, {}, 0.5);                                               // dropout
    });
  }
  // Ember's kernel takes E 64 and 128 only; cuDNN's takes E 32.
  expect_fused(SdpaBackend::Blocked, 0, [&] {
    SdpaBackendGuard guard(SdpaBackend::Blocked);
    (void)F::scaled_dot_product_attention(q.narrow(-1, 0, 32), k.narrow(-1, 0, 32), v.narrow(-1, 0, 32));
  });
  expect_fused(SdpaBackend::Auto, 0, [&] {
    SdpaBackendGuard math(SdpaBackend::Math);
    (void)F::scaled_dot_product_attention(q, k, v);
  });
}

TEST_CASE("cuda: fused attention: the deterministic backward repeats bit for bit and agrees with the atomic one") {
  CUDA_OR_SKIP();
  manual_seed(2);
  Tensor q = cuda_randn({2, 2, 300, 64}, kBF16), k = cuda_randn({2, 2, 200, 64}, kBF16),
         v = cuda_randn({2, 2, 200, 64}, kBF16);
  Tensor g = cuda_randn({2, 2, 300, 64}, kF32);
  for (SdpaBackend backend : fused_backends()) {
    CAPTURE(name(backend));
    Grads atomic = run(backend, q, k, v, g, false);
    DeterministicGuard det(true);
    Grads a = run(backend, q, k, v, g, false), b = run(backend, q, k, v, g, false);
    CHECK(max(abs(a.dq - b.dq)).item<float>() == 0.0f);
    CHECK(max(abs(a.dk - b.dk)).item<float>() == 0.0f);
    check_close(a, atomic, 2e-2);  // two implementations where cuDNN refuses the deterministic graph
  }
}

TEST_CASE("cuda: fused attention: strided [B, L, H, E] views and broadcast batch dims") {
  CUDA_OR_SKIP();
  manual_seed(3);
  Tensor q = cuda_randn({2, 70, 3, 128}, kF16).transpose(1, 2), k = cuda_randn({2, 90, 3, 128}, kF16).transpose(1, 2);
  Tensor v = cuda_randn({1, 3, 90, 128}, kF16);  // broadcast over the batch
  Tensor g = cuda_randn({2, 3, 70, 128}, kF32);
  Grads ref = run(SdpaBackend::Math, q.to(kF32), k.to(kF32), v.to(kF32), g, true);
  for (SdpaBackend backend : fused_backends()) {
    CAPTURE(name(backend));
    Grads fused;
    expect_fused(backend, 1, [&] { fused = run(backend, q, k, v, g, true); });
    check_close(fused, ref, 5e-3);
    CHECK(fused.dv.shape() == Shape{1, 3, 90, 128});
  }
}

TEST_CASE("cuda: fused attention: a create_graph backward (gradients of gradients) matches the composed path") {
  CUDA_OR_SKIP();
  // The fused node's backward with grad mode on runs public ops (probs_composite: its causal mask on
  // the device), so a second derivative exists.
  manual_seed(21);
  const Tensor q0 = randn({1, 2, 40, 64}), k0 = randn({1, 2, 40, 64}), v0 = randn({1, 2, 40, 64});
  const Tensor g = randn({1, 2, 40, 64});
  auto second = [&](SdpaBackend backend, Device d, DType dt) {
    SdpaBackendGuard guard(backend);
    Tensor q = q0.to(d).to(dt).requires_grad_(), k = k0.to(d).to(dt).requires_grad_(),
           v = v0.to(d).to(dt).requires_grad_();
    Tensor out = F::scaled_dot_product_attention(q, k, v, {}, 0.0, true);
    Tensor gq = autograd::grad({(out * g.to(d).to(dt)).sum()}, {q}, {}, {}, /*create_graph=*/true)[0];
    return autograd::grad({(gq * gq).sum()}, {v})[0].to(kF32).to(kCPU);
  };
  const Tensor want = second(SdpaBackend::Math, kCPU, kF32);
  for (SdpaBackend b : fused_backends()) {
    CAPTURE(name(b));
    Tensor got;
    expect_fused(b, 1, [&] { got = second(b, kCuda, kBF16); });
    const double e = rel_err(got, want);
    CHECK_MESSAGE(e < 8e-2, "d/dv |dq|^2 relative error ", e);
  }
}

TEST_CASE("cuda: fused attention: memory grows as L + S, not L * S") {
  CUDA_OR_SKIP();
  manual_seed(4);
  const int64_t n = 4096, bh = 4, e = 64;  // the scores alone would be bh * n * n * 4 = 256 MiB in f32
  Tensor q = cuda_randn({bh, n, e}, kBF16).requires_grad_(), k = cuda_randn({bh, n, e}, kBF16).requires_grad_();
  Tensor v = cuda_randn({bh, n, e}, kBF16).requires_grad_();
  Tensor g = cuda_randn({bh, n, e}, kBF16);
  kernels::cuda::synchronize();
  const int64_t base = memory_stats(kCuda).current_bytes;
  reset_peak_memory_stats(kCuda);
  Tensor out = F::scaled_dot_product_attention(q, k, v, {}, 0.0, true);
  out.backward(g);
  kernels::cuda::synchronize();
  const int64_t extra = memory_stats(kCuda).peak_bytes - base;
  const int64_t io = bh * n * e * 2;  // one [bh, n, e] bf16 tensor: 2 MiB
  MESSAGE("fused attention peak above inputs: " << extra / 1024 << " KiB");
  CHECK(extra < 16 * io);  // out, lse, dq/dk/dv, the f32 dQ workspace and delta: a handful of io
}
