// Kernel entries of the convolution family: conv2d forward as im2col + GEMM (conv1d is conv2d with H = 1),
// the transposed convolution as GEMM + col2im, and the weight gradient, on the CPU; cuDNN on CUDA.
#pragma once
#include <cstdint>

#include "core/tensor.hpp"

namespace ember::kernels {

struct Conv2dParams {
  int64_t stride[2] = {1, 1};
  int64_t padding[2] = {0, 0};
  int64_t dilation[2] = {1, 1};
  int64_t groups = 1;
};

namespace cpu {
// The builder (core/ops/conv.cpp) has checked every argument. out: contiguous [N, O, OH, OW];
// in: contiguous [N, C, H, W]; weight: contiguous [O, C / groups, kH, kW]; bias: contiguous [O] or
// undefined. One dtype, numeric but not bool; f16/bf16 are computed in f32.
void conv2d(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias, const Conv2dParams& p);
// The adjoint of conv2d w.r.t. its input, plus bias. out: contiguous [N, O, OH, OW]; in: contiguous
// [N, C, H, W]; weight: contiguous [C, O / groups, kH, kW]; bias: contiguous [O] or undefined. p is the
// geometry of the conv2d mapping out's spatial size to in's (output padding shows in OH, OW). Floating dtypes.
void conv_transpose2d(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias,
                      const Conv2dParams& p);
// grad_weight [O, C / groups, kH, kW] (contiguous, overwritten) = the gradient of conv2d(in, weight) w.r.t.
// weight for the output gradient grad_out [N, O, OH, OW] (contiguous; OH, OW may be smaller than the
// conv's full output, the missing positions counting as zero); in: contiguous [N, C, H, W]. Floating dtypes.
void conv2d_weight_backward(const Tensor& grad_weight, const Tensor& grad_out, const Tensor& in, const Conv2dParams& p);
}  // namespace cpu

namespace cuda {  // kernels/cuda/conv.cpp (cuDNN); the same contracts, every operand on out's CUDA device
void conv2d(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias, const Conv2dParams& p);
void conv_transpose2d(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias,
                      const Conv2dParams& p);
void conv2d_weight_backward(const Tensor& grad_weight, const Tensor& grad_out, const Tensor& in, const Conv2dParams& p);
}  // namespace cuda

// Device dispatch (kernels/conv.cpp): every operand on the output's device, else DeviceError.
void conv2d(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias, const Conv2dParams& p);
void conv_transpose2d(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias,
                      const Conv2dParams& p);
void conv2d_weight_backward(const Tensor& grad_weight, const Tensor& grad_out, const Tensor& in, const Conv2dParams& p);

}  // namespace ember::kernels
