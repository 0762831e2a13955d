// CUDA unary elementwise ops: one table entry per functor of kernels/functors.hpp (UnaryFunctors),
// each dispatching on the computation dtype to the engine of loops.cuh. Split from the other
// elementwise files so that nvcc compiles the tables in parallel.
#include "kernels/cuda/loops.cuh"
#include "kernels/elementwise.hpp"

namespace ember::kernels::cuda {
namespace {
using UnaryFn = void (*)(const std::array<const Tensor*, 2>&, const OpParams&);
constexpr auto kUnary = make_table<1, UnaryFn>(UnaryFunctors{});
}  // namespace

void unary(int op, const Tensor& out, const Tensor& a, const OpParams& p) { kUnary.at(op)({&out, &a}, p); }

}  // namespace ember::kernels::cuda
