// Scalar: a number that is not a tensor (a C++ literal in `t * 2.0`). It promotes like a PyTorch
// "wrapped number": it never raises a tensor's dtype within the same category.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <type_traits>

#include "core/dtype.hpp"

namespace ember {

class Scalar {
 public:
  enum class Kind : uint8_t { Float, Int, Bool };
  Scalar() : Scalar(int64_t{0}) {}
  template <class T, std::enable_if_t<std::is_floating_point_v<T>, int> = 0>
  Scalar(T v) : kind_(Kind::Float), d_(static_cast<double>(v)) {}
  template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  Scalar(T v) : kind_(Kind::Int), i_(static_cast<int64_t>(v)) {}
  Scalar(bool v) : kind_(Kind::Bool), i_(v) {}
  Scalar(half v) : Scalar(static_cast<float>(v)) {}
  Scalar(bfloat16 v) : Scalar(static_cast<float>(v)) {}

  Kind kind() const { return kind_; }
  bool is_floating() const { return kind_ == Kind::Float; }
  bool is_integral() const { return kind_ == Kind::Int; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  // The dtype that holds a wrapped number exactly: f64, i64 or bool. (For promotion a floating
  // wrapped number counts as the default dtype f32; see result_type.)
  DType wrapped_dtype() const { return is_floating() ? kF64 : is_integral() ? kI64 : kBool; }

  template <class T>
  T to() const {
    if (kind_ == Kind::Float) return static_cast<T>(static_cast<acc_t<T>>(d_));
    return static_cast<T>(static_cast<acc_t<T>>(i_));
  }
  double to_double() const { return kind_ == Kind::Float ? d_ : static_cast<double>(i_); }
  int64_t to_int() const { return kind_ == Kind::Float ? static_cast<int64_t>(d_) : i_; }

 private:
  Kind kind_;
  double d_ = 0;
  int64_t i_ = 0;
};

std::ostream& operator<<(std::ostream& os, const Scalar& s);

}  // namespace ember
