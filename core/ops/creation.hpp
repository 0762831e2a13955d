// Creation ops: empty, zeros, ones, full, arange, linspace, eye, tensor(...) and the *_like forms.
#pragma once
#include <initializer_list>
#include <vector>

#include "core/tensor.hpp"

namespace ember {

Tensor empty(const Shape& shape, const TensorOptions& o = {});
Tensor zeros(const Shape& shape, const TensorOptions& o = {});
Tensor ones(const Shape& shape, const TensorOptions& o = {});
Tensor full(const Shape& shape, const Scalar& value, const TensorOptions& o = {});
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, const Scalar& value);
Tensor empty_like(const Tensor& t, const TensorOptions& o);
Tensor zeros_like(const Tensor& t, const TensorOptions& o);
Tensor ones_like(const Tensor& t, const TensorOptions& o);
Tensor full_like(const Tensor& t, const Scalar& value, const TensorOptions& o);
// arange(end), arange(start, end, step): integral arguments give i64 unless a dtype is given. Filled on
// `device` (no copy from the host, so no host sync on CUDA).
Tensor arange(const Scalar& end, std::optional<DType> dtype = {}, Device device = kCPU);
Tensor arange(const Scalar& start, const Scalar& end, const Scalar& step = 1, std::optional<DType> dtype = {},
              Device device = kCPU);
Tensor linspace(double start, double end, int64_t steps, const TensorOptions& o = {});
Tensor eye(int64_t n, std::optional<int64_t> m = {}, const TensorOptions& o = {});

// tensor(values[, options]) from nested initializer lists or a flat vector plus a shape.
// Without options, element types map like Python literals: floating -> f32, integral -> i64, bool -> bool.
template <class T>
Tensor tensor_from(const std::vector<T>& values, const Shape& shape, std::optional<TensorOptions> o);

namespace detail {
template <class T>
void flatten_into(std::vector<T>& flat, Shape& shape, size_t depth, std::initializer_list<T> v) {
  if (shape.size() <= depth) shape.push_back(static_cast<int64_t>(v.size()));
  EMBER_CHECK(shape[depth] == static_cast<int64_t>(v.size()), ShapeError, "[tensor] ragged nested list: ",
              shape[depth], " vs ", v.size(), " elements at depth ", depth);
  flat.insert(flat.end(), v.begin(), v.end());
}
template <class T, class L>
void flatten_into(std::vector<T>& flat, Shape& shape, size_t depth, std::initializer_list<L> v) {
  if (shape.size() <= depth) shape.push_back(static_cast<int64_t>(v.size()));
  EMBER_CHECK(shape[depth] == static_cast<int64_t>(v.size()), ShapeError, "[tensor] ragged nested list: ",
              shape[depth], " vs ", v.size(), " elements at depth ", depth);
  for (const L& inner : v) flatten_into(flat, shape, depth + 1, inner);
}
template <class T, class L>
Tensor from_nested(std::initializer_list<L> v, std::optional<TensorOptions> o) {
  std::vector<T> flat;
  Shape shape;
  flatten_into(flat, shape, 0, v);
  return tensor_from(flat, shape, o);
}
}  // namespace detail

template <class T>
Tensor tensor(const std::vector<T>& values, const Shape& shape) { return tensor_from(values, shape, {}); }
template <class T>
Tensor tensor(const std::vector<T>& values, const Shape& shape, const TensorOptions& o) {
  return tensor_from(values, shape, o);
}
template <class T>
Tensor tensor(const std::vector<T>& values) { return tensor_from(values, Shape{static_cast<int64_t>(values.size())}, {}); }
template <class T>
Tensor tensor(const std::vector<T>& values, const TensorOptions& o) {
  return tensor_from(values, Shape{static_cast<int64_t>(values.size())}, o);
}
template <class T>
Tensor tensor(std::initializer_list<T> v) { return detail::from_nested<T>(v, {}); }
template <class T>
Tensor tensor(std::initializer_list<T> v, const TensorOptions& o) { return detail::from_nested<T>(v, o); }
template <class T>
Tensor tensor(std::initializer_list<std::initializer_list<T>> v) { return detail::from_nested<T>(v, {}); }
template <class T>
Tensor tensor(std::initializer_list<std::initializer_list<T>> v, const TensorOptions& o) {
  return detail::from_nested<T>(v, o);
}
template <class T>
Tensor tensor(std::initializer_list<std::initializer_list<std::initializer_list<T>>> v) {
  return detail::from_nested<T>(v, {});
}
template <class T>
Tensor tensor(std::initializer_list<std::initializer_list<std::initializer_list<T>>> v, const TensorOptions& o) {
  return detail::from_nested<T>(v, o);
}
template <class T>
Tensor tensor(std::initializer_list<std::initializer_list<std::initializer_list<std::initializer_list<T>>>> v) {
  return detail::from_nested<T>(v, {});
}
// A 0-dim tensor.
Tensor scalar_tensor(const Scalar& v, const TensorOptions& o = {});

}  // namespace ember
