// Normalisation layers: BatchNorm1d/2d (running statistics), LayerNorm, RMSNorm, GroupNorm.
#pragma once
#include "nn/layers.hpp"

namespace ember::nn {

struct BatchNormOptions {
  double eps = 1e-5;
  // Weight of the new batch in the running statistics; none means a cumulative average.
  std::optional<double> momentum = 0.1;
  bool affine = true;
  bool track_running_stats = true;
  Placement placement = {};
};
// Batch statistics in training (updating running_mean/var), running statistics in eval, as PyTorch.
class BatchNormImpl : public Module {
 public:
  BatchNormImpl(int64_t num_features, BatchNormOptions options, int64_t input_dims_lo, int64_t input_dims_hi,
                const char* name);
  Tensor forward(const Tensor& x);
  void reset_running_stats();
  void reset_parameters();
  std::string type_name() const override { return name_; }
  std::string extra_repr() const override;
  int64_t num_features;
  BatchNormOptions options;
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  int64_t dims_lo_, dims_hi_;
  const char* name_;
};
// Input [N, C] or [N, C, L].
class BatchNorm1dImpl : public BatchNormImpl {
 public:
  explicit BatchNorm1dImpl(int64_t num_features, BatchNormOptions options = {})
      : BatchNormImpl(num_features, options, 2, 3, "BatchNorm1d") {}
};
class BatchNorm1d : public ModuleHolder<BatchNorm1dImpl> {
 public:
  using ModuleHolder::ModuleHolder;
  BatchNorm1d(int64_t num_features, BatchNormOptions options = {})
      : ModuleHolder(std::make_shared<BatchNorm1dImpl>(num_features, options)) {}
};
// Input [N, C, H, W].
class BatchNorm2dImpl : public BatchNormImpl {
 public:
  explicit BatchNorm2dImpl(int64_t num_features, BatchNormOptions options = {})
      : BatchNormImpl(num_features, options, 4, 4, "BatchNorm2d") {}
};
class BatchNorm2d : public ModuleHolder<BatchNorm2dImpl> {
 public:
  using ModuleHolder::ModuleHolder;
  BatchNorm2d(int64_t num_features, BatchNormOptions options = {})
      : ModuleHolder(std::make_shared<BatchNorm2dImpl>(num_features, options)) {}
};

struct LayerNormOptions {
  double eps = 1e-5;
  bool elementwise_affine = true;
  bool bias = true;
  Placement placement = {};
};
class LayerNormImpl : public Module {
 public:
  explicit LayerNormImpl(Shape normalized_shape, LayerNormOptions options = {});
  Tensor forward(const Tensor& x);
  void reset_parameters();
  std::string extra_repr() const override;
  Shape normalized_shape;
  LayerNormOptions options;
  Tensor weight, bias;
};
class LayerNorm : public ModuleHolder<LayerNormImpl> {
 public:
  using ModuleHolder::ModuleHolder;
  LayerNorm(Shape normalized_shape, LayerNormOptions options = {})
      : ModuleHolder(std::make_shared<LayerNormImpl>(std::move(normalized_shape), options)) {}
};

struct RMSNormOptions {
  std::optional<double> eps = {};  // default: the dtype's machine epsilon, as PyTorch
  bool elementwise_affine = true;
  Placement placement = {};
};
class RMSNormImpl : public Module {
 public:
  explicit RMSNormImpl(Shape normalized_shape, RMSNormOptions options = {});
  Tensor forward(const Tensor& x);
  void reset_parameters();
  std::string extra_repr() const override;
  Shape normalized_shape;
  RMSNormOptions options;
  Tensor weight;
};
class RMSNorm : public ModuleHolder<RMSNormImpl> {
 public:
  using ModuleHolder::ModuleHolder;
  RMSNorm(Shape normalized_shape, RMSNormOptions options = {})
      : ModuleHolder(std::make_shared<RMSNormImpl>(std::move(normalized_shape), options)) {}
};

struct GroupNormOptions {
  double eps = 1e-5;
  bool affine = true;
  Placement placement = {};
};
class GroupNormImpl : public Module {
 public:
  GroupNormImpl(int64_t num_groups, int64_t num_channels, GroupNormOptions options = {});
  Tensor forward(const Tensor& x);
  void reset_parameters();
  std::string extra_repr() const override;
  int64_t num_groups, num_channels;
  GroupNormOptions options;
  Tensor weight, bias;
};
class GroupNorm : public ModuleHolder<GroupNormImpl> {
 public:
  using ModuleHolder::ModuleHolder;
  GroupNorm(int64_t num_groups, int64_t num_channels, GroupNormOptions options = {})
      : ModuleHolder(std::make_shared<GroupNormImpl>(num_groups, num_channels, options)) {}
};

}  // namespace ember::nn
