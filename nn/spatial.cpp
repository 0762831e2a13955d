// Conv3d, MaxPool1d, AvgPool1d over the functional forms of nn/functional_spatial.hpp.
#include "nn/spatial.hpp"

#include <cmath>
#include <sstream>

#include "core/ops/creation.hpp"
#include "nn/init.hpp"

namespace ember::nn {

namespace F = functional;

Conv3dImpl::Conv3dImpl(int64_t in, int64_t out, Int3 k, Conv3dOptions o)
    : in_channels(in), out_channels(out), kernel_size(k), options(o) {
  EMBER_CHECK(in > 0 && out > 0, ValueError, "[nn.Conv3d] channels must be positive, got in ", in, ", out ", out);
  EMBER_CHECK(o.groups > 0 && in % o.groups == 0 && out % o.groups == 0, ValueError, "[nn.Conv3d] groups ", o.groups,
              " must divide in_channels ", in, " and out_channels ", out);
  EMBER_CHECK(k[0] > 0 && k[1] > 0 && k[2] > 0, ValueError, "[nn.Conv3d] kernel_size must be positive, got (", k[0],
              ", ", k[1], ", ", k[2], ")");
  const TensorOptions to{.dtype = o.placement.dtype, .device = o.placement.device};
  weight = register_parameter("weight", empty({out, in / o.groups, k[0], k[1], k[2]}, to));
  if (o.bias) bias = register_parameter("bias", empty({out}, to));
  reset_parameters();
}

void Conv3dImpl::reset_parameters() {
  init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    auto fan_in = init::calculate_fan_in_and_fan_out(weight).first;
    double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
    init::uniform_(bias, -bound, bound);
  }
}

Tensor Conv3dImpl::forward(const Tensor& x) {
  return F::conv3d(x, weight, bias, options.stride, options.padding, options.dilation, options.groups);
}

namespace {
std::string triple(const Int3& t) {
  std::ostringstream os;
  os << "(" << t[0] << ", " << t[1] << ", " << t[2] << ")";
  return os.str();
}
}  // namespace

std::string Conv3dImpl::extra_repr() const {
  std::ostringstream os;
  os << in_channels << ", " << out_channels << ", kernel_size=" << triple(kernel_size)
     << ", stride=" << triple(options.stride);
  if (options.padding != Int3(0)) os << ", padding=" << triple(options.padding);
  if (options.dilation != Int3(1)) os << ", dilation=" << triple(options.dilation);
  if (options.groups != 1) os << ", groups=" << options.groups;
  if (!options.bias) os << ", bias=False";
  return os.str();
}

Tensor MaxPool1dImpl::forward(const Tensor& x) {
  return F::max_pool1d(x, kernel_size, options.stride, options.padding, options.dilation, options.ceil_mode);
}

std::string MaxPool1dImpl::extra_repr() const {
  std::ostringstream os;
  os << "kernel_size=" << kernel_size << ", stride=" << options.stride.value_or(kernel_size)
     << ", padding=" << options.padding << ", dilation=" << options.dilation
     << ", ceil_mode=" << (options.ceil_mode ? "True" : "False");
  return os.str();
}

Tensor AvgPool1dImpl::forward(const Tensor& x) {
  return F::avg_pool1d(x, kernel_size, options.stride, options.padding, options.ceil_mode, options.count_include_pad);
}

std::string AvgPool1dImpl::extra_repr() const {
  std::ostringstream os;
  os << "kernel_size=(" << kernel_size << ",), stride=(" << options.stride.value_or(kernel_size) << ",), padding=("
     << options.padding << ",)";
  return os.str();
}

}  // namespace ember::nn
