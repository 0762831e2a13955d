// Kernel entry of the convolution family: conv2d forward as im2col + GEMM (conv1d is conv2d with H = 1).
// Device dispatch is inline: CPU only for now.
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
}  // namespace cpu

inline void conv2d(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias,
                   const Conv2dParams& p) {
  EMBER_CHECK(out.device().is_cpu(), DeviceError, "[conv2d] device ", out.device(), " is not supported in this build");
  cpu::conv2d(out, in, weight, bias, p);
}

}  // namespace ember::kernels
