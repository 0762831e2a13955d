// Pooling builders: argument checks, output sizes by PyTorch's rules (ceil_mode included), and
// unbatched [C, H, W] inputs; the windows are computed in kernels/cpu/pool.cpp and kernels/cuda/pool.cu.
// Each backward is a recorded op linear in the gradient, whose own backward is the forward pool again
// (average pools) or a gather by the saved indices (max pool), so higher derivatives exist.
#include <string>

#include "core/autograd.hpp"
#include "core/ops/index.hpp"
#include "core/ops/nn.hpp"
#include "core/profiler.hpp"
#include "kernels/nn.hpp"

namespace ember {
namespace {

using kernels::Pool2dParams;
using Pair = std::array<int64_t, 2>;

std::string pair_str(std::array<int64_t, 2> v) { return detail::cat_str("[", v[0], ", ", v[1], "]"); }

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

// PyTorch's pooling_output_shape: with ceil_mode, the last window must start inside the input or
// the left padding.
int64_t pooled_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dilation, bool ceil_mode) {
  int64_t out = floor_div(in + 2 * pad - dilation * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0), stride) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

// A [N, C, H, W] view of a batched or unbatched input.
Tensor batched_view(const char* op, const Tensor& input) {
  EMBER_CHECK(input.defined(), ValueError, "[", op, "] input is undefined");
  EMBER_CHECK(input.dim() == 3 || input.dim() == 4, ShapeError, "[", op,
              "] expected a 3-d [C, H, W] or 4-d [N, C, H, W] input, got ", describe(input));
  EMBER_CHECK(input.size(-2) > 0 && input.size(-1) > 0, ShapeError, "[", op,
              "] expected non-zero height and width, got ", describe(input));
  return input.dim() == 3 ? input.unsqueeze(0) : input;
}

Pool2dParams window_params(const char* op, std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride,
                           std::array<int64_t, 2> padding, std::array<int64_t, 2> dilation) {
  EMBER_CHECK(kernel[0] > 0 && kernel[1] > 0, ValueError, "[", op, "] kernel size must be positive, got ",
              pair_str(kernel));
  if (stride[0] == 0 && stride[1] == 0) stride = kernel;
  EMBER_CHECK(stride[0] > 0 && stride[1] > 0, ValueError, "[", op, "] stride must be positive, got ", pair_str(stride));
  EMBER_CHECK(dilation[0] > 0 && dilation[1] > 0, ValueError, "[", op, "] dilation must be positive, got ",
              pair_str(dilation));
  EMBER_CHECK(padding[0] >= 0 && padding[1] >= 0, ValueError, "[", op, "] padding must be non-negative, got ",
              pair_str(padding));
  EMBER_CHECK(padding[0] <= kernel[0] / 2 && padding[1] <= kernel[1] / 2, ValueError, "[", op,
              "] padding should be at most half of the kernel size, got padding ", pair_str(padding), " and kernel ",
              pair_str(kernel));
  Pool2dParams p{};
  for (int i = 0; i < 2; ++i) {
    p.kernel[i] = kernel[i];
    p.stride[i] = stride[i];
    p.padding[i] = padding[i];
    p.dilation[i] = dilation[i];
  }
  return p;
}

// The output shape in the input's own rank, checked to be non-empty in H and W.
Shape pooled_shape(const char* op, const Tensor& input, const Pool2dParams& p, bool ceil_mode) {
  const int64_t h = input.size(-2), w = input.size(-1);
  const int64_t oh = pooled_size(h, p.kernel[0], p.padding[0], p.stride[0], p.dilation[0], ceil_mode);
  const int64_t ow = pooled_size(w, p.kernel[1], p.padding[1], p.stride[1], p.dilation[1], ceil_mode);
  EMBER_CHECK(oh > 0 && ow > 0, ShapeError, "[", op, "] input ", describe(input),
              " is too small: the output size would be [", oh, ", ", ow, "]");
  Shape out = input.shape();
  out[out.size() - 2] = oh;
  out[out.size() - 1] = ow;
  return out;
}

// Views a fresh output of the input's rank as 4-d for the kernel.
Tensor as4d(const Tensor& t) { return t.dim() == 3 ? t.unsqueeze(0) : t; }

Pair to_pair(const int64_t (&v)[2]) { return {v[0], v[1]}; }

// The gradient w.r.t. the input (shape in_shape) from g: a fresh tensor the kernel fills.
template <class Kernel>
Tensor pool_backward(const Tensor& g, const Shape& in_shape, Kernel kernel) {
  Tensor gi = make_tensor(in_shape, g.dtype(), g.device());
  autograd::NoGradGuard no_grad;
  kernel(as4d(gi), as4d(g));
  return gi;
}

// max_pool2d's backward: g scattered (added) to the argmax positions. Its own backward gathers v there.
Tensor max_pool2d_backward(const Tensor& g, const Tensor& indices, const Shape& in_shape, const Pool2dParams& p) {
  Tensor gi = pool_backward(g, in_shape, [&](const Tensor& gi4, const Tensor& g4) {
    kernels::max_pool2d_backward(gi4, g4, as4d(indices), p);
  });
  if (autograd::needs_grad(g))
    autograd::record("max_pool2d_backward", {&gi}, {&g}, {indices}, [](autograd::Ctx& c) {
      const Tensor idx = c.saved(0);
      Tensor v = c.grad().flatten(-2, -1);
      return autograd::Grads{gather(v, -1, idx.flatten(-2, -1)).view(idx.shape())};
    });
  return gi;
}

// Records the max pool's node on the input: values get it, indices stay constants.
void record_max_pool(Tensor& out, const Tensor& input, const Tensor& indices, const Pool2dParams& p) {
  autograd::record("max_pool2d", {&out}, {&input}, {indices}, [in = input.shape(), p](autograd::Ctx& c) {
    return autograd::Grads{max_pool2d_backward(c.grad(), c.saved(0), in, p)};
  });
}

// avg_pool2d's backward: g spread over each window divided by its divisor; linear in g, with the
// forward pool as its adjoint.
Tensor avg_pool2d_backward(const Tensor& g, const Shape& in_shape, const Pool2dParams& p, bool ceil_mode) {
  Tensor gi = pool_backward(g, in_shape,
                            [&](const Tensor& gi4, const Tensor& g4) { kernels::avg_pool2d_backward(gi4, g4, p); });
  if (autograd::needs_grad(g))
    autograd::record("avg_pool2d_backward", {&gi}, {&g}, {}, [p, ceil_mode](autograd::Ctx& c) {
      return autograd::Grads{avg_pool2d(c.grad(), to_pair(p.kernel), to_pair(p.stride), to_pair(p.padding), ceil_mode,
                                        p.count_include_pad)};
    });
  return gi;
}

Tensor adaptive_avg_pool2d_backward(const Tensor& g, const Shape& in_shape) {
  Tensor gi = pool_backward(
      g, in_shape, [&](const Tensor& gi4, const Tensor& g4) { kernels::adaptive_avg_pool2d_backward(gi4, g4); });
  if (autograd::needs_grad(g))
    autograd::record("adaptive_avg_pool2d_backward", {&gi}, {&g}, {}, [out = g.shape()](autograd::Ctx& c) {
      return autograd::Grads{adaptive_avg_pool2d(c.grad(), {out[out.size() - 2], out[out.size() - 1]})};
    });
  return gi;
}

}  // namespace

