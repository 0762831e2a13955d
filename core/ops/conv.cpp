// Convolution builders: conv1d/conv2d and their transposes (argument checks, output shapes) and their
// backwards. The ops run in [N, C, H, W]: conv1d is conv2d with H = 1 and unbatched inputs get a batch dim
// of 1, through recorded views, so gradients flow back through those reshapes. Compute is kernels/conv.hpp.
// conv2d's input gradient is conv_transpose2d and vice versa; both weight gradients are one recorded op
// whose own backward is again conv2d and conv_transpose2d, so every order of derivative exists.
#include "kernels/conv.hpp"

#include <array>
#include <string>

#include "core/autocast.hpp"
#include "core/autograd.hpp"
#include "core/flop_counter.hpp"
#include "core/ops/nn.hpp"
#include "core/ops/reduce.hpp"
#include "core/ops/shape.hpp"
#include "core/profiler.hpp"

namespace ember {
namespace {

using kernels::Conv2dParams;
using Pair = std::array<int64_t, 2>;

Pair pair(const int64_t (&v)[2]) { return {v[0], v[1]}; }

// The output padding with which conv_transpose2d takes a conv2d output of out's size back to the conv
// input's spatial size (in_shape [N, C, H, W]); it is below the stride, as the conv's rounding left it.
Pair output_padding_for(const Shape& in_shape, const Tensor& out, int64_t kh, int64_t kw, const Conv2dParams& p) {
  const int64_t k[2] = {kh, kw};
  Pair r{};
  for (int i = 0; i < 2; ++i)
    r[i] = in_shape[2 + i] - ((out.size(2 + i) - 1) * p.stride[i] - 2 * p.padding[i] + p.dilation[i] * (k[i] - 1) + 1);
  return r;
}

// The leading part of a [N, C, H, W] conv result with the spatial size of `shape`: a conv over a
// transposed conv's output can see rows and columns made only of output padding, which have no input.
Tensor crop(const Tensor& t, const Shape& shape) {
  Tensor r = t;
  for (int64_t d = 2; d < 4; ++d)
    if (r.size(d) > shape[d]) r = r.narrow(d, 0, shape[d]);
  return r;
}

Tensor contiguous_or_undefined(const Tensor& t) { return t.defined() ? t.contiguous() : t; }

// grad_weight of conv2d(x, weight) for the output gradient gout, as a recorded op: it is bilinear in
// (gout, x), and its backward is conv2d(x, v) for gout and conv_transpose2d(gout, v) for x.
Tensor conv_weight(const Tensor& gout, const Tensor& x, const Shape& w_shape, const Conv2dParams& p) {
  Tensor gw = make_tensor(w_shape, x.dtype(), x.device());
  count_flops("conv2d_weight_backward", 2 * gout.numel() * w_shape[1] * w_shape[2] * w_shape[3]);
  {
    autograd::NoGradGuard no_grad;
    kernels::conv2d_weight_backward(gw, gout.contiguous(), x.contiguous(), p);
  }
  if (autograd::needs_grad({&gout, &x})) {
    const bool need_gout = autograd::needs_grad(gout), need_x = autograd::needs_grad(x);
    autograd::record("conv2d_weight_backward", {&gw}, {&gout, &x}, {need_x ? gout : Tensor(), need_gout ? x : Tensor()},
                     [p](autograd::Ctx& c) {
                       const Tensor& v = c.grad();
                       autograd::Grads r(2);
                       if (c.needs_grad(0))
                         r[0] = crop(
                             conv2d(c.saved(1), v, {}, pair(p.stride), pair(p.padding), pair(p.dilation), p.groups),
                             c.input(0).shape);
                       if (c.needs_grad(1)) {
                         const Tensor gout = c.saved(0);
                         r[1] = conv_transpose2d(gout, v, {}, pair(p.stride), pair(p.padding),
                                                 output_padding_for(c.input(1).shape, gout, v.size(2), v.size(3), p),
                                                 p.groups, pair(p.dilation));
                       }
                       return r;
                     });
  }
  return gw;
}

// conv2d's input gradient: the adjoint, conv_transpose2d. With stride 1 and one group it is also a
// conv2d of g with the flipped, transposed weight and "full" padding, which im2col + GEMM compute
// without a column buffer to zero and scatter back (about 10% of a small ResNet's step on CPU). That
// conv's column matrix has O * H * W columns' worth of rows per tap against conv_transpose2d's
// C * OH * OW, so it is taken only where it is not the larger one ("same" convs, not LeNet's 6 -> 16
// unpadded one, where it was 5x larger).
Tensor conv2d_input_grad(const Tensor& g, const Tensor& w, const Shape& in_shape, const Conv2dParams& p) {
  const Pair full{p.dilation[0] * (w.size(2) - 1) - p.padding[0], p.dilation[1] * (w.size(3) - 1) - p.padding[1]};
  const int64_t n = static_cast<int64_t>(in_shape.size());
  const int64_t full_cols = w.size(0) * in_shape[n - 1] * in_shape[n - 2];
  const int64_t transposed_cols = w.size(1) * g.size(g.dim() - 1) * g.size(g.dim() - 2);
  if (p.stride[0] == 1 && p.stride[1] == 1 && p.groups == 1 && full[0] >= 0 && full[1] >= 0 &&
      full_cols <= transposed_cols)
    return conv2d(g, flip(w, {2, 3}).transpose(0, 1), {}, {1, 1}, full, pair(p.dilation), 1);
  return conv_transpose2d(g, w, {}, pair(p.stride), pair(p.padding),
                          output_padding_for(in_shape, g, w.size(2), w.size(3), p), p.groups, pair(p.dilation));
}

// conv2d on [N, C, H, W] x [O, C / groups, kH, kW], arguments checked, recorded as `op`.
Tensor conv2d_4d(const char* op, const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p,
                 const Shape& out_shape) {
  // 2 * output elements * (C_in / groups) * kH * kW, as FlopCounterMode's conv formula.
  count_flops(op, 2 * shape_numel(out_shape) * w.size(1) * w.size(2) * w.size(3));
  Tensor out = make_tensor(out_shape, x.dtype(), x.device());
  {
    autograd::NoGradGuard no_grad;
    kernels::conv2d(out, x.contiguous(), w.contiguous(), contiguous_or_undefined(bias), p);
  }
  if (autograd::needs_grad({&x, &w, &bias})) {
    const bool need_x = autograd::needs_grad(x), need_w = autograd::needs_grad(w);
    autograd::record(op, {&out}, {&x, &w, &bias}, {need_w ? x : Tensor(), need_x ? w : Tensor()},
                     [p](autograd::Ctx& c) {
                       const Tensor& g = c.grad();
                       autograd::Grads r(3);
                       if (c.needs_grad(0)) r[0] = conv2d_input_grad(g, c.saved(1), c.input(0).shape, p);
                       if (c.needs_grad(1)) r[1] = conv_weight(g, c.saved(0), c.input(1).shape, p);
                       if (c.needs_grad(2)) r[2] = g.sum({0, 2, 3});
                       return r;
                     });
  }
  return out;
}

// conv_transpose2d on [N, C, H, W] x [C, O / groups, kH, kW], arguments checked, recorded as `op`.
Tensor conv_transpose2d_4d(const char* op, const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p,
                           const Shape& out_shape) {
  // Each input element meets (C_out / groups) * kH * kW weights: FlopCounterMode's transposed formula.
  count_flops(op, 2 * x.numel() * w.size(1) * w.size(2) * w.size(3));
  Tensor out = make_tensor(out_shape, x.dtype(), x.device());
  {
    autograd::NoGradGuard no_grad;
    kernels::conv_transpose2d(out, x.contiguous(), w.contiguous(), contiguous_or_undefined(bias), p);
  }
  if (autograd::needs_grad({&x, &w, &bias})) {
    const bool need_x = autograd::needs_grad(x), need_w = autograd::needs_grad(w);
    autograd::record(
        op, {&out}, {&x, &w, &bias}, {need_w ? x : Tensor(), need_x ? w : Tensor()}, [p](autograd::Ctx& c) {
          const Tensor& g = c.grad();
          autograd::Grads r(3);
          if (c.needs_grad(0))
            r[0] = crop(conv2d(g, c.saved(1), {}, pair(p.stride), pair(p.padding), pair(p.dilation), p.groups),
                        c.input(0).shape);
          // The weight [C, O / groups, ...] is that of the conv2d taking out back to x.
          if (c.needs_grad(1)) r[1] = conv_weight(c.saved(0), g, c.input(1).shape, p);
          if (c.needs_grad(2)) r[2] = g.sum({0, 2, 3});
          return r;
        });
  }
  return out;
}

struct Checked {
  Tensor x, w;  // [N, C, H, W] and 4-d weight views of the arguments
  bool batched;
};

// Checks shared by the convolutions and their transposes; returns the 4-d views. The (h, w) parameter
// pairs are already expanded (1-d ops pass h = 1 with stride/padding/dilation 1/0/1).
Checked check_common(const char* op, int spatial, bool transposed, const Tensor& input, const Tensor& weight,
                     Pair stride, Pair padding, Pair dilation, int64_t groups) {
  EMBER_CHECK(input.defined() && weight.defined(), ValueError, "[", op, "] got an undefined input or weight");
  const std::string names = spatial == 1 ? "L" : "H, W";
  EMBER_CHECK(weight.dim() == spatial + 2, ShapeError, "[", op, "] expected weight ",
              transposed ? "[in_channels, out_channels / groups, " : "[out_channels, in_channels / groups, ",
              spatial == 1 ? "kL" : "kH, kW", "], got ", describe(weight));
  EMBER_CHECK(input.dim() == spatial + 1 || input.dim() == spatial + 2, ShapeError, "[", op, "] expected input [C, ",
              names, "] (unbatched) or [N, C, ", names, "], got ", describe(input));
  EMBER_CHECK(input.device() == weight.device(), DeviceError, "[", op, "] expected tensors on one device, got input ",
              describe(input), " and weight ", describe(weight));
  EMBER_CHECK(input.dtype() == weight.dtype(), DTypeError, "[", op, "] expected tensors of one dtype, got input ",
              describe(input), " and weight ", describe(weight));
  EMBER_CHECK(input.dtype() != kBool, DTypeError, "[", op, "] bool tensors are not supported, got ", describe(input));
  EMBER_CHECK(!transposed || input.is_floating_point(), DTypeError, "[", op, "] needs floating tensors, got ",
              describe(input));
  for (int i = 0; i < 2; ++i) {
    EMBER_CHECK(stride[i] >= 1 && dilation[i] >= 1 && padding[i] >= 0, ValueError, "[", op,
                "] expected stride >= 1, dilation >= 1, padding >= 0, got stride ", stride[i], ", padding ", padding[i],
                ", dilation ", dilation[i]);
  }
  EMBER_CHECK(groups >= 1, ValueError, "[", op, "] expected groups >= 1, got ", groups);
  Checked r;
  r.batched = input.dim() == spatial + 2;
  r.x = r.batched ? input : input.unsqueeze(0);
  r.w = weight;
  if (spatial == 1) {
    r.x = r.x.unsqueeze(2);
    r.w = r.w.unsqueeze(2);
  }
  return r;
}

void check_bias(const char* op, const Tensor& bias, const Tensor& input, int64_t c_out) {
  if (!bias.defined()) return;
  EMBER_CHECK(bias.device() == input.device(), DeviceError, "[", op, "] expected tensors on one device, got input ",
              describe(input), " and bias ", describe(bias));
  EMBER_CHECK(bias.dtype() == input.dtype(), DTypeError, "[", op, "] expected tensors of one dtype, got input ",
              describe(input), " and bias ", describe(bias));
  EMBER_CHECK(bias.dim() == 1 && bias.shape()[0] == c_out, ShapeError, "[", op, "] expected bias [", c_out, "], got ",
              describe(bias));
}

// Undoes check_common's views on the [N, O, OH, OW] result.
Tensor unview(const Tensor& out, int spatial, bool batched) {
  Tensor r = spatial == 1 ? out.squeeze(2) : out;
  return batched ? r : r.squeeze(0);
}

const char* dim_name(int spatial, int i) { return spatial == 1 ? "L" : (i == 0 ? "H" : "W"); }

Tensor convolution(const char* op, int spatial, const Tensor& input, const Tensor& weight, const Tensor& bias,
                   Pair stride, Pair padding, Pair dilation, int64_t groups) {
  profiler::OpRecord prof(op, {&input, &weight, &bias});
  if (autocast::should_cast(CastPolicy::kLowerPrecision, {&input, &weight, &bias}))
    return convolution(op, spatial, autocast::lower(input), autocast::lower(weight), autocast::lower(bias), stride,
                       padding, dilation, groups);
  Checked a = check_common(op, spatial, false, input, weight, stride, padding, dilation, groups);
  const int64_t c_out = weight.shape()[0];
  EMBER_CHECK(c_out % groups == 0, ShapeError, "[", op, "] out_channels ", c_out, " of weight ", describe(weight),
              " is not divisible by groups=", groups);
  const int64_t c_in = a.x.shape()[1];
  EMBER_CHECK(c_in == weight.shape()[1] * groups, ShapeError, "[", op, "] input ", describe(input), " has ", c_in,
              " channels, but weight ", describe(weight), " with groups=", groups, " expects ",
              weight.shape()[1] * groups);
  check_bias(op, bias, input, c_out);
  Shape out_shape{a.x.shape()[0], c_out, 0, 0};
  for (int i = 0; i < 2; ++i) {
    const int64_t size = a.x.shape()[2 + i], padded = size + 2 * padding[i];
    const int64_t span = dilation[i] * (a.w.shape()[2 + i] - 1) + 1;
    EMBER_CHECK(padded >= span, ShapeError, "[", op, "] input ", describe(input), " padded to ", padded, " along ",
                dim_name(spatial, i), " is smaller than the dilated kernel size ", span);
    out_shape[2 + i] = (padded - span) / stride[i] + 1;
  }
  Conv2dParams p{{stride[0], stride[1]}, {padding[0], padding[1]}, {dilation[0], dilation[1]}, groups};
  return unview(conv2d_4d(op, a.x, a.w, bias, p, out_shape), spatial, a.batched);
}

Tensor transposed_convolution(const char* op, int spatial, const Tensor& input, const Tensor& weight,
                              const Tensor& bias, Pair stride, Pair padding, Pair output_padding, Pair dilation,
                              int64_t groups) {
  profiler::OpRecord prof(op, {&input, &weight, &bias});
  if (autocast::should_cast(CastPolicy::kLowerPrecision, {&input, &weight, &bias}))
    return transposed_convolution(op, spatial, autocast::lower(input), autocast::lower(weight), autocast::lower(bias),
                                  stride, padding, output_padding, dilation, groups);
  Checked a = check_common(op, spatial, true, input, weight, stride, padding, dilation, groups);
  for (int i = 0; i < 2; ++i) {
    EMBER_CHECK(output_padding[i] >= 0 && (output_padding[i] < stride[i] || output_padding[i] < dilation[i]),
                ValueError, "[", op, "] output padding must be non-negative and smaller than either stride or ",
                "dilation, got output_padding ", output_padding[i], ", stride ", stride[i], ", dilation ", dilation[i]);
  }
  const int64_t c_in = a.x.shape()[1];
  EMBER_CHECK(weight.shape()[0] % groups == 0, ShapeError, "[", op, "] in_channels ", weight.shape()[0], " of weight ",
              describe(weight), " is not divisible by groups=", groups);
  EMBER_CHECK(c_in == weight.shape()[0], ShapeError, "[", op, "] input ", describe(input), " has ", c_in,
              " channels, but weight ", describe(weight), " expects ", weight.shape()[0]);
  const int64_t c_out = weight.shape()[1] * groups;
  check_bias(op, bias, input, c_out);
  Shape out_shape{a.x.shape()[0], c_out, 0, 0};
  for (int i = 0; i < 2; ++i) {
    const int64_t size = (a.x.shape()[2 + i] - 1) * stride[i] - 2 * padding[i] +
                         dilation[i] * (a.w.shape()[2 + i] - 1) + output_padding[i] + 1;
    EMBER_CHECK(size > 0, ShapeError, "[", op, "] input ", describe(input), " with weight ", describe(weight),
                " gives a non-positive output size ", size, " along ", dim_name(spatial, i));
    out_shape[2 + i] = size;
  }
  Conv2dParams p{{stride[0], stride[1]}, {padding[0], padding[1]}, {dilation[0], dilation[1]}, groups};
  return unview(conv_transpose2d_4d(op, a.x, a.w, bias, p, out_shape), spatial, a.batched);
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

Tensor conv_transpose1d(const Tensor& input, const Tensor& weight, const Tensor& bias, int64_t stride, int64_t padding,
                        int64_t output_padding, int64_t groups, int64_t dilation) {
  return transposed_convolution("conv_transpose1d", 1, input, weight, bias, {1, stride}, {0, padding},
                                {0, output_padding}, {1, dilation}, groups);
}

Tensor conv_transpose2d(const Tensor& input, const Tensor& weight, const Tensor& bias, std::array<int64_t, 2> stride,
                        std::array<int64_t, 2> padding, std::array<int64_t, 2> output_padding, int64_t groups,
                        std::array<int64_t, 2> dilation) {
  return transposed_convolution("conv_transpose2d", 2, input, weight, bias, stride, padding, output_padding, dilation,
                                groups);
}

}  // namespace ember
