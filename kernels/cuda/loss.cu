// CUDA fused cross entropy over class indices ([N, C, K] logits, classes strided by K). The forward
// gives each position a warp (or, for long rows, the block) that reads its row once with an online
// logsumexp (kernels/loss_math.hpp, shared with the CPU kernel) and writes the loss and lse; each block
// sums its positions' losses and target weights, and one more block sums those partials in a fixed order
// (deterministic) and writes the two sums and the reduced loss on the device: nothing is read back, so a
// call is no host sync. A bad target becomes a deferred error (kernels/deferred_error.hpp), raised at the
// next synchronisation. The softmax is never stored: the backward is elementwise over N * C * K and
// recomputes it from the saved lse.
#include <cstdint>
#include <limits>
#include <type_traits>

#include "core/dtype.hpp"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/deferred_error.cuh"
#include "kernels/cuda/loops.cuh"
#include "kernels/cuda/runtime.hpp"
#include "kernels/loss.hpp"
#include "kernels/loss_math.hpp"
#include "kernels/loss_plan.hpp"

namespace ember::kernels::cuda {
namespace {

struct CeArgs {
  int64_t n_pos, c, k, ignore_index;
  bool smoothing;
  double keep, ls_over_c, w_total;  // w_total: used when ws[kWsWeightTotal] is not (no class weights)
  bool device_w_total;
};

// Merges (m, s) and dot across the `width` lanes of a warp-aligned group (butterfly: every lane gets it).
template <class A>
__device__ __forceinline__ void group_merge(LseAcc<A>& acc, A& dot, int width) {
  for (int o = width / 2; o > 0; o /= 2) {
    const A om = __shfl_xor_sync(0xffffffffu, acc.m, o), os = __shfl_xor_sync(0xffffffffu, acc.s, o);
    acc.merge(om, os);
    dot += __shfl_xor_sync(0xffffffffu, dot, o);
  }
}

// The sum of the class weights, once per call (only needed with label smoothing and weights).
template <class T>
__global__ void weight_total_kernel(const T* __restrict w, int64_t c, double* __restrict out) {
  __shared__ double sh[kWarp];
  double s = 0;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) s += static_cast<double>(load(w[j]));
  s = block_reduce(s, SumOp{}, 0.0, sh);
  if (threadIdx.x == 0) *out = s;
}

// kTpp threads per position (32: a warp; kThreads: the block). ws as in loss_plan.hpp. T: the logits'
// type; L: the loss's and the class weights' (T, or float32 for f16/bf16 logits under autocast).
template <class T, class L, int kTpp>
__global__ void __launch_bounds__(kThreads)
    ce_forward_kernel(const T* __restrict x, const int64_t* __restrict tg, const L* __restrict w, L* __restrict loss,
                      acc_t<T>* __restrict lse, int64_t* __restrict ws, CeArgs a) {
  using A = acc_t<T>;
  constexpr int kPpb = kThreads / kTpp;
  __shared__ double sh[kWarp];
  const int lane = threadIdx.x % kTpp, group = threadIdx.x / kTpp;
  const A w_total = a.device_w_total ? static_cast<A>(reinterpret_cast<const double*>(ws)[kWsWeightTotal])
                                     : static_cast<A>(a.w_total);
  double my_loss = 0, my_weight = 0;  // the group leader's running sums, in position order
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * kPpb; base < a.n_pos;
       base += static_cast<int64_t>(gridDim.x) * kPpb) {
    const int64_t i = base + group;
    // Every thread of a block-wide group takes part in the block reductions below, even past the end.
    const bool live = i < a.n_pos;
    const int64_t t = live ? tg[i] : a.ignore_index;
    const bool bad = t != a.ignore_index && (t < 0 || t >= a.c);
    if (bad && lane == 0)
      atomicMin(reinterpret_cast<unsigned long long*>(ws + kWsBadIndex), static_cast<unsigned long long>(i));
    const bool skip = t == a.ignore_index || bad;
    if (skip) {  // uniform over the group (and over the block when it is the group): no reduction to join
      if (live && lane == 0) loss[i] = convert_from<L>(A(0)), lse[i] = A(0);
      continue;
    }
    const T* row = x + (i / a.k) * a.c * a.k + i % a.k;
    LseAcc<A> acc;
    A dot = 0;
    for (int64_t j = lane; j < a.c; j += kTpp) {
      const A v = load(row[j * a.k]);
      acc.add(v);
      if (a.smoothing) dot += w ? load(w[j]) * v : v;
    }
    group_merge(acc, dot, kTpp < kWarp ? kTpp : kWarp);
    if constexpr (kTpp > kWarp) {  // then across the block's warps, in warp order
      __shared__ A sm[kWarp], ss[kWarp], sd[kWarp];
      const int wl = threadIdx.x % kWarp, wi = threadIdx.x / kWarp;
      __syncthreads();
      if (wl == 0) sm[wi] = acc.m, ss[wi] = acc.s, sd[wi] = dot;
      __syncthreads();
      if (threadIdx.x == 0) {
        for (int q = 1; q < kThreads / kWarp; ++q) acc.merge(sm[q], ss[q]), dot += sd[q];
      }
    }
    if (lane == 0) {
      const A l = acc.result();
      const A wt = w ? load(w[t]) : A(1);
      const L v = convert_from<L>(ce_position_loss<A>(l, load(row[t * a.k]), wt, static_cast<A>(a.keep),
                                                      static_cast<A>(a.ls_over_c), w_total, dot, a.smoothing));
      loss[i] = v;
      lse[i] = l;
      my_loss += static_cast<double>(load(v));
      my_weight += static_cast<double>(wt);
    }
  }
  const double bl = block_reduce(my_loss, SumOp{}, 0.0, sh);
  const double bw = block_reduce(my_weight, SumOp{}, 0.0, sh);
  if (threadIdx.x == 0) {
    double* partial = reinterpret_cast<double*>(ws + kWsPartials) + 2 * blockIdx.x;
    partial[0] = bl;
    partial[1] = bw;
  }
}

