// CPU blocked attention (flash-attention style). Forward: one task per (batch, query block) walks the
// key tiles, scores a tile with one GEMM, folds it into each row's online softmax and adds P V with a
// second GEMM, so memory is O(tile) instead of O(L S). Backward: one task per (batch, key group)
// recomputes each tile's probabilities from the saved logsumexp and accumulates dV and dK for its
// keys; dQ goes to the batch's dq directly (one group) or to a per-group partial summed afterwards.
// OpenBLAS runs single-threaded inside oneTBB tasks, as everywhere else (kernels/cpu/gemm.cpp).
#include "kernels/attention.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#include "kernels/attention_math.hpp"
#include "kernels/cpu/blas.hpp"
#include "kernels/functors.hpp"
#include "kernels/vec_math.hpp"

namespace ember::kernels::cpu {
namespace {

constexpr int64_t kBr = kAttnQueryBlock, kBc = kAttnKeyBlock;
// Below this many multiply-adds a pass runs on the calling thread (task overhead would dominate).
constexpr double kSerialWork = 1 << 18;
constexpr int64_t kMaxKeyGroups = 8;  // bounds the dq partials of the backward to 8 x dq

// The mask of batch b as a strided [L, S] matrix: bool (keep) or T (bias); none when both are null.
template <class T>
struct MaskView {
  const bool* keep = nullptr;
  const T* bias = nullptr;
  std::vector<int64_t> offset;  // per flattened batch index, in elements
  int64_t rs = 0, cs = 0;

  explicit MaskView(const Tensor& mask) {
    if (!mask.defined()) return;
    if (mask.dtype() == kBool)
      keep = static_cast<const bool*>(mask.raw_data());
    else
      bias = static_cast<const T*>(mask.raw_data());
    const int64_t nb = mask.dim() - 2;
    rs = mask.strides()[nb];
    cs = mask.strides()[nb + 1];
    int64_t count = 1;
    for (int64_t d = 0; d < nb; ++d) count *= mask.size(d);
    offset.resize(static_cast<size_t>(count));
    for (int64_t b = 0; b < count; ++b) {
      int64_t rest = b, off = 0;
      for (int64_t d = nb - 1; d >= 0; --d) {
        off += (rest % mask.size(d)) * mask.strides()[d];
        rest /= mask.size(d);
      }
      offset[static_cast<size_t>(b)] = off;
    }
  }
  bool any() const { return keep != nullptr || bias != nullptr; }
};

struct Dims {
  int64_t batch, l, s, e, ev;
};

// sc[r x c] (leading dim kBc) <- scale * q[i0.., :] k[j0.., :]^T, masked: the scores of one tile.
template <class T>
void score_tile(T* sc, const T* q, const T* k, int64_t r, int64_t c, const Dims& d, T scale, int64_t b, int64_t i0,
                int64_t j0, const MaskView<T>& mv, bool causal) {
  blas_gemm(CblasNoTrans, CblasTrans, r, c, d.e, scale, q, d.e, k, d.e, T(0), sc, kBc);
  constexpr T neg_inf = -std::numeric_limits<T>::infinity();
  if (mv.any()) {
    const int64_t base = mv.offset[static_cast<size_t>(b)] + i0 * mv.rs + j0 * mv.cs;
    for (int64_t ii = 0; ii < r; ++ii) {
      T* row = sc + ii * kBc;
      const int64_t at = base + ii * mv.rs;
      if (mv.keep)
        for (int64_t jj = 0; jj < c; ++jj) row[jj] = attn_masked<T>(row[jj], mv.keep[at + jj * mv.cs], T(0));
      else
        for (int64_t jj = 0; jj < c; ++jj) row[jj] = attn_masked<T>(row[jj], true, mv.bias[at + jj * mv.cs]);
    }
  }
  if (causal && j0 + c - 1 > i0) {  // the tile crosses the diagonal
    for (int64_t ii = 0; ii < r; ++ii) {
      const int64_t end = std::max<int64_t>(attn_row_key_end(i0 + ii, j0 + c, true) - j0, 0);
      std::fill(sc + ii * kBc + end, sc + ii * kBc + c, neg_inf);
    }
  }
}

// Max over a row, 8 lanes so that it vectorises.
template <class T>
T row_max(const T* x, int64_t n) {
  constexpr int L = 8;
  T lane[L];
  std::fill(lane, lane + L, -std::numeric_limits<T>::infinity());
  int64_t j = 0;
  for (; j + L <= n; j += L)
    for (int l = 0; l < L; ++l) lane[l] = x[j + l] > lane[l] ? x[j + l] : lane[l];
  T m = -std::numeric_limits<T>::infinity();
  for (; j < n; ++j) m = x[j] > m ? x[j] : m;
  for (int l = 0; l < L; ++l) m = lane[l] > m ? lane[l] : m;
  return m;
}

// x <- exp(x - shift) in place; returns the sum.
template <class T>
T exp_row(T* x, int64_t n, T shift) {
  for (int64_t j = 0; j < n; ++j) x[j] = exp_(x[j] - shift);
  constexpr int L = 8;
  T lane[L] = {};
  int64_t j = 0;
  for (; j + L <= n; j += L)
    for (int l = 0; l < L; ++l) lane[l] += x[j + l];
  T s = 0;
  for (; j < n; ++j) s += x[j];
  for (int l = 0; l < L; ++l) s += lane[l];
  return s;
}

// Runs body(i) for i in [0, n): in oneTBB tasks when the pass has enough work.
template <class F>
void for_tasks(int64_t n, double work, F&& body) {
  if (work < kSerialWork || n == 1) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 1), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t i = r.begin(); i != r.end(); ++i) body(i);
  });
}

