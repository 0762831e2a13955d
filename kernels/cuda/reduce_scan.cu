// CUDA scans (cumsum/cumprod) and sorts (sort, topk) along one dim of a contiguous copy of the input,
// seen as outer x n x inner. Why these shapes: a scan of the innermost dim is one warp per line
// (shuffle scan over 32-element tiles with a carry), of an outer dim one thread per line (adjacent
// threads on adjacent lines: coalesced). Sorting is a bitonic network over (key, index) pairs, a total
// order, so the result is the stable sort with NaN largest (kernels/reduce_math.hpp, CPU-tested):
// rows up to kSortSharedMax in shared memory, longer rows one launch per network step on a workspace.
// topk sorts and keeps the first k, which gives the CPU's ties-to-the-lower-index answer.
#include <type_traits>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/reduce_engine.cuh"
#include "kernels/reduce.hpp"

namespace ember::kernels::cuda {
namespace {

struct Lines {
  int64_t outer = 1, n = 1, inner = 1;
  Lines(const Tensor& t, int64_t dim) {
    for (int64_t d = 0; d < t.dim(); ++d) (d < dim ? outer : d == dim ? n : inner) *= t.shape()[d];
  }
};

// ---------------------------------------------------------------- scans
// The scan's accumulation type, as the CPU: i64 for integers and bool, double for f32, else acc_t.
template <class T>
using scan_acc_t = std::conditional_t<!std::is_floating_point_v<acc_t<T>>, long long,
                                      std::conditional_t<std::is_same_v<T, float>, double, acc_t<T>>>;
template <class T>
using scan_out_t = std::conditional_t<!std::is_floating_point_v<acc_t<T>>, int64_t, T>;

template <bool kProd, class A>
__device__ __forceinline__ A scan_op(A a, A b) {
  return kProd ? a * b : a + b;
}

// One warp per line of the innermost dim; blockDim.x == kThreads.
template <class T, bool kProd>
__global__ void __launch_bounds__(kThreads) scan_rows_kernel(const T* x, scan_out_t<T>* y, int64_t rows, int64_t n) {
  using A = scan_acc_t<T>;
  const int lane = static_cast<int>(threadIdx.x % kWarp);
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (kThreads / kWarp);
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * (kThreads / kWarp) + threadIdx.x / kWarp; row < rows;
       row += warps) {
    A carry = A(kProd ? 1 : 0);
    for (int64_t base = 0; base < n; base += kWarp) {
      const int64_t i = base + lane;
      A v = i < n ? static_cast<A>(load(x[row * n + i])) : A(kProd ? 1 : 0);
#pragma unroll
      for (int o = 1; o < kWarp; o *= 2) {
        const A u = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= o) v = scan_op<kProd>(u, v);
      }
      v = scan_op<kProd>(carry, v);
      if (i < n) y[row * n + i] = convert_from<scan_out_t<T>>(v);
      carry = __shfl_sync(0xffffffffu, v, kWarp - 1);
    }
  }
}

// One thread per line of an outer dim (lines = outer * inner, adjacent threads on adjacent j).
template <class T, bool kProd>
__global__ void __launch_bounds__(kThreads)
    scan_cols_kernel(const T* x, scan_out_t<T>* y, int64_t outer, int64_t n, int64_t inner) {
  using A = scan_acc_t<T>;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < outer * inner;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t base = (t / inner) * n * inner + t % inner;
    A a = A(kProd ? 1 : 0);
    for (int64_t i = 0; i < n; ++i) {
      a = scan_op<kProd>(a, static_cast<A>(load(x[base + i * inner])));
      y[base + i * inner] = convert_from<scan_out_t<T>>(a);
    }
  }
}

// ---------------------------------------------------------------- sorts
// Where line b's element i lives (input: n per line) and where its slot i goes (output: kout per line).
__device__ __forceinline__ int64_t line_at(int64_t b, int64_t i, int64_t len, int64_t inner) {
  return (b / inner) * len * inner + b % inner + i * inner;
}

template <class K>
__device__ __forceinline__ void compare_exchange(K* key, int64_t* idx, int64_t i, int64_t j, int64_t k, int64_t n,
                                                 bool desc) {
  const int64_t a = i, b = i + j;
  const bool asc = bitonic_ascending(i, k);
  if (asc ? padded_before(key[b], idx[b], key[a], idx[a], n, desc)
          : padded_before(key[a], idx[a], key[b], idx[b], n, desc)) {
    const K tk = key[a];
    key[a] = key[b];
    key[b] = tk;
    const int64_t ti = idx[a];
    idx[a] = idx[b];
    idx[b] = ti;
  }
}