struct CeSumsArgs {
  int64_t blocks, c, ignore_index;
  const int64_t* target;
  DeferredError* error;
  double* sums;  // {loss sum, weight sum}
  bool mean;     // the reduced loss: sum / weight sum, else the sum
};

// One block: the per-block partials summed in a fixed order into ws[kWsLossSum], ws[kWsWeightSum], the
// sums tensor and the reduced loss (the division in double, as the host did); then a bad target's report.
template <class T>
__global__ void __launch_bounds__(1024) ce_sums_kernel(int64_t* __restrict ws, T* __restrict reduced, CeSumsArgs a) {
  const int64_t blocks = a.blocks;
  __shared__ double sh[kWarp];
  const double* partial = reinterpret_cast<const double*>(ws + kWsPartials);
  double l = 0, w = 0;
  for (int64_t b = threadIdx.x; b < blocks; b += blockDim.x) l += partial[2 * b], w += partial[2 * b + 1];
  l = block_reduce(l, SumOp{}, 0.0, sh);
  w = block_reduce(w, SumOp{}, 0.0, sh);
  if (threadIdx.x == 0) {
    reinterpret_cast<double*>(ws)[kWsLossSum] = l;
    reinterpret_cast<double*>(ws)[kWsWeightSum] = w;
    a.sums[0] = l;
    a.sums[1] = w;
    if (reduced != nullptr) *reduced = convert_from<T>(a.mean ? l / w : l);
    const auto bad = static_cast<uint64_t>(ws[kWsBadIndex]);
    if (bad != ~uint64_t{0}) {
      const auto i = static_cast<int64_t>(bad);
      report_deferred_error(a.error, DeferredCode::kCrossEntropyTarget, a.target[i], a.c, i, a.ignore_index);
    }
  }
}

