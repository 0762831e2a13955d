// Creation ops.
#include "core/ops/creation.hpp"

#include <cmath>
#include <limits>

#include "core/autograd.hpp"
#include "core/ops/elementwise.hpp"
#include "core/profiler.hpp"
#include "kernels/elementwise.hpp"

namespace ember {
namespace {
Tensor finish(Tensor t, const TensorOptions& o) {
  if (o.requires_grad) {
    EMBER_CHECK(is_floating(t.dtype()), DTypeError, "[requires_grad] only floating tensors can require gradients, got ",
                describe(t));
    t.impl().autograd = std::make_unique<AutogradMeta>();
    t.impl().autograd->requires_grad = true;
  }
  return t;
}
}  // namespace

Tensor empty(const Shape& shape, const TensorOptions& o) {
  profiler::OpRecord prof("empty");
  return finish(make_tensor(shape, o.dtype, o.device), o);
}
Tensor zeros(const Shape& shape, const TensorOptions& o) { return full(shape, 0, o); }
Tensor ones(const Shape& shape, const TensorOptions& o) { return full(shape, 1, o); }
Tensor full(const Shape& shape, const Scalar& value, const TensorOptions& o) {
  profiler::OpRecord prof("full");
  Tensor t = make_tensor(shape, o.dtype, o.device);
  kernels::fill(t, value);
  return finish(t, o);
}
static TensorOptions like(const Tensor& t) { return {.dtype = t.dtype(), .device = t.device()}; }
Tensor empty_like(const Tensor& t) { return empty(t.shape(), like(t)); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), like(t)); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), like(t)); }
Tensor full_like(const Tensor& t, const Scalar& v) { return full(t.shape(), v, like(t)); }
Tensor empty_like(const Tensor& t, const TensorOptions& o) { return empty(t.shape(), o); }
Tensor zeros_like(const Tensor& t, const TensorOptions& o) { return zeros(t.shape(), o); }
Tensor ones_like(const Tensor& t, const TensorOptions& o) { return ones(t.shape(), o); }
Tensor full_like(const Tensor& t, const Scalar& v, const TensorOptions& o) { return full(t.shape(), v, o); }

Tensor arange(const Scalar& end, std::optional<DType> dtype, Device device) { return arange(0, end, 1, dtype, device); }

Tensor arange(const Scalar& start, const Scalar& end, const Scalar& step, std::optional<DType> dtype, Device device) {
  profiler::OpRecord prof("arange");
  bool floating = start.is_floating() || end.is_floating() || step.is_floating();
  DType dt = dtype.value_or(floating ? kF32 : kI64);
  double s = start.to_double(), e = end.to_double(), st = step.to_double();
  EMBER_CHECK(st != 0, ValueError, "[arange] step must be nonzero");
  EMBER_CHECK(std::isfinite(s) && std::isfinite(e) && std::isfinite(st), ValueError,
              "[arange] start, end and step must be finite, got start ", s, ", end ", e, ", step ", st);
  EMBER_CHECK((e - s) / st >= 0 || s == e, ValueError, "[arange] upper bound and step sign are inconsistent: start ", s,
              ", end ", e, ", step ", st);
  // The count is worked out wider than int64 (128-bit integers, doubles), so a range too long for a
  // tensor is named as such instead of wrapping round to a negative size.
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t n;
  if (!floating) {
    __int128 is = start.to_int(), ie = end.to_int(), ist = step.to_int();
    __int128 count = ist > 0 ? (ie - is + ist - 1) / ist : (is - ie - ist - 1) / -ist;
    EMBER_CHECK(count <= kMax, ValueError, "[arange] (end - start) / step = (", end.to_int(), " - ", start.to_int(),
                ") / ", step.to_int(), " is more elements than a tensor can hold (at most ", kMax, ")");
    n = static_cast<int64_t>(std::max<__int128>(count, 0));
  } else {
    double count = std::ceil((e - s) / st);  // e - s may be inf: caught here too
    EMBER_CHECK(count < 0x1p63, ValueError, "[arange] (end - start) / step = ", count,
                " elements is more than a tensor can hold (at most ", kMax, "); start ", s, ", end ", e, ", step ", st);
    n = static_cast<int64_t>(count);
  }
  EMBER_CHECK(dt != kBool, DTypeError, "[arange] is not defined for bool");
  Tensor out = make_tensor({n}, dt, device);
  const bool as_double = floating || is_floating(dt);
  kernels::arange(out, {.floating = as_double,
                        .start = s,
                        .step = st,
                        .istart = as_double ? 0 : start.to_int(),
                        .istep = as_double ? 0 : step.to_int()});
  return out;
}

