// Device dispatch of the indexing family: the output's (or the index's) device picks cpu:: or cuda::;
// every operand must already be on that device (the builders move nothing).
#include "kernels/index.hpp"

#include <initializer_list>

namespace ember::kernels {
namespace {
// Every operand on `first`'s device; a CPU call also needs this build to know the device.
void check_devices(const char* op, std::initializer_list<const Tensor*> ts) {
  const Tensor& first = **ts.begin();
  for (const Tensor* t : ts)
    EMBER_CHECK(t->device() == first.device(), DeviceError, "[", op, "] expected all tensors on ", first.device(),
                ", got ", describe(*t));
  EMBER_CHECK(first.device().is_cpu() || first.device().is_cuda(), DeviceError, "[", op, "] device ", first.device(),
              " is not supported in this build");
}
}  // namespace

std::pair<int64_t, int64_t> index_range(const Tensor& index) {
  check_devices("index_range", {&index});
  if (index.device().is_cuda()) return cuda::index_range(index);
  return cpu::index_range(index);
}
void index_select(const Tensor& out, const Tensor& self, int64_t dim, const Tensor& index, IndexOp op) {
  check_devices("index_select", {&out, &self, &index});
  if (out.device().is_cuda()) return cuda::index_select(out, self, dim, index, op);
  cpu::index_select(out, self, dim, index);
}
void gather(const Tensor& out, const Tensor& self, int64_t dim, const Tensor& index, IndexOp op) {
  check_devices("gather", {&out, &self, &index});
  if (out.device().is_cuda()) return cuda::gather(out, self, dim, index, op);
  cpu::gather(out, self, dim, index);
}
void scatter(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, ScatterMode mode,
             const Scalar& alpha, IndexOp op) {
  check_devices("scatter", {&out, &index, &src});
  if (out.device().is_cuda()) return cuda::scatter(out, dim, index, src, mode, alpha, op);
  cpu::scatter(out, dim, index, src, mode, alpha);
}
void check_index_range(const Tensor& index, int64_t lo, int64_t hi, std::optional<int64_t> skip,
                       const RangeReport& report) {
  EMBER_CHECK(index.device().is_cuda(), DeviceError,
              "[check_index_range] the deferred check runs on CUDA devices; got ", describe(index));
  cuda::check_index_range(index, lo, hi, skip, report);
}
void masked_fill(const Tensor& out, const Tensor& self, const Tensor& mask, const Scalar& value) {
  check_devices("masked_fill", {&out, &self, &mask});
  if (out.device().is_cuda()) return cuda::masked_fill(out, self, mask, value);
  cpu::masked_fill(out, self, mask, value);
}
int64_t count_true(const Tensor& mask) {
  check_devices("count_true", {&mask});
  if (mask.device().is_cuda()) return cuda::count_true(mask);
  return cpu::count_true(mask);
}
void masked_select(const Tensor& out, const Tensor& self, const Tensor& mask) {
  check_devices("masked_select", {&out, &self, &mask});
  if (out.device().is_cuda()) return cuda::masked_select(out, self, mask);
  cpu::masked_select(out, self, mask);
}

}  // namespace ember::kernels