struct CeBackArgs {
  int64_t n, c, k, ignore_index, g_step;
  double scale, keep, lsc, w_total;
  const double* divide_by;  // on the device: scale / *divide_by (a mean's weight sum), or null
};

// grad[n, j, k] = coef (s softmax_j - q_j), elementwise (T, L as in the forward); kUnitK: K == 1 (no division by K). I:
// the index type, 32-bit below 2^31 elements (a 64-bit division costs several times a 32-bit one).
template <class T, class L, bool kUnitK, class I>
__global__ void __launch_bounds__(kThreads)
    ce_backward_kernel(T* __restrict gi, const L* __restrict g, const T* __restrict x, const int64_t* __restrict tg,
                       const L* __restrict w, const acc_t<T>* __restrict lse, const double* __restrict w_total_dev,
                       CeBackArgs a) {
  using A = acc_t<T>;
  const I total = static_cast<I>(a.n * a.c * a.k), c = static_cast<I>(a.c), k = static_cast<I>(a.k);
  const A w_total = w_total_dev ? static_cast<A>(*w_total_dev) : static_cast<A>(a.w_total);
  const A keep = static_cast<A>(a.keep), lsc = static_cast<A>(a.lsc);
  const A scale = static_cast<A>(a.divide_by ? a.scale / *a.divide_by : a.scale);
  for (I e = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<I>(gridDim.x) * blockDim.x) {
    I i, j;
    if constexpr (kUnitK) {
      i = e / c;
      j = e - i * c;
    } else {
      const I kk = e % k, nj = e / k;
      const I n = nj / c;
      j = nj - n * c;
      i = n * k + kk;
    }
    const int64_t t = tg[i];
    if (t == a.ignore_index || t < 0 || t >= a.c) {
      gi[e] = convert_from<T>(A(0));
      continue;
    }
    const A coef = g ? load(g[i * a.g_step]) * scale : scale;
    const A wt = w ? load(w[t]) : A(1);
    const A cs = ce_grad_scale<A>(coef, keep, wt, lsc, w_total);
    A v = ce_grad_base<A>(cs, std::exp(load(x[e]) - lse[i]), coef, lsc, w ? load(w[j]) : A(1));
    if (static_cast<int64_t>(j) == t) v -= ce_grad_target<A>(coef, keep, wt);
    gi[e] = convert_from<T>(v);
  }
}

// The smallest flat index of an element outside [0, 1] into *first; NaN is outside unless nan_ok.
template <class T>
__global__ void __launch_bounds__(kThreads)
    outside_unit_kernel(const T* __restrict x, int64_t n, bool nan_ok, unsigned long long* first) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    using A = acc_t<T>;
    const A v = static_cast<A>(x[i]);
    const bool outside = nan_ok ? (v < A(0) || v > A(1)) : !(v >= A(0) && v <= A(1));
    if (outside) atomicMin(first, static_cast<unsigned long long>(i));
  }
}
template <class T>
__global__ void report_probability_kernel(const T* x, const unsigned long long* first, int64_t n, ProbabilityOp op,
                                          DeferredError* error) {
  if (*first == ~0ULL) return;
  const auto i = static_cast<int64_t>(*first);
  const auto value = static_cast<double>(static_cast<acc_t<T>>(x[i]));
  report_deferred_error(error, DeferredCode::kProbabilityRange, i, n, static_cast<int64_t>(op),
                        __double_as_longlong(value));
}

// Calls f<T, L>() for the logits' type T and the loss's type L: the logits' own, or float32 for f16/bf16
// logits (autocast's loss, without a float32 copy of the logits).
template <class F>
void visit_ce_types(const Tensor& input, DType loss_dtype, F&& f) {
  visit_dtype<FloatTypes>(input.dtype(), "[cross_entropy]", [&]<class T>() {
    if (loss_dtype == input.dtype()) return f.template operator()<T, T>();
    if constexpr (!std::is_same_v<T, acc_t<T>>) {
      if (loss_dtype == kF32) return f.template operator()<T, float>();
    }
    throw DTypeError(detail::cat_str("[cross_entropy] the loss of ", describe(input),
                                     " is computed in its dtype or float32, not ", dtype_name(loss_dtype)));
  });
}

}  // namespace

