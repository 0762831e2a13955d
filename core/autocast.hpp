// Autocast (automatic mixed precision, as torch.autocast): inside an Autocast scope, ops on that device
// run in the dtype their cast policy names. Each op states its policy in one line at its entry:
//   lower precision (the scope's f16/bf16): matmul, mm, bmm, addmm, baddbmm, linear, conv*;
//   float32: softmax, log_softmax, layer_norm, rms_norm, group_norm and the losses.
// Other ops run in their inputs' dtype (binary ops promote, so f32 + bf16 gives f32). float64 tensors
// are never cast. Backward passes run with autocast off: each gradient takes its forward op's dtype.
#pragma once
#include <cstdint>
#include <initializer_list>

#include "core/tensor.hpp"

namespace ember {

enum class CastPolicy : uint8_t { kLowerPrecision, kFloat32 };

// An autocast scope on one device type: `Autocast amp(kCPU, kBF16);` or `Autocast amp(Device("cuda"), kF16)`.
// Scopes nest (an inner `enabled = false` scope turns autocast off for a region) and are per thread.
class Autocast {
 public:
  Autocast(Device device, DType dtype, bool enabled = true);
  ~Autocast();
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  Device::Kind kind_;
  bool prev_enabled_;
  DType prev_dtype_;
};

namespace autocast {

namespace detail {
extern thread_local uint8_t t_enabled;  // bit per Device::Kind
bool should_cast_slow(CastPolicy policy, std::initializer_list<const Tensor*> tensors);
}  // namespace detail

bool is_enabled(Device device);
DType dtype(Device device);  // the scope's low-precision dtype (bf16 on CPU, f16 on CUDA by default)

// True when an op of this policy must recast some of these tensors (autocast on for their device and a
// floating tensor not yet in the policy's dtype). Cheap when autocast is off anywhere.
inline bool should_cast(CastPolicy policy, std::initializer_list<const Tensor*> tensors) {
  return detail::t_enabled != 0 && detail::should_cast_slow(policy, tensors);
}
// The tensor as an op of this policy takes it (unchanged if undefined, not floating, float64, or
// autocast is off for its device).
Tensor cast(CastPolicy policy, const Tensor& t);
inline Tensor lower(const Tensor& t) { return cast(CastPolicy::kLowerPrecision, t); }
// Weights (leaves requiring grad) cast to low precision inside the outermost open scope (for tests).
size_t cache_size();
inline Tensor to_f32(const Tensor& t) { return cast(CastPolicy::kFloat32, t); }

// Turns autocast off on every device for its lifetime (the autograd engine runs backward under one).
class DisableGuard {
 public:
  DisableGuard() : prev_(detail::t_enabled) { detail::t_enabled = 0; }
  ~DisableGuard() { detail::t_enabled = prev_; }
  DisableGuard(const DisableGuard&) = delete;
  DisableGuard& operator=(const DisableGuard&) = delete;

 private:
  uint8_t prev_;
};

}  // namespace autocast
}  // namespace ember
