// Autocast state (per thread, per device type) and the casts the ops' policies ask for.
#include "core/autocast.hpp"

#include <unordered_map>

#include "core/autograd.hpp"
#include "core/error.hpp"

namespace ember {
namespace autocast {
namespace detail {
thread_local uint8_t t_enabled = 0;
}
namespace {
thread_local DType t_dtype[2] = {kBF16, kF16};  // CPU, CUDA: PyTorch's defaults

uint8_t bit(Device::Kind kind) { return static_cast<uint8_t>(1u << static_cast<unsigned>(kind)); }
void set_enabled(Device::Kind kind, bool on) {
  if (on)
    detail::t_enabled |= bit(kind);
  else
    detail::t_enabled &= static_cast<uint8_t>(~bit(kind));
}
DType& dtype_slot(Device::Kind kind) { return t_dtype[kind == Device::Kind::CUDA ? 1 : 0]; }

// Open Autocast scopes on this thread; the cast cache lives until the outermost one closes.
thread_local int t_depth = 0;

// Low-precision copies of leaf tensors that require grad (the weights), made once per outermost scope
// however often a weight is used (PyTorch's autocast cache). The source is held, so its address stays
// unique; an in-place write (version change) or another target dtype makes a fresh copy.
struct CacheEntry {
  Tensor source;
  uint32_t version;
  Tensor cast;
};
thread_local std::unordered_map<const TensorImpl*, CacheEntry> t_cache;

bool castable(CastPolicy policy, const Tensor& t) {
  if (!t.defined() || !(detail::t_enabled & bit(t.device().kind))) return false;
  const DType dt = t.dtype();
  if (policy == CastPolicy::kLowerPrecision) return is_floating(dt) && dt != kF64 && dt != dtype_slot(t.device().kind);
  return dt == kF16 || dt == kBF16;
}
}  // namespace

bool detail::should_cast_slow(CastPolicy policy, std::initializer_list<const Tensor*> tensors) {
  for (const Tensor* t : tensors)
    if (castable(policy, *t)) return true;
  return false;
}

bool is_enabled(Device device) { return (detail::t_enabled & bit(device.kind)) != 0; }
DType dtype(Device device) { return dtype_slot(device.kind); }

Tensor cast(CastPolicy policy, const Tensor& t) {
  if (!castable(policy, t)) return t;
  const DType target = policy == CastPolicy::kFloat32 ? kF32 : dtype_slot(t.device().kind);
  // A cast made under no_grad has no history: caching it would cut the weight off from later uses
  // that need gradients (a checkpointed block's forward runs under no_grad).
  if (policy != CastPolicy::kLowerPrecision || !t.requires_grad() || !t.is_leaf() || t_depth == 0 ||
      !autograd::is_grad_enabled())
    return t.to(target);
  const uint32_t version = t.impl().storage->version();
  auto it = t_cache.find(&t.impl());
  if (it != t_cache.end() && it->second.version == version && it->second.cast.dtype() == target) return it->second.cast;
  Tensor c = t.to(target);
  t_cache[&t.impl()] = CacheEntry{t, version, c};
  return c;
}

size_t cache_size() { return t_cache.size(); }

}  // namespace autocast

Autocast::Autocast(Device device, DType dtype, bool enabled)
    : kind_(device.kind), prev_enabled_(autocast::is_enabled(device)), prev_dtype_(autocast::dtype_slot(device.kind)) {
  EMBER_CHECK(dtype == kF16 || dtype == kBF16, DTypeError,
              "[autocast] the low-precision dtype must be float16 or bfloat16, got ", dtype);
  autocast::dtype_slot(kind_) = dtype;
  autocast::set_enabled(kind_, enabled);
  ++autocast::t_depth;
}

Autocast::~Autocast() {
  autocast::dtype_slot(kind_) = prev_dtype_;
  autocast::set_enabled(kind_, prev_enabled_);
  if (--autocast::t_depth == 0) autocast::t_cache.clear();
}

}  // namespace ember
