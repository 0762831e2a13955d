// The CUDA elementwise engine, shared by the elementwise .cu files. Operands (output first) of one
// shape are coalesced into as few strided dims as possible on the host (as kernels/cpu/loops.hpp does);
// contiguous operands (or one-element broadcasts) take a flat kernel, vectorised (16 bytes of the wider
// dtype per access) when aligned, anything else an offset-calculator kernel with 32-bit index math
// (larger problems are split).
#pragma once
#include <array>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "core/tensor.hpp"
#include "kernels/cuda/runtime.hpp"
#include "kernels/functors.hpp"

namespace ember::kernels::cuda {

inline constexpr int kMaxDims = 16;
inline constexpr int kUnroll = 4;  // elements per thread per step: several loads in flight

template <class T, class U>
__device__ __forceinline__ T convert_from(U x) {
  if constexpr (std::is_same_v<T, bool>)
    return static_cast<bool>(x);
  else if constexpr (std::is_same_v<T, half> || std::is_same_v<T, bfloat16>)
    return T(static_cast<float>(x));
  else
    return static_cast<T>(x);
}
template <class T>
__device__ __forceinline__ acc_t<T> load(const T& x) {
  return static_cast<acc_t<T>>(x);
}

// Host-side layout: dims innermost first, byte strides per operand.
template <int N>
struct Layout {
  int ndim = 0;
  int64_t numel = 0;
  int64_t size[kMaxDims];
  int64_t stride[kMaxDims][N];
  char* ptr[N];
};

template <int N>
Layout<N> make_layout(const std::array<const Tensor*, N>& ops) {
  Layout<N> l;
  const Tensor& out = *ops[0];
  l.numel = out.numel();
  for (int k = 0; k < N; ++k) l.ptr[k] = dptr<char>(*ops[k]);
  int nd = 0;
  // Walk from the innermost dim out; drop size-1 dims; merge a dim into the one inside it when every
  // operand's stride allows it.
  for (int64_t d = out.dim() - 1; d >= 0; --d) {
    int64_t sz = out.shape()[d];
    if (sz == 1) continue;
    int64_t st[N];
    for (int k = 0; k < N; ++k) st[k] = ops[k]->strides()[d] * static_cast<int64_t>(ops[k]->element_size());
    bool merge = nd > 0;
    for (int k = 0; k < N && merge; ++k) merge = st[k] == l.stride[nd - 1][k] * l.size[nd - 1];
    if (merge) {
      l.size[nd - 1] *= sz;
      continue;
    }
    EMBER_CHECK(nd < kMaxDims, ShapeError, "[elementwise] more than ", kMaxDims, " non-mergeable dims");
    l.size[nd] = sz;
    for (int k = 0; k < N; ++k) l.stride[nd][k] = st[k];
    ++nd;
  }
  if (nd == 0) {
    l.size[0] = 1;
    for (int k = 0; k < N; ++k) l.stride[0][k] = 0;
    nd = 1;
  }
  l.ndim = nd;
  return l;
}

// Device-side offset calculator for at most 2^31 - 1 elements.
template <int N>
struct OffsetCalc {
  int ndim;
  uint32_t size[kMaxDims];
  int64_t stride[kMaxDims][N];

  __device__ __forceinline__ void offsets(uint32_t i, int64_t (&off)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
#pragma unroll
    for (int d = 0; d < kMaxDims; ++d) {
      if (d == ndim) break;
      uint32_t q = i / size[d];
      uint32_t r = i - q * size[d];
      i = q;
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += static_cast<int64_t>(r) * stride[d][k];
    }
  }
};

template <int N>
struct Ptrs {
  char* p[N];
};

template <class Out, class In, class F, size_t... I>
__device__ __forceinline__ Out apply(const F& f, const acc_t<In> (&v)[sizeof...(I) == 0 ? 1 : sizeof...(I)],
                                     std::index_sequence<I...>) {
  return convert_from<Out>(f(v[I]...));
}

// General layout: each thread handles kUnroll elements kThreads apart (coalesced in the inner dim).
template <class Out, class In, int NIn, class F>
__global__ void __launch_bounds__(kThreads)
    elementwise_strided_kernel(F f, OffsetCalc<NIn + 1> calc, Ptrs<NIn + 1> ptrs, uint32_t n) {
  constexpr int kIn = NIn == 0 ? 1 : NIn;
  uint32_t base = blockIdx.x * (kThreads * kUnroll) + threadIdx.x;
  acc_t<In> v[kUnroll][kIn];
  int64_t out_off[kUnroll];
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    uint32_t i = base + u * kThreads;
    if (i < n) {
      int64_t off[NIn + 1];
      calc.offsets(i, off);
      out_off[u] = off[0];
#pragma unroll
      for (int k = 0; k < NIn; ++k) v[u][k] = load(*reinterpret_cast<const In*>(ptrs.p[k + 1] + off[k + 1]));
    }
  }
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    if (base + u * kThreads < n)
      *reinterpret_cast<Out*>(ptrs.p[0] + out_off[u]) = apply<Out, In>(f, v[u], std::make_index_sequence<NIn>{});
  }
}

