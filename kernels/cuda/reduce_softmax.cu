// CUDA arg-reductions and softmax, on the engine of reduce_engine.cuh. Why here: each is a reduction
// with a two-part state (value and index; running max and sum) followed, for softmax, by one
// elementwise pass. Softmax's row statistics come from the online (max, sum) state in the accumulation
// type (f32 for f16/bf16), so any row length and either layout (last or an inner dim) use the same
// row/column kernels and splits as the other reductions; the backward's sum runs in double, as the CPU.
#include <type_traits>

#include "kernels/cuda/reduce_engine.cuh"
#include "kernels/reduce.hpp"

namespace ember::kernels::cuda {
namespace {

// ---------------------------------------------------------------- ops
// First index of the max/min, NaN as the extreme (arg_merge breaks ties by the lower index, so the
// lanes' interleaved ranges and the split's chunks merge to the CPU's answer).
template <class In, bool kMax>
struct ArgOp {
  using A = acc_t<In>;
  struct State {
    A v;
    int64_t i;
  };
  const char* in;
  In* values;  // may be null
  int64_t* indices;

  __device__ State init() const { return {A(0), -1}; }
  __device__ void fold(State& s, int64_t off, int64_t r, int64_t) const {
    const A v = load(*reinterpret_cast<const In*>(in + off));
    if (s.i < 0 || arg_better<kMax>(v, s.v)) s = {v, r};  // r grows within a thread: ties keep the first
  }
  __device__ void combine(State& a, const State& b) const { arg_merge<kMax>(a.v, a.i, b.v, b.i); }
  __device__ void emit(int64_t off, const State& s) const {
    if (values) values[off] = convert_from<In>(s.v);
    indices[off] = s.i;
  }
};

template <class A>
struct ExpFn {
  __device__ A operator()(A x) const { return std::exp(x); }
};

// Per line: the max m and sum(exp(x - m)), written to m[] and s[] at the line's offset.
template <class In>
struct SoftmaxStatsOp {
  using A = acc_t<In>;
  struct State {
    A m, s;
  };
  const char* in;
  A* m;
  A* s;

  __device__ State init() const { return {-std::numeric_limits<A>::infinity(), A(0)}; }
  __device__ void fold(State& st, int64_t off, int64_t, int64_t) const {
    softmax_fold(st.m, st.s, load(*reinterpret_cast<const In*>(in + off)), ExpFn<A>{});
  }
  __device__ void combine(State& a, const State& b) const { softmax_merge(a.m, a.s, b.m, b.s, ExpFn<A>{}); }
  __device__ void emit(int64_t off, const State& st) const {
    m[off] = st.m;
    s[off] = st.s;
  }
};

// Per row of the backward: sum(g y) (softmax) or sum(g) (log_softmax); g and y share one layout.
template <class T>
struct SoftmaxBackOp {
  using State = double;
  const char* g;
  const char* y;
  double* sums;
  bool log;

  __device__ State init() const { return 0.0; }
  __device__ void fold(State& s, int64_t off, int64_t, int64_t) const {
    const auto gv = load(*reinterpret_cast<const T*>(g + off));
    s += static_cast<double>(log ? gv : gv * load(*reinterpret_cast<const T*>(y + off)));
  }
  __device__ void combine(State& a, const State& b) const { a += b; }
  __device__ void emit(int64_t off, const State& s) const { sums[off] = s; }
};

// ---------------------------------------------------------------- elementwise passes
// y = exp(x - m) / s or (x - m) - log(s); x and y contiguous, line statistics at (outer, inner).
template <class T>
__global__ void __launch_bounds__(kThreads) softmax_write_kernel(const T* x, T* y, const acc_t<T>* m, const acc_t<T>* s,
                                                                 int64_t n, int64_t inner, int64_t total, bool log) {
  using A = acc_t<T>;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t line = (i / (n * inner)) * inner + i % inner;
    const A v = load(x[i]) - m[line];
    y[i] = convert_from<T>(log ? v - std::log(s[line]) : std::exp(v) * (A(1) / s[line]));
  }
}

// softmax: dx = y (g - sum(g y)); log_softmax: dx = g - exp(y) sum(g); rows of n contiguous elements.
template <class T>
__global__ void __launch_bounds__(kThreads)
    softmax_backward_kernel(const T* g, const T* y, T* dx, const double* sums, int64_t n, int64_t total, bool log) {
  using A = acc_t<T>;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const A s = static_cast<A>(sums[i / n]);
    const A gv = load(g[i]), yv = load(y[i]);
    dx[i] = convert_from<T>(log ? gv - std::exp(yv) * s : yv * (gv - s));
  }
}

