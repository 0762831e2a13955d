// CUDA binary elementwise ops: one table entry per functor of kernels/functors.hpp (BinaryFunctors),
// each dispatching on the computation dtype to the engine of loops.cuh; Add, Sub and Mul also take a
// float32 operand beside a float16/bfloat16 one (kTakesHalfOperand).
#include "kernels/cuda/loops.cuh"
#include "kernels/elementwise.hpp"

namespace ember::kernels::cuda {
namespace {
using BinaryFn = void (*)(const std::array<const Tensor*, 3>&, const OpParams&);
constexpr auto kBinary = make_table<2, BinaryFn>(BinaryFunctors{});

// out (float32) <- f(a, b), one operand float32 and the other float16/bfloat16 (kTakesHalfOperand), all
// contiguous of one shape (out may be a: in place); kUnroll elements per thread in flight, as the flat kernel.
template <class A, class B, class F>
__global__ void __launch_bounds__(kThreads) mixed_binary_kernel(F f, float* out, const A* a, const B* b, int64_t n) {
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * (kThreads * kUnroll) + threadIdx.x; base < n;
       base += static_cast<int64_t>(gridDim.x) * (kThreads * kUnroll)) {
    float va[kUnroll], vb[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + u * kThreads;
      if (i < n) va[u] = static_cast<float>(a[i]), vb[u] = static_cast<float>(b[i]);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + u * kThreads;
      if (i < n) out[i] = f(va[u], vb[u]);
    }
  }
}

template <class F>
void run_mixed(const std::array<const Tensor*, 3>& ops, const OpParams& p) {
  const Tensor &out = *ops[0], &a = *ops[1], &b = *ops[2];
  if constexpr (kTakesHalfOperand<F>) {
    EMBER_CHECK(out.dtype() == kF32 && out.is_contiguous() && a.is_contiguous() && b.is_contiguous() &&
                    a.shape() == out.shape() && b.shape() == out.shape(),
                DTypeError, "[elementwise] mixed operands ", describe(a), " and ", describe(b),
                " need a contiguous float32 result of their shape, got ", describe(out));
    if (out.numel() == 0) return;
    const int dev = device_index(out.device(), "elementwise");
    DeviceGuard guard(dev);
    const F f = make_functor<F>(p);
    const unsigned blocks = blocks_for(out.numel(), kThreads * kUnroll);
    cudaStream_t stream = current_stream(dev);
    auto launch = [&]<class A, class B>() {
      mixed_binary_kernel<A, B, F>
          <<<blocks, kThreads, 0, stream>>>(f, dptr<float>(out), dptr<const A>(a), dptr<const B>(b), out.numel());
      EMBER_CUDA_CHECK(cudaGetLastError());
    };
    if (a.dtype() == kF32 && b.dtype() == kBF16) return launch.template operator()<float, bfloat16>();
    if (a.dtype() == kF32 && b.dtype() == kF16) return launch.template operator()<float, half>();
    if (a.dtype() == kBF16 && b.dtype() == kF32) return launch.template operator()<bfloat16, float>();
    if (a.dtype() == kF16 && b.dtype() == kF32) return launch.template operator()<half, float>();
  }
  throw DTypeError(
      detail::cat_str("[elementwise] this op takes operands of one dtype, got ", describe(a), " and ", describe(b)));
}
template <class... F>
constexpr auto make_mixed_table(TypeList<F...>) {
  return std::array<BinaryFn, sizeof...(F)>{&run_mixed<F>...};
}
constexpr auto kMixed = make_mixed_table(BinaryFunctors{});
}  // namespace

void binary(int op, const Tensor& out, const Tensor& a, const Tensor& b, const OpParams& p) {
  if (a.dtype() != b.dtype()) return kMixed.at(op)({&out, &a, &b}, p);
  kBinary.at(op)({&out, &a, &b}, p);
}

}  // namespace ember::kernels::cuda
