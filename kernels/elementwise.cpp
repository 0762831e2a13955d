// Device dispatch of the elementwise family.
#include "kernels/elementwise.hpp"

namespace ember::kernels {
namespace {
void check_cpu(const Tensor& t, const char* op) {
  EMBER_CHECK(t.device().is_cpu(), DeviceError, "[", op, "] device ", t.device(), " is not supported in this build");
}

// A CUDA op's operands must live on the output's device. A wrapped number arrives as a broadcast view
// of one CPU element: a device element is filled with its value (a kernel argument, not a copy: the op
// neither waits for the device nor breaks a CUDA-graph capture, which records the value) and broadcast.
Tensor on_device(const Tensor& t, Device d, const char* op) {
  if (t.device() == d) return t;
  bool single = true;
  for (int64_t s : t.strides()) single = single && s == 0;
  EMBER_CHECK(single || t.numel() <= 1, DeviceError, "[", op, "] expected all tensors on ", d, ", got ", describe(t));
  if (t.numel() == 0) return make_tensor(t.shape(), t.dtype(), d);
  const Tensor one = make_view(t, {}, {}, t.storage_offset());
  if (!t.device().is_cpu()) return one.to(d).expand(t.shape());  // another GPU's element
  Tensor v = make_tensor({}, t.dtype(), d);
  visit_dtype<AllTypes>(t.dtype(), op, [&]<class T>() { fill(v, Scalar(*static_cast<const T*>(one.raw_data()))); });
  return v.expand(t.shape());
}
}  // namespace

void unary(int op, const Tensor& out, const Tensor& a, const OpParams& p) {
  if (out.device().is_cuda()) return cuda::unary(op, out, on_device(a, out.device(), "unary"), p);
  check_cpu(out, "unary");
  cpu::unary(op, out, a, p);
}
void binary(int op, const Tensor& out, const Tensor& a, const Tensor& b, const OpParams& p) {
  if (out.device().is_cuda())
    return cuda::binary(op, out, on_device(a, out.device(), "binary"), on_device(b, out.device(), "binary"), p);
  check_cpu(out, "binary");
  cpu::binary(op, out, a, b, p);
}
void ternary(int op, const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& c, const OpParams& p) {
  if (out.device().is_cuda())
    return cuda::ternary(op, out, on_device(a, out.device(), "ternary"), on_device(b, out.device(), "ternary"),
                         on_device(c, out.device(), "ternary"), p);
  check_cpu(out, "ternary");
  cpu::ternary(op, out, a, b, c, p);
}
void copy(const Tensor& dst, const Tensor& src) {
  // copy_ moves data across devices (as PyTorch's): the source crosses first, then converts in place.
  const Tensor s = src.device() == dst.device() ? src : src.detach().to(dst.device());
  if (dst.device().is_cuda()) return cuda::copy(dst, s);
  check_cpu(dst, "copy");
  cpu::copy(dst, s);
}
void fill(const Tensor& dst, const Scalar& v) {
  if (dst.device().is_cuda()) return cuda::fill(dst, v);
  check_cpu(dst, "fill");
  cpu::fill(dst, v);
}

void arange(const Tensor& dst, const ArangeParams& p) {
  if (dst.device().is_cuda()) return cuda::arange(dst, p);
  check_cpu(dst, "arange");
  cpu::arange(dst, p);
}

}  // namespace ember::kernels
