// The CUDA entry points of a build without CUDA: no devices, and every kernel raises DeviceError, so a
// CPU-only build links and says clearly what is missing when a CUDA tensor is asked for.
#include "core/error.hpp"
#include "kernels/cuda_device.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/random.hpp"

namespace ember::kernels::cuda {
namespace {
[[noreturn]] void no_cuda(const char* op) {
  throw DeviceError(detail::cat_str("[", op, "] built without CUDA support"));
}
}  // namespace

int device_count() { return 0; }
bool is_available() { return false; }
void synchronize(int) {}
Allocator& allocator(int) { no_cuda("cuda allocator"); }
void copy_bytes(void*, Device, const void*, Device, size_t) { no_cuda("to"); }

void unary(int, const Tensor&, const Tensor&, const OpParams&) { no_cuda("unary"); }
void binary(int, const Tensor&, const Tensor&, const Tensor&, const OpParams&) { no_cuda("binary"); }
void ternary(int, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const OpParams&) { no_cuda("ternary"); }
void copy(const Tensor&, const Tensor&) { no_cuda("copy"); }
void fill(const Tensor&, const Scalar&) { no_cuda("fill"); }
void random_fill(const Tensor&, const RandomParams&, uint64_t, uint64_t) { no_cuda("random"); }

}  // namespace ember::kernels::cuda
