// The tiled scaled dot-product attention ops behind nn::functional::scaled_dot_product_attention:
// blocked_attention (CPU, kernels/cpu/attention.cpp) and fused_attention (CUDA f16/bf16: cuDNN's fused
// attention, kernels/cuda/attention_cudnn.cpp, or Ember's flash kernels, kernels/cuda/attention.cu).
// Each builder checks its arguments, broadcasts the batch dims with public ops (so their gradients
// reduce through expand's backward), runs the forward, counts FLOPs as the composed path's two matmuls,
// and records a node that saves q, k, v, the output and the row logsumexp, never the [L, S] scores.
// One backward serves them all: the implementation's kernel, or under create_graph the same formula
// in public ops.
#include "core/ops/attention.hpp"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <mutex>
#include <set>
#include <string>

#include "core/autocast.hpp"
#include "core/autograd.hpp"
#include "core/determinism.hpp"
#include "core/flop_counter.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/linalg.hpp"
#include "core/ops/reduce.hpp"
#include "core/profiler.hpp"
#include "kernels/attention.hpp"
#include "kernels/attention_plan.hpp"

namespace ember {
namespace {

constexpr const char* kOp = "scaled_dot_product_attention";
thread_local SdpaBackend t_backend = SdpaBackend::Auto;

Shape batch_of(const Tensor& t) { return Shape(t.shape().begin(), t.shape().end() - 2); }
Shape with_mat(Shape s, int64_t rows, int64_t cols) {
  s.push_back(rows);
  s.push_back(cols);
  return s;
}

// The mask as the kernel reads it: [batch..., L, S] (an expanded view), floating ones in the compute dtype.
Tensor kernel_mask(const Tensor& mask, const Shape& batch, int64_t l, int64_t s, DType dt) {
  if (!mask.defined()) return {};
  Tensor m = mask.dim() == 0 ? mask.reshape({1}) : mask;
  if (m.dtype() != kBool) m = m.to(dt);
  return m.expand(with_mat(batch, l, s));
}

// The probabilities in public ops (for the create_graph backward): scores masked as the kernel masks
// them, rows without a key (lse = -inf) zero.
Tensor probs_composite(const Tensor& q, const Tensor& k, const Tensor& mask, const Tensor& lse, bool causal,
                       double scale) {
  const double neg_inf = -std::numeric_limits<double>::infinity();
  Tensor scores = matmul(q, k.mT()) * scale;
  const int64_t l = q.size(-2), s = k.size(-2);
  if (causal)
    scores =
        where(arange(l, kI64, q.device()).unsqueeze(1) >= arange(s, kI64, q.device()).unsqueeze(0), scores, neg_inf);
  else if (mask.defined())
    scores = mask.dtype() == kBool ? where(mask, scores, neg_inf) : scores + mask;
  Tensor dead = (lse == neg_inf).unsqueeze(-1);
  return where(dead, 0.0, softmax(where(dead, 0.0, scores), -1));
}

std::atomic<int64_t> g_fused_calls{0}, g_cudnn_calls{0};

bool aligned16(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.raw_data()) % 16 == 0; }
// Contiguous and on a 16-byte boundary (the fused kernels' 128-bit loads): a copy only when needed.
Tensor aligned_contiguous(const Tensor& t) {
  Tensor c = t.contiguous();
  return aligned16(c) ? c : c.clone();
}

// Which implementation runs a call: the CPU blocked kernel, or on CUDA Ember's flash kernel or cuDNN's.
enum class Impl : uint8_t { Blocked, Flash, Cudnn };

// A fused CUDA call as the implementations' planners see it (autocast's cast included).
struct FusedCall {
  bool ok = false;  // one CUDA device, one dtype (the planners judge it), batch dims that broadcast
  kernels::FlashProblem flash;
  kernels::CudnnSdpaProblem cudnn;
};

FusedCall fused_call(const Tensor& query, const Tensor& key, const Tensor& value, const Tensor& attn_mask,
                     double dropout_p) {
  FusedCall c;
  if (!query.defined() || !key.defined() || !value.defined()) return c;
  if (!query.device().is_cuda() || key.device() != query.device() || value.device() != query.device()) return c;
  if (query.dim() < 2 || key.dim() < 2 || value.dim() < 2) return c;
  if (query.dtype() != key.dtype() || query.dtype() != value.dtype()) return c;
  if (key.size(-1) != query.size(-1) || value.size(-2) != key.size(-2)) return c;
  const bool cast = autocast::should_cast(CastPolicy::kLowerPrecision, {&query, &key, &value});
  const DType dt = cast ? autocast::dtype(query.device()) : query.dtype();
  Shape batch;
  try {
    batch = broadcast_shapes(broadcast_shapes(batch_of(query), batch_of(key), "[sdpa]"), batch_of(value), "[sdpa]");
  } catch (const Error&) {
    return c;
  }
  const int device = query.device().index;
  const bool low = dt == kF16 || dt == kBF16;
  c.ok = true;
  c.flash = {.batch_heads = shape_numel(batch),
             .l = query.size(-2),
             .s = key.size(-2),
             .e = query.size(-1),
             .ev = value.size(-1),
             .cuda = true,
             .low_precision = low,
             .has_mask = attn_mask.defined(),
             .dropout_p = dropout_p,
             .aligned = true,  // fused_attention copies a misaligned operand
             .max_smem = kernels::cuda::flash_max_smem(device)};
  c.cudnn = {.available = kernels::cuda::cudnn_attention_available(),
             .cuda = true,
             .low_precision = low,
             .has_mask = attn_mask.defined(),
             .dropout_p = dropout_p,
             .batch_heads = c.flash.batch_heads,
             .l = c.flash.l,
             .s = c.flash.s,
             .e = c.flash.e,
             .ev = c.flash.ev,
             .sm = c.cudnn.available ? kernels::cuda::compute_capability(device) : 0};
  return c;
}

bool flash_takes(const FusedCall& c) { return c.ok && kernels::plan_flash_attention(c.flash).fused; }
bool cudnn_takes(const FusedCall& c) { return c.ok && kernels::cudnn_sdpa_refusal(c.cudnn).empty(); }

// The fused implementation the thread's backend picks (none: not fused). Auto prefers cuDNN's.
std::optional<Impl> fused_impl(const FusedCall& c) {
  const SdpaBackend b = sdpa_backend();
  if (b == SdpaBackend::Math) return std::nullopt;
  if (b != SdpaBackend::Blocked && cudnn_takes(c)) return Impl::Cudnn;
  if (b != SdpaBackend::Cudnn && flash_takes(c)) return Impl::Flash;
  return std::nullopt;
}

// Says once per reason on stderr why cuDNN's fused attention fell back (the call still runs).
void note_cudnn_fallback(const std::string& why, const char* to) {
  static std::mutex mu;
  static std::set<std::string> said;
  std::lock_guard<std::mutex> lock(mu);
  if (said.insert(why).second)
    std::fprintf(stderr, "[%s] cuDNN's fused attention does not take a call (%s); %s runs it\n", kOp, why.c_str(), to);
}

// FLOPs as the composed path's products: q k^T over broadcast(q, k) batches, P v over all of them; the
// backward runs each product's two gradients (those needed).
struct AttnFlops {
  int64_t qk, pv;
};

// [nb, rows, cols] views of a batch of matrices (contiguous), for the kernels' 3-dim entries.
Tensor flat3(const Tensor& t) { return t.view({t.numel() / (t.size(-1) * t.size(-2)), t.size(-2), t.size(-1)}); }

// A [b, h, s, e] operand of cuDNN's graph (kernels::sdpa_operand) from t, in place where it can.
Tensor cudnn_operand(const Tensor& t) {
  Tensor u = t.dim() == 3 ? t.unsqueeze(1) : t;
  if (u.dim() == 4 &&
      kernels::sdpa_operand(u.shape(), u.strides(), reinterpret_cast<uint64_t>(u.raw_data()), itemsize(u.dtype())))
    return u;
  Tensor c = aligned_contiguous(t);
  return c.dim() == 4 ? c : c.view({c.numel() / (c.size(-1) * c.size(-2)), 1, c.size(-2), c.size(-1)});
}
// A new [b, h, s, e] tensor over [b, s, h, e] memory: cuDNN writes it, and the usual transpose(1, 2)
// and reshape after attention are then free (as PyTorch's flash attention's outputs).
Tensor bshd_like(const Tensor& t) {
  return make_tensor({t.size(0), t.size(2), t.size(1), t.size(3)}, t.dtype(), t.device()).transpose(1, 2);
}

// The gradients in public ops, differentiable again (the create_graph backward; cuDNN's last fallback).
autograd::Grads composite_grads(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g, const Tensor& lse,
                                const Tensor& mask, const kernels::AttentionParams& params, autograd::Ctx& c) {
  Tensor p = probs_composite(q, k, mask, lse, params.causal, params.scale);
  Tensor dp = matmul(g, v.mT());
  Tensor ds = p * (dp - sum(dp * p, {-1}, true)) * params.scale;
  return autograd::Grads{c.needs_grad(0) ? matmul(ds, k) : Tensor(), c.needs_grad(1) ? matmul(ds.mT(), q) : Tensor(),
                         c.needs_grad(2) ? matmul(p.mT(), g) : Tensor()};
}

// The gradients of an attention node (saved: q, k, v, out, lse, mask) by its implementation's
// kernels, with fallbacks for cuDNN (Ember's flash kernel, else the public-op formula).
autograd::Grads attention_grads(Impl impl, const kernels::AttentionParams& params, autograd::Ctx& c) {
  Tensor q = c.saved(0), k = c.saved(1), v = c.saved(2), out = c.saved(3), lse = c.saved(4), mask = c.saved(5);
  Tensor g = c.grad().to(q.dtype());
  const bool nq = c.needs_grad(0), nk = c.needs_grad(1), nv = c.needs_grad(2);
  auto grads = [&](const Tensor& dq, const Tensor& dk, const Tensor& dv) {
    return autograd::Grads{nq ? dq : Tensor(), nk ? dk : Tensor(), nv ? dv : Tensor()};
  };
  kernels::AttentionParams bp = params;
  bp.deterministic = impl != Impl::Blocked && deterministic();  // read when the backward runs
  if (impl == Impl::Cudnn) {
    Tensor dq = bshd_like(q), dk = bshd_like(k), dv = bshd_like(v);
    std::string why;
    if (kernels::cuda::cudnn_attention_backward(dq, dk, dv, cudnn_operand(g), q, k, v, out, lse, bp, &why))
      return grads(dq, dk, dv);
    const bool flash = kernels::plan_flash_attention({.batch_heads = q.size(0) * q.size(1),
                                                      .l = q.size(2),
                                                      .s = k.size(2),
                                                      .e = q.size(3),
                                                      .ev = v.size(3),
                                                      .max_smem = kernels::cuda::flash_max_smem(q.device().index)},
                                                     bp.deterministic)
                           .fused;
    note_cudnn_fallback("backward: " + why, flash ? "Ember's flash kernel" : "the composed formula");
    if (!flash) return composite_grads(q, k, v, g, lse, mask, params, c);
    // Ember's kernel from here: it reads the same row logsumexp, but contiguous operands.
    q = aligned_contiguous(q);
    k = aligned_contiguous(k);
    v = aligned_contiguous(v);
    out = aligned_contiguous(out);
  }
  Tensor dq = make_tensor(q.shape(), q.dtype(), q.device()), dk = make_tensor(k.shape(), k.dtype(), k.device()),
         dv = make_tensor(v.shape(), v.dtype(), v.device());
  kernels::attention_backward(flat3(dq), flat3(dk), flat3(dv), flat3(aligned_contiguous(g)), flat3(q), flat3(k),
                              flat3(v), flat3(out), lse.view({lse.numel() / lse.size(-1), lse.size(-1)}), mask, bp);
  return grads(dq, dk, dv);
}

// Records the attention node: its backward is the public-op formula under create_graph (so it
// differentiates again), else attention_grads.
void record_attention(Impl impl, Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& lse,
                      const Tensor& mask, const kernels::AttentionParams& params, AttnFlops flops) {
  if (!autograd::needs_grad({&q, &k, &v})) return;
  autograd::record(kOp, {&out}, {&q, &k, &v}, {q, k, v, out, lse, mask}, [impl, params, flops](autograd::Ctx& c) {
    if (autograd::is_grad_enabled()) {
      const Tensor& q = c.saved(0);
      return composite_grads(q, c.saved(1), c.saved(2), c.grad().to(q.dtype()), c.saved(4), c.saved(5), params, c);
    }
    if (c.needs_grad(0)) count_flops("matmul", flops.qk);
    if (c.needs_grad(1)) count_flops("matmul", flops.qk);
    if (c.needs_grad(0) || c.needs_grad(1)) count_flops("matmul", flops.pv);
    if (c.needs_grad(2)) count_flops("matmul", flops.pv);
    return attention_grads(impl, params, c);
  });
}

}  // namespace

