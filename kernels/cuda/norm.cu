// CUDA normalisation kernels: layer_norm (and its fused first-order backward, with the weight's and
// bias's gradients summed over rows in fixed-order chunks) and rms_norm with a warp or a block per row,
// batch_norm's per-channel statistics, apply and backward over [N, C, S].
// Why: the statistics accumulate in f32 (f64 for f64) in a fixed order (warp/block trees, then chunk
// partials merged in order by a second kernel), so results are deterministic without float atomics.
// Rows are centred by a shifted two-pass mean (as the CPU's hi + lo split, a large mean keeps f32
// precision). The per-element formulas are kernels/nn_math.hpp, shared with kernels/cpu/norm.cpp; the
// launch shapes are kernels/nn_plan.hpp (CPU-tested).
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/loops.cuh"
#include "kernels/nn.hpp"
#include "kernels/nn_math.hpp"
#include "kernels/nn_plan.hpp"

namespace ember::kernels::cuda {
namespace {

__device__ __forceinline__ float inv_sqrt(float v) { return 1.0f / sqrtf(v); }
__device__ __forceinline__ double inv_sqrt(double v) { return 1.0 / sqrt(v); }

// The threads that share a row: a warp (blockDim.x / 32 rows per block) or the whole block.
template <bool kBlock>
struct Group {
  static __device__ __forceinline__ int size() { return kBlock ? blockDim.x : kWarp; }
  static __device__ __forceinline__ int lane() { return kBlock ? threadIdx.x : threadIdx.x % kWarp; }
  static __device__ __forceinline__ int64_t first_row() {
    return kBlock ? blockIdx.x : static_cast<int64_t>(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp;
  }
  static __device__ __forceinline__ int64_t row_stride() {
    return kBlock ? gridDim.x : static_cast<int64_t>(gridDim.x) * (blockDim.x / kWarp);
  }
  // Every thread of the group gets the sum (the row loop is uniform over the group).
  template <class A>
  static __device__ __forceinline__ A sum(A v, A* shared) {
    if constexpr (kBlock)
      return block_reduce(v, SumOp{}, A(0), shared);
    else
      return warp_reduce(v, SumOp{});
  }
};

template <class A>
struct RowStats {
  A hi, lo, rstd;
};

// A row's mean (hi + lo, shifted by the row's first element so a large mean does not cancel) and rstd
// from the biased variance of the centred values.
template <bool kBlock, class T, class A = acc_t<T>>
__device__ __forceinline__ RowStats<A> row_stats(const T* x, int64_t cols, A eps, A* shared) {
  using G = Group<kBlock>;
  const int lane = G::lane(), n = G::size();
  const A k = load(x[0]);
  A s = 0;
  for (int64_t j = lane; j < cols; j += n) s += load(x[j]) - k;
  const auto [hi, lo] = shifted_mean(k, G::sum(s, shared), cols);
  A ss = 0;
  for (int64_t j = lane; j < cols; j += n) {
    const A d = (load(x[j]) - hi) - lo;
    ss += d * d;
  }
  const A var = G::sum(ss, shared) / static_cast<A>(cols);
  return {hi, lo, inv_sqrt(var + eps)};
}

// ------------------------------------------------------------------------------------ row norms

template <class T, bool kBlock>
__global__ void __launch_bounds__(kBlock ? kRowMaxThreads : kRowWarpThreads)
    layer_norm_kernel(T* out, const T* in, const acc_t<T>* w, const acc_t<T>* b, int64_t rows, int64_t cols,
                      acc_t<T> eps) {
  using A = acc_t<T>;
  using G = Group<kBlock>;
  __shared__ A shared[kWarp];
  for (int64_t r = G::first_row(); r < rows; r += G::row_stride()) {
    const T* x = in + r * cols;
    T* y = out + r * cols;
    const RowStats<A> st = row_stats<kBlock>(x, cols, eps, shared);
    for (int64_t j = G::lane(); j < cols; j += G::size()) {
      A v = normalize_value(load(x[j]), st.hi, st.lo, st.rstd);
      if (w) v = v * w[j];
      if (b) v = v + b[j];
      y[j] = convert_from<T>(v);
    }
  }
}

// The fused first-order backward of one row (see layer_norm_dx); writes the row's statistics {hi, lo,
// rstd} to stats[3 r ...] when asked, for the weight's and bias's gradients (the kernels below).
template <class T, bool kBlock>
__global__ void __launch_bounds__(kBlock ? kRowMaxThreads : kRowWarpThreads)
    layer_norm_backward_kernel(T* dx, acc_t<T>* stats, const T* in, const T* grad_out, const acc_t<T>* w, int64_t rows,
                               int64_t cols, acc_t<T> eps) {
  using A = acc_t<T>;
  using G = Group<kBlock>;
  __shared__ A shared[kWarp];
  for (int64_t r = G::first_row(); r < rows; r += G::row_stride()) {
    const T* x = in + r * cols;
    const T* g = grad_out + r * cols;
    const RowStats<A> st = row_stats<kBlock>(x, cols, eps, shared);
    A sgx = 0, sg = 0;
    for (int64_t j = G::lane(); j < cols; j += G::size()) {
      const A xhat = normalize_value(load(x[j]), st.hi, st.lo, st.rstd);
      const A gw = w ? load(g[j]) * w[j] : load(g[j]);
      sgx += gw * xhat;
      sg += gw;
    }
    const A mgx = G::sum(sgx, shared) / static_cast<A>(cols);
    const A mg = G::sum(sg, shared) / static_cast<A>(cols);
    for (int64_t j = G::lane(); j < cols; j += G::size()) {
      const A xhat = normalize_value(load(x[j]), st.hi, st.lo, st.rstd);
      const A gw = w ? load(g[j]) * w[j] : load(g[j]);
      dx[r * cols + j] = convert_from<T>(layer_norm_dx(st.rstd, gw, xhat, mgx, mg));
    }
    if (stats && G::lane() == 0) stats[3 * r] = st.hi, stats[3 * r + 1] = st.lo, stats[3 * r + 2] = st.rstd;
  }
}

// Block (tile, chunk) of kParamTileCols x kParamTileRows threads (nn_plan.hpp): thread (tx, ty) sums
// g * xhat and g of column 32 tile + tx over every kParamTileRows-th row of the chunk from its ty; the
// block adds its row threads in order and writes partial[chunk][0][col] and partial[chunk][1][col].
template <class T>
__global__ void __launch_bounds__(kParamTileCols* kParamTileRows)
    layer_norm_param_partials_kernel(acc_t<T>* __restrict partial, const T* __restrict in, const T* __restrict grad_out,
                                     const acc_t<T>* __restrict stats, int64_t rows, int64_t cols, int64_t chunk_rows) {
  using A = acc_t<T>;
  __shared__ A sw[kParamTileRows][kParamTileCols], sb[kParamTileRows][kParamTileCols];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kParamTileCols + tx, chunk = blockIdx.y;
  const int64_t begin = chunk * chunk_rows, end = begin + chunk_rows < rows ? begin + chunk_rows : rows;
  A aw = 0, ab = 0;
  if (col < cols)
    for (int64_t r = begin + ty; r < end; r += kParamTileRows) {
      const A* st = stats + 3 * r;
      const A g = load(grad_out[r * cols + col]);
      aw += g * normalize_value(load(in[r * cols + col]), st[0], st[1], st[2]);
      ab += g;
    }
  sw[ty][tx] = aw;
  sb[ty][tx] = ab;
  __syncthreads();
  if (ty == 0 && col < cols) {
    for (int q = 1; q < kParamTileRows; ++q) aw += sw[q][tx], ab += sb[q][tx];
    partial[chunk * 2 * cols + col] = aw;
    partial[chunk * 2 * cols + cols + col] = ab;
  }
}

// Each column's chunk partials added in chunk order into the weight's and the bias's gradients.
template <class A>
__global__ void __launch_bounds__(256)
    layer_norm_param_sums_kernel(A* __restrict gw, A* __restrict gb, const A* __restrict partial, int64_t chunks,
                                 int64_t cols) {
  for (int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; col < cols;
       col += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    A w = 0, b = 0;
    for (int64_t c = 0; c < chunks; ++c) w += partial[c * 2 * cols + col], b += partial[c * 2 * cols + cols + col];
    if (gw) gw[col] = w;
    if (gb) gb[col] = b;
  }
}

template <class T, bool kBlock>
__global__ void __launch_bounds__(kBlock ? kRowMaxThreads : kRowWarpThreads)
    rms_norm_kernel(T* out, const T* in, const acc_t<T>* w, int64_t rows, int64_t cols, acc_t<T> eps) {
  using A = acc_t<T>;
  using G = Group<kBlock>;
  __shared__ A shared[kWarp];
  for (int64_t r = G::first_row(); r < rows; r += G::row_stride()) {
    const T* x = in + r * cols;
    T* y = out + r * cols;
    A ss = 0;
    for (int64_t j = G::lane(); j < cols; j += G::size()) {
      const A v = load(x[j]);
      ss += v * v;
    }
    const A rr = inv_sqrt(G::sum(ss, shared) / static_cast<A>(cols) + eps);
    for (int64_t j = G::lane(); j < cols; j += G::size()) {
      const A v = load(x[j]) * rr;
      y[j] = convert_from<T>(w ? v * w[j] : v);
    }
  }
}

// ----------------------------------------------------------------------------------- batch_norm
// Element e of a channel's count = N * S values is (i, j) = (e / S, e % S).

// Chan's merge over the block; thread 0 gets the result. Three shared arrays of 32 (the struct has
// default member initialisers, which __shared__ does not take).
template <class A>
__device__ Welford<A> block_welford(Welford<A> v, A* sn, A* sm, A* s2) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  for (int o = kWarp / 2; o > 0; o /= 2) {
    Welford<A> other;
    other.n = __shfl_xor_sync(0xffffffffu, v.n, o);
    other.mean = __shfl_xor_sync(0xffffffffu, v.mean, o);
    other.m2 = __shfl_xor_sync(0xffffffffu, v.m2, o);
    v = welford_merge(v, other);
  }
  __syncthreads();  // an earlier call may still read the arrays
  if (lane == 0) sn[warp] = v.n, sm[warp] = v.mean, s2[warp] = v.m2;
  __syncthreads();
  if (warp == 0) {
    v = lane < warps ? Welford<A>{sn[lane], sm[lane], s2[lane]} : Welford<A>{};
    for (int o = kWarp / 2; o > 0; o /= 2) {
      Welford<A> other;
      other.n = __shfl_xor_sync(0xffffffffu, v.n, o);
      other.mean = __shfl_xor_sync(0xffffffffu, v.mean, o);
      other.m2 = __shfl_xor_sync(0xffffffffu, v.m2, o);
      v = welford_merge(v, other);
    }
  }
  return v;
}

// Partials (n, mean, m2) of chunk blockIdx.x of each channel.
template <class T>
__global__ void __launch_bounds__(256)
    bn_stats_partial_kernel(double* ws, const T* in, int64_t c, int64_t s, int64_t sn, int64_t sc, int64_t ss,
                            int64_t count, int64_t chunk_len, int64_t chunks) {
  using A = acc_t<T>;
  __shared__ A sh_n[kWarp], sh_mean[kWarp], sh_m2[kWarp];
  const int64_t begin = blockIdx.x * chunk_len, end = nn_min(begin + chunk_len, count);
  for (int64_t ch = blockIdx.y; ch < c; ch += gridDim.y) {
    const T* x = in + ch * sc;
    Welford<A> v;
    for (int64_t e = begin + threadIdx.x; e < end; e += blockDim.x) {
      const int64_t i = e / s;
      v = welford_add(v, static_cast<A>(load(x[i * sn + (e - i * s) * ss])));
    }
    v = block_welford(v, sh_n, sh_mean, sh_m2);
    if (threadIdx.x == 0) {
      double* o = ws + (ch * chunks + blockIdx.x) * 3;
      o[0] = static_cast<double>(v.n), o[1] = static_cast<double>(v.mean), o[2] = static_cast<double>(v.m2);
    }
  }
}

// Each channel's chunks merged in order, in double: the mean and the biased variance (NaN when empty).
__global__ void __launch_bounds__(256)
    bn_stats_final_kernel(double* mean, double* var, const double* ws, int64_t c, int64_t chunks) {
  for (int64_t ch = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; ch < c;
       ch += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    Welford<double> acc;
    for (int64_t k = 0; k < chunks; ++k) {
      const double* p = ws + (ch * chunks + k) * 3;
      acc = welford_merge(acc, Welford<double>{p[0], p[1], p[2]});
    }
    mean[ch] = acc.n > 0 ? acc.mean : nan("");
    var[ch] = acc.n > 0 ? acc.m2 / acc.n : nan("");
  }
}

// out (contiguous [N, C, S]) <- in * scale[c] + shift[c], in read through its strides.
template <class T>
__global__ void __launch_bounds__(256)
    bn_apply_kernel(T* out, const T* in, const double* scale, const double* shift, int64_t c, int64_t s, int64_t sn,
                    int64_t sc, int64_t ss, int64_t total) {
  using A = acc_t<T>;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = e % s, q = e / s, ch = q % c, i = q / c;
    const A v = load(in[i * sn + ch * sc + j * ss]);
    out[e] = convert_from<T>(v * static_cast<A>(scale[ch]) + static_cast<A>(shift[ch]));
  }
}

// Partial sums of g and g * (x - mean) of chunk blockIdx.x of each channel (x, g contiguous).
template <class T>
__global__ void __launch_bounds__(256)
    bn_backward_partial_kernel(double* ws, const T* in, const T* grad_out, const double* mean, int64_t c, int64_t s,
                               int64_t count, int64_t chunk_len, int64_t chunks) {
  using A = acc_t<T>;
  __shared__ A shared[kWarp];
  const int64_t begin = blockIdx.x * chunk_len, end = nn_min(begin + chunk_len, count);
  for (int64_t ch = blockIdx.y; ch < c; ch += gridDim.y) {
    const A m = static_cast<A>(mean[ch]);
    A sg = 0, sgx = 0;
    for (int64_t e = begin + threadIdx.x; e < end; e += blockDim.x) {
      const int64_t i = e / s, off = (i * c + ch) * s + (e - i * s);
      const A g = load(grad_out[off]);
      sg += g;
      sgx += g * (load(in[off]) - m);
    }
    sg = block_reduce(sg, SumOp{}, A(0), shared);
    sgx = block_reduce(sgx, SumOp{}, A(0), shared);
    if (threadIdx.x == 0) {
      double* o = ws + (ch * chunks + blockIdx.x) * 2;
      o[0] = static_cast<double>(sg), o[1] = static_cast<double>(sgx);
    }
  }
}

// Each channel's sums (chunks in order, in double) and its coefficients (k, bx, d) into coef[3 c].
__global__ void __launch_bounds__(256)
    bn_backward_final_kernel(double* sum_g, double* sum_gxm, double* coef, const double* ws, const double* mean,
                             const double* rstd, const double* scale, int64_t c, int64_t chunks, double count,
                             bool training) {
  for (int64_t ch = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; ch < c;
       ch += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    double tg = 0, tgx = 0;
    for (int64_t k = 0; k < chunks; ++k) tg += ws[(ch * chunks + k) * 2], tgx += ws[(ch * chunks + k) * 2 + 1];
    sum_g[ch] = tg;
    sum_gxm[ch] = tgx;
    const BnGradCoeffs f = bn_grad_coeffs(scale[ch], rstd[ch], mean[ch], tg, tgx, count, training);
    coef[ch * 3] = f.k, coef[ch * 3 + 1] = f.bx, coef[ch * 3 + 2] = f.d;
  }
}

template <class T>
__global__ void __launch_bounds__(256)
    bn_backward_apply_kernel(T* dx, const T* in, const T* grad_out, const double* coef, int64_t c, int64_t s,
                             int64_t total) {
  using A = acc_t<T>;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const double* f = coef + (e / s % c) * 3;
    const A k = static_cast<A>(f[0]), bx = static_cast<A>(f[1]), d = static_cast<A>(f[2]);
    dx[e] = convert_from<T>(k * load(grad_out[e]) + bx * load(in[e]) + d);
  }
}

}  // namespace

