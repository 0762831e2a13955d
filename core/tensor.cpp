// Tensor basics: construction, metadata, element access, conversion and copies, type promotion.
#include "core/tensor.hpp"

#include <cstring>
#include <numeric>

#include "core/autograd.hpp"
#include "core/host_sync.hpp"
#include "core/ops/creation.hpp"
#include "core/profiler.hpp"
#include "kernels/cuda_device.hpp"
#include "kernels/elementwise.hpp"

namespace ember {

TensorImpl::TensorImpl() = default;
TensorImpl::~TensorImpl() = default;

TensorImpl& Tensor::impl() const {
  EMBER_CHECK(impl_, ValueError, "[tensor] operation on an undefined tensor");
  return *impl_;
}

int64_t Tensor::size(int64_t d) const {
  if (dim() == 0) {
    wrap_dim(d, 0, "[size]");
    return 1;
  }
  return shape()[wrap_dim(d, dim(), "[size]")];
}
int64_t Tensor::stride(int64_t d) const {
  if (dim() == 0) {
    wrap_dim(d, 0, "[stride]");
    return 1;
  }
  return strides()[wrap_dim(d, dim(), "[stride]")];
}

bool Tensor::is_contiguous() const {
  const TensorImpl& t = impl();
  if (t.numel == 0) return true;  // as PyTorch: no element is out of place
  int64_t expected = 1;
  for (size_t i = t.shape.size(); i-- > 0;) {
    if (t.shape[i] == 1) continue;
    if (t.strides[i] != expected) return false;
    expected *= t.shape[i];
  }
  return true;
}

bool has_internal_overlap(const Tensor& t) {
  if (t.is_contiguous()) return false;
  const TensorImpl& ti = t.impl();
  Shape size, stride;  // the dims of size > 1: only they can make two elements meet
  for (size_t d = 0; d < ti.shape.size(); ++d) {
    if (ti.shape[d] <= 1) continue;
    if (ti.strides[d] == 0) return true;
    size.push_back(ti.shape[d]);
    stride.push_back(ti.strides[d] < 0 ? -ti.strides[d] : ti.strides[d]);
  }
  // Dims i, j meet when a*s_i == b*s_j for some 0 < a < n_i, 0 < b < n_j; the smallest such pair
  // is a = s_j/g, b = s_i/g with g = gcd. Combinations of three or more dims are not searched.
  for (size_t i = 0; i < size.size(); ++i)
    for (size_t j = i + 1; j < size.size(); ++j) {
      int64_t g = std::gcd(stride[i], stride[j]);
      if (stride[j] / g < size[i] && stride[i] / g < size[j]) return true;
    }
  return false;
}

void check_no_internal_overlap(const Tensor& dst, const char* op) {
  EMBER_CHECK(!has_internal_overlap(dst), ValueError, "[", op, "] the destination ", describe(dst), " with strides ",
              dst.strides(),
              " has elements that share memory (an expanded or overlapping view): writing in place would write "
              "one memory location several times, in no defined order; clone() it first");
}

void* Tensor::raw_data() const {
  const TensorImpl& t = impl();
  return static_cast<char*>(t.storage->data()) + t.offset * static_cast<int64_t>(itemsize(t.dtype));
}

void Tensor::check_dtype_access(DType want, const char* what) const {
  EMBER_CHECK(dtype() == want, DTypeError, "[", what, "] requested ", want, " but the tensor is ", describe(*this));
  EMBER_CHECK(device().is_cpu(), DeviceError, "[", what, "] needs a CPU tensor, got ", describe(*this),
              " (call .cpu() first)");
}

template <class T>
T Tensor::item() const {
  EMBER_CHECK(numel() == 1, ShapeError, "[item] needs a tensor with one element, got ", describe(*this));
  const detail::HostReadScope read;
  Tensor c = to(kCPU).to(dtype_of<T>()).contiguous();
  return *static_cast<const T*>(c.raw_data());
}

Scalar Tensor::item() const {
  return visit_dtype<AllTypes>(dtype(), "[item]", [&]<class T>() { return Scalar(item<T>()); });
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  const detail::HostReadScope read;
  Tensor c = to(kCPU).to(dtype_of<T>()).contiguous();
  const T* p = static_cast<const T*>(c.raw_data());
  return std::vector<T>(p, p + numel());
}

#define EMBER_INSTANTIATE(T)          \
  template T Tensor::item<T>() const; \
  template std::vector<T> Tensor::to_vector<T>() const;
EMBER_INSTANTIATE(float)
EMBER_INSTANTIATE(double)
EMBER_INSTANTIATE(half)
EMBER_INSTANTIATE(bfloat16)
EMBER_INSTANTIATE(int32_t)
EMBER_INSTANTIATE(int64_t)
EMBER_INSTANTIATE(uint8_t)
EMBER_INSTANTIATE(bool)
#undef EMBER_INSTANTIATE

std::string describe(const Tensor& t) {
  if (!t.defined()) return "undefined tensor";
  return detail::cat_str(t.shape(), " ", t.dtype(), " ", t.device());
}

Tensor make_tensor(const Shape& shape, DType dtype, Device device) {
  auto impl = std::make_shared<TensorImpl>();
  impl->numel = shape_numel(shape);
  EMBER_CHECK(impl->numel <= INT64_MAX / 8, ShapeError, "[empty] tensor of shape ", shape, " is too large");
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(impl->numel) * itemsize(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl().storage;
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->numel = shape_numel(shape);
  impl->dtype = base.dtype();
  const TensorImpl& b = base.impl();
  impl->view_base = b.view_base ? b.view_base : base.impl_ptr();
  return Tensor(std::move(impl));
}

Tensor scalar_to_tensor(const Scalar& s, Device device) {
  Tensor t = make_tensor({}, s.wrapped_dtype(), device);
  kernels::fill(t, s);
  t.impl().wrapped_number = true;
  return t;
}

DType result_type(std::initializer_list<const Tensor*> operands) {
  // PyTorch's three tiers: dimensioned tensors, 0-dim tensors, wrapped numbers. A lower tier only
  // matters when its category (bool < integral < floating) is higher than the tiers above.
  std::optional<DType> tier[3];
  for (const Tensor* t : operands) {
    bool wrapped = t->impl().wrapped_number;
    int k = wrapped ? 2 : t->dim() == 0 ? 1 : 0;
    DType d = wrapped && is_floating(t->dtype()) ? kF32 : t->dtype();  // Python floats promote as the default dtype
    tier[k] = tier[k] ? promote_types(*tier[k], d) : d;
  }
  auto category = [](DType d) { return is_floating(d) ? 2 : d == kBool ? 0 : 1; };
  auto combine = [&](std::optional<DType> hi, std::optional<DType> lo) -> std::optional<DType> {
    if (!hi) return lo;
    if (!lo) return hi;
    if (category(*lo) > category(*hi)) return promote_types(*hi, *lo);
    return hi;
  };
  std::optional<DType> r = combine(tier[0], combine(tier[1], tier[2]));
  return r.value_or(kF32);
}
DType result_type(const Tensor& a, const Tensor& b) { return result_type({&a, &b}); }

Tensor Tensor::to(DType dt, bool copy) const {
  if (dt == dtype() && !copy) return *this;
  profiler::OpRecord prof("to", {this});
  Tensor out = make_tensor(shape(), dt, device());
  kernels::copy(out, *this);
  if (autograd::needs_grad(*this))  // the engine casts the gradient back to this dtype
    autograd::record("to", {&out}, {this}, {}, [](autograd::Ctx& c) { return autograd::Grads{c.grad()}; });
  return out;
}

Tensor Tensor::pin_memory() const {
  EMBER_CHECK(device().is_cpu(), DeviceError, "[pin_memory] only CPU tensors can be pinned, got ", describe(*this));
  if (is_pinned()) return *this;
  auto impl = std::make_shared<TensorImpl>();
  impl->numel = numel();
  impl->storage = std::make_shared<Storage>(nbytes(), kCPU, kernels::cuda::pinned_allocator());
  impl->shape = shape();
  impl->strides = contiguous_strides(shape());
  impl->dtype = dtype();
  Tensor out(std::move(impl));
  kernels::copy(out, *this);
  if (autograd::needs_grad(*this))
    autograd::record("pin_memory", {&out}, {this}, {}, [](autograd::Ctx& c) { return autograd::Grads{c.grad()}; });
  return out;
}

bool Tensor::is_pinned() const { return device().is_cpu() && kernels::cuda::is_pinned(impl().storage->data()); }

Tensor Tensor::to(Device d, bool copy, bool non_blocking) const {
  if (d == device() && !copy) return *this;
  if (d.is_cpu() && device().is_cpu()) return to(dtype(), true);
  profiler::OpRecord prof("to", {this});
  // Across devices: make the source contiguous where it lives (unrecorded: the "to" node below is the
  // one autograd needs), then copy the bytes.
  Tensor src;
  {
    autograd::NoGradGuard no_grad;
    src = contiguous();
  }
  // Asynchronous only between pinned host memory and a device, as in PyTorch (else a plain copy).
  const bool async = non_blocking && (d.is_cpu() ? cuda_is_available() : src.is_pinned());
  Tensor out = async && d.is_cpu() ? make_tensor(shape(), dtype(), d).pin_memory() : make_tensor(shape(), dtype(), d);
  if (async)
    kernels::cuda::copy_bytes_async(out.raw_data(), d, src.raw_data(), src.device(), src.nbytes());
  else  // a blocking copy to the host counts as a host read there (core/host_sync.hpp)
    kernels::cuda::copy_bytes(out.raw_data(), d, src.raw_data(), src.device(), src.nbytes());
  if (autograd::needs_grad(*this))
    autograd::record("to", {&out}, {this}, {},
                     [](autograd::Ctx& c) { return autograd::Grads{c.grad().to(c.input(0).device)}; });
  return out;
}

Tensor Tensor::to(Device d, DType dt, bool copy) const {
  Tensor t = to(d, copy);
  return t.to(dt, copy && t.is_same(*this));
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  profiler::OpRecord prof("clone", {this});
  Tensor out = make_tensor(shape(), dtype(), device());
  kernels::copy(out, *this);
  if (autograd::needs_grad(*this))
    autograd::record("clone", {&out}, {this}, {}, [](autograd::Ctx& c) { return autograd::Grads{c.grad()}; });
  return out;
}

// Across devices as PyTorch's: the source moves first (to() is differentiable), then is written in place.
Tensor& Tensor::copy_(const Tensor& src) {
  return autograd::assign(*this, src.defined() && src.device() != device() ? src.to(device()) : src, "copy_");
}

// fill_ may write an expanded tensor: every alias gets the same value (PyTorch allows it too).
Tensor& Tensor::fill_(const Scalar& v) {
  if (autograd::needs_grad(*this)) return autograd::assign(*this, full_like(*this, v), "fill_", true);
  kernels::fill(*this, v);
  impl().storage->bump_version("fill_");
  return *this;
}

}  // namespace ember
