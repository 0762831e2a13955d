// Warp and block reductions shared by the CUDA kernels that reduce a row (reductions, softmax, norms,
// losses, optimizer norms). Each takes a combine functor so sum, max and Welford merges share one shape.
#pragma once
#include <cuda_runtime.h>

namespace ember::kernels::cuda {

inline constexpr int kWarp = 32;

struct SumOp {
  template <class T>
  __device__ __forceinline__ T operator()(T a, T b) const {
    return a + b;
  }
};
// NaN-propagating max (as PyTorch's max reductions and softmax's row max).
struct MaxOp {
  template <class T>
  __device__ __forceinline__ T operator()(T a, T b) const {
    return (a != a || a > b) ? a : b;
  }
};

template <class T, class Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o /= 2) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Every thread of the block gets the reduction of v over the block (blockDim.x a multiple of 32, at
// most 1024). `shared` holds 32 T; the call synchronises, so one buffer serves consecutive calls.
template <class T, class Op>
__device__ __forceinline__ T block_reduce(T v, Op op, T identity, T* shared) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int warps = (blockDim.x + kWarp - 1) / kWarp;
  v = warp_reduce(v, op);
  __syncthreads();  // an earlier call may still read `shared`
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : identity;
  return warp_reduce(v, op);
}

}  // namespace ember::kernels::cuda
