// Convolution and pooling layers over the core ops (core/ops/nn.hpp).
#include "nn/conv.hpp"

#include <cmath>
#include <sstream>

#include "core/ops/creation.hpp"
#include "core/ops/nn.hpp"
#include "nn/init.hpp"

namespace ember::nn {

namespace {

// Streams (h, w) as PyTorch prints tuples (ostream: GCC 12 misreports -Wrestrict on string concatenation).
std::string pair_str(const Int2& p) {
  std::ostringstream os;
  os << "(" << p[0] << ", " << p[1] << ")";
  return os.str();
}

void check_channels(const char* layer, int64_t in, int64_t out, int64_t groups) {
  EMBER_CHECK(in > 0 && out > 0, ValueError, "[nn.", layer, "] channels must be positive, got in ", in, ", out ", out);
  EMBER_CHECK(groups > 0 && in % groups == 0 && out % groups == 0, ValueError, "[nn.", layer, "] groups ", groups,
              " must divide in_channels ", in, " and out_channels ", out);
}

// PyTorch's default: kaiming_uniform(a = sqrt(5)) and U(+-1/sqrt(fan_in)) for the bias.
void reset_conv(Tensor& weight, Tensor& bias) {
  init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    auto fan_in = init::calculate_fan_in_and_fan_out(weight).first;
    double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
    init::uniform_(bias, -bound, bound);
  }
}

Tensor make(const Shape& shape, const Placement& p) { return empty(shape, {.dtype = p.dtype, .device = p.device}); }

}  // namespace

// ---------------------------------------------------------------- Conv1d

Conv1dImpl::Conv1dImpl(int64_t in, int64_t out, int64_t k, Conv1dOptions o)
    : in_channels(in), out_channels(out), kernel_size(k), options(o) {
  check_channels("Conv1d", in, out, o.groups);
  EMBER_CHECK(k > 0, ValueError, "[nn.Conv1d] kernel_size must be positive, got ", k);
  weight = register_parameter("weight", make({out, in / o.groups, k}, o.placement));
  if (o.bias) bias = register_parameter("bias", make({out}, o.placement));
  reset_parameters();
}

void Conv1dImpl::reset_parameters() { reset_conv(weight, bias); }

Tensor Conv1dImpl::forward(const Tensor& x) {
  return conv1d(x, weight, bias, options.stride, options.padding, options.dilation, options.groups);
}

std::string Conv1dImpl::extra_repr() const {
  std::ostringstream os;
  os << in_channels << ", " << out_channels << ", kernel_size=(" << kernel_size << ",), stride=(" << options.stride
     << ",)";
  if (options.padding) os << ", padding=(" << options.padding << ",)";
  if (options.dilation != 1) os << ", dilation=(" << options.dilation << ",)";
  if (options.groups != 1) os << ", groups=" << options.groups;
  if (!options.bias) os << ", bias=False";
  return os.str();
}

// ---------------------------------------------------------------- Conv2d

Conv2dImpl::Conv2dImpl(int64_t in, int64_t out, Int2 k, Conv2dOptions o)
    : in_channels(in), out_channels(out), kernel_size(k), options(o) {
  check_channels("Conv2d", in, out, o.groups);
  EMBER_CHECK(k[0] > 0 && k[1] > 0, ValueError, "[nn.Conv2d] kernel_size must be positive, got ", pair_str(k));
  weight = register_parameter("weight", make({out, in / o.groups, k[0], k[1]}, o.placement));
  if (o.bias) bias = register_parameter("bias", make({out}, o.placement));
  reset_parameters();
}

void Conv2dImpl::reset_parameters() { reset_conv(weight, bias); }

Tensor Conv2dImpl::forward(const Tensor& x) {
  return conv2d(x, weight, bias, options.stride, options.padding, options.dilation, options.groups);
}

std::string Conv2dImpl::extra_repr() const {
  std::ostringstream os;
  os << in_channels << ", " << out_channels << ", kernel_size=" << pair_str(kernel_size)
     << ", stride=" << pair_str(options.stride);
  if (options.padding[0] || options.padding[1]) os << ", padding=" << pair_str(options.padding);
  if (options.dilation[0] != 1 || options.dilation[1] != 1) os << ", dilation=" << pair_str(options.dilation);
  if (options.groups != 1) os << ", groups=" << options.groups;
  if (!options.bias) os << ", bias=False";
  return os.str();
}

// ---------------------------------------------------------------- ConvTranspose2d

ConvTranspose2dImpl::ConvTranspose2dImpl(int64_t in, int64_t out, Int2 k, ConvTranspose2dOptions o)
    : in_channels(in), out_channels(out), kernel_size(k), options(o) {
  check_channels("ConvTranspose2d", in, out, o.groups);
  EMBER_CHECK(k[0] > 0 && k[1] > 0, ValueError, "[nn.ConvTranspose2d] kernel_size must be positive, got ", pair_str(k));
  weight = register_parameter("weight", make({in, out / o.groups, k[0], k[1]}, o.placement));
  if (o.bias) bias = register_parameter("bias", make({out}, o.placement));
  reset_parameters();
}

void ConvTranspose2dImpl::reset_parameters() { reset_conv(weight, bias); }

Tensor ConvTranspose2dImpl::forward(const Tensor& x) {
  return conv_transpose2d(x, weight, bias, options.stride, options.padding, options.output_padding, options.groups,
                          options.dilation);
}

std::string ConvTranspose2dImpl::extra_repr() const {
  std::ostringstream os;
  os << in_channels << ", " << out_channels << ", kernel_size=" << pair_str(kernel_size)
     << ", stride=" << pair_str(options.stride);
  if (options.padding[0] || options.padding[1]) os << ", padding=" << pair_str(options.padding);
  if (options.output_padding[0] || options.output_padding[1])
    os << ", output_padding=" << pair_str(options.output_padding);
  if (options.groups != 1) os << ", groups=" << options.groups;
  if (!options.bias) os << ", bias=False";
  return os.str();
}

// ---------------------------------------------------------------- pooling

Tensor MaxPool2dImpl::forward(const Tensor& x) {
  return max_pool2d(x, kernel_size, options.stride.value_or(kernel_size), options.padding, options.dilation,
                    options.ceil_mode);
}

std::string MaxPool2dImpl::extra_repr() const {
  std::ostringstream os;
  os << "kernel_size=" << pair_str(kernel_size) << ", stride=" << pair_str(options.stride.value_or(kernel_size))
     << ", padding=" << pair_str(options.padding) << ", dilation=" << pair_str(options.dilation)
     << ", ceil_mode=" << (options.ceil_mode ? "True" : "False");
  return os.str();
}

Tensor AvgPool2dImpl::forward(const Tensor& x) {
  return avg_pool2d(x, kernel_size, options.stride.value_or(kernel_size), options.padding, options.ceil_mode,
                    options.count_include_pad);
}

std::string AvgPool2dImpl::extra_repr() const {
  std::ostringstream os;
  os << "kernel_size=" << pair_str(kernel_size) << ", stride=" << pair_str(options.stride.value_or(kernel_size))
     << ", padding=" << pair_str(options.padding);
  return os.str();
}

Tensor AdaptiveAvgPool2dImpl::forward(const Tensor& x) { return adaptive_avg_pool2d(x, output_size); }

std::string AdaptiveAvgPool2dImpl::extra_repr() const { return "output_size=" + pair_str(output_size); }

}  // namespace ember::nn