SdpaBackend sdpa_backend() { return t_backend; }
SdpaBackendGuard::SdpaBackendGuard(SdpaBackend backend) : prev_(t_backend) { t_backend = backend; }
SdpaBackendGuard::~SdpaBackendGuard() { t_backend = prev_; }

bool blocked_attention_applies(const Tensor& query, const Tensor& key, const Tensor& value, const Tensor& attn_mask,
                               double dropout_p) {
  if (dropout_p != 0.0 || !query.defined() || !key.defined() || !value.defined()) return false;
  const DType dt = query.dtype();
  if (dt != kF32 && dt != kF64) return false;  // f16/bf16 stay composed (their matmuls are the fast part)
  for (const Tensor* t : {&query, &key, &value}) {
    if (!t->device().is_cpu() || t->dtype() != dt || t->dim() < 2 || t->numel() == 0) return false;
  }
  if (query.size(-1) == 0 || value.size(-1) == 0) return false;
  if (autocast::should_cast(CastPolicy::kLowerPrecision, {&query, &key, &value})) return false;
  if (attn_mask.defined()) {
    if (!attn_mask.device().is_cpu() || attn_mask.requires_grad()) return false;
    if (attn_mask.dtype() != kBool && !attn_mask.is_floating_point()) return false;
  }
  return true;
}

