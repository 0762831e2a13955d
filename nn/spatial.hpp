// Layers over nn/functional_spatial.hpp: Conv3d, MaxPool1d, AvgPool1d, Upsample (PyTorch's names,
// defaults, initialisation and state_dict keys).
#pragma once
#include "nn/functional_spatial.hpp"
#include "nn/layers.hpp"

namespace ember::nn {

struct Conv3dOptions {
  Int3 stride = 1;
  Int3 padding = 0;
  Int3 dilation = 1;
  int64_t groups = 1;
  bool bias = true;
  Placement placement = {};
};
// weight [out, in / groups, kD, kH, kW] kaiming_uniform(a = sqrt(5)), bias U(+-1/sqrt(fan_in)).
class Conv3dImpl : public Module {
 public:
  Conv3dImpl(int64_t in_channels, int64_t out_channels, Int3 kernel_size, Conv3dOptions options = {});
  Tensor forward(const Tensor& x);
  void reset_parameters();
  std::string extra_repr() const override;
  int64_t in_channels, out_channels;
  Int3 kernel_size;
  Conv3dOptions options;
  Tensor weight, bias;
};
class Conv3d : public ModuleHolder<Conv3dImpl> {
 public:
  using ModuleHolder::ModuleHolder;
  Conv3d(int64_t in_channels, int64_t out_channels, Int3 kernel_size, Conv3dOptions options = {})
      : ModuleHolder(std::make_shared<Conv3dImpl>(in_channels, out_channels, kernel_size, options)) {}
};

struct MaxPool1dOptions {
  std::optional<int64_t> stride = {};  // default: the kernel size
  int64_t padding = 0;
  int64_t dilation = 1;
  bool ceil_mode = false;
};
class MaxPool1dImpl : public Module {
 public:
  explicit MaxPool1dImpl(int64_t kernel_size, MaxPool1dOptions options = {})
      : kernel_size(kernel_size), options(options) {}
  Tensor forward(const Tensor& x);
  std::string extra_repr() const override;
  int64_t kernel_size;
  MaxPool1dOptions options;
};
class MaxPool1d : public ModuleHolder<MaxPool1dImpl> {
 public:
  using ModuleHolder::ModuleHolder;
  MaxPool1d(int64_t kernel_size, MaxPool1dOptions options = {})
      : ModuleHolder(std::make_shared<MaxPool1dImpl>(kernel_size, options)) {}
};

struct AvgPool1dOptions {
  std::optional<int64_t> stride = {};  // default: the kernel size
  int64_t padding = 0;
  bool ceil_mode = false;
  bool count_include_pad = true;
};
class AvgPool1dImpl : public Module {
 public:
  explicit AvgPool1dImpl(int64_t kernel_size, AvgPool1dOptions options = {})
      : kernel_size(kernel_size), options(options) {}
  Tensor forward(const Tensor& x);
  std::string extra_repr() const override;
  int64_t kernel_size;
  AvgPool1dOptions options;
};
class AvgPool1d : public ModuleHolder<AvgPool1dImpl> {
 public:
  using ModuleHolder::ModuleHolder;
  AvgPool1d(int64_t kernel_size, AvgPool1dOptions options = {})
      : ModuleHolder(std::make_shared<AvgPool1dImpl>(kernel_size, options)) {}
};

// nn.Upsample: F::interpolate with fixed options.
class UpsampleImpl : public Module {
 public:
  explicit UpsampleImpl(functional::InterpolateOptions options) : options(std::move(options)) {}
  Tensor forward(const Tensor& x) { return functional::interpolate(x, options); }
  functional::InterpolateOptions options;
};
class Upsample : public ModuleHolder<UpsampleImpl> {
 public:
  using ModuleHolder::ModuleHolder;
  Upsample(functional::InterpolateOptions options) : ModuleHolder(std::make_shared<UpsampleImpl>(std::move(options))) {}
};

}  // namespace ember::nn
