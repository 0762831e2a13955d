// The blocked scaled dot-product attention op: the builder checks the arguments, broadcasts the batch
// dims with public ops (so their gradients reduce through expand's backward), runs the tiled forward of
// kernels/attention.hpp, counts FLOPs as the composed path's two matmuls, and records a node that saves
// q, k, v, the output and the row logsumexp. Its backward is the tiled kernel, or under create_graph
// the same formula in public ops. fused_attention is the same op on CUDA f16/bf16, through the fused
// flash-attention kernels (kernels/cuda/attention.cu).
#include "core/ops/attention.hpp"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
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
    scores = where(arange(l, kI64).unsqueeze(1) >= arange(s, kI64).unsqueeze(0), scores, neg_inf);
  else if (mask.defined())
    scores = mask.dtype() == kBool ? where(mask, scores, neg_inf) : scores + mask;
  Tensor dead = (lse == neg_inf).unsqueeze(-1);
  return where(dead, 0.0, softmax(where(dead, 0.0, scores), -1));
}

std::atomic<int64_t> g_fused_calls{0};

bool aligned16(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.raw_data()) % 16 == 0; }
// Contiguous and on a 16-byte boundary (the fused kernel's 128-bit loads): a copy only when needed.
Tensor aligned_contiguous(const Tensor& t) {
  Tensor c = t.contiguous();
  return aligned16(c) ? c : c.clone();
}

// Whether the fused kernel takes the call, autocast's cast included (no backend switch here).
bool fused_applies(const Tensor& query, const Tensor& key, const Tensor& value, const Tensor& attn_mask,
                   double dropout_p) {
  if (!query.defined() || !key.defined() || !value.defined()) return false;
  if (!query.device().is_cuda() || key.device() != query.device() || value.device() != query.device()) return false;
  if (query.dim() < 2 || key.dim() < 2 || value.dim() < 2) return false;
  if (query.dtype() != key.dtype() || query.dtype() != value.dtype()) return false;
  const bool cast = autocast::should_cast(CastPolicy::kLowerPrecision, {&query, &key, &value});
  const DType dt = cast ? autocast::dtype(query.device()) : query.dtype();
  Shape batch;
  try {
    batch = broadcast_shapes(broadcast_shapes(batch_of(query), batch_of(key), "[sdpa]"), batch_of(value), "[sdpa]");
  } catch (const Error&) {
    return false;
  }
  const kernels::FlashProblem pr{.batch_heads = shape_numel(batch),
                                 .l = query.size(-2),
                                 .s = key.size(-2),
                                 .e = query.size(-1),
                                 .ev = value.size(-1),
                                 .cuda = true,
                                 .low_precision = dt == kF16 || dt == kBF16,
                                 .has_mask = attn_mask.defined(),
                                 .dropout_p = dropout_p,
                                 .aligned = true,  // fused_attention copies a misaligned operand
                                 .max_smem = kernels::cuda::flash_max_smem(query.device().index)};
  return kernels::plan_flash_attention(pr).fused && key.size(-1) == query.size(-1) && value.size(-2) == key.size(-2);
}

// FLOPs as the composed path's products: q k^T over broadcast(q, k) batches, P v over all of them; the
// backward runs each product's two gradients (those needed).
struct AttnFlops {
  int64_t qk, pv;
};

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

  if (autograd::needs_grad({&q, &k, &v})) {
    autograd::record(kOp, {&out}, {&q, &k, &v}, {q, k, v, out, lse, mask}, [params, flops](autograd::Ctx& c) {
      Tensor q = c.saved(0), k = c.saved(1), v = c.saved(2), out = c.saved(3), lse = c.saved(4), mask = c.saved(5);
      Tensor g = c.grad().to(q.dtype());
      const bool nq = c.needs_grad(0), nk = c.needs_grad(1), nv = c.needs_grad(2);
      if (autograd::is_grad_enabled()) {  // create_graph: public ops, differentiable again
        Tensor p = probs_composite(q, k, mask, lse, params.causal, params.scale);
        Tensor dp = matmul(g, v.mT());
        Tensor ds = p * (dp - sum(dp * p, {-1}, true)) * params.scale;
        return autograd::Grads{nq ? matmul(ds, k) : Tensor(), nk ? matmul(ds.mT(), q) : Tensor(),
                               nv ? matmul(p.mT(), g) : Tensor()};
      }
      if (nq) count_flops("matmul", flops.qk);
      if (nk) count_flops("matmul", flops.qk);
      if (nq || nk) count_flops("matmul", flops.pv);
      if (nv) count_flops("matmul", flops.pv);
      const int64_t nb = lse.numel() / lse.size(-1), l = q.size(-2), s = k.size(-2), e = q.size(-1), ev = v.size(-1);
      Tensor dq = make_tensor(q.shape(), q.dtype(), q.device()), dk = make_tensor(k.shape(), k.dtype(), k.device()),
             dv = make_tensor(v.shape(), v.dtype(), v.device());
      kernels::attention_backward(dq.view({nb, l, e}), dk.view({nb, s, e}), dv.view({nb, s, ev}),
                                  g.contiguous().view({nb, l, ev}), q.view({nb, l, e}), k.view({nb, s, e}),
                                  v.view({nb, s, ev}), out.view({nb, l, ev}), lse.view({nb, l}), mask, params);
      return autograd::Grads{nq ? dq : Tensor(), nk ? dk : Tensor(), nv ? dv : Tensor()};
    });
  }
  return out;
}