bool use_blocked_attention(const Tensor& query, const Tensor& key, const Tensor& value, const Tensor& attn_mask,
                           double dropout_p, bool is_causal) {
  const SdpaBackend b = sdpa_backend();
  if (b == SdpaBackend::Math || !blocked_attention_applies(query, key, value, attn_mask, dropout_p)) return false;
  const int64_t min_scores = is_causal ? kBlockedCausalAttentionMinScores : kBlockedAttentionMinScores;
  return b == SdpaBackend::Blocked || query.size(-2) * key.size(-2) >= min_scores;
}

Tensor blocked_attention(const Tensor& query, const Tensor& key, const Tensor& value, const Tensor& attn_mask,
                         bool is_causal, std::optional<double> scale) {
  profiler::OpRecord prof(kOp, {&query, &key, &value});
  EMBER_CHECK(query.defined() && key.defined() && value.defined(), ValueError, "[", kOp,
              "] query, key and value must be defined");
  EMBER_CHECK(query.dim() >= 2 && key.dim() >= 2 && value.dim() >= 2, ShapeError, "[", kOp,
              "] query, key and value need at least 2 dims ([..., L, E], [..., S, E], [..., S, Ev]), got ",
              describe(query), ", ", describe(key), ", ", describe(value));
  const int64_t l = query.size(-2), s = key.size(-2), e = query.size(-1), ev = value.size(-1);
  EMBER_CHECK(key.size(-1) == e && value.size(-2) == s, ShapeError, "[", kOp,
              "] expected query [..., L, E], key [..., S, E] and value [..., S, Ev], got ", describe(query), ", ",
              describe(key), ", ", describe(value));
  const std::string tag = std::string("[") + kOp + "] batch dims of query, key and value";
  const Shape qk_batch = broadcast_shapes(batch_of(query), batch_of(key), tag.c_str());
  const Shape batch = broadcast_shapes(qk_batch, batch_of(value), tag.c_str());
  EMBER_CHECK(!(is_causal && attn_mask.defined()), ValueError, "[", kOp,
              "] is_causal=true excludes an explicit attn_mask (got ", describe(attn_mask), ")");
  if (attn_mask.defined()) {
    bool ok = attn_mask.dim() <= static_cast<int64_t>(batch.size()) + 2;
    const Shape scores = with_mat(batch, l, s);
    for (int64_t i = 1; ok && i <= attn_mask.dim(); ++i) {
      const int64_t m = attn_mask.size(-i);
      ok = m == 1 || m == scores[scores.size() - static_cast<size_t>(i)];
    }
    EMBER_CHECK(ok, ShapeError, "[", kOp, "] attn_mask ", describe(attn_mask), " does not broadcast to the scores ",
                scores);
  }
  EMBER_CHECK(blocked_attention_applies(query, key, value, attn_mask, 0.0), ValueError, "[", kOp,
              "] the blocked kernel takes non-empty float32 or float64 CPU query, key and value of one dtype and an "
              "attn_mask that is bool or floating without requires_grad; got query ",
              describe(query), ", key ", describe(key), ", value ", describe(value),
              (attn_mask.defined() ? ", attn_mask " + describe(attn_mask) : std::string()),
              " (nn::functional::scaled_dot_product_attention takes the others)");

  const DType dt = query.dtype();
  const double sc = scale.value_or(1.0 / std::sqrt(static_cast<double>(e)));
  const int64_t nb = shape_numel(batch);
  const AttnFlops flops{2 * shape_numel(qk_batch) * l * s * e, 2 * nb * l * s * ev};
  count_flops("matmul", flops.qk);
  count_flops("matmul", flops.pv);
  // Broadcast batch dims become real copies (O(L + S) each) through public ops, whose backward sums.
  Tensor q = query.expand(with_mat(batch, l, e)).contiguous();
  Tensor k = key.expand(with_mat(batch, s, e)).contiguous();
  Tensor v = value.expand(with_mat(batch, s, ev)).contiguous();
  Tensor mask = kernel_mask(attn_mask, batch, l, s, dt);
  const kernels::AttentionParams params{.scale = sc, .causal = is_causal};
  Tensor out = make_tensor(with_mat(batch, l, ev), dt, query.device());
  Shape lse_shape = batch;
  lse_shape.push_back(l);
  Tensor lse = make_tensor(lse_shape, dt, query.device());
  kernels::attention_forward(out.view({nb, l, ev}), lse.view({nb, l}), q.view({nb, l, e}), k.view({nb, s, e}),
                             v.view({nb, s, ev}), mask, params);

  record_attention(Impl::Blocked, out, q, k, v, lse, mask, params, flops);
  return out;
}