Tensor linspace(double start, double end, int64_t steps, const TensorOptions& o) {
  profiler::OpRecord prof("linspace");
  EMBER_CHECK(steps >= 0, ValueError, "[linspace] number of steps must be non-negative, got ", steps);
  const double gaps = static_cast<double>(steps - 1);
  // end - start overflows for far-apart finite ends (-1e308, 1e308): divide each first then.
  const double step = steps <= 1 ? 0 : std::isfinite(end - start) ? (end - start) / gaps : end / gaps - start / gaps;
  // Made in double on the output's device, filled from both ends as PyTorch does, then rounded once.
  Tensor out = make_tensor({steps}, kF64, o.device);
  kernels::arange(
      out, {.floating = true, .start = start, .step = step, .end = end, .from_end = steps / 2, .last = steps - 1});
  return finish(out.to(o.dtype), o);
}

Tensor eye(int64_t n, std::optional<int64_t> m, const TensorOptions& o) {
  profiler::OpRecord prof("eye");
  int64_t cols = m.value_or(n);
  EMBER_CHECK(n >= 0 && cols >= 0, ValueError, "[eye] sizes must be non-negative, got ", n, " and ", cols);
  Tensor t = zeros({n, cols}, {.dtype = o.dtype, .device = o.device});
  if (n && cols) t.as_strided({std::min(n, cols)}, {cols + 1}, 0).fill_(1);
  return finish(t, o);
}

template <class T>
Tensor tensor_from(const std::vector<T>& values, const Shape& shape, std::optional<TensorOptions> o) {
  constexpr DType natural = std::is_same_v<T, bool>       ? kBool
                            : std::is_floating_point_v<T> ? kF32
                            : std::is_integral_v<T>       ? kI64
                                                          : dtype_of<T>();
  EMBER_CHECK(shape_numel(shape) == static_cast<int64_t>(values.size()), ShapeError, "[tensor] ", values.size(),
              " values do not fill shape ", shape);
  using Src = std::conditional_t<
      std::is_same_v<T, bool>, bool,
      std::conditional_t<std::is_floating_point_v<T>, double, std::conditional_t<std::is_integral_v<T>, int64_t, T>>>;
  Tensor src = make_tensor(shape, dtype_of<Src>());
  Src* p = src.data_ptr<Src>();
  for (size_t i = 0; i < values.size(); ++i) p[i] = static_cast<Src>(values[i]);
  TensorOptions opt = o.value_or(TensorOptions{.dtype = natural});
  return finish(src.to(opt.device, opt.dtype, true), opt);
}

template Tensor tensor_from<float>(const std::vector<float>&, const Shape&, std::optional<TensorOptions>);
template Tensor tensor_from<double>(const std::vector<double>&, const Shape&, std::optional<TensorOptions>);
template Tensor tensor_from<int>(const std::vector<int>&, const Shape&, std::optional<TensorOptions>);
template Tensor tensor_from<int64_t>(const std::vector<int64_t>&, const Shape&, std::optional<TensorOptions>);
template Tensor tensor_from<uint8_t>(const std::vector<uint8_t>&, const Shape&, std::optional<TensorOptions>);
template Tensor tensor_from<bool>(const std::vector<bool>&, const Shape&, std::optional<TensorOptions>);

Tensor scalar_tensor(const Scalar& v, const TensorOptions& o) { return full({}, v, o); }

}  // namespace ember
