// CUDA 2-d pooling: max (with i64 indices flat within each plane), average and adaptive average.
// Why custom kernels: one thread per output element reads its window through the input's strides
// (any layout, no copy); the backwards run one thread per input element that gathers from the windows
// that can hold it, so there are no atomics (deterministic bits) and each sum runs in the CPU
// kernel's order. The window arithmetic is kernels/nn_math.hpp, shared with kernels/cpu/pool.cpp; the
// geometry and grids come from kernels/nn_plan.hpp (CPU-tested).
#include "kernels/cuda/loops.cuh"
#include "kernels/nn.hpp"
#include "kernels/nn_math.hpp"
#include "kernels/nn_plan.hpp"

namespace ember::kernels::cuda {
namespace {

// A flat index of [planes, h, w] split into its plane, row and column.
struct Pos {
  int64_t plane, y, x;
};
__device__ __forceinline__ Pos split(int64_t e, int64_t h, int64_t w) {
  const int64_t x = e % w;
  e /= w;
  return {e / h, e % h, x};
}
// Where plane `plane` of the strided operand (s0, s1) starts.
__device__ __forceinline__ int64_t plane_offset(const PoolGeom& g, int64_t plane) {
  return plane / g.c * g.s0 + plane % g.c * g.s1;
}

#define EMBER_GRID_STRIDE(e, total)                                                          \
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < (total); \
       e += static_cast<int64_t>(gridDim.x) * blockDim.x)

// ------------------------------------------------------------------------------------ forwards

// Ties keep the first position; a NaN wins and the last NaN's position is kept (pool_max_take).
template <class T>
__global__ void __launch_bounds__(256) max_pool2d_kernel(T* out, int64_t* idx, const T* in, PoolGeom g, int64_t total) {
  using A = acc_t<T>;
  EMBER_GRID_STRIDE(e, total) {
    const Pos o = split(e, g.oh, g.ow);
    const Range rh = max_pool_taps(o.y, g.kh, g.sh, g.ph, g.dh, g.h);
    const Range rw = max_pool_taps(o.x, g.kw, g.sw, g.pw, g.dw, g.w);
    const T* x = in + plane_offset(g, o.plane);
    A best = pool_lowest<A>();
    int64_t best_i = rh.begin * g.w + rw.begin;
    for (int64_t ih = rh.begin; ih < rh.end; ih += g.dh)
      for (int64_t iw = rw.begin; iw < rw.end; iw += g.dw) {
        const A v = load(x[ih * g.s2 + iw * g.s3]);
        if (pool_max_take(v, best)) {
          best = v;
          best_i = ih * g.w + iw;
        }
      }
    out[e] = convert_from<T>(best);
    if (idx) idx[e] = best_i;
  }
}

template <class T>
__global__ void __launch_bounds__(256) avg_pool2d_kernel(T* out, const T* in, PoolGeom g, int64_t total) {
  using A = acc_t<T>;
  EMBER_GRID_STRIDE(e, total) {
    const Pos o = split(e, g.oh, g.ow);
    const AvgWindow wh = avg_pool_window(o.y, g.kh, g.sh, g.ph, g.h);
    const AvgWindow ww = avg_pool_window(o.x, g.kw, g.sw, g.pw, g.w);
    if (wh.begin >= wh.end || ww.begin >= ww.end) {
      out[e] = convert_from<T>(A(0));
      continue;
    }
    const T* x = in + plane_offset(g, o.plane);
    A sum = 0;
    for (int64_t ih = wh.begin; ih < wh.end; ++ih)
      for (int64_t iw = ww.begin; iw < ww.end; ++iw) sum += load(x[ih * g.s2 + iw * g.s3]);
    out[e] = convert_from<T>(sum / static_cast<A>(avg_pool_divisor(wh, ww, g.count_include_pad)));
  }
}

template <class T>
__global__ void __launch_bounds__(256) adaptive_avg_pool2d_kernel(T* out, const T* in, PoolGeom g, int64_t total) {
  using A = acc_t<T>;
  EMBER_GRID_STRIDE(e, total) {
    const Pos o = split(e, g.oh, g.ow);
    const int64_t h0 = adaptive_start(o.y, g.h, g.oh), h1 = adaptive_end(o.y, g.h, g.oh);
    const int64_t w0 = adaptive_start(o.x, g.w, g.ow), w1 = adaptive_end(o.x, g.w, g.ow);
    const T* x = in + plane_offset(g, o.plane);
    A sum = 0;
    for (int64_t ih = h0; ih < h1; ++ih)
      for (int64_t iw = w0; iw < w1; ++iw) sum += load(x[ih * g.s2 + iw * g.s3]);
    out[e] = convert_from<T>(sum / static_cast<A>((h1 - h0) * (w1 - w0)));
  }
}

// ----------------------------------------------------------------------------------- backwards
// grad_in is contiguous [planes, h, w]; grad_out is read through g's strides. Windows are visited
// row by row, as the CPU's scatter visits them, so each input's sum has the CPU's order.

template <class T>
__global__ void __launch_bounds__(256)
    max_pool2d_backward_kernel(T* gi, const T* go, const int64_t* idx, PoolGeom g, int64_t total) {
  using A = acc_t<T>;
  EMBER_GRID_STRIDE(e, total) {
    const Pos i = split(e, g.h, g.w);
    const Range rh = pool_windows_containing(i.y, (g.kh - 1) * g.dh + 1, g.sh, g.ph, g.oh);
    const Range rw = pool_windows_containing(i.x, (g.kw - 1) * g.dw + 1, g.sw, g.pw, g.ow);
    const T* gp = go + plane_offset(g, i.plane);
    const int64_t* ip = idx + i.plane * g.oh * g.ow;
    const int64_t target = i.y * g.w + i.x;
    A acc = 0;
    for (int64_t oy = rh.begin; oy < rh.end; ++oy)
      for (int64_t ox = rw.begin; ox < rw.end; ++ox)
        if (ip[oy * g.ow + ox] == target) acc += static_cast<A>(load(gp[oy * g.s2 + ox * g.s3]));
    gi[e] = convert_from<T>(acc);
  }
}

template <class T>
__global__ void __launch_bounds__(256) avg_pool2d_backward_kernel(T* gi, const T* go, PoolGeom g, int64_t total) {
  using A = acc_t<T>;
  EMBER_GRID_STRIDE(e, total) {
    const Pos i = split(e, g.h, g.w);
    const Range rh = pool_windows_containing(i.y, g.kh, g.sh, g.ph, g.oh);
    const Range rw = pool_windows_containing(i.x, g.kw, g.sw, g.pw, g.ow);
    const T* gp = go + plane_offset(g, i.plane);
    A acc = 0;
    for (int64_t oy = rh.begin; oy < rh.end; ++oy) {
      const AvgWindow wh = avg_pool_window(oy, g.kh, g.sh, g.ph, g.h);
      for (int64_t ox = rw.begin; ox < rw.end; ++ox) {
        const AvgWindow ww = avg_pool_window(ox, g.kw, g.sw, g.pw, g.w);
        acc += static_cast<A>(load(gp[oy * g.s2 + ox * g.s3])) /
               static_cast<A>(avg_pool_divisor(wh, ww, g.count_include_pad));
      }
    }
    gi[e] = convert_from<T>(acc);
  }
}

template <class T>
__global__ void __launch_bounds__(256)
    adaptive_avg_pool2d_backward_kernel(T* gi, const T* go, PoolGeom g, int64_t total) {
  using A = acc_t<T>;
  EMBER_GRID_STRIDE(e, total) {
    const Pos i = split(e, g.h, g.w);
    const Range rh = adaptive_windows_containing(i.y, g.h, g.oh);
    const Range rw = adaptive_windows_containing(i.x, g.w, g.ow);
    const T* gp = go + plane_offset(g, i.plane);
    A acc = 0;
    for (int64_t oy = rh.begin; oy < rh.end; ++oy) {
      const int64_t bh = adaptive_end(oy, g.h, g.oh) - adaptive_start(oy, g.h, g.oh);
      for (int64_t ox = rw.begin; ox < rw.end; ++ox) {
        const int64_t bw = adaptive_end(ox, g.w, g.ow) - adaptive_start(ox, g.w, g.ow);
        acc += static_cast<A>(load(gp[oy * g.s2 + ox * g.s3])) / static_cast<A>(bh * bw);
      }
    }
    gi[e] = convert_from<T>(acc);
  }
}

#undef EMBER_GRID_STRIDE

// Runs launch(blocks, threads, stream) for `total` elements on t's device.
template <class F>
void launch_flat(const Tensor& t, const char* op, int64_t total, F&& launch) {
  if (total == 0) return;
  const int dev = device_index(t.device(), op);
  DeviceGuard guard(dev);
  const FlatPlan f = plan_flat(total);
  launch(static_cast<unsigned>(f.blocks), f.threads, current_stream(dev));
  EMBER_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void max_pool2d(const Tensor& out, const Tensor& indices, const Tensor& in, const Pool2dParams& p) {
  const PoolGeom g = make_pool_geom(in, in.size(2), in.size(3), out.size(2), out.size(3), p);
  int64_t* idx = dptr<int64_t>(indices);
  visit_dtype<NumericTypes>(in.dtype(), "[max_pool2d]", [&]<class T>() {
    launch_flat(in, "max_pool2d", out.numel(), [&](unsigned b, int t, cudaStream_t s) {
      max_pool2d_kernel<T><<<b, t, 0, s>>>(dptr<T>(out), idx, dptr<const T>(in), g, out.numel());
    });
  });
}

void avg_pool2d(const Tensor& out, const Tensor& in, const Pool2dParams& p) {
  const PoolGeom g = make_pool_geom(in, in.size(2), in.size(3), out.size(2), out.size(3), p);
  visit_dtype<FloatTypes>(in.dtype(), "[avg_pool2d]", [&]<class T>() {
    launch_flat(in, "avg_pool2d", out.numel(), [&](unsigned b, int t, cudaStream_t s) {
      avg_pool2d_kernel<T><<<b, t, 0, s>>>(dptr<T>(out), dptr<const T>(in), g, out.numel());
    });
  });
}

void adaptive_avg_pool2d(const Tensor& out, const Tensor& in) {
  const PoolGeom g = make_pool_geom(in, in.size(2), in.size(3), out.size(2), out.size(3), Pool2dParams{});
  visit_dtype<FloatTypes>(in.dtype(), "[adaptive_avg_pool2d]", [&]<class T>() {
    launch_flat(in, "adaptive_avg_pool2d", out.numel(), [&](unsigned b, int t, cudaStream_t s) {
      adaptive_avg_pool2d_kernel<T><<<b, t, 0, s>>>(dptr<T>(out), dptr<const T>(in), g, out.numel());
    });
  });
}

void max_pool2d_backward(const Tensor& grad_in, const Tensor& grad_out, const Tensor& indices, const Pool2dParams& p) {
  const PoolGeom g = make_pool_geom(grad_out, grad_in.size(2), grad_in.size(3), grad_out.size(2), grad_out.size(3), p);
  visit_dtype<FloatTypes>(grad_in.dtype(), "[max_pool2d_backward]", [&]<class T>() {
    launch_flat(grad_in, "max_pool2d_backward", grad_in.numel(), [&](unsigned b, int t, cudaStream_t s) {
      max_pool2d_backward_kernel<T>
          <<<b, t, 0, s>>>(dptr<T>(grad_in), dptr<const T>(grad_out), dptr<const int64_t>(indices), g, grad_in.numel());
    });
  });
}

void avg_pool2d_backward(const Tensor& grad_in, const Tensor& grad_out, const Pool2dParams& p) {
  const PoolGeom g = make_pool_geom(grad_out, grad_in.size(2), grad_in.size(3), grad_out.size(2), grad_out.size(3), p);
  visit_dtype<FloatTypes>(grad_in.dtype(), "[avg_pool2d_backward]", [&]<class T>() {
    launch_flat(grad_in, "avg_pool2d_backward", grad_in.numel(), [&](unsigned b, int t, cudaStream_t s) {
      avg_pool2d_backward_kernel<T><<<b, t, 0, s>>>(dptr<T>(grad_in), dptr<const T>(grad_out), g, grad_in.numel());
    });
  });
}

void adaptive_avg_pool2d_backward(const Tensor& grad_in, const Tensor& grad_out) {
  const PoolGeom g =
      make_pool_geom(grad_out, grad_in.size(2), grad_in.size(3), grad_out.size(2), grad_out.size(3), Pool2dParams{});
  visit_dtype<FloatTypes>(grad_in.dtype(), "[adaptive_avg_pool2d_backward]", [&]<class T>() {
    launch_flat(grad_in, "adaptive_avg_pool2d_backward", grad_in.numel(), [&](unsigned b, int t, cudaStream_t s) {
      adaptive_avg_pool2d_backward_kernel<T>
          <<<b, t, 0, s>>>(dptr<T>(grad_in), dptr<const T>(grad_out), g, grad_in.numel());
    });
  });
}

}  // namespace ember::kernels::cuda