std::tuple<Tensor, Tensor> max_pool2d_with_indices(const Tensor& input, std::array<int64_t, 2> kernel,
                                                   std::array<int64_t, 2> stride, std::array<int64_t, 2> padding,
                                                   std::array<int64_t, 2> dilation, bool ceil_mode) {
  const char* op = "max_pool2d";
  Tensor out, indices;
  Pool2dParams p;
  {
    autograd::NoGradGuard no_grad;  // the 4-d views are scaffolding: the node is recorded on input
    Tensor x = batched_view(op, input);
    EMBER_CHECK(input.dtype() != kBool, DTypeError, "[", op, "] does not support bool input, got ", describe(input));
    p = window_params(op, kernel, stride, padding, dilation);
    Shape shape = pooled_shape(op, input, p, ceil_mode);
    out = make_tensor(shape, input.dtype(), input.device());
    indices = make_tensor(shape, kI64, input.device());
    kernels::max_pool2d(as4d(out), as4d(indices), x, p);
  }
  if (autograd::needs_grad(input)) record_max_pool(out, input, indices, p);
  return {out, indices};
}

Tensor max_pool2d(const Tensor& input, std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride,
                  std::array<int64_t, 2> padding, std::array<int64_t, 2> dilation, bool ceil_mode) {
  profiler::OpRecord prof("max_pool2d", {&input});
  // The backward needs the argmax positions.
  if (autograd::needs_grad(input))
    return std::get<0>(max_pool2d_with_indices(input, kernel, stride, padding, dilation, ceil_mode));
  const char* op = "max_pool2d";
  Tensor x = batched_view(op, input);
  EMBER_CHECK(input.dtype() != kBool, DTypeError, "[", op, "] does not support bool input, got ", describe(input));
  Pool2dParams p = window_params(op, kernel, stride, padding, dilation);
  Tensor out = make_tensor(pooled_shape(op, input, p, ceil_mode), input.dtype(), input.device());
  kernels::max_pool2d(as4d(out), Tensor(), x, p);
  return out;
}