bool use_fused_attention(const Tensor& query, const Tensor& key, const Tensor& value, const Tensor& attn_mask,
                         double dropout_p) {
  return sdpa_backend() != SdpaBackend::Math && fused_applies(query, key, value, attn_mask, dropout_p);
}

int64_t fused_attention_calls() { return g_fused_calls.load(std::memory_order_relaxed); }

Tensor fused_attention(const Tensor& query, const Tensor& key, const Tensor& value, bool is_causal,
                       std::optional<double> scale) {
  profiler::OpRecord prof(kOp, {&query, &key, &value});
  EMBER_CHECK(fused_applies(query, key, value, {}, 0.0), ValueError, "[", kOp,
              "] the fused CUDA kernel takes query [..., L, E], key [..., S, E], value [..., S, E] on one CUDA "
              "device, all float16 or all bfloat16 (or cast to one by autocast), E 64 or 128; got query ",
              describe(query), ", key ", describe(key), ", value ", describe(value),
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
  count_flops("matmul", flops.qk);
  count_flops("matmul", flops.pv);
  Tensor q = aligned_contiguous(q0.expand(with_mat(batch, l, e)));
  Tensor k = aligned_contiguous(k0.expand(with_mat(batch, s, e)));
  Tensor v = aligned_contiguous(v0.expand(with_mat(batch, s, e)));
  const kernels::AttentionParams params{.scale = sc, .causal = is_causal};
  Tensor out = make_tensor(with_mat(batch, l, e), dt, q.device());
  Shape lse_shape = batch;
  lse_shape.push_back(l);
  Tensor lse = make_tensor(lse_shape, kF32, q.device());
  kernels::attention_forward(out.view({nb, l, e}), lse.view({nb, l}), q.view({nb, l, e}), k.view({nb, s, e}),
                             v.view({nb, s, e}), {}, params);
  g_fused_calls.fetch_add(1, std::memory_order_relaxed);

  if (autograd::needs_grad({&q, &k, &v})) {
    autograd::record(kOp, {&out}, {&q, &k, &v}, {q, k, v, out, lse}, [params, flops](autograd::Ctx& c) {
      Tensor q = c.saved(0), k = c.saved(1), v = c.saved(2), out = c.saved(3), lse = c.saved(4);
      Tensor g = c.grad().to(q.dtype());
      const bool nq = c.needs_grad(0), nk = c.needs_grad(1), nv = c.needs_grad(2);
      if (autograd::is_grad_enabled()) {  // create_graph: public ops, differentiable again
        Tensor p = probs_composite(q, k, {}, lse, params.causal, params.scale);
        Tensor dp = matmul(g, v.mT());
        Tensor ds = p * (dp - sum(dp * p, {-1}, true)) * params.scale;
        return autograd::Grads{nq ? matmul(ds, k) : Tensor(), nk ? matmul(ds.mT(), q) : Tensor(),
                               nv ? matmul(p.mT(), g) : Tensor()};
      }
      if (nq) count_flops("matmul", flops.qk);
      if (nk) count_flops("matmul", flops.qk);
      if (nq || nk) count_flops("matmul", flops.pv);
      if (nv) count_flops("matmul", flops.pv);
      const int64_t nb = lse.numel() / lse.size(-1), l = q.size(-2), s = k.size(-2), e = q.size(-1);
      Tensor dq = make_tensor(q.shape(), q.dtype(), q.device()), dk = make_tensor(k.shape(), k.dtype(), k.device()),
             dv = make_tensor(v.shape(), v.dtype(), v.device());
      kernels::AttentionParams bp = params;
      bp.deterministic = deterministic();  // read when the backward runs, as the other atomic kernels do
      kernels::attention_backward(dq.view({nb, l, e}), dk.view({nb, s, e}), dv.view({nb, s, e}),
                                  aligned_contiguous(g).view({nb, l, e}), q.view({nb, l, e}), k.view({nb, s, e}),
                                  v.view({nb, s, e}), out.view({nb, l, e}), lse.view({nb, l}), {}, bp);
      return autograd::Grads{nq ? dq : Tensor(), nk ? dk : Tensor(), nv ? dv : Tensor()};
    });
  }
  return out;
}

}  // namespace ember