bool use_fused_attention(const Tensor& query, const Tensor& key, const Tensor& value, const Tensor& attn_mask,
                         double dropout_p) {
  return fused_impl(fused_call(query, key, value, attn_mask, dropout_p)).has_value();
}

int64_t fused_attention_calls() { return g_fused_calls.load(std::memory_order_relaxed); }
int64_t cudnn_attention_calls() { return g_cudnn_calls.load(std::memory_order_relaxed); }

Tensor fused_attention(const Tensor& query, const Tensor& key, const Tensor& value, bool is_causal,
                       std::optional<double> scale) {
  profiler::OpRecord prof(kOp, {&query, &key, &value});
  const FusedCall call = fused_call(query, key, value, {}, 0.0);
  const std::optional<Impl> impl = fused_impl(call);
  EMBER_CHECK(impl.has_value(), ValueError, "[", kOp,
              "] the fused CUDA kernels take query [..., L, E], key [..., S, E], value [..., S, E] on one CUDA "
              "device, all float16 or all bfloat16 (or cast to one by autocast); cuDNN's E a multiple of 8 up to ",
              kernels::kCudnnSdpaMaxHeadDim, ", Ember's E 64 or 128; got query ", describe(query), ", key ",
              describe(key), ", value ", describe(value),
              " (nn::functional::scaled_dot_product_attention takes the others)");
  // Attention is a lower-precision autocast op (as in PyTorch): f32 inputs run in the scope's dtype.
  const Tensor q0 = autocast::lower(query), k0 = autocast::lower(key), v0 = autocast::lower(value);
  const DType dt = q0.dtype();
  const int64_t l = q0.size(-2), s = k0.size(-2), e = q0.size(-1);
  const std::string tag = std::string("[") + kOp + "] batch dims of query, key and value";
  const Shape qk_batch = broadcast_shapes(batch_of(q0), batch_of(k0), tag.c_str());
  const Shape batch = broadcast_shapes(qk_batch, batch_of(v0), tag.c_str());
  const double sc = scale.value_or(1.0 / std::sqrt(static_cast<double>(e)));
  const int64_t nb = shape_numel(batch);
  const AttnFlops flops{2 * shape_numel(qk_batch) * l * s * e, 2 * nb * l * s * e};
  const kernels::AttentionParams params{.scale = sc, .causal = is_causal};
  auto counted = [&](const Tensor& out) {
    count_flops("matmul", flops.qk);
    count_flops("matmul", flops.pv);
    g_fused_calls.fetch_add(1, std::memory_order_relaxed);
    return out;
  };
  // A 4-dim operand without broadcast goes to the kernels as it is (cuDNN reads any layout with rows on
  // 16 bytes); others become [batch..., rows, E] copies (expand's backward sums the broadcast).
  auto operand = [&](const Tensor& t, int64_t rows) {
    return t.dim() == 4 && batch_of(t) == batch ? t : t.expand(with_mat(batch, rows, e)).contiguous();
  };

  if (*impl == Impl::Cudnn) {
    Tensor q = cudnn_operand(operand(q0, l)), k = cudnn_operand(operand(k0, s)), v = cudnn_operand(operand(v0, s));
    Tensor out = bshd_like(q);
    Tensor lse = make_tensor({q.size(0), q.size(1), l}, kF32, q.device());
    std::string why;
    if (kernels::cuda::cudnn_attention_forward(out, lse, q, k, v, params, &why)) {
      g_cudnn_calls.fetch_add(1, std::memory_order_relaxed);
      record_attention(Impl::Cudnn, out, q, k, v, lse, {}, params, flops);
      return counted(out.dim() == static_cast<int64_t>(batch.size()) + 2 ? out : out.reshape(with_mat(batch, l, e)));
    }
    const bool flash = sdpa_backend() != SdpaBackend::Cudnn && flash_takes(call);
    note_cudnn_fallback(why, flash ? "Ember's flash kernel" : "the composed path");
    if (!flash) return {};
  }
  Tensor q = aligned_contiguous(operand(q0, l)), k = aligned_contiguous(operand(k0, s)),
         v = aligned_contiguous(operand(v0, s));
  Tensor out = make_tensor(with_mat(batch, l, e), dt, q.device());
  Shape lse_shape = batch;
  lse_shape.push_back(l);
  Tensor lse = make_tensor(lse_shape, kF32, q.device());
  kernels::attention_forward(out.view({nb, l, e}), lse.view({nb, l}), flat3(q), flat3(k), flat3(v), {}, params);
  record_attention(Impl::Flash, out, q, k, v, lse, {}, params, flops);
  return counted(out);
}

}  // namespace ember