void check_probabilities(const Tensor& input, ProbabilityOp op) {
  if (input.numel() == 0) return;
  const int dev = device_index(input.device(), "check_probabilities");
  DeviceGuard guard(dev);
  cudaStream_t stream = current_stream(dev);
  Tensor first = make_tensor({1}, kI64, input.device());
  auto* f = dptr<unsigned long long>(first);
  EMBER_CUDA_CHECK(cudaMemsetAsync(f, 0xFF, sizeof(*f), stream));
  visit_dtype<FloatTypes>(input.dtype(), "[check_probabilities]", [&]<class T>() {
    const T* x = dptr<const T>(input);
    outside_unit_kernel<T><<<blocks_for(input.numel(), kThreads), kThreads, 0, stream>>>(
        x, input.numel(), op == ProbabilityOp::kBinaryCrossEntropy, f);
    EMBER_CUDA_CHECK(cudaGetLastError());
    report_probability_kernel<T><<<1, 1, 0, stream>>>(x, f, input.numel(), op, deferred_error_slot(dev));
    EMBER_CUDA_CHECK(cudaGetLastError());
  });
}

void cross_entropy_forward(const Tensor& loss, const Tensor& lse, const Tensor& input, const Tensor& target,
                           const Tensor& weight, const CrossEntropyParams& p, const Tensor& sums, const Tensor& reduced,
                           CeReduce reduce) {
  const int dev = device_index(input.device(), "cross_entropy");
  DeviceGuard guard(dev);
  cudaStream_t stream = current_stream(dev);
  const int64_t n = input.size(0), c = input.size(1), k = input.size(2), positions = n * k;
  if (positions == 0) {    // the host's 0 / 0 for a mean, as before: queued fills, nothing read
    Tensor(sums).zero_();  // a handle copy: the tensors are written, not rebound
    if (reduced.defined())
      Tensor(reduced).fill_(reduce == CeReduce::kMean ? std::numeric_limits<double>::quiet_NaN() : 0.0);
    return;
  }
  DeferredError* error = deferred_error_slot(dev);
  const CrossEntropyPlan plan = plan_cross_entropy(positions, c);
  Tensor ws_t = make_tensor({plan.workspace_slots}, kI64, input.device());
  auto* ws = dptr<int64_t>(ws_t);
  EMBER_CUDA_CHECK(cudaMemsetAsync(ws + kWsBadIndex, 0xFF, sizeof(int64_t), stream));
  const bool smoothing = p.label_smoothing != 0;
  CeArgs a{.n_pos = positions,
           .c = c,
           .k = k,
           .ignore_index = p.ignore_index,
           .smoothing = smoothing,
           .keep = 1.0 - p.label_smoothing,
           .ls_over_c = p.label_smoothing / static_cast<double>(c),
           .w_total = static_cast<double>(c),
           .device_w_total = smoothing && weight.defined()};
  const CeSumsArgs sa{.blocks = plan.grid,
                      .c = c,
                      .ignore_index = p.ignore_index,
                      .target = dptr<const int64_t>(target),
                      .error = error,
                      .sums = dptr<double>(sums),
                      .mean = reduce == CeReduce::kMean};
  visit_ce_types(input, loss.dtype(), [&]<class T, class L>() {
    const L* w = dptr<const L>(weight);
    if (a.device_w_total) {
      weight_total_kernel<L><<<1, kThreads, 0, stream>>>(w, c, reinterpret_cast<double*>(ws + kWsWeightTotal));
      EMBER_CUDA_CHECK(cudaGetLastError());
    }
    const auto grid = static_cast<unsigned>(plan.grid);
    const T* x = dptr<const T>(input);
    const int64_t* tg = dptr<const int64_t>(target);
    L* l = dptr<L>(loss);
    acc_t<T>* s = dptr<acc_t<T>>(lse);
    if (plan.threads_per_position == kThreads)
      ce_forward_kernel<T, L, kThreads><<<grid, kThreads, 0, stream>>>(x, tg, w, l, s, ws, a);
    else
      ce_forward_kernel<T, L, kWarp><<<grid, kThreads, 0, stream>>>(x, tg, w, l, s, ws, a);
    EMBER_CUDA_CHECK(cudaGetLastError());
    L* r = dptr<L>(reduced);
    ce_sums_kernel<L><<<1, 1024, 0, stream>>>(ws, r, sa);
    EMBER_CUDA_CHECK(cudaGetLastError());
  });
}

