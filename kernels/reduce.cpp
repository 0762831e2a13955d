// Device dispatch of the reduction family: every operand on one device, then the cpu:: or cuda:: kernel.
#include "kernels/reduce.hpp"

#include <initializer_list>

namespace ember::kernels {
namespace {
// The device of the first operand; every other defined operand must be on it.
Device common_device(const char* op, std::initializer_list<const Tensor*> ts) {
  Device d = (*ts.begin())->device();
  for (const Tensor* t : ts)
    EMBER_CHECK(!t->defined() || t->device() == d, DeviceError, "[", op, "] expected all tensors on ", d, ", got ",
                describe(*t));
  return d;
}
}  // namespace

void reduce(ReduceKind kind, const Tensor& out, const Tensor& in, const ReduceParams& params) {
  if (common_device("reduce", {&in, &out}).is_cuda()) return cuda::reduce(kind, out, in, params);
  cpu::reduce(kind, out, in, params);
}
void var_mean(const Tensor& var, const Tensor& mean, const Tensor& in, int64_t correction, bool take_sqrt) {
  if (common_device("var", {&in, &var, &mean}).is_cuda()) return cuda::var_mean(var, mean, in, correction, take_sqrt);
  cpu::var_mean(var, mean, in, correction, take_sqrt);
}
void logsumexp(const Tensor& out, const Tensor& in) {
  if (common_device("logsumexp", {&in, &out}).is_cuda()) return cuda::logsumexp(out, in);
  cpu::logsumexp(out, in);
}
void arg_reduce(bool is_max, const Tensor& values, const Tensor& indices, const Tensor& in) {
  if (common_device(is_max ? "argmax" : "argmin", {&in, &values, &indices}).is_cuda())
    return cuda::arg_reduce(is_max, values, indices, in);
  cpu::arg_reduce(is_max, values, indices, in);
}
void cumulative(bool is_prod, const Tensor& out, const Tensor& in, int64_t dim) {
  if (common_device(is_prod ? "cumprod" : "cumsum", {&in, &out}).is_cuda())
    return cuda::cumulative(is_prod, out, in, dim);
  cpu::cumulative(is_prod, out, in, dim);
}
void sort(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t dim, bool descending) {
  if (common_device("sort", {&in, &values, &indices}).is_cuda())
    return cuda::sort(values, indices, in, dim, descending);
  cpu::sort(values, indices, in, dim, descending);
}
void topk(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t k, int64_t dim, bool largest,
          bool sorted) {
  if (common_device("topk", {&in, &values, &indices}).is_cuda())
    return cuda::topk(values, indices, in, k, dim, largest, sorted);
  cpu::topk(values, indices, in, k, dim, largest, sorted);
}
void softmax(const Tensor& out, const Tensor& in, int64_t dim, bool log) {
  if (common_device(log ? "log_softmax" : "softmax", {&in, &out}).is_cuda()) return cuda::softmax(out, in, dim, log);
  cpu::softmax(out, in, dim, log);
}
void softmax_backward(const Tensor& grad_in, const Tensor& grad_out, const Tensor& out, bool log) {
  if (common_device(log ? "log_softmax" : "softmax", {&out, &grad_out, &grad_in}).is_cuda())
    return cuda::softmax_backward(grad_in, grad_out, out, log);
  cpu::softmax_backward(grad_in, grad_out, out, log);
}

}  // namespace ember::kernels