// The input's shape with dim set to 1 (the statistics' keepdim layout).
Shape keep_shape(const Tensor& t, int64_t dim) {
  Shape s = t.shape();
  if (!s.empty()) s[dim] = 1;
  return s;
}

}  // namespace

void arg_reduce(bool is_max, const Tensor& values, const Tensor& indices, const Tensor& in) {
  const ReducePlan plan = make_reduce_plan(indices, in);
  visit_dtype<AllTypes>(in.dtype(), is_max ? "[argmax]" : "[argmin]", [&]<class T>() {
    const char* x = dptr<const char>(in);
    T* v = dptr<T>(values);
    auto* ix = dptr<int64_t>(indices);
    if (is_max)
      launch_reduce(plan, ArgOp<T, true>{x, v, ix}, in.device());
    else
      launch_reduce(plan, ArgOp<T, false>{x, v, ix}, in.device());
  });
}

void softmax(const Tensor& out, const Tensor& in, int64_t dim, bool log) {
  if (out.numel() == 0) return;
  Tensor x = in.contiguous();
  visit_dtype<FloatTypes>(in.dtype(), log ? "[log_softmax]" : "[softmax]", [&]<class T>() {
    using A = acc_t<T>;
    const Shape ks = keep_shape(x, dim);
    Tensor m = make_tensor(ks, dtype_of<A>(), x.device()), s = make_tensor(ks, dtype_of<A>(), x.device());
    launch_reduce(make_reduce_plan(m, x), SoftmaxStatsOp<T>{dptr<const char>(x), dptr<A>(m), dptr<A>(s)}, x.device());
    int64_t n = 1, inner = 1;
    for (int64_t d = dim; d < x.dim(); ++d) (d == dim ? n : inner) *= x.shape()[d];
    const int dev = device_index(x.device(), "softmax");
    DeviceGuard guard(dev);
    const int64_t total = x.numel();
    softmax_write_kernel<T><<<blocks_for(total, kThreads), kThreads, 0, current_stream(dev)>>>(
        dptr<const T>(x), dptr<T>(out), dptr<const A>(m), dptr<const A>(s), n, inner, total, log);
    EMBER_CUDA_CHECK(cudaGetLastError());
  });
}

void softmax_backward(const Tensor& grad_in, const Tensor& grad_out, const Tensor& out, bool log) {
  if (out.numel() == 0) return;
  EMBER_CHECK(grad_out.is_contiguous() && out.is_contiguous() && grad_in.is_contiguous() &&
                  grad_out.dtype() == out.dtype() && grad_in.dtype() == out.dtype(),
              ValueError, "[softmax_backward] needs contiguous operands of one dtype, got ", describe(grad_in), ", ",
              describe(grad_out), ", ", describe(out));
  visit_dtype<FloatTypes>(out.dtype(), log ? "[log_softmax_backward]" : "[softmax_backward]", [&]<class T>() {
    const int64_t last = out.dim() == 0 ? 0 : out.dim() - 1;
    Tensor sums = make_tensor(keep_shape(out, last), kF64, out.device());
    launch_reduce(make_reduce_plan(sums, out),
                  SoftmaxBackOp<T>{dptr<const char>(grad_out), dptr<const char>(out), dptr<double>(sums), log},
                  out.device());
    const int64_t n = out.dim() == 0 ? 1 : out.shape().back(), total = out.numel();
    const int dev = device_index(out.device(), "softmax_backward");
    DeviceGuard guard(dev);
    softmax_backward_kernel<T><<<blocks_for(total, kThreads), kThreads, 0, current_stream(dev)>>>(
        dptr<const T>(grad_out), dptr<const T>(out), dptr<T>(grad_in), dptr<const double>(sums), n, total, log);
    EMBER_CUDA_CHECK(cudaGetLastError());
  });
}

}  // namespace ember::kernels::cuda
