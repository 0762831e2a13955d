// The CUDA reduction engine, shared by kernels/cuda/reduce*.cu. The host plan (kernels/reduce_plan.hpp,
// CPU-tested) splits the input into kept and reduced dims and picks the geometry: the row kernel (lanes
// of one output on adjacent threads, reading its contiguous reduced elements) or the column kernel
// (adjacent threads on adjacent outputs), and a split of long reductions whose partial states a second
// kernel combines in chunk order. An op supplies State, init, fold (one element at a byte offset),
// combine and emit; the per-element math lives in kernels/reduce_math.hpp, shared with the CPU.
#pragma once
#include <cuda_runtime.h>

#include "kernels/cuda/loops.cuh"
#include "kernels/cuda/runtime.hpp"
#include "kernels/reduce_math.hpp"
#include "kernels/reduce_plan.hpp"

namespace ember::kernels::cuda {

// One pass over the outputs of blockIdx.x (grid-stride) and the reduced chunk blockIdx.y.
template <class Op>
__global__ void __launch_bounds__(kReduceMaxThreads) reduce_kernel(Op op, ReducePlan p, ReduceLaunch l, char* partial) {
  using S = typename Op::State;
  extern __shared__ __align__(16) unsigned char reduce_smem[];
  S* sh = reinterpret_cast<S*>(reduce_smem);
  const int tid = static_cast<int>(threadIdx.x);
  const int lane = l.lane_of(tid), slot = l.slot_of(tid);
  const int64_t split = blockIdx.y;
  const int64_t r0 = split * l.chunk, r1 = r0 + l.chunk < p.N ? r0 + l.chunk : p.N;
  for (int64_t ob = static_cast<int64_t>(blockIdx.x) * l.outs; ob < p.M;
       ob += static_cast<int64_t>(gridDim.x) * l.outs) {
    const int64_t o = ob + slot;
    S s = op.init();
    int64_t in_off = 0, out_off = 0;
    if (o < p.M) {
      kept_offsets(p, o, in_off, out_off);
      for (int64_t r = r0 + lane; r < r1; r += l.lanes) op.fold(s, in_off + reduced_offset(p, r), r, out_off);
    }
    if (l.lanes > 1) {  // tree over the lanes of each output (uniform branch: every thread syncs)
      sh[l.smem_index(slot, lane)] = s;
      for (int h = l.lanes / 2; h > 0; h /= 2) {
        __syncthreads();
        if (lane < h) op.combine(sh[l.smem_index(slot, lane)], sh[l.smem_index(slot, lane + h)]);
      }
      __syncthreads();
      s = sh[l.smem_index(slot, 0)];
    }
    if (lane == 0 && o < p.M) {
      if (l.splits == 1)
        op.emit(out_off, s);
      else
        reinterpret_cast<S*>(partial)[split * p.M + o] = s;
    }
    if (l.lanes > 1) __syncthreads();  // the next round rewrites sh
  }
}

// Second pass of a split reduction: each output combines its chunks' states in chunk order.
template <class Op>
__global__ void __launch_bounds__(kThreads)
    reduce_combine_kernel(Op op, ReducePlan p, int64_t splits, const char* partial) {
  using S = typename Op::State;
  const S* part = reinterpret_cast<const S*>(partial);
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < p.M;
       o += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    S s = part[o];
    for (int64_t k = 1; k < splits; ++k) op.combine(s, part[k * p.M + o]);
    int64_t in_off = 0, out_off = 0;
    kept_offsets(p, o, in_off, out_off);
    op.emit(out_off, s);
  }
}

// Streaming multiprocessors of a device (queried once per device).
int sm_count(int dev);

