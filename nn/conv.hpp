// Convolution and pooling layers: Conv1d, Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d,
// AdaptiveAvgPool2d (weights [out, in/groups, *kernel] initialised as PyTorch's).
#pragma once
#include "nn/layers.hpp"

namespace ember::nn {

struct Conv1dOptions {
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t dilation = 1;
  int64_t groups = 1;
  bool bias = true;
  Placement placement = {};
};
class Conv1dImpl : public Module {
 public:
  Conv1dImpl(int64_t in_channels, int64_t out_channels, int64_t kernel_size, Conv1dOptions options = {});
  Tensor forward(const Tensor& x);
  void reset_parameters();
  std::string extra_repr() const override;
  int64_t in_channels, out_channels, kernel_size;
  Conv1dOptions options;
  Tensor weight, bias;
};
class Conv1d : public ModuleHolder<Conv1dImpl> {
 public:
  using ModuleHolder::ModuleHolder;
  Conv1d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, Conv1dOptions options = {})
      : ModuleHolder(std::make_shared<Conv1dImpl>(in_channels, out_channels, kernel_size, options)) {}
};

struct Conv2dOptions {
  Int2 stride = 1;
  Int2 padding = 0;
  Int2 dilation = 1;
  int64_t groups = 1;
  bool bias = true;
  Placement placement = {};
};
class Conv2dImpl : public Module {
 public:
  Conv2dImpl(int64_t in_channels, int64_t out_channels, Int2 kernel_size, Conv2dOptions options = {});
  Tensor forward(const Tensor& x);
  void reset_parameters();
  std::string extra_repr() const override;
  int64_t in_channels, out_channels;
  Int2 kernel_size;
  Conv2dOptions options;
  Tensor weight, bias;
};
class Conv2d : public ModuleHolder<Conv2dImpl> {
 public:
  using ModuleHolder::ModuleHolder;
  Conv2d(int64_t in_channels, int64_t out_channels, Int2 kernel_size, Conv2dOptions options = {})
      : ModuleHolder(std::make_shared<Conv2dImpl>(in_channels, out_channels, kernel_size, options)) {}
};

struct ConvTranspose2dOptions {
  Int2 stride = 1;
  Int2 padding = 0;
  Int2 output_padding = 0;
  int64_t groups = 1;
  bool bias = true;
  Int2 dilation = 1;
  Placement placement = {};
};
// weight [in, out/groups, kH, kW] (PyTorch's layout for transposed convolutions).
class ConvTranspose2dImpl : public Module {
 public:
  ConvTranspose2dImpl(int64_t in_channels, int64_t out_channels, Int2 kernel_size, ConvTranspose2dOptions options = {});
  Tensor forward(const Tensor& x);
  void reset_parameters();
  std::string extra_repr() const override;
  int64_t in_channels, out_channels;
  Int2 kernel_size;
  ConvTranspose2dOptions options;
  Tensor weight, bias;
};
class ConvTranspose2d : public ModuleHolder<ConvTranspose2dImpl> {
 public:
  using ModuleHolder::ModuleHolder;
  ConvTranspose2d(int64_t in_channels, int64_t out_channels, Int2 kernel_size, ConvTranspose2dOptions options = {})
      : ModuleHolder(std::make_shared<ConvTranspose2dImpl>(in_channels, out_channels, kernel_size, options)) {}
};

struct MaxPool2dOptions {
  std::optional<Int2> stride = {};  // default: the kernel size
  Int2 padding = 0;
  Int2 dilation = 1;
  bool ceil_mode = false;
};
class MaxPool2dImpl : public Module {
 public:
  explicit MaxPool2dImpl(Int2 kernel_size, MaxPool2dOptions options = {})
      : kernel_size(kernel_size), options(options) {}
  Tensor forward(const Tensor& x);
  std::string extra_repr() const override;
  Int2 kernel_size;
  MaxPool2dOptions options;
};
class MaxPool2d : public ModuleHolder<MaxPool2dImpl> {
 public:
  using ModuleHolder::ModuleHolder;
  MaxPool2d(Int2 kernel_size, MaxPool2dOptions options = {})
      : ModuleHolder(std::make_shared<MaxPool2dImpl>(kernel_size, options)) {}
};

struct AvgPool2dOptions {
  std::optional<Int2> stride = {};  // default: the kernel size
  Int2 padding = 0;
  bool ceil_mode = false;
  bool count_include_pad = true;
};
class AvgPool2dImpl : public Module {
 public:
  explicit AvgPool2dImpl(Int2 kernel_size, AvgPool2dOptions options = {})
      : kernel_size(kernel_size), options(options) {}
  Tensor forward(const Tensor& x);
  std::string extra_repr() const override;
  Int2 kernel_size;
  AvgPool2dOptions options;
};
class AvgPool2d : public ModuleHolder<AvgPool2dImpl> {
 public:
  using ModuleHolder::ModuleHolder;
  AvgPool2d(Int2 kernel_size, AvgPool2dOptions options = {})
      : ModuleHolder(std::make_shared<AvgPool2dImpl>(kernel_size, options)) {}
};

class AdaptiveAvgPool2dImpl : public Module {
 public:
  explicit AdaptiveAvgPool2dImpl(Int2 output_size) : output_size(output_size) {}
  Tensor forward(const Tensor& x);
  std::string extra_repr() const override;
  Int2 output_size;
};
class AdaptiveAvgPool2d : public ModuleHolder<AdaptiveAvgPool2dImpl> {
 public:
  using ModuleHolder::ModuleHolder;
  AdaptiveAvgPool2d(Int2 output_size) : ModuleHolder(std::make_shared<AdaptiveAvgPool2dImpl>(output_size)) {}
};

}  // namespace ember::nn