// Flat layout: operand k advances step[k] (0 or 1) elements per element; grid-stride over 64-bit n.
template <class Out, class In, int NIn, class F>
__global__ void __launch_bounds__(kThreads)
    elementwise_flat_kernel(F f, Ptrs<NIn + 1> ptrs, std::array<int, NIn + 1> step, int64_t n) {
  constexpr int kIn = NIn == 0 ? 1 : NIn;
  Out* out = reinterpret_cast<Out*>(ptrs.p[0]);
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * (kThreads * kUnroll) + threadIdx.x; base < n;
       base += static_cast<int64_t>(gridDim.x) * (kThreads * kUnroll)) {
    acc_t<In> v[kUnroll][kIn];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      int64_t i = base + u * kThreads;
      if (i < n) {
#pragma unroll
        for (int k = 0; k < NIn; ++k) v[u][k] = load(reinterpret_cast<const In*>(ptrs.p[k + 1])[i * step[k + 1]]);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      int64_t i = base + u * kThreads;
      if (i < n) out[i] = apply<Out, In>(f, v[u], std::make_index_sequence<NIn>{});
    }
  }
}

// Vectorised flat layout: every operand contiguous and aligned to its kVec elements, kVec = 16 bytes of
// the wider of Out and In (a float32 -> bfloat16 cast moves 16 bytes in, 8 out); each thread moves kVec
// elements per operand per step. The tail (n % kVec) goes to the flat kernel.
template <class T, int V>
struct alignas(sizeof(T) * V) Vec {
  T v[V];
};
template <class Out, class In>
inline constexpr int kVecOf = static_cast<int>(16 / (sizeof(Out) > sizeof(In) ? sizeof(Out) : sizeof(In)));
template <class Out, class In, int NIn, class F>
__global__ void __launch_bounds__(kThreads) elementwise_vec_kernel(F f, Ptrs<NIn + 1> ptrs, int64_t nvec) {
  constexpr int kVec = kVecOf<Out, In>;
  constexpr int kIn = NIn == 0 ? 1 : NIn;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < nvec;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    Vec<In, kVec> in[kIn];
#pragma unroll
    for (int k = 0; k < NIn; ++k) in[k] = reinterpret_cast<const Vec<In, kVec>*>(ptrs.p[k + 1])[i];
    Vec<Out, kVec> o;
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
      acc_t<In> v[kIn];
#pragma unroll
      for (int k = 0; k < NIn; ++k) v[k] = load(in[k].v[j]);
      o.v[j] = apply<Out, In>(f, v, std::make_index_sequence<NIn>{});
    }
    reinterpret_cast<Vec<Out, kVec>*>(ptrs.p[0])[i] = o;
  }
}

template <class Out, class In, int NIn, class F>
void launch_strided(const F& f, const Layout<NIn + 1>& l, cudaStream_t stream) {
  OffsetCalc<NIn + 1> calc;
  calc.ndim = l.ndim;
  Ptrs<NIn + 1> ptrs;
  for (int k = 0; k <= NIn; ++k) ptrs.p[k] = l.ptr[k];
  for (int d = 0; d < kMaxDims; ++d) {
    calc.size[d] = d < l.ndim ? static_cast<uint32_t>(l.size[d]) : 1;
    for (int k = 0; k <= NIn; ++k) calc.stride[d][k] = d < l.ndim ? l.stride[d][k] : 0;
  }
  auto n = static_cast<uint32_t>(l.numel);
  elementwise_strided_kernel<Out, In, NIn, F>
      <<<blocks_for(l.numel, kThreads * kUnroll), kThreads, 0, stream>>>(f, calc, ptrs, n);
  EMBER_CUDA_CHECK(cudaGetLastError());
}

