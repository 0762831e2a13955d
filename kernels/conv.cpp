// Device dispatch of the convolution family: CUDA tensors go to cuDNN (kernels/cuda/conv.cpp), with
// inputs in a layout cuDNN takes and outputs it can write; CPU tensors to kernels/cpu/conv.cpp.
#include "kernels/conv.hpp"

#include <initializer_list>

#include "kernels/conv_plan.hpp"
#include "kernels/elementwise.hpp"

namespace ember::kernels {
namespace {

void check_devices(const char* op, const Tensor& out, std::initializer_list<const Tensor*> operands) {
  for (const Tensor* t : operands)
    EMBER_CHECK(!t->defined() || t->device() == out.device(), DeviceError, "[", op, "] expected all tensors on ",
                out.device(), ", got ", describe(*t));
}

void check_cpu(const Tensor& t, const char* op) {
  EMBER_CHECK(t.device().is_cpu(), DeviceError, "[", op, "] device ", t.device(), " is not supported in this build");
}

// Inputs cuDNN cannot read as they are (strides out of NCHW order, overlapping, zero) are copied.
Tensor readable(const Tensor& t) {
  return !t.defined() || conv_plan::cudnn_layout_ok(t.shape(), t.strides()) ? t : t.contiguous();
}
// Filters are always packed for cuDNN.
Tensor packed(const Tensor& t) { return t.is_contiguous() ? t : t.contiguous(); }

// Runs f(target) into `out` itself when cuDNN can write it in place, else into a fresh tensor copied back.
template <class F>
void into(const Tensor& out, bool writable, F&& f) {
  if (writable) return f(out);
  Tensor tmp = make_tensor(out.shape(), out.dtype(), out.device());
  f(tmp);
  copy(out, tmp);
}

}  // namespace

void conv2d(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias, const Conv2dParams& p) {
  check_devices("conv2d", out, {&in, &weight, &bias});
  if (out.device().is_cuda()) {
    const Tensor x = readable(in), w = packed(weight);
    return into(out, conv_plan::cudnn_layout_ok(out.shape(), out.strides()),
                [&](const Tensor& y) { cuda::conv2d(y, x, w, bias, p); });
  }
  check_cpu(out, "conv2d");
  cpu::conv2d(out, in, weight, bias, p);
}

void conv_transpose2d(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias,
                      const Conv2dParams& p) {
  check_devices("conv_transpose2d", out, {&in, &weight, &bias});
  if (out.device().is_cuda()) {
    const Tensor dy = readable(in), w = packed(weight);
    return into(out, conv_plan::cudnn_layout_ok(out.shape(), out.strides()),
                [&](const Tensor& dx) { cuda::conv_transpose2d(dx, dy, w, bias, p); });
  }
  check_cpu(out, "conv_transpose2d");
  cpu::conv_transpose2d(out, in, weight, bias, p);
}

void conv2d_weight_backward(const Tensor& grad_weight, const Tensor& grad_out, const Tensor& in,
                            const Conv2dParams& p) {
  check_devices("conv2d_backward", grad_weight, {&grad_out, &in});
  if (grad_weight.device().is_cuda()) {
    const Tensor dy = readable(grad_out), x = readable(in);
    return into(grad_weight, grad_weight.is_contiguous(),
                [&](const Tensor& dw) { cuda::conv2d_weight_backward(dw, dy, x, p); });
  }
  check_cpu(grad_weight, "conv2d_backward");
  cpu::conv2d_weight_backward(grad_weight, grad_out, in, p);
}

}  // namespace ember::kernels
