// CUDA indexing kernels: index_range and count_true (grid-stride block reductions, integer atomics),
// index_select, gather, scatter (three kernels, chosen by kernels/index_plan.cpp), masked_fill and
// masked_select (flags, CUB exclusive scan, compaction). Offsets come from the host-planned coalesced
// layouts and the per-thread bodies are the EMBER_HD functions of kernels/index_plan.hpp, which the
// CPU tests run; what is left here is launch glue. No float atomics when ember::deterministic() is on:
// a scatter whose index is shared by every line (index_add, embedding backward) then sorts the index
// (CUB radix sort, stable) and sums each destination's run in order. index_select, gather and scatter
// check every index value: a bad one reads or writes nothing and becomes a deferred error (no host read).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <climits>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include "core/determinism.hpp"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/deferred_error.cuh"
#include "kernels/cuda/runtime.hpp"
#include "kernels/index.hpp"
#include "kernels/index_plan.hpp"

namespace ember::kernels::cuda {
namespace {

namespace ip = index_plan;

struct MinOp {
  __device__ __forceinline__ long long operator()(long long a, long long b) const { return a < b ? a : b; }
};
struct MaxIntOp {
  __device__ __forceinline__ long long operator()(long long a, long long b) const { return a > b ? a : b; }
};

__device__ __forceinline__ int64_t grid_start() { return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t grid_step() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

__global__ void range_init_kernel(long long* r) {
  r[0] = LLONG_MAX;
  r[1] = LLONG_MIN;
}

template <class I>
__global__ void __launch_bounds__(kThreads) index_range_kernel(const I* index, ip::Layout l, long long* r) {
  __shared__ long long shared[kWarp];
  long long lo = LLONG_MAX, hi = LLONG_MIN;
  for (int64_t i = grid_start(); i < l.numel; i += grid_step()) {
    int64_t off[ip::kOps];
    ip::offsets(l, i, off);
    const auto v = static_cast<long long>(index[off[0]]);
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  lo = block_reduce(lo, MinOp{}, LLONG_MAX, shared);
  hi = block_reduce(hi, MaxIntOp{}, LLONG_MIN, shared);
  if (threadIdx.x == 0) {
    atomicMin(r, lo);
    atomicMax(r + 1, hi);
  }
}

__global__ void __launch_bounds__(kThreads) count_true_kernel(const bool* mask, ip::Layout l, unsigned long long* r) {
  __shared__ long long shared[kWarp];
  long long c = 0;
  for (int64_t i = grid_start(); i < l.numel; i += grid_step()) {
    int64_t off[ip::kOps];
    ip::offsets(l, i, off);
    c += mask[off[0]] ? 1 : 0;
  }
  c = block_reduce(c, SumOp{}, 0LL, shared);
  if (threadIdx.x == 0) atomicAdd(r, static_cast<unsigned long long>(c));
}

// A bad index (outside [0, n)) reads nothing: its outputs are 0 and its first element reports it.
template <class T, class I>
__global__ void __launch_bounds__(kThreads)
    index_select_kernel(T* out, const T* self, const I* index, ip::SelectGeom g, int64_t n, DeferredError* error,
                        int64_t dim, IndexOp op) {
  for (int64_t i = grid_start(); i < n; i += grid_step()) {
    bool first = false;
    const int64_t v = ip::select_index(g, index, i, &first);
    if (v >= 0 && v < g.n) {
      out[i] = self[ip::select_offset(g, v, i)];
    } else {
      out[i] = T(0);
      if (first) report_deferred_error(error, DeferredCode::kIndexOutOfRange, v, g.n, dim, static_cast<int64_t>(op));
    }
  }
}

// Where the index checks of gather and scatter report (the op, its dim and the size along it).
struct Report {
  DeferredError* slot;
  int64_t size, dim;
  IndexOp op;
  __device__ void operator()(int64_t bad) const {
    report_deferred_error(slot, DeferredCode::kIndexOutOfRange, bad, size, dim, static_cast<int64_t>(op));
  }
};

template <class T, class I>
__global__ void __launch_bounds__(kThreads)
    gather_kernel(T* out, const T* self, const I* index, ip::GatherPlan p, Report report) {
  for (int64_t e = grid_start(); e < p.elems.numel; e += grid_step()) {
    int64_t bad = 0;
    if (!ip::gather_element(out, self, index, p, e, &bad)) report(bad);
  }
}

template <class T, class I>
__global__ void __launch_bounds__(kThreads)
    scatter_lines_kernel(T* out, const T* src, const I* index, ip::ScatterPlan p, acc_t<T> alpha, bool add,
                         Report report) {
  for (int64_t line = grid_start(); line < p.lines.numel; line += grid_step()) {
    int64_t base[ip::kOps];
    ip::offsets(p.lines, line, base);
    int64_t bad = 0;
    if (!ip::scatter_line(out, src, index, base, p, alpha, add, &bad)) report(bad);
  }
}

// Native atomic adds of the SignedTypes (f16 and bf16 natively on sm_80+).
__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(half* p, float v) {
  atomicAdd(reinterpret_cast<__half*>(p), __float2half(v));
}
__device__ __forceinline__ void atomic_add(bfloat16* p, float v) {
  atomicAdd(reinterpret_cast<__nv_bfloat16*>(p), __float2bfloat16(v));
}
__device__ __forceinline__ void atomic_add(int32_t* p, int32_t v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(int64_t* p, int64_t v) {
  atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
}

template <class T, class I>
__global__ void __launch_bounds__(kThreads)
    scatter_elements_kernel(T* out, const T* src, const I* index, ip::ScatterPlan p, acc_t<T> alpha, bool add,
                            Report report) {
  for (int64_t e = grid_start(); e < p.elems.numel; e += grid_step()) {
    int64_t dst = 0, from = 0, bad = 0;
    if (!ip::scatter_element(p, index, e, &dst, &from, &bad)) {
      report(bad);
    } else if (add) {
      atomic_add(out + dst, alpha * static_cast<acc_t<T>>(src[from]));
    } else {
      out[dst] = src[from];
    }
  }
}

// Keys (destinations along dim; p.size for a bad value) and positions of the shared index, for the
// stable radix sort.
template <class I>
__global__ void __launch_bounds__(kThreads)
    sort_keys_kernel(const I* index, ip::ScatterPlan p, int64_t* keys, int64_t* pos, Report report) {
  for (int64_t j = grid_start(); j < p.k; j += grid_step()) {
    const auto v = static_cast<int64_t>(index[j * p.dim_stride[2]]);
    keys[j] = ip::sort_key(v, p.size);
    pos[j] = j;
    if (keys[j] != v) report(v);
  }
}

// Thread t = (sorted position t / lines, line t % lines): neighbouring threads take neighbouring lines.
template <class T>
__global__ void __launch_bounds__(kThreads)
    scatter_sorted_kernel(T* out, const T* src, const int64_t* keys, const int64_t* pos, ip::ScatterPlan p,
                          acc_t<T> alpha, bool add) {
  const int64_t lines = p.lines.numel, n = p.k * lines;
  for (int64_t t = grid_start(); t < n; t += grid_step()) {
    const int64_t i = t / lines, line = t - i * lines;
    int64_t base[ip::kOps];
    ip::offsets(p.lines, line, base);
    ip::scatter_sorted_run(out, src, keys, pos, i, base, p, alpha, add);
  }
}

// The smallest flat position of a value outside [lo, hi) other than skip (when has_skip), into *first
// (all ones when none); then one thread reports it.
__global__ void __launch_bounds__(kThreads)
    first_outside_kernel(const int64_t* index, int64_t n, int64_t lo, int64_t hi, bool has_skip, int64_t skip,
                         unsigned long long* first) {
  for (int64_t i = grid_start(); i < n; i += grid_step()) {
    const int64_t v = index[i];
    if ((v < lo || v >= hi) && !(has_skip && v == skip)) atomicMin(first, static_cast<unsigned long long>(i));
  }
}
__global__ void report_first_kernel(const int64_t* index, const unsigned long long* first, DeferredError* slot,
                                    RangeReport r) {
  if (*first == ~0ULL) return;
  const auto i = static_cast<int64_t>(*first);
  report_deferred_error(slot, r.code, index[i], r.a1, r.position ? i : r.a2, r.a3);
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    masked_fill_kernel(T* out, const T* self, const bool* mask, ip::Layout l, T value) {
  for (int64_t i = grid_start(); i < l.numel; i += grid_step()) {
    int64_t off[ip::kOps];
    ip::offsets(l, i, off);
    out[off[0]] = mask[off[2]] ? value : self[off[1]];
  }
}

__global__ void __launch_bounds__(kThreads) mask_flags_kernel(const bool* mask, ip::Layout l, int64_t* flags) {
  for (int64_t i = grid_start(); i < l.numel; i += grid_step()) {
    int64_t off[ip::kOps];
    ip::offsets(l, i, off);
    flags[i] = mask[off[0]] ? 1 : 0;
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    masked_select_kernel(T* out, const T* self, const bool* mask, ip::Layout l, const int64_t* pos) {
  for (int64_t i = grid_start(); i < l.numel; i += grid_step()) {
    int64_t off[ip::kOps];
    ip::offsets(l, i, off);
    if (mask[off[0]]) out[pos[i]] = self[off[1]];
  }
}

// ---- launchers ----

unsigned grid(int64_t work) { return blocks_for(work, kThreads); }

// A device buffer of n int64 (or bytes) from the caching allocator, ordered on the device's stream.
Tensor scratch(int64_t n, DType dt, Device d) { return make_tensor({std::max<int64_t>(n, 1)}, dt, d); }

}  // namespace

std::pair<int64_t, int64_t> index_range(const Tensor& index) {
  const int dev = device_index(index.device(), "index_range");
  DeviceGuard guard(dev);
  cudaStream_t stream = current_stream(dev);
  ip::Layout l = ip::make_layout(index.shape(), {index.strides()});
  Tensor r = scratch(2, kI64, index.device());
  auto* rp = dptr<long long>(r);
  range_init_kernel<<<1, 1, 0, stream>>>(rp);
  EMBER_CUDA_CHECK(cudaGetLastError());
  visit_dtype<IndexTypes>(index.dtype(), "[index_range]", [&]<class I>() {
    const auto blocks = static_cast<unsigned>(ip::reduce_blocks(l.numel, kThreads));
    index_range_kernel<I><<<blocks, kThreads, 0, stream>>>(dptr<const I>(index), l, rp);
    EMBER_CUDA_CHECK(cudaGetLastError());
  });
  long long host[2];
  copy_bytes(host, kCPU, rp, index.device(), sizeof(host));
  return {host[0], host[1]};
}

void index_select(const Tensor& out, const Tensor& self, int64_t dim, const Tensor& index, IndexOp op) {
  if (out.numel() == 0) return;
  const int dev = device_index(out.device(), "index_select");
  DeviceGuard guard(dev);
  const ip::SelectGeom g = ip::plan_index_select(self, dim, index);
  const int64_t n = g.numel();
  DeferredError* error = deferred_error_slot(dev);
  visit_dtype<AllTypes>(self.dtype(), "[index_select]", [&]<class T>() {
    visit_dtype<IndexTypes>(index.dtype(), "[index_select]", [&]<class I>() {
      index_select_kernel<T, I><<<grid(n), kThreads, 0, current_stream(dev)>>>(
          dptr<T>(out), dptr<const T>(self), dptr<const I>(index), g, n, error, dim, op);
      EMBER_CUDA_CHECK(cudaGetLastError());
    });
  });
}

void gather(const Tensor& out, const Tensor& self, int64_t dim, const Tensor& index, IndexOp op) {
  if (index.numel() == 0) return;
  const int dev = device_index(out.device(), "gather");
  DeviceGuard guard(dev);
  const ip::GatherPlan p = ip::plan_gather(out, self, dim, index);
  const Report report{deferred_error_slot(dev), p.size, dim, op};
  visit_dtype<AllTypes>(self.dtype(), "[gather]", [&]<class T>() {
    visit_dtype<IndexTypes>(index.dtype(), "[gather]", [&]<class I>() {
      gather_kernel<T, I><<<grid(p.elems.numel), kThreads, 0, current_stream(dev)>>>(dptr<T>(out), dptr<const T>(self),
                                                                                     dptr<const I>(index), p, report);
      EMBER_CUDA_CHECK(cudaGetLastError());
    });
  });
}

namespace {
// The shared index sorted stably by destination: keys and positions in `buf` at plan_sort_buffers'
// offsets (the outputs at keys_out and pos_out).
template <class I>
Tensor sort_shared_index(const Tensor& index, const ip::ScatterPlan& p, cudaStream_t stream, const Report& report) {
  const ip::SortBuffers sb = ip::plan_sort_buffers(p.k);
  Tensor buf = scratch(sb.total, kI64, index.device());
  int64_t* b = dptr<int64_t>(buf);
  sort_keys_kernel<I>
      <<<grid(p.k), kThreads, 0, stream>>>(dptr<const I>(index), p, b + sb.keys_in, b + sb.pos_in, report);
  EMBER_CUDA_CHECK(cudaGetLastError());
  // Keys are in [0, size]: sorting them as unsigned over key_bits bits orders them as signed.
  auto* keys_in = reinterpret_cast<unsigned long long*>(b + sb.keys_in);
  auto* keys_out = reinterpret_cast<unsigned long long*>(b + sb.keys_out);
  size_t bytes = 0;
  EMBER_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys_in, keys_out, b + sb.pos_in, b + sb.pos_out,
                                                   p.k, 0, p.key_bits, stream));
  Tensor temp = scratch(static_cast<int64_t>(bytes), kU8, index.device());
  EMBER_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(dptr<void>(temp), bytes, keys_in, keys_out, b + sb.pos_in,
                                                   b + sb.pos_out, p.k, 0, p.key_bits, stream));
  return buf;
}
}  // namespace

void scatter(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, ScatterMode mode,
             const Scalar& alpha, IndexOp op) {
  if (index.numel() == 0) return;
  const int dev = device_index(out.device(), "scatter");
  DeviceGuard guard(dev);
  cudaStream_t stream = current_stream(dev);
  const bool add = mode == ScatterMode::Add;
  DeferredError* slot = deferred_error_slot(dev);
  visit_dtype<AllTypes>(out.dtype(), "[scatter]", [&]<class T>() {
    constexpr bool kAtomics = contains_v<T, SignedTypes>;
    const ip::ScatterPlan p = ip::plan_scatter(out, dim, index, src, mode, deterministic(), kAtomics);
    const Report report{slot, p.size, dim, op};
    const acc_t<T> a = alpha.to<acc_t<T>>();
    visit_dtype<IndexTypes>(index.dtype(), "[scatter]", [&]<class I>() {
      if constexpr (kAtomics) {
        if (p.kernel == ip::ScatterKernel::Elements) {
          scatter_elements_kernel<T, I><<<grid(p.elems.numel), kThreads, 0, stream>>>(
              dptr<T>(out), dptr<const T>(src), dptr<const I>(index), p, a, add, report);
          EMBER_CUDA_CHECK(cudaGetLastError());
          return;
        }
        if (p.kernel == ip::ScatterKernel::SortedRows) {
          Tensor buf = sort_shared_index<I>(index, p, stream, report);
          const ip::SortBuffers sb = ip::plan_sort_buffers(p.k);
          const int64_t* b = dptr<const int64_t>(buf);
          scatter_sorted_kernel<T><<<grid(p.k * p.lines.numel), kThreads, 0, stream>>>(
              dptr<T>(out), dptr<const T>(src), b + sb.keys_out, b + sb.pos_out, p, a, add);
          EMBER_CUDA_CHECK(cudaGetLastError());
          return;
        }
      }
      scatter_lines_kernel<T, I><<<grid(p.lines.numel), kThreads, 0, stream>>>(dptr<T>(out), dptr<const T>(src),
                                                                               dptr<const I>(index), p, a, add, report);
      EMBER_CUDA_CHECK(cudaGetLastError());
    });
  });
}

void check_index_range(const Tensor& index, int64_t lo, int64_t hi, std::optional<int64_t> skip,
                       const RangeReport& report) {
  if (index.numel() == 0) return;
  const int dev = device_index(index.device(), "check_index_range");
  DeviceGuard guard(dev);
  cudaStream_t stream = current_stream(dev);
  Tensor first = scratch(1, kI64, index.device());
  auto* f = dptr<unsigned long long>(first);
  EMBER_CUDA_CHECK(cudaMemsetAsync(f, 0xFF, sizeof(*f), stream));
  const int64_t* ix = dptr<const int64_t>(index);
  first_outside_kernel<<<grid(index.numel()), kThreads, 0, stream>>>(ix, index.numel(), lo, hi, skip.has_value(),
                                                                     skip.value_or(0), f);
  EMBER_CUDA_CHECK(cudaGetLastError());
  report_first_kernel<<<1, 1, 0, stream>>>(ix, f, deferred_error_slot(dev), report);
  EMBER_CUDA_CHECK(cudaGetLastError());
}

void masked_fill(const Tensor& out, const Tensor& self, const Tensor& mask, const Scalar& value) {
  if (out.numel() == 0) return;
  const int dev = device_index(out.device(), "masked_fill");
  DeviceGuard guard(dev);
  const ip::Layout l = ip::make_layout(out.shape(), {out.strides(), self.strides(), mask.strides()});
  visit_dtype<AllTypes>(out.dtype(), "[masked_fill]", [&]<class T>() {
    masked_fill_kernel<T><<<grid(l.numel), kThreads, 0, current_stream(dev)>>>(
        dptr<T>(out), dptr<const T>(self), dptr<const bool>(mask), l, value.to<T>());
    EMBER_CUDA_CHECK(cudaGetLastError());
  });
}

int64_t count_true(const Tensor& mask) {
  if (mask.numel() == 0) return 0;
  const int dev = device_index(mask.device(), "count_true");
  DeviceGuard guard(dev);
  cudaStream_t stream = current_stream(dev);
  const ip::Layout l = ip::make_layout(mask.shape(), {mask.strides()});
  Tensor r = scratch(1, kI64, mask.device());
  auto* rp = dptr<unsigned long long>(r);
  EMBER_CUDA_CHECK(cudaMemsetAsync(rp, 0, sizeof(*rp), stream));
  const auto blocks = static_cast<unsigned>(ip::reduce_blocks(l.numel, kThreads));
  count_true_kernel<<<blocks, kThreads, 0, stream>>>(dptr<const bool>(mask), l, rp);
  EMBER_CUDA_CHECK(cudaGetLastError());
  unsigned long long host = 0;
  copy_bytes(&host, kCPU, rp, mask.device(), sizeof(host));
  return static_cast<int64_t>(host);
}

void masked_select(const Tensor& out, const Tensor& self, const Tensor& mask) {
  if (out.numel() == 0) return;
  const int dev = device_index(out.device(), "masked_select");
  DeviceGuard guard(dev);
  cudaStream_t stream = current_stream(dev);
  const ip::Layout l = ip::make_layout(mask.shape(), {mask.strides(), self.strides()});
  const int64_t n = l.numel;
  Tensor flags = scratch(2 * n, kI64, mask.device());
  int64_t* f = dptr<int64_t>(flags);
  mask_flags_kernel<<<grid(n), kThreads, 0, stream>>>(dptr<const bool>(mask), l, f);
  EMBER_CUDA_CHECK(cudaGetLastError());
  size_t bytes = 0;
  EMBER_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, bytes, f, f + n, n, stream));
  Tensor temp = scratch(static_cast<int64_t>(bytes), kU8, mask.device());
  EMBER_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(dptr<void>(temp), bytes, f, f + n, n, stream));
  visit_dtype<AllTypes>(self.dtype(), "[masked_select]", [&]<class T>() {
    masked_select_kernel<T>
        <<<grid(n), kThreads, 0, stream>>>(dptr<T>(out), dptr<const T>(self), dptr<const bool>(mask), l, f + n);
    EMBER_CUDA_CHECK(cudaGetLastError());
  });
}

}  // namespace ember::kernels::cuda
