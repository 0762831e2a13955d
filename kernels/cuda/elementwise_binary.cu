// CUDA binary elementwise ops: one table entry per functor of kernels/functors.hpp (BinaryFunctors),
// each dispatching on the computation dtype to the engine of loops.cuh.
#include "kernels/cuda/loops.cuh"
#include "kernels/elementwise.hpp"

namespace ember::kernels::cuda {
namespace {
using BinaryFn = void (*)(const std::array<const Tensor*, 3>&, const OpParams&);
constexpr auto kBinary = make_table<2, BinaryFn>(BinaryFunctors{});
}  // namespace

void binary(int op, const Tensor& out, const Tensor& a, const Tensor& b, const OpParams& p) {
  kBinary.at(op)({&out, &a, &b}, p);
}

}  // namespace ember::kernels::cuda