void cross_entropy_backward(const Tensor& grad_input, const Tensor& grad_loss, double grad_scale, const Tensor& input,
                            const Tensor& target, const Tensor& weight, const Tensor& lse, const CrossEntropyParams& p,
                            const Tensor& divide_by) {
  const int dev = device_index(input.device(), "cross_entropy");
  DeviceGuard guard(dev);
  cudaStream_t stream = current_stream(dev);
  const int64_t n = input.size(0), c = input.size(1), k = input.size(2);
  if (n * c * k == 0) return;
  const CrossEntropyPlan plan = plan_cross_entropy(n * k, c);
  const bool device_w_total = p.label_smoothing != 0 && weight.defined();
  Tensor w_total_t = device_w_total ? make_tensor({1}, kF64, input.device()) : Tensor();
  CeBackArgs a{.n = n,
               .c = c,
               .k = k,
               .ignore_index = p.ignore_index,
               .g_step = grad_loss.defined() && grad_loss.numel() == 1 ? 0 : 1,
               .scale = grad_scale,
               .keep = 1.0 - p.label_smoothing,
               .lsc = p.label_smoothing / static_cast<double>(c),
               .w_total = static_cast<double>(c),
               .divide_by = dptr<const double>(divide_by)};
  // The loss's dtype is the upstream gradient's and the weights' (L in the kernels).
  const DType loss_dtype = grad_loss.defined() ? grad_loss.dtype() : weight.defined() ? weight.dtype() : input.dtype();
  visit_ce_types(input, loss_dtype, [&]<class T, class L>() {
    const L* w = dptr<const L>(weight);
    double* wt_dev = dptr<double>(w_total_t);
    if (device_w_total) {
      weight_total_kernel<L><<<1, kThreads, 0, stream>>>(w, c, wt_dev);
      EMBER_CUDA_CHECK(cudaGetLastError());
    }
    T* gi = dptr<T>(grad_input);
    const auto grid = static_cast<unsigned>(plan.backward_grid);
    const L* g = dptr<const L>(grad_loss);
    const T* xs = dptr<const T>(input);
    const acc_t<T>* l = dptr<const acc_t<T>>(lse);
    const int64_t* tg = dptr<const int64_t>(target);
    if (plan.backward_index32) {
      if (k == 1)
        ce_backward_kernel<T, L, true, uint32_t><<<grid, kThreads, 0, stream>>>(gi, g, xs, tg, w, l, wt_dev, a);
      else
        ce_backward_kernel<T, L, false, uint32_t><<<grid, kThreads, 0, stream>>>(gi, g, xs, tg, w, l, wt_dev, a);
    } else {
      if (k == 1)
        ce_backward_kernel<T, L, true, int64_t><<<grid, kThreads, 0, stream>>>(gi, g, xs, tg, w, l, wt_dev, a);
      else
        ce_backward_kernel<T, L, false, int64_t><<<grid, kThreads, 0, stream>>>(gi, g, xs, tg, w, l, wt_dev, a);
    }
    EMBER_CUDA_CHECK(cudaGetLastError());
  });
}

}  // namespace ember::kernels::cuda