Dims dims_of(const Tensor& q, const Tensor& k, const Tensor& v) {
  return {q.size(0), q.size(1), k.size(1), q.size(2), v.size(2)};
}

template <class T>
void forward_impl(const Tensor& out_t, const Tensor& lse_t, const Tensor& q_t, const Tensor& k_t, const Tensor& v_t,
                  const Tensor& mask, const AttentionParams& p) {
  const Dims d = dims_of(q_t, k_t, v_t);
  const T *q = q_t.data_ptr<T>(), *k = k_t.data_ptr<T>(), *v = v_t.data_ptr<T>();
  T *out = out_t.data_ptr<T>(), *lse = lse_t.data_ptr<T>();
  const MaskView<T> mv(mask);
  const T scale = static_cast<T>(p.scale);
  const int64_t nqb = (d.l + kBr - 1) / kBr;
  const double work = double(d.batch) * double(d.l) * double(d.s) * double(d.e + d.ev);
  for_tasks(d.batch * nqb, work, [&](int64_t task) {
    const int64_t b = task / nqb, i0 = task % nqb * kBr, r = std::min(kBr, d.l - i0);
    std::unique_ptr<T[]> sc(new T[kBr * kBc]);
    OnlineSoftmax<T> st[kBr];
    const T* qb = q + (b * d.l + i0) * d.e;
    T* ob = out + (b * d.l + i0) * d.ev;
    std::fill(ob, ob + r * d.ev, T(0));
    const int64_t key_end = attn_key_end(i0 + r, d.s, p.causal);
    for (int64_t j0 = 0; j0 < key_end; j0 += kBc) {
      const int64_t c = std::min(kBc, key_end - j0);
      score_tile(sc.get(), qb, k + (b * d.s + j0) * d.e, r, c, d, scale, b, i0, j0, mv, p.causal);
      for (int64_t ii = 0; ii < r; ++ii) {
        T* row = sc.get() + ii * kBc;
        const T alpha = st[ii].advance(row_max(row, c));
        if (alpha != T(1))
          for (int64_t x = 0; x < d.ev; ++x) ob[ii * d.ev + x] *= alpha;
        if (st[ii].shift() == -std::numeric_limits<T>::infinity())
          std::fill(row, row + c, T(0));  // no key for this row yet: adds nothing to the output
        else
          st[ii].add(exp_row(row, c, st[ii].shift()));
      }
      blas_gemm(CblasNoTrans, CblasNoTrans, r, d.ev, c, T(1), sc.get(), kBc, v + (b * d.s + j0) * d.ev, d.ev, T(1), ob,
                d.ev);
    }
    for (int64_t ii = 0; ii < r; ++ii) {
      const T inv = st[ii].inv_sum();
      for (int64_t x = 0; x < d.ev; ++x) ob[ii * d.ev + x] *= inv;
      lse[b * d.l + i0 + ii] = st[ii].lse();
    }
  });
}