Tensor avg_pool2d(const Tensor& input, std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride,
                  std::array<int64_t, 2> padding, bool ceil_mode, bool count_include_pad) {
  profiler::OpRecord prof("avg_pool2d", {&input});
  const char* op = "avg_pool2d";
  Tensor out;
  Pool2dParams p;
  {
    autograd::NoGradGuard no_grad;
    Tensor x = batched_view(op, input);
    EMBER_CHECK(input.is_floating_point(), DTypeError, "[", op, "] needs a floating input, got ", describe(input));
    p = window_params(op, kernel, stride, padding, {1, 1});
    p.count_include_pad = count_include_pad;
    out = make_tensor(pooled_shape(op, input, p, ceil_mode), input.dtype(), input.device());
    kernels::avg_pool2d(as4d(out), x, p);
  }
  if (autograd::needs_grad(input))
    autograd::record("avg_pool2d", {&out}, {&input}, {}, [in = input.shape(), p, ceil_mode](autograd::Ctx& c) {
      return autograd::Grads{avg_pool2d_backward(c.grad(), in, p, ceil_mode)};
    });
  return out;
}

Tensor adaptive_avg_pool2d(const Tensor& input, std::array<int64_t, 2> output_size) {
  profiler::OpRecord prof("adaptive_avg_pool2d", {&input});
  const char* op = "adaptive_avg_pool2d";
  Tensor out;
  {
    autograd::NoGradGuard no_grad;
    Tensor x = batched_view(op, input);
    EMBER_CHECK(input.is_floating_point(), DTypeError, "[", op, "] needs a floating input, got ", describe(input));
    EMBER_CHECK(output_size[0] >= 0 && output_size[1] >= 0, ValueError, "[", op,
                "] output size must be non-negative, got ", pair_str(output_size));
    Shape shape = input.shape();
    shape[shape.size() - 2] = output_size[0];
    shape[shape.size() - 1] = output_size[1];
    out = make_tensor(shape, input.dtype(), input.device());
    kernels::adaptive_avg_pool2d(as4d(out), x);
  }
  if (autograd::needs_grad(input))
    autograd::record("adaptive_avg_pool2d", {&out}, {&input}, {}, [in = input.shape()](autograd::Ctx& c) {
      return autograd::Grads{adaptive_avg_pool2d_backward(c.grad(), in)};
    });
  return out;
}

}  // namespace ember
