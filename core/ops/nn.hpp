// Neural-network kernels: convolution (im2col + GEMM), pooling, and normalisation forwards.
#pragma once
#include <array>
#include <optional>
#include <tuple>
#include <vector>

#include "core/tensor.hpp"

namespace ember {

// input [N, C, L], weight [O, C/groups, K]; also accepts unbatched [C, L].
Tensor conv1d(const Tensor& input, const Tensor& weight, const Tensor& bias = {}, int64_t stride = 1,
              int64_t padding = 0, int64_t dilation = 1, int64_t groups = 1);
// input [N, C, H, W], weight [O, C/groups, kH, kW]; (h, w) pairs for stride, padding, dilation.
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias = {},
              std::array<int64_t, 2> stride = {1, 1}, std::array<int64_t, 2> padding = {0, 0},
              std::array<int64_t, 2> dilation = {1, 1}, int64_t groups = 1);
// Transposed convolutions (PyTorch's argument order): input [N, C, L] or [N, C, H, W] (or unbatched),
// weight [C, O / groups, kL] or [C, O / groups, kH, kW], bias [O]; output padding (below stride or
// dilation) adds rows at the end. conv_transpose2d is the gradient of conv2d w.r.t. its input.
Tensor conv_transpose1d(const Tensor& input, const Tensor& weight, const Tensor& bias = {}, int64_t stride = 1,
                        int64_t padding = 0, int64_t output_padding = 0, int64_t groups = 1, int64_t dilation = 1);
Tensor conv_transpose2d(const Tensor& input, const Tensor& weight, const Tensor& bias = {},
                        std::array<int64_t, 2> stride = {1, 1}, std::array<int64_t, 2> padding = {0, 0},
                        std::array<int64_t, 2> output_padding = {0, 0}, int64_t groups = 1,
                        std::array<int64_t, 2> dilation = {1, 1});
// Max pooling; the indices are flat positions within each (H*W) plane, as PyTorch's.
std::tuple<Tensor, Tensor> max_pool2d_with_indices(const Tensor& input, std::array<int64_t, 2> kernel,
                                                   std::array<int64_t, 2> stride = {0, 0},
                                                   std::array<int64_t, 2> padding = {0, 0},
                                                   std::array<int64_t, 2> dilation = {1, 1},
                                                   bool ceil_mode = false);
Tensor max_pool2d(const Tensor& input, std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride = {0, 0},
                  std::array<int64_t, 2> padding = {0, 0}, std::array<int64_t, 2> dilation = {1, 1},
                  bool ceil_mode = false);
// stride {0, 0} means stride = kernel.
Tensor avg_pool2d(const Tensor& input, std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride = {0, 0},
                  std::array<int64_t, 2> padding = {0, 0}, bool ceil_mode = false, bool count_include_pad = true);
Tensor adaptive_avg_pool2d(const Tensor& input, std::array<int64_t, 2> output_size);
// Normalises over the trailing dims given by normalized_shape.
Tensor layer_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight = {},
                  const Tensor& bias = {}, double eps = 1e-5);
Tensor rms_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight = {},
                std::optional<double> eps = {});
// input [N, C, ...]. In training, batch statistics are used and running stats (if given) are updated
// in place with momentum (unbiased variance), as PyTorch.
Tensor batch_norm(const Tensor& input, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum = 0.1,
                  double eps = 1e-5);

}  // namespace ember
