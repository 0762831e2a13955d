// ember::nn::functional, spatial ops ported code reaches for: interpolate (nearest, nearest-exact,
// linear, bilinear, trilinear), conv3d, the 1-D pools and conv_transpose1d. All are compositions of core
// ops (index_select, conv2d, the 2-D pools), so gradients and devices come from those.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.hpp"

namespace ember::nn {

// (d, h, w) triple that a single int fills, as PyTorch's int-or-tuple arguments.
struct Int3 : std::array<int64_t, 3> {
  Int3(int64_t v) : std::array<int64_t, 3>{v, v, v} {}
  Int3(int64_t d, int64_t h, int64_t w) : std::array<int64_t, 3>{d, h, w} {}
};

}  // namespace ember::nn

namespace ember::nn::functional {

// F.interpolate's arguments: give size or scale_factor (one value per spatial dim, or one for all).
// mode "nearest" (PyTorch's floor rule), "nearest-exact", "linear" (3-D input), "bilinear" (4-D) or
// "trilinear" (5-D); align_corners only with the linear modes (default false). A scale_factor gives
// floor(in * scale) outputs and maps positions with 1 / scale, as PyTorch's default.
struct InterpolateOptions {
  std::vector<int64_t> size = {};
  std::vector<double> scale_factor = {};
  std::string mode = "nearest";
  std::optional<bool> align_corners = {};
};
// input [N, C, *spatial] with 1 to 3 spatial dims.
Tensor interpolate(const Tensor& input, const InterpolateOptions& options);

// input [N, C, D, H, W] (or unbatched [C, D, H, W]), weight [O, C / groups, kD, kH, kW]: conv2d over
// (H, W) for each depth tap, summed.
Tensor conv3d(const Tensor& input, const Tensor& weight, const Tensor& bias = {}, Int3 stride = 1, Int3 padding = 0,
              Int3 dilation = 1, int64_t groups = 1);
// input [N, C, L] or [C, L]; weight [C, O / groups, kL]: PyTorch's argument order.
Tensor conv_transpose1d(const Tensor& input, const Tensor& weight, const Tensor& bias = {}, int64_t stride = 1,
                        int64_t padding = 0, int64_t output_padding = 0, int64_t groups = 1, int64_t dilation = 1);
// 1-D pools over [N, C, L] or [C, L] (the 2-D pools with H = 1); stride {} means the kernel size.
Tensor max_pool1d(const Tensor& input, int64_t kernel_size, std::optional<int64_t> stride = {}, int64_t padding = 0,
                  int64_t dilation = 1, bool ceil_mode = false);
Tensor avg_pool1d(const Tensor& input, int64_t kernel_size, std::optional<int64_t> stride = {}, int64_t padding = 0,
                  bool ceil_mode = false, bool count_include_pad = true);
Tensor adaptive_avg_pool1d(const Tensor& input, int64_t output_size);

}  // namespace ember::nn::functional
