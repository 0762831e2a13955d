// DType, the C++ types behind it, PyTorch's promotion rules, and visit_dtype: the one switch over
// DType in Ember. Kernels name the set of types they support; anything else is a DTypeError.
#pragma once
#include <cstdint>
#include <string>
#include <type_traits>

#include "core/error.hpp"
#include "core/half.hpp"

namespace ember {

enum class DType : uint8_t { F32, F64, F16, BF16, I32, I64, U8, Bool };
inline constexpr int kNumDTypes = 8;

inline constexpr DType kF32 = DType::F32;
inline constexpr DType kF64 = DType::F64;
inline constexpr DType kF16 = DType::F16;
inline constexpr DType kBF16 = DType::BF16;
inline constexpr DType kI32 = DType::I32;
inline constexpr DType kI64 = DType::I64;
inline constexpr DType kU8 = DType::U8;
inline constexpr DType kBool = DType::Bool;

size_t itemsize(DType dt);
const char* dtype_name(DType dt);  // "float32", as PyTorch prints it without the "torch." prefix
constexpr bool is_floating(DType dt) { return dt <= DType::BF16; }
constexpr bool is_integral(DType dt, bool include_bool = false) {
  return (dt >= DType::I32 && dt <= DType::U8) || (include_bool && dt == DType::Bool);
}
std::ostream& operator<<(std::ostream& os, DType dt);

// The larger of two dtypes by PyTorch's lattice (bool < u8 < i32 < i64 < f16/bf16 < f32 < f64;
// f16 with bf16 gives f32).
DType promote_types(DType a, DType b);

template <class... Ts>
struct TypeList {};
using AllTypes = TypeList<float, double, half, bfloat16, int32_t, int64_t, uint8_t, bool>;
using FloatTypes = TypeList<float, double, half, bfloat16>;
using NumericTypes = TypeList<float, double, half, bfloat16, int32_t, int64_t, uint8_t>;
using SignedTypes = TypeList<float, double, half, bfloat16, int32_t, int64_t>;
using IntTypes = TypeList<int32_t, int64_t, uint8_t>;
using IndexTypes = TypeList<int32_t, int64_t>;

template <class T, class List>
struct contains;
template <class T, class... Ts>
struct contains<T, TypeList<Ts...>> : std::bool_constant<(std::is_same_v<T, Ts> || ...)> {};
template <class T, class List>
inline constexpr bool contains_v = contains<T, List>::value;

template <class T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return kF32; }
template <> constexpr DType dtype_of<double>() { return kF64; }
template <> constexpr DType dtype_of<half>() { return kF16; }
template <> constexpr DType dtype_of<bfloat16>() { return kBF16; }
template <> constexpr DType dtype_of<int32_t>() { return kI32; }
template <> constexpr DType dtype_of<int64_t>() { return kI64; }
template <> constexpr DType dtype_of<uint8_t>() { return kU8; }
template <> constexpr DType dtype_of<bool>() { return kBool; }

// Accumulation/computation type: float for the 2-byte floats, the type itself otherwise.
template <class T>
using acc_t = std::conditional_t<std::is_same_v<T, half> || std::is_same_v<T, bfloat16>, float, T>;

[[noreturn]] void throw_unsupported_dtype(DType dt, const char* op);

// visit_dtype<List>(dt, "[op]", [&]<class T>() { ... }) calls the lambda with T = the C++ type of dt,
// instantiating it only for the types in List.
template <class List, class F>
decltype(auto) visit_dtype(DType dt, const char* op, F&& f) {
  auto call = [&]<class T>() -> decltype(auto) {
    if constexpr (contains_v<T, List>) {
      return f.template operator()<T>();
    } else {
      throw_unsupported_dtype(dt, op);
      return f.template operator()<float>();  // unreachable; keeps the return type uniform
    }
  };
  switch (dt) {
    case DType::F32: return call.template operator()<float>();
    case DType::F64: return call.template operator()<double>();
    case DType::F16: return call.template operator()<half>();
    case DType::BF16: return call.template operator()<bfloat16>();
    case DType::I32: return call.template operator()<int32_t>();
    case DType::I64: return call.template operator()<int64_t>();
    case DType::U8: return call.template operator()<uint8_t>();
    case DType::Bool: return call.template operator()<bool>();
  }
  throw_unsupported_dtype(dt, op);
}

}  // namespace ember