template <class T>
void backward_impl(const Tensor& dq_t, const Tensor& dk_t, const Tensor& dv_t, const Tensor& dout_t, const Tensor& q_t,
                   const Tensor& k_t, const Tensor& v_t, const Tensor& out_t, const Tensor& lse_t, const Tensor& mask,
                   const AttentionParams& p) {
  const Dims d = dims_of(q_t, k_t, v_t);
  const T *q = q_t.data_ptr<T>(), *k = k_t.data_ptr<T>(), *v = v_t.data_ptr<T>();
  const T *dout = dout_t.data_ptr<T>(), *out = out_t.data_ptr<T>(), *lse = lse_t.data_ptr<T>();
  T *dq = dq_t.data_ptr<T>(), *dk = dk_t.data_ptr<T>(), *dv = dv_t.data_ptr<T>();
  const MaskView<T> mv(mask);
  const T scale = static_cast<T>(p.scale);
  const double work = double(d.batch) * double(d.l) * double(d.s) * double(d.e + d.ev);

  // D_i = rowsum(dO_i * O_i), the softmax backward's per-row term.
  Tensor drow_t = make_tensor({d.batch, d.l}, q_t.dtype());
  T* drow = drow_t.data_ptr<T>();
  for_tasks(d.batch, work, [&](int64_t b) {
    for (int64_t i = b * d.l; i < (b + 1) * d.l; ++i) {
      drow[i] = attn_row_delta<T>(dout + i * d.ev, out + i * d.ev, d.ev);
    }
  });

  // Enough (batch, key group) tasks to keep every thread busy; each group owns its keys' dk and dv.
  const int64_t nkb = (d.s + kBc - 1) / kBc;
  const int64_t threads = tbb::this_task_arena::max_concurrency();
  const int64_t groups =
      work < kSerialWork ? 1
                         : std::clamp<int64_t>((4 * threads + d.batch - 1) / d.batch, 1, std::min(nkb, kMaxKeyGroups));
  const int64_t kb_per_group = (nkb + groups - 1) / groups;
  Tensor parts_t;
  T* parts = dq;
  if (groups > 1) {
    parts_t = make_tensor({groups, d.batch, d.l, d.e}, q_t.dtype());
    parts = parts_t.data_ptr<T>();
  }
  std::fill(parts, parts + groups * d.batch * d.l * d.e, T(0));
  for_tasks(d.batch * groups, work, [&](int64_t task) {
    const int64_t b = task / groups, g = task % groups;
    const int64_t ks = g * kb_per_group * kBc, ke = std::min(d.s, (g + 1) * kb_per_group * kBc);
    std::unique_ptr<T[]> pt(new T[kBr * kBc]), ds(new T[kBr * kBc]);
    T* dqb = parts + (g * d.batch + b) * d.l * d.e;
    for (int64_t j0 = ks; j0 < ke; j0 += kBc) {
      const int64_t c = std::min(kBc, ke - j0);
      const T *kj = k + (b * d.s + j0) * d.e, *vj = v + (b * d.s + j0) * d.ev;
      T *dkj = dk + (b * d.s + j0) * d.e, *dvj = dv + (b * d.s + j0) * d.ev;
      std::fill(dkj, dkj + c * d.e, T(0));
      std::fill(dvj, dvj + c * d.ev, T(0));
      for (int64_t i0 = attn_first_row(j0, p.causal) / kBr * kBr; i0 < d.l; i0 += kBr) {
        const int64_t r = std::min(kBr, d.l - i0);
        const T *qi = q + (b * d.l + i0) * d.e, *doi = dout + (b * d.l + i0) * d.ev;
        const T *lse_i = lse + b * d.l + i0, *d_i = drow + b * d.l + i0;
        score_tile(pt.get(), qi, kj, r, c, d, scale, b, i0, j0, mv, p.causal);
        for (int64_t ii = 0; ii < r; ++ii) {
          T* row = pt.get() + ii * kBc;
          const T m = lse_i[ii];
          if (m == -std::numeric_limits<T>::infinity())
            std::fill(row, row + c, T(0));
          else
            for (int64_t jj = 0; jj < c; ++jj) row[jj] = attn_prob(row[jj], m, exp_<T>);
        }
        blas_gemm(CblasTrans, CblasNoTrans, c, d.ev, r, T(1), pt.get(), kBc, doi, d.ev, T(1), dvj,
                  d.ev);  // dV += P^T dO
        blas_gemm(CblasNoTrans, CblasTrans, r, c, d.ev, T(1), doi, d.ev, vj, d.ev, T(0), ds.get(), kBc);  // dP = dO V^T
        for (int64_t ii = 0; ii < r; ++ii) {
          const T* prow = pt.get() + ii * kBc;
          T* row = ds.get() + ii * kBc;
          const T di = d_i[ii];
          for (int64_t jj = 0; jj < c; ++jj) row[jj] = attn_dscore(prow[jj], row[jj], di, scale);
        }
        blas_gemm(CblasTrans, CblasNoTrans, c, d.e, r, T(1), ds.get(), kBc, qi, d.e, T(1), dkj, d.e);  // dK += dS^T Q
        blas_gemm(CblasNoTrans, CblasNoTrans, r, d.e, c, T(1), ds.get(), kBc, kj, d.e, T(1), dqb + i0 * d.e,
                  d.e);  // dQ += dS K
      }
    }
  });
  if (groups > 1) {
    const int64_t n = d.batch * d.l * d.e, chunk = 1 << 14;
    for_tasks((n + chunk - 1) / chunk, double(n) * double(groups), [&](int64_t c) {
      const int64_t lo = c * chunk, hi = std::min(n, lo + chunk);
      for (int64_t x = lo; x < hi; ++x) {
        T acc = parts[x];
        for (int64_t g = 1; g < groups; ++g) acc += parts[g * n + x];
        dq[x] = acc;
      }
    });
  }
}

using BlockedTypes = TypeList<float, double>;
constexpr const char* kOp = "[scaled_dot_product_attention] (blocked CPU kernel)";

}  // namespace

void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       const Tensor& mask, const AttentionParams& p) {
  visit_dtype<BlockedTypes>(q.dtype(), kOp, [&]<class T>() { forward_impl<T>(out, lse, q, k, v, mask, p); });
}

void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout, const Tensor& q,
                        const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse, const Tensor& mask,
                        const AttentionParams& p) {
  visit_dtype<BlockedTypes>(q.dtype(), kOp,
                            [&]<class T>() { backward_impl<T>(dq, dk, dv, dout, q, k, v, out, lse, mask, p); });
}

}  // namespace ember::kernels::cpu