// Launches the block-per-row or warp-per-row instance of a row kernel, as plan_rows decides (within
// the row kernels' launch bounds, which keep their registers low enough for the block size).
#define EMBER_LAUNCH_ROWS(kernel, T, rows, cols, ...)                                \
  do {                                                                               \
    const RowPlan rp = plan_rows(rows, cols);                                        \
    const auto blocks = static_cast<unsigned>(rp.blocks);                            \
    if (rp.block_per_row)                                                            \
      kernel<T, true><<<blocks, rp.threads, 0, current_stream(dev)>>>(__VA_ARGS__);  \
    else                                                                             \
      kernel<T, false><<<blocks, rp.threads, 0, current_stream(dev)>>>(__VA_ARGS__); \
    EMBER_CUDA_CHECK(cudaGetLastError());                                            \
  } while (0)

void layer_norm(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias, double eps) {
  const int64_t rows = in.size(0), cols = in.size(1);
  if (rows == 0 || cols == 0) return;
  const int dev = device_index(in.device(), "layer_norm");
  DeviceGuard guard(dev);
  visit_dtype<FloatTypes>(in.dtype(), "[layer_norm]", [&]<class T>() {
    using A = acc_t<T>;
    EMBER_LAUNCH_ROWS(layer_norm_kernel, T, rows, cols, dptr<T>(out), dptr<const T>(in), dptr<const A>(weight),
                      dptr<const A>(bias), rows, cols, static_cast<A>(eps));
  });
}