// The whole network in shared memory, one block (P / 2 threads) per line; lines grid-stride.
template <class T>
__global__ void __launch_bounds__(1024)
    sort_shared_kernel(const T* x, T* values, int64_t* indices, int64_t lines, int64_t n, int64_t inner, int64_t P,
                       int64_t kout, bool desc) {
  using K = acc_t<T>;
  extern __shared__ __align__(16) unsigned char sort_smem[];
  int64_t* idx = reinterpret_cast<int64_t*>(sort_smem);
  K* key = reinterpret_cast<K*>(idx + P);
  for (int64_t b = blockIdx.x; b < lines; b += gridDim.x) {
    for (int64_t i = threadIdx.x; i < P; i += blockDim.x) {
      idx[i] = i;
      key[i] = i < n ? load(x[line_at(b, i, n, inner)]) : K(0);
    }
    for (int64_t k = 2; k <= P; k *= 2)
      for (int64_t j = k / 2; j > 0; j /= 2) {
        __syncthreads();
        for (int64_t t = threadIdx.x; t < P / 2; t += blockDim.x)
          compare_exchange(key, idx, bitonic_slot(t, j), j, k, n, desc);
      }
    __syncthreads();
    for (int64_t i = threadIdx.x; i < kout; i += blockDim.x) {
      values[line_at(b, i, kout, inner)] = convert_from<T>(key[i]);
      indices[line_at(b, i, kout, inner)] = idx[i];
    }
    __syncthreads();
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    sort_load_kernel(const T* x, acc_t<T>* key, int64_t* idx, int64_t lines, int64_t n, int64_t inner, int64_t P) {
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < lines * P;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = t / P, i = t % P;
    idx[t] = i;
    key[t] = i < n ? load(x[line_at(b, i, n, inner)]) : acc_t<T>(0);
  }
}

template <class K>
__global__ void __launch_bounds__(kThreads)
    sort_step_kernel(K* key, int64_t* idx, int64_t lines, int64_t n, int64_t P, int64_t k, int64_t j, bool desc) {
  const int64_t half_p = P / 2;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < lines * half_p;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = t / half_p;
    compare_exchange(key + b * P, idx + b * P, bitonic_slot(t % half_p, j), j, k, n, desc);
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    sort_store_kernel(const acc_t<T>* key, const int64_t* idx, T* values, int64_t* indices, int64_t lines,
                      int64_t inner, int64_t P, int64_t kout) {
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < lines * kout;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = t / kout, i = t % kout;
    values[line_at(b, i, kout, inner)] = convert_from<T>(key[b * P + i]);
    indices[line_at(b, i, kout, inner)] = idx[b * P + i];
  }
}

// Sorts every line of the contiguous x along dim and writes the first kout slots of each.
template <class T>
void sort_lines(const Tensor& values, const Tensor& indices, const Tensor& x, int64_t dim, int64_t kout, bool desc) {
  using K = acc_t<T>;
  const Lines l(x, dim);
  const int64_t lines = l.outer * l.inner;
  if (lines == 0 || kout == 0) return;
  const int dev = device_index(x.device(), "sort");
  DeviceGuard guard(dev);
  cudaStream_t stream = current_stream(dev);
  const SortLaunch s = plan_sort_launch(lines, l.n, sizeof(K));
  const T* xp = dptr<const T>(x);
  T* vp = dptr<T>(values);
  auto* ip = dptr<int64_t>(indices);
  if (s.shared) {
    sort_shared_kernel<T><<<blocks_for(lines, 1), s.threads, static_cast<size_t>(s.smem), stream>>>(
        xp, vp, ip, lines, l.n, l.inner, s.P, kout, desc);
    EMBER_CUDA_CHECK(cudaGetLastError());
    return;
  }
  Tensor ws = make_tensor({s.workspace}, kU8, x.device());
  auto* idx = static_cast<int64_t*>(dptr<void>(ws));
  K* key = reinterpret_cast<K*>(idx + lines * s.P);
  sort_load_kernel<T>
      <<<blocks_for(lines * s.P, kThreads), kThreads, 0, stream>>>(xp, key, idx, lines, l.n, l.inner, s.P);
  EMBER_CUDA_CHECK(cudaGetLastError());
  for (int64_t k = 2; k <= s.P; k *= 2)
    for (int64_t j = k / 2; j > 0; j /= 2) {
      sort_step_kernel<K>
          <<<blocks_for(lines * s.P / 2, kThreads), kThreads, 0, stream>>>(key, idx, lines, l.n, s.P, k, j, desc);
      EMBER_CUDA_CHECK(cudaGetLastError());
    }
  sort_store_kernel<T>
      <<<blocks_for(lines * kout, kThreads), kThreads, 0, stream>>>(key, idx, vp, ip, lines, l.inner, s.P, kout);
  EMBER_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void cumulative(bool is_prod, const Tensor& out, const Tensor& in, int64_t dim) {
  if (out.numel() == 0) return;
  Tensor x = in.contiguous();
  const Lines l(x, dim);
  const int dev = device_index(x.device(), is_prod ? "cumprod" : "cumsum");
  DeviceGuard guard(dev);
  cudaStream_t stream = current_stream(dev);
  visit_dtype<AllTypes>(in.dtype(), is_prod ? "[cumprod]" : "[cumsum]", [&]<class T>() {
    const T* xp = dptr<const T>(x);
    auto* yp = dptr<scan_out_t<T>>(out);
    const auto launch = [&]<bool kProd>() {
      if (l.inner == 1) {
        scan_rows_kernel<T, kProd>
            <<<blocks_for(l.outer, kThreads / kWarp), kThreads, 0, stream>>>(xp, yp, l.outer, l.n);
      } else {
        scan_cols_kernel<T, kProd>
            <<<blocks_for(l.outer * l.inner, kThreads), kThreads, 0, stream>>>(xp, yp, l.outer, l.n, l.inner);
      }
      EMBER_CUDA_CHECK(cudaGetLastError());
    };
    if (is_prod)
      launch.template operator()<true>();
    else
      launch.template operator()<false>();
  });
}

void sort(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t dim, bool descending) {
  Tensor x = in.contiguous();
  const int64_t n = x.dim() == 0 ? 1 : x.shape()[dim];
  visit_dtype<AllTypes>(in.dtype(), "[sort]",
                        [&]<class T>() { sort_lines<T>(values, indices, x, dim, n, descending); });
}

void topk(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t k, int64_t dim, bool largest, bool) {
  Tensor x = in.contiguous();
  visit_dtype<AllTypes>(in.dtype(), "[topk]", [&]<class T>() { sort_lines<T>(values, indices, x, dim, k, largest); });
}

}  // namespace ember::kernels::cuda
