// interpolate, conv3d, 1-D pools and conv_transpose1d as compositions of core ops. interpolate is
// separable: each spatial dim is resampled in turn with index_select (nearest) or a two-tap lerp of
// index_selects (linear), so the backward is index_add and runs wherever index_select does.
#include "nn/functional_spatial.hpp"

#include <cmath>

#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/index.hpp"
#include "core/ops/nn.hpp"
#include "core/ops/shape.hpp"

namespace ember::nn::functional {
namespace {

// Source positions of one resampled dim, made on the device by elementwise ops (no table copied from the
// host, so a CUDA step neither waits for the device nor breaks a graph capture), in the arithmetic type
// PyTorch's CPU kernels use: float for f32 and lower, double for f64 (ct). scale is PyTorch's `scales`
// argument (0 = none). i0 the first tap; for linear modes also i1 and i1's weight w1.
struct Taps {
  Tensor i0, i1, w1;
};
Taps source_taps(int64_t in, int64_t out, double scale, const std::string& mode, bool align_corners, DType ct,
                 Device dev) {
  const bool f64 = ct == kF64;
  auto rounded = [f64](double v) { return f64 ? v : static_cast<double>(static_cast<float>(v)); };  // to ct
  const double inv = scale > 0 ? rounded(1.0 / scale) : rounded(rounded(in) / rounded(out));
  const Tensor o = arange(out, ct, dev);  // exact integers
  auto first_tap = [in](const Tensor& src) { return clamp_max(floor(src).to(kI64), in - 1); };
  if (mode == "nearest" || mode == "nearest-exact")
    return {first_tap(mode == "nearest" ? o * inv : (o + 0.5) * inv), {}, {}};
  if (in == out) return {arange(out, kI64, dev), arange(out, kI64, dev), zeros({out}, {.dtype = ct, .device = dev})};
  Tensor src;
  if (align_corners)
    src = out > 1 ? o * rounded(rounded(in - 1) / rounded(out - 1)) : zeros({out}, {.dtype = ct, .device = dev});
  else
    src = clamp_min((o + 0.5) * inv - 0.5, 0.0);
  Tensor i0 = first_tap(src);
  return {i0, i0 + (i0 < in - 1).to(kI64), clamp(src - i0.to(ct), 0.0, 1.0)};
}

Tensor resample_dim(const Tensor& x, int64_t dim, int64_t out, double scale, const std::string& mode,
                    bool align_corners) {
  const Taps t = source_taps(x.size(dim), out, scale, mode, align_corners, x.dtype() == kF64 ? kF64 : kF32, x.device());
  Tensor a = x.index_select(dim, t.i0);
  if (!t.i1.defined()) return a;
  Shape wshape(x.dim(), 1);
  wshape[dim] = out;
  Tensor b = x.index_select(dim, t.i1);
  return a + (b - a) * t.w1.to(x.dtype()).reshape(wshape);
}

Tensor batched(const Tensor& x, int64_t dims) { return x.dim() == dims - 1 ? x.unsqueeze(0) : x; }

}  // namespace

Tensor interpolate(const Tensor& input, const InterpolateOptions& o) {
  EMBER_CHECK(input.defined(), ValueError, "[interpolate] the input is undefined");
  EMBER_CHECK(input.dim() >= 3 && input.dim() <= 5, ShapeError,
              "[interpolate] input must be [N, C, *spatial] with 1 to 3 spatial dims, got ", describe(input));
  EMBER_CHECK(input.is_floating_point(), DTypeError, "[interpolate] input must be floating, got ", describe(input));
  const int64_t spatial = input.dim() - 2;
  const std::string& mode = o.mode;
  const bool nearest = mode == "nearest" || mode == "nearest-exact";
  const bool linear = mode == "linear" || mode == "bilinear" || mode == "trilinear";
  EMBER_CHECK(nearest || linear, ValueError, "[interpolate] mode must be nearest, nearest-exact, linear, bilinear or ",
              "trilinear, got \"", mode, "\"");
  if (linear) {
    const int64_t want = mode == "linear" ? 1 : mode == "bilinear" ? 2 : 3;
    EMBER_CHECK(want == spatial, ShapeError, "[interpolate] mode ", mode, " needs a ", want + 2, "-D input, got ",
                describe(input));
  }
  EMBER_CHECK(!(nearest && o.align_corners.has_value()), ValueError,
              "[interpolate] align_corners only applies to the linear modes, not ", mode);
  EMBER_CHECK(o.size.empty() != o.scale_factor.empty(), ValueError,
              "[interpolate] give exactly one of size and scale_factor");
  const auto& given = o.size.empty() ? o.scale_factor.size() : o.size.size();
  EMBER_CHECK(given == 1 || static_cast<int64_t>(given) == spatial, ShapeError, "[interpolate] ", given,
              " sizes or scale factors for ", spatial, " spatial dims of ", describe(input));
  Tensor x = input;
  for (int64_t s = 0; s < spatial; ++s) {
    const int64_t dim = 2 + s, in = input.size(dim);
    int64_t out;
    double scale = 0;
    if (!o.size.empty()) {
      out = o.size[given == 1 ? 0 : s];
    } else {
      scale = o.scale_factor[given == 1 ? 0 : s];
      EMBER_CHECK(scale > 0 && std::isfinite(scale), ValueError, "[interpolate] scale_factor must be positive, got ",
                  scale);
      out = static_cast<int64_t>(std::floor(static_cast<double>(in) * scale));
    }
    EMBER_CHECK(out > 0 && in > 0, ShapeError, "[interpolate] input ", describe(input), " gives output size ", out,
                " in dim ", dim, "; both must be positive");
    x = resample_dim(x, dim, out, scale, mode, o.align_corners.value_or(false));
  }
  return x;
}

Tensor conv3d(const Tensor& input, const Tensor& weight, const Tensor& bias, Int3 stride, Int3 padding, Int3 dilation,
              int64_t groups) {
  EMBER_CHECK(input.defined() && weight.defined(), ValueError, "[conv3d] input and weight must be defined");
  EMBER_CHECK(input.dim() == 4 || input.dim() == 5, ShapeError,
              "[conv3d] input must be [C, D, H, W] (unbatched) or [N, C, D, H, W], got ", describe(input));
  EMBER_CHECK(weight.dim() == 5, ShapeError, "[conv3d] weight must be [O, C / groups, kD, kH, kW], got ",
              describe(weight));
  EMBER_CHECK(groups > 0 && weight.size(0) % groups == 0, ValueError, "[conv3d] groups ", groups, " must divide the ",
              weight.size(0), " output channels of weight ", describe(weight));
  Tensor x = batched(input, 5);
  EMBER_CHECK(x.size(1) == weight.size(1) * groups, ShapeError, "[conv3d] input ", describe(input), " has ", x.size(1),
              " channels but weight ", describe(weight), " with groups ", groups, " expects ", weight.size(1) * groups);
  for (int i = 0; i < 3; ++i)
    EMBER_CHECK(stride[i] > 0 && dilation[i] > 0 && padding[i] >= 0, ValueError,
                "[conv3d] stride and dilation must be positive and padding non-negative, got stride (", stride[0], ", ",
                stride[1], ", ", stride[2], "), padding (", padding[0], ", ", padding[1], ", ", padding[2],
                "), dilation (", dilation[0], ", ", dilation[1], ", ", dilation[2], ")");
  const int64_t n = x.size(0), kd = weight.size(2);
  const int64_t depth = x.size(2) + 2 * padding[0];
  const int64_t out_d = (depth - dilation[0] * (kd - 1) - 1) / stride[0] + 1;
  EMBER_CHECK(depth - dilation[0] * (kd - 1) - 1 >= 0, ShapeError, "[conv3d] input ", describe(input),
              " padded to depth ", depth, " is smaller than the dilated kernel of weight ", describe(weight));
  if (padding[0] > 0) x = pad(x, {0, 0, 0, 0, padding[0], padding[0]});
  // One conv2d per depth tap, with the output depths folded into the batch.
  Tensor acc;
  for (int64_t t = 0; t < kd; ++t) {
    const int64_t start = t * dilation[0];
    Tensor planes = x.slice(2, start, start + (out_d - 1) * stride[0] + 1, stride[0]).transpose(1, 2);
    planes = planes.reshape({n * out_d, x.size(1), x.size(3), x.size(4)});
    Tensor y = ember::conv2d(planes, weight.select(2, t), {}, {stride[1], stride[2]}, {padding[1], padding[2]},
                             {dilation[1], dilation[2]}, groups);
    acc = acc.defined() ? acc + y : y;
  }
  Tensor out = acc.reshape({n, out_d, acc.size(1), acc.size(2), acc.size(3)}).transpose(1, 2);
  if (bias.defined()) {
    EMBER_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), ShapeError, "[conv3d] bias ", describe(bias),
                " must be [", weight.size(0), "]");
    out = out + bias.reshape({1, bias.size(0), 1, 1, 1});
  }
  out = out.contiguous();
  return input.dim() == 4 ? out.squeeze(0) : out;
}