void layer_norm_backward(const Tensor& grad_in, const Tensor& grad_weight, const Tensor& grad_bias, const Tensor& in,
                         const Tensor& grad_out, const Tensor& weight, double eps) {
  const int64_t rows = in.size(0), cols = in.size(1);
  if (cols == 0) return;
  const bool params = grad_weight.defined() || grad_bias.defined();
  if (rows == 0) {  // sums over no rows (queued fills)
    for (const Tensor* t : {&grad_weight, &grad_bias})
      if (t->defined()) Tensor(*t).zero_();
    return;
  }
  const int dev = device_index(in.device(), "layer_norm_backward");
  DeviceGuard guard(dev);
  cudaStream_t stream = current_stream(dev);
  visit_dtype<FloatTypes>(in.dtype(), "[layer_norm_backward]", [&]<class T>() {
    using A = acc_t<T>;
    Tensor stats = params ? make_tensor({rows, 3}, dtype_of<A>(), in.device()) : Tensor();
    EMBER_LAUNCH_ROWS(layer_norm_backward_kernel, T, rows, cols, dptr<T>(grad_in), dptr<A>(stats), dptr<const T>(in),
                      dptr<const T>(grad_out), dptr<const A>(weight), rows, cols, static_cast<A>(eps));
    if (!params) return;
    const LayerNormParamPlan pp = plan_layer_norm_params(rows, cols);
    Tensor partial = make_tensor({pp.workspace}, dtype_of<A>(), in.device());
    const dim3 grid(static_cast<unsigned>(pp.tiles), static_cast<unsigned>(pp.chunks));
    layer_norm_param_partials_kernel<T><<<grid, dim3(kParamTileCols, kParamTileRows), 0, stream>>>(
        dptr<A>(partial), dptr<const T>(in), dptr<const T>(grad_out), dptr<const A>(stats), rows, cols, pp.chunk_rows);
    EMBER_CUDA_CHECK(cudaGetLastError());
    const FlatPlan fp = plan_flat(cols);
    layer_norm_param_sums_kernel<A><<<static_cast<unsigned>(fp.blocks), fp.threads, 0, stream>>>(
        dptr<A>(grad_weight), dptr<A>(grad_bias), dptr<const A>(partial), pp.chunks, cols);
    EMBER_CUDA_CHECK(cudaGetLastError());
  });
}

