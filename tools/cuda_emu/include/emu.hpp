// The CUDA CPU emulator's device side (tools/cuda_emu): force-included (g++ -include) before every CUDA
// source of the emulated build. Kernels compile as host functions; a launch runs every thread of a block
// as a fiber on the calling thread, so __syncthreads, warp shuffles and __syncwarp are barriers between
// fibers, `__shared__` variables are shared by the block's fibers, and blocks run one after another.
// The runtime, cuBLASLt and CUB sides live in emu.cpp and the shadow headers beside this one.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

// Host compilation gives these no meaning; shared variables are one per block (blocks run in turn on a
// thread), so a static of the launching thread.
#undef __shared__
#define __shared__ static thread_local
#undef __launch_bounds__
#define __launch_bounds__(...)
#undef __forceinline__
#define __forceinline__ inline

namespace emu {

struct LaunchConfig {
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  LaunchConfig(dim3 g, dim3 b, size_t s = 0, cudaStream_t st = nullptr) : grid(g), block(b), smem(s), stream(st) {}
};

// The running fiber's built-in variables.
struct ThreadVars {
  uint3 thread_idx, block_idx;
  dim3 block_dim, grid_dim;
};
ThreadVars& vars();
void* dynamic_shared();
void sync_block();
// A barrier of the lanes of the calling thread's warp named in mask; slot() is the lane's exchange word.
void sync_warp(unsigned mask);
uint64_t* warp_slots();
int lane_id();

using Body = void (*)(void*);
// Runs (or, while `stream` captures a graph, records) a grid: body(ctx) once per thread.
void run_grid(const LaunchConfig& cfg, const char* name, Body body, void* ctx, void (*copy)(void*, void**),
              void (*destroy)(void*));

template <class K, class... A>
void launch(const LaunchConfig& cfg, const char* name, K kernel, A&&... args) {
  // Arguments are evaluated (and copied) once, on the host, as a launch does.
  struct Closure {
    K kernel;
    std::tuple<std::decay_t<A>...> params;
  };
  Closure c{kernel, std::tuple<std::decay_t<A>...>(std::forward<A>(args)...)};
  run_grid(
      cfg, name,
      [](void* p) {
        auto* cl = static_cast<Closure*>(p);
        auto params = cl->params;  // each thread's own copy of its parameters
        std::apply(cl->kernel, params);
      },
      &c, [](void* p, void** out) { *out = new Closure(*static_cast<Closure*>(p)); },
      [](void* p) { delete static_cast<Closure*>(p); });
}

template <class T, class F>
T exchange(unsigned mask, T v, F source) {
  static_assert(sizeof(T) <= 8, "emulated shuffles move at most 8 bytes");
  uint64_t* slots = warp_slots();
  const int lane = lane_id();
  uint64_t word = 0;
  std::memcpy(&word, &v, sizeof(T));
  slots[lane] = word;
  sync_warp(mask);
  const int src = source(lane);
  T r;
  std::memcpy(&r, &slots[src], sizeof(T));
  sync_warp(mask);  // nobody overwrites a slot before every lane read it
  return r;
}

// Atomics: fibers switch only at barriers, so a read-modify-write is atomic.
template <class T, class U>
T atomic_rmw(T* p, U v, T (*f)(T, T)) {
  T old = *p;
  *p = f(old, static_cast<T>(v));
  return old;
}

}  // namespace emu

#define threadIdx (::emu::vars().thread_idx)
#define blockIdx (::emu::vars().block_idx)
#define blockDim (::emu::vars().block_dim)
#define gridDim (::emu::vars().grid_dim)
#define warpSize 32

inline void __syncthreads() { ::emu::sync_block(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::emu::sync_warp(mask); }
inline void __threadfence() {}
inline void __threadfence_block() {}
inline void __threadfence_system() {}

template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return ::emu::exchange(mask, v, [=](int lane) {
    const int src = lane ^ lane_mask;
    return (src / width == lane / width) ? src : lane;
  });
}
template <class T>
T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
  return ::emu::exchange(mask, v, [=](int lane) { return (lane / width) * width + (src_lane % width); });
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ::emu::exchange(mask, v, [=](int lane) {
    const int in_seg = lane % width;
    return in_seg >= static_cast<int>(delta) ? lane - static_cast<int>(delta) : lane;
  });
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ::emu::exchange(mask, v, [=](int lane) {
    const int in_seg = lane % width;
    return in_seg + static_cast<int>(delta) < width ? lane + static_cast<int>(delta) : lane;
  });
}

template <class T, class U>
T atomicAdd(T* p, U v) {
  return ::emu::atomic_rmw<T>(p, v, [](T a, T b) -> T { return static_cast<T>(a + b); });
}
inline __half atomicAdd(__half* p, __half v) {
  const __half old = *p;
  *p = __float2half(__half2float(old) + __half2float(v));
  return old;
}
inline __nv_bfloat16 atomicAdd(__nv_bfloat16* p, __nv_bfloat16 v) {
  const __nv_bfloat16 old = *p;
  *p = __float2bfloat16(__bfloat162float(old) + __bfloat162float(v));
  return old;
}
template <class T, class U>
T atomicMin(T* p, U v) {
  return ::emu::atomic_rmw<T>(p, v, [](T a, T b) -> T { return b < a ? b : a; });
}
template <class T, class U>
T atomicMax(T* p, U v) {
  return ::emu::atomic_rmw<T>(p, v, [](T a, T b) -> T { return b > a ? b : a; });
}
template <class T, class U>
T atomicExch(T* p, U v) {
  return ::emu::atomic_rmw<T>(p, v, [](T, T b) -> T { return b; });
}
template <class T>
T atomicCAS(T* p, T compare, T v) {
  const T old = *p;
  if (old == compare) *p = v;
  return old;
}

template <class T>
T __ldg(const T* p) {
  return *p;
}

inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline long long __double_as_longlong(double x) {
  long long r;
  std::memcpy(&r, &x, 8);
  return r;
}
inline double __longlong_as_double(long long x) {
  double r;
  std::memcpy(&r, &x, 8);
  return r;
}
inline unsigned __float_as_uint(float x) {
  unsigned r;
  std::memcpy(&r, &x, 4);
  return r;
}
inline float __uint_as_float(unsigned x) {
  float r;
  std::memcpy(&r, &x, 4);
  return r;
}
inline int __float_as_int(float x) {
  int r;
  std::memcpy(&r, &x, 4);
  return r;
}
inline float __int_as_float(int x) {
  float r;
  std::memcpy(&r, &x, 4);
  return r;
}

// cuda_runtime.h declares this overload for nvcc only.
template <class T>
cudaError_t cudaFuncSetAttribute(T* kernel, cudaFuncAttribute attr, int value) {
  return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), attr, value);
}
