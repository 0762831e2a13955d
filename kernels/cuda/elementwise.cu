// CUDA ternary elementwise ops, copy with dtype conversion, fill and arange.
// Why: these are the kernels every CUDA tensor needs first (moves, casts, constants, where/lerp);
// the math lives in kernels/functors.hpp and the launch engine in loops.cuh, so this file holds only
// the tables and the two functors that are not ops (Identity for copy, Constant for fill).
#include "kernels/cuda/loops.cuh"
#include "kernels/elementwise.hpp"

namespace ember::kernels::cuda {
namespace {

using TernaryFn = void (*)(const std::array<const Tensor*, 4>&, const OpParams&);
constexpr auto kTernary = make_table<3, TernaryFn>(TernaryFunctors{});

struct Identity {
  template <class T>
  EMBER_HD T operator()(T x) const {
    return x;
  }
};

template <class V>
struct Constant {
  V v;
  EMBER_HD V operator()() const { return v; }
};

template <class T>
__global__ void __launch_bounds__(kThreads) arange_kernel(T* out, int64_t n, ArangeParams p) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = arange_value<T>(p, i);
}

}  // namespace

void ternary(int op, const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& c, const OpParams& p) {
  kTernary.at(op)({&out, &a, &b, &c}, p);
}

void copy(const Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0) return;
  const int dev = device_index(dst.device(), "copy");
  EMBER_CHECK(src.device() == dst.device(), DeviceError, "[copy] source ", describe(src),
              " is not on the destination's device ", dst.device());
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous()) {
    DeviceGuard guard(dev);
    EMBER_CUDA_CHECK(cudaMemcpyAsync(dptr<void>(dst), dptr<const void>(src), dst.nbytes(), cudaMemcpyDeviceToDevice,
                                     current_stream(dev)));
    return;
  }
  visit_dtype<AllTypes>(dst.dtype(), "[copy]", [&]<class Out>() {
    visit_dtype<AllTypes>(src.dtype(), "[copy]", [&]<class In>() {
      run_elementwise<Out, In, 1>({&dst, &src}, Identity{});
    });
  });
}

void fill(const Tensor& dst, const Scalar& v) {
  visit_dtype<AllTypes>(dst.dtype(), "[fill]", [&]<class T>() {
    run_elementwise<T, T, 0>({&dst}, Constant<acc_t<T>>{static_cast<acc_t<T>>(v.to<T>())});
  });
}

void arange(const Tensor& dst, const ArangeParams& p) {
  if (dst.numel() == 0) return;
  const int dev = device_index(dst.device(), "arange");
  DeviceGuard guard(dev);
  visit_dtype<NumericTypes>(dst.dtype(), "[arange]", [&]<class T>() {
    arange_kernel<T>
        <<<blocks_for(dst.numel(), kThreads), kThreads, 0, current_stream(dev)>>>(dptr<T>(dst), dst.numel(), p);
    EMBER_CUDA_CHECK(cudaGetLastError());
  });
}

}  // namespace ember::kernels::cuda