void rms_norm(const Tensor& out, const Tensor& in, const Tensor& weight, double eps) {
  const int64_t rows = in.size(0), cols = in.size(1);
  if (rows == 0 || cols == 0) return;
  const int dev = device_index(in.device(), "rms_norm");
  DeviceGuard guard(dev);
  visit_dtype<FloatTypes>(in.dtype(), "[rms_norm]", [&]<class T>() {
    using A = acc_t<T>;
    EMBER_LAUNCH_ROWS(rms_norm_kernel, T, rows, cols, dptr<T>(out), dptr<const T>(in), dptr<const A>(weight), rows,
                      cols, static_cast<A>(eps));
  });
}

#undef EMBER_LAUNCH_ROWS

void batch_norm_stats(const Tensor& mean, const Tensor& var, const Tensor& in) {
  const int64_t c = in.size(1), s = in.size(2), count = in.size(0) * s;
  if (c == 0) return;
  const int dev = device_index(in.device(), "batch_norm");
  DeviceGuard guard(dev);
  cudaStream_t stream = current_stream(dev);
  const ChannelPlan p = plan_channels(c, count, 3);
  Tensor ws = make_tensor({p.workspace}, kF64, in.device());
  visit_dtype<FloatTypes>(in.dtype(), "[batch_norm]", [&]<class T>() {
    bn_stats_partial_kernel<T>
        <<<dim3(static_cast<unsigned>(p.grid_x), static_cast<unsigned>(p.grid_y)), p.threads, 0, stream>>>(
            dptr<double>(ws), dptr<const T>(in), c, s, in.stride(0), in.stride(1), in.stride(2), count, p.chunk_len,
            p.chunks);
    EMBER_CUDA_CHECK(cudaGetLastError());
  });
  const FlatPlan f = plan_flat(c);
  bn_stats_final_kernel<<<static_cast<unsigned>(f.blocks), f.threads, 0, stream>>>(
      dptr<double>(mean), dptr<double>(var), dptr<const double>(ws), c, p.chunks);
  EMBER_CUDA_CHECK(cudaGetLastError());
}