// Runs op over plan p on `device` (whose tensors the op's pointers address).
template <class Op>
void launch_reduce(const ReducePlan& p, const Op& op, Device device, int64_t max_splits = kMaxSplits) {
  if (p.M == 0) return;
  const int dev = device_index(device, "reduce");
  DeviceGuard guard(dev);
  cudaStream_t stream = current_stream(dev);
  using S = typename Op::State;
  const ReduceLaunch l = plan_reduce_launch(p.M, p.N, p.outer, sizeof(S), sm_count(dev), max_splits);
  Tensor ws;  // partial states, stream-ordered from the caching allocator
  char* partial = nullptr;
  if (l.workspace > 0) {
    ws = make_tensor({l.workspace}, kU8, device);
    partial = dptr<char>(ws);
  }
  const dim3 grid(static_cast<unsigned>(l.grid_x), static_cast<unsigned>(l.splits));
  reduce_kernel<Op><<<grid, l.threads(), static_cast<size_t>(l.smem), stream>>>(op, p, l, partial);
  EMBER_CUDA_CHECK(cudaGetLastError());
  if (l.splits > 1) {
    reduce_combine_kernel<Op><<<blocks_for(p.M, kThreads), kThreads, 0, stream>>>(op, p, l.splits, partial);
    EMBER_CUDA_CHECK(cudaGetLastError());
  }
}

// ---------------------------------------------------------------- element terms and finalisers
// A term maps an element (in its accumulation type) and the output's centre to the value folded;
// Center is the centre's type (unused by the plain terms).
template <class R>
struct IdentTerm {
  using Center = float;
  template <class A>
  __device__ R operator()(A v, Center) const {
    return static_cast<R>(v);
  }
};
struct AbsTerm {
  using Center = float;
  template <class A>
  __device__ A operator()(A v, Center) const {
    return abs_term(v);
  }
};
struct SquareTerm {
  using Center = float;
  template <class A>
  __device__ A operator()(A v, Center) const {
    return square_term(v);
  }
};
template <class P>
struct PowAbsTerm {
  using Center = float;
  P p;
  template <class A>
  __device__ A operator()(A v, Center) const {
    return pow_abs_term(v, static_cast<A>(p));
  }
};
template <class R>
struct NonZeroTerm {
  using Center = float;
  template <class A>
  __device__ R operator()(A v, Center) const {
    return nonzero_term<R>(v);
  }
};
struct SqDevTerm {  // around the mean, in double
  using Center = double;
  template <class A>
  __device__ double operator()(A v, double c) const {
    return sq_dev_term(static_cast<double>(v), c);
  }
};
template <class A>
struct ExpShiftTerm {  // exp(x - shift) around logsumexp's max
  using Center = A;
  __device__ A operator()(A v, A c) const { return std::exp(v - lse_shift(c)); }
};

struct PlainFin {
  template <class S, class C>
  __device__ S operator()(S s, C) const {
    return s;
  }
};
struct ScaleFin {
  double scale;
  template <class S, class C>
  __device__ double operator()(S s, C) const {
    return scale_fin(static_cast<double>(s), scale);
  }
};
struct SqrtFin {
  double scale;
  template <class S, class C>
  __device__ double operator()(S s, C) const {
    return sqrt_fin(static_cast<double>(s), scale);
  }
};
struct RootFin {
  double inv_p;
  template <class S, class C>
  __device__ double operator()(S s, C) const {
    return root_fin(static_cast<double>(s), inv_p);
  }
};
struct VarFin {
  double scale;
  bool root;
  template <class S, class C>
  __device__ double operator()(S s, C) const {
    return var_fin(static_cast<double>(s), scale, root);
  }
};
struct LogShiftFin {
  template <class S, class C>
  __device__ double operator()(S s, C c) const {
    return log_shift_fin(static_cast<double>(s), static_cast<double>(lse_shift(c)));
  }
};

// A monoid over terms of the elements of `in` (dtype In), finalised into out (dtype Out); centre, when
// the term needs one, holds a value per output at the output's offset.
template <class In, class State_, class Out, class Mon, class Term, class Fin>
struct MonoidOp {
  using State = State_;
  using C = typename Term::Center;
  const char* in;
  Out* out;
  Term term;
  Fin fin;
  const C* centre = nullptr;

  __device__ C center(int64_t off) const { return centre ? centre[off] : C(0); }
  __device__ State init() const { return Mon::template identity<State>(); }
  __device__ void fold(State& s, int64_t off, int64_t, int64_t out_off) const {
    s = Mon::op(s, static_cast<State>(term(load(*reinterpret_cast<const In*>(in + off)), center(out_off))));
  }
  __device__ void combine(State& a, const State& b) const { a = Mon::op(a, b); }
  __device__ void emit(int64_t off, const State& s) const { out[off] = convert_from<Out>(fin(s, center(off))); }
};

}  // namespace ember::kernels::cuda
