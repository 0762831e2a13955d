// Convolution builders: conv1d and conv2d argument checks and output shapes; conv1d runs as conv2d with
// H = 1, unbatched inputs get a batch dim of 1. Compute is kernels::conv2d (im2col + GEMM).
#include "kernels/conv.hpp"

#include <array>
#include <string>

#include "core/ops/nn.hpp"

namespace ember {
namespace {

// Checks and runs a convolution with `spatial` (1 or 2) spatial dims; the (h, w) parameter pairs are
// already expanded (conv1d passes h = 1, stride/padding/dilation 1/0/1).
Tensor convolution(const char* op, int spatial, const Tensor& input, const Tensor& weight, const Tensor& bias,
                   std::array<int64_t, 2> stride, std::array<int64_t, 2> padding, std::array<int64_t, 2> dilation,
                   int64_t groups) {
  EMBER_CHECK(input.defined() && weight.defined(), ValueError, "[", op, "] got an undefined input or weight");
  const std::string names = spatial == 1 ? "L" : "H, W";
  EMBER_CHECK(weight.dim() == spatial + 2, ShapeError, "[", op,
              "] expected weight [out_channels, in_channels / groups, ", spatial == 1 ? "kL" : "kH, kW", "], got ",
              describe(weight));
  EMBER_CHECK(input.dim() == spatial + 1 || input.dim() == spatial + 2, ShapeError, "[", op, "] expected input [C, ",
              names, "] (unbatched) or [N, C, ", names, "], got ", describe(input));
  EMBER_CHECK(input.device() == weight.device(), DeviceError, "[", op, "] expected tensors on one device, got input ",
              describe(input), " and weight ", describe(weight));
  EMBER_CHECK(input.dtype() == weight.dtype(), DTypeError, "[", op, "] expected tensors of one dtype, got input ",
              describe(input), " and weight ", describe(weight));
  EMBER_CHECK(input.dtype() != kBool, DTypeError, "[", op, "] bool tensors are not supported, got ", describe(input));
  for (int i = 0; i < 2; ++i) {
    EMBER_CHECK(stride[i] >= 1 && dilation[i] >= 1 && padding[i] >= 0, ValueError, "[", op,
                "] expected stride >= 1, dilation >= 1, padding >= 0, got stride ", stride[i], ", padding ", padding[i],
                ", dilation ", dilation[i]);
  }
  EMBER_CHECK(groups >= 1, ValueError, "[", op, "] expected groups >= 1, got ", groups);
  const int64_t c_out = weight.shape()[0];
  EMBER_CHECK(c_out % groups == 0, ShapeError, "[", op, "] out_channels ", c_out, " of weight ", describe(weight),
              " is not divisible by groups=", groups);
  const bool batched = input.dim() == spatial + 2;
  const int64_t c_in = input.shape()[batched ? 1 : 0];
  EMBER_CHECK(c_in == weight.shape()[1] * groups, ShapeError, "[", op, "] input ", describe(input), " has ", c_in,
              " channels, but weight ", describe(weight), " with groups=", groups, " expects ",
              weight.shape()[1] * groups);
  if (bias.defined()) {
    EMBER_CHECK(bias.device() == input.device(), DeviceError, "[", op, "] expected tensors on one device, got input ",
                describe(input), " and bias ", describe(bias));
    EMBER_CHECK(bias.dtype() == input.dtype(), DTypeError, "[", op, "] expected tensors of one dtype, got input ",
                describe(input), " and bias ", describe(bias));
    EMBER_CHECK(bias.dim() == 1 && bias.shape()[0] == c_out, ShapeError, "[", op, "] expected bias [", c_out, "], got ",
                describe(bias));
  }

  // Work in [N, C, H, W] with [O, C / groups, kH, kW].
  Tensor x = batched ? input : input.unsqueeze(0);
  Tensor w = weight;
  if (spatial == 1) {
    x = x.unsqueeze(2);
    w = w.unsqueeze(2);
  }
  Shape out_shape{x.shape()[0], c_out, 0, 0};
  for (int i = 0; i < 2; ++i) {
    const int64_t size = x.shape()[2 + i], padded = size + 2 * padding[i];
    const int64_t span = dilation[i] * (w.shape()[2 + i] - 1) + 1;
    EMBER_CHECK(padded >= span, ShapeError, "[", op, "] input ", describe(input), " padded to ", padded, " along ",
                spatial == 1 ? "L" : (i == 0 ? "H" : "W"), " is smaller than the dilated kernel size ", span);
    out_shape[2 + i] = (padded - span) / stride[i] + 1;
  }
  Tensor out = make_tensor(out_shape, input.dtype(), input.device());
  kernels::Conv2dParams p{{stride[0], stride[1]}, {padding[0], padding[1]}, {dilation[0], dilation[1]}, groups};
  kernels::conv2d(out, x.contiguous(), w.contiguous(), bias.defined() ? bias.contiguous() : bias, p);
  if (spatial == 1) out = out.squeeze(2);
  return batched ? out : out.squeeze(0);
}

}  // namespace

Tensor conv1d(const Tensor& input, const Tensor& weight, const Tensor& bias, int64_t stride, int64_t padding,
              int64_t dilation, int64_t groups) {
  return convolution("conv1d", 1, input, weight, bias, {1, stride}, {0, padding}, {1, dilation}, groups);
}

Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, std::array<int64_t, 2> stride,
              std::array<int64_t, 2> padding, std::array<int64_t, 2> dilation, int64_t groups) {
  return convolution("conv2d", 2, input, weight, bias, stride, padding, dilation, groups);
}

}  // namespace ember