// Splits a layout into pieces with fewer than 2^31 elements along its outermost dims.
template <class Out, class In, int NIn, class F>
void launch_strided_split(const F& f, const Layout<NIn + 1>& l, cudaStream_t stream) {
  constexpr int64_t kMax = INT32_MAX;
  if (l.numel <= kMax) return launch_strided<Out, In, NIn>(f, l, stream);
  const int d = l.ndim - 1;
  const int64_t outer = l.size[d];
  const int64_t inner = l.numel / outer;
  Layout<NIn + 1> piece = l;
  if (inner <= kMax) {
    const int64_t chunk = kMax / inner;
    for (int64_t s = 0; s < outer; s += chunk) {
      piece.size[d] = std::min(chunk, outer - s);
      piece.numel = piece.size[d] * inner;
      for (int k = 0; k <= NIn; ++k) piece.ptr[k] = l.ptr[k] + s * l.stride[d][k];
      launch_strided<Out, In, NIn>(f, piece, stream);
    }
    return;
  }
  piece.ndim = d;
  piece.numel = inner;
  for (int64_t s = 0; s < outer; ++s) {
    for (int k = 0; k <= NIn; ++k) piece.ptr[k] = l.ptr[k] + s * l.stride[d][k];
    launch_strided_split<Out, In, NIn>(f, piece, stream);
  }
}

// Out <- f(In...) over operands ops (output first, inputs of dtype In, all of the output's shape),
// on the output's device and stream.
template <class Out, class In, int NIn, class F>
void run_elementwise(const std::array<const Tensor*, NIn + 1>& ops, const F& f) {
  if (ops[0]->numel() == 0) return;
  const int dev = device_index(ops[0]->device(), "elementwise");
  DeviceGuard guard(dev);
  cudaStream_t stream = current_stream(dev);
  Layout<NIn + 1> l = make_layout<NIn + 1>(ops);
  Ptrs<NIn + 1> ptrs;
  for (int k = 0; k <= NIn; ++k) ptrs.p[k] = l.ptr[k];

  bool flat = l.ndim == 1 && (l.stride[0][0] == static_cast<int64_t>(sizeof(Out)) || l.numel == 1);
  std::array<int, NIn + 1> step{};
  step[0] = 1;
  bool dense = true;  // every input contiguous (no broadcast element)
  for (int k = 1; k <= NIn && flat; ++k) {
    int64_t s = l.stride[0][k];
    flat = s == 0 || s == static_cast<int64_t>(sizeof(In));
    step[k] = s == 0 ? 0 : 1;
    dense = dense && step[k] == 1;
  }
  if (!flat) return launch_strided_split<Out, In, NIn>(f, l, stream);

  int64_t n = l.numel;
  if constexpr (sizeof(Out) <= 8 && sizeof(In) <= 8) {
    constexpr int kVec = kVecOf<Out, In>;
    bool aligned = true;
    for (int k = 0; k <= NIn; ++k)
      aligned = aligned && reinterpret_cast<uintptr_t>(l.ptr[k]) % (kVec * (k == 0 ? sizeof(Out) : sizeof(In))) == 0;
    if (dense && aligned && n >= kVec) {
      int64_t nvec = n / kVec;
      elementwise_vec_kernel<Out, In, NIn, F><<<blocks_for(nvec, kThreads), kThreads, 0, stream>>>(f, ptrs, nvec);
      EMBER_CUDA_CHECK(cudaGetLastError());
      int64_t done = nvec * kVec;
      if (done == n) return;
      for (int k = 0; k <= NIn; ++k) ptrs.p[k] += done * static_cast<int64_t>(k == 0 ? sizeof(Out) : sizeof(In));
      n -= done;
    }
  }
  elementwise_flat_kernel<Out, In, NIn, F>
      <<<blocks_for(n, kThreads * kUnroll), kThreads, 0, stream>>>(f, ptrs, step, n);
  EMBER_CUDA_CHECK(cudaGetLastError());
}

// Runs functor F (kernels/functors.hpp) on operands of the computation dtype, as cpu::run_functor.
template <int NIn, class F>
void run_functor(const std::array<const Tensor*, NIn + 1>& ops, const OpParams& p) {
  visit_dtype<typename F::Types>(ops[1]->dtype(), "[elementwise]", [&]<class T>() {
    using Out = std::conditional_t<F::kBoolOut, bool, T>;
    run_elementwise<Out, T, NIn>(ops, make_functor<F>(p));
  });
}

template <int NIn, class Fn, class... F>
constexpr auto make_table(TypeList<F...>) {
  return std::array<Fn, sizeof...(F)>{&run_functor<NIn, F>...};
}

}  // namespace ember::kernels::cuda