void batch_norm_apply(const Tensor& out, const Tensor& in, const Tensor& scale, const Tensor& shift) {
  const int64_t c = in.size(1), s = in.size(2), total = out.numel();
  if (total == 0) return;
  const int dev = device_index(in.device(), "batch_norm");
  DeviceGuard guard(dev);
  Tensor sc = scale.contiguous(), sh = shift.contiguous();
  const FlatPlan f = plan_flat(total);
  visit_dtype<FloatTypes>(in.dtype(), "[batch_norm]", [&]<class T>() {
    bn_apply_kernel<T><<<static_cast<unsigned>(f.blocks), f.threads, 0, current_stream(dev)>>>(
        dptr<T>(out), dptr<const T>(in), dptr<const double>(sc), dptr<const double>(sh), c, s, in.stride(0),
        in.stride(1), in.stride(2), total);
    EMBER_CUDA_CHECK(cudaGetLastError());
  });
}

void batch_norm_backward(const Tensor& grad_in, const Tensor& sum_g, const Tensor& sum_gxm, const Tensor& in,
                         const Tensor& grad_out, const Tensor& mean, const Tensor& rstd, const Tensor& scale,
                         bool training) {
  const int64_t c = in.size(1), s = in.size(2), count = in.size(0) * s;
  if (c == 0) return;
  const int dev = device_index(in.device(), "batch_norm_backward");
  DeviceGuard guard(dev);
  cudaStream_t stream = current_stream(dev);
  Tensor mu = mean.contiguous(), rs = rstd.contiguous(), sc = scale.contiguous();
  const ChannelPlan p = plan_channels(c, count, 2);
  Tensor ws = make_tensor({p.workspace}, kF64, in.device());
  Tensor coef = make_tensor({3 * c}, kF64, in.device());
  visit_dtype<FloatTypes>(in.dtype(), "[batch_norm_backward]", [&]<class T>() {
    bn_backward_partial_kernel<T>
        <<<dim3(static_cast<unsigned>(p.grid_x), static_cast<unsigned>(p.grid_y)), p.threads, 0, stream>>>(
            dptr<double>(ws), dptr<const T>(in), dptr<const T>(grad_out), dptr<const double>(mu), c, s, count,
            p.chunk_len, p.chunks);
    EMBER_CUDA_CHECK(cudaGetLastError());
    const FlatPlan fc = plan_flat(c);
    bn_backward_final_kernel<<<static_cast<unsigned>(fc.blocks), fc.threads, 0, stream>>>(
        dptr<double>(sum_g), dptr<double>(sum_gxm), dptr<double>(coef), dptr<const double>(ws), dptr<const double>(mu),
        dptr<const double>(rs), dptr<const double>(sc), c, p.chunks, static_cast<double>(count), training);
    EMBER_CUDA_CHECK(cudaGetLastError());
    if (grad_in.numel() == 0) return;
    const FlatPlan f = plan_flat(grad_in.numel());
    bn_backward_apply_kernel<T><<<static_cast<unsigned>(f.blocks), f.threads, 0, stream>>>(
        dptr<T>(grad_in), dptr<const T>(in), dptr<const T>(grad_out), dptr<const double>(coef), c, s, grad_in.numel());
    EMBER_CUDA_CHECK(cudaGetLastError());
  });
}

}  // namespace ember::kernels::cuda