Tensor conv_transpose1d(const Tensor& input, const Tensor& weight, const Tensor& bias, int64_t stride, int64_t padding,
                        int64_t output_padding, int64_t groups, int64_t dilation) {
  return ember::conv_transpose1d(input, weight, bias, stride, padding, output_padding, groups, dilation);
}

namespace {
void check_1d(const char* op, const Tensor& input) {
  EMBER_CHECK(input.defined() && (input.dim() == 2 || input.dim() == 3), ShapeError, "[", op,
              "] input must be [C, L] (unbatched) or [N, C, L], got ", input.defined() ? describe(input) : "undefined");
}
}  // namespace

Tensor max_pool1d(const Tensor& input, int64_t kernel_size, std::optional<int64_t> stride, int64_t padding,
                  int64_t dilation, bool ceil_mode) {
  check_1d("max_pool1d", input);
  return ember::max_pool2d(input.unsqueeze(-2), {1, kernel_size}, {1, stride.value_or(kernel_size)}, {0, padding},
                           {1, dilation}, ceil_mode)
      .squeeze(-2);
}

Tensor avg_pool1d(const Tensor& input, int64_t kernel_size, std::optional<int64_t> stride, int64_t padding,
                  bool ceil_mode, bool count_include_pad) {
  check_1d("avg_pool1d", input);
  return ember::avg_pool2d(input.unsqueeze(-2), {1, kernel_size}, {1, stride.value_or(kernel_size)}, {0, padding},
                           ceil_mode, count_include_pad)
      .squeeze(-2);
}

Tensor adaptive_avg_pool1d(const Tensor& input, int64_t output_size) {
  check_1d("adaptive_avg_pool1d", input);
  return ember::adaptive_avg_pool2d(input.unsqueeze(-2), {1, output_size}).squeeze(-2);
}

}  // namespace ember::nn::functional
