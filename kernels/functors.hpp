// The math of every elementwise op, written once for g++ and nvcc alike (EMBER_HD). A functor's
// operator() takes values of the computation type (float for f16/bf16) and returns the result.
// `Types` lists the dtypes an op computes in; `kBoolOut` marks predicates, whose output is bool;
// `make(p)` builds a functor that carries op parameters (clamp bounds, pow exponent, ...).
// The type lists at the bottom are the tables the CPU and CUDA backends instantiate.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "core/dtype.hpp"
#include "core/half.hpp"
#include "kernels/vec_math.hpp"

namespace ember::kernels {

struct OpParams {
  double a = 0, b = 0, c = 0;
  bool has_a = true, has_b = true;
};

template <class T>
EMBER_HD bool nan_(T x) {
  if constexpr (std::is_floating_point_v<T>)
    return x != x;
  else
    return false;
}

// exp in the computation type; float on the host takes the vectorisable polynomial (about 1 ulp).
template <class T>
EMBER_HD T exp_(T x) {
#if defined(__CUDA_ARCH__)
  return std::exp(x);
#else
  if constexpr (std::is_same_v<T, float>)
    return exp_fast(x);
  else
    return std::exp(x);
#endif
}

struct UnaryFloat {  // ops that compute in floating point; integer inputs promote to f32
  using Types = FloatTypes;
  static constexpr bool kBoolOut = false;
  static constexpr bool kIntToFloat = true;
};
struct UnaryNumeric {
  using Types = NumericTypes;
  static constexpr bool kBoolOut = false;
  static constexpr bool kIntToFloat = false;
};
struct Predicate {
  using Types = AllTypes;
  static constexpr bool kBoolOut = true;
  static constexpr bool kIntToFloat = false;
};

// ---------------------------------------------------------------- unary
struct Neg : UnaryNumeric {
  using Types = SignedTypes;
  template <class T>
  EMBER_HD T operator()(T x) const {
    return -x;
  }
};
struct Abs : UnaryNumeric {
  template <class T>
  EMBER_HD T operator()(T x) const {
    if constexpr (std::is_unsigned_v<T>)
      return x;
    else
      return x < T(0) ? -x : x;
  }
};
struct Sign : UnaryNumeric {
  template <class T>
  EMBER_HD T operator()(T x) const {
    if constexpr (std::is_unsigned_v<T>)
      return static_cast<T>(x != T(0));
    else {
      if constexpr (std::is_floating_point_v<T>) {
        if (x != x) return x;
      }
      return static_cast<T>((T(0) < x) - (x < T(0)));
    }
  }
};
struct Exp : UnaryFloat {
  template <class T>
  EMBER_HD T operator()(T x) const {
    return exp_(x);
  }
};
struct Exp2 : UnaryFloat {
  template <class T>
  EMBER_HD T operator()(T x) const {
    return std::exp2(x);
  }
};
struct Log : UnaryFloat {
  template <class T>
  EMBER_HD T operator()(T x) const {
    return std::log(x);
  }
};
struct Log2 : UnaryFloat {
  template <class T>
  EMBER_HD T operator()(T x) const {
    return std::log2(x);
  }
};
struct Log1p : UnaryFloat {
  template <class T>
  EMBER_HD T operator()(T x) const {
    return std::log1p(x);
  }
};
struct Expm1 : UnaryFloat {
  template <class T>
  EMBER_HD T operator()(T x) const {
    return std::expm1(x);
  }
};
struct Sqrt : UnaryFloat {
  template <class T>
  EMBER_HD T operator()(T x) const {
    return std::sqrt(x);
  }
};
struct Rsqrt : UnaryFloat {
  template <class T>
  EMBER_HD T operator()(T x) const {
    return T(1) / std::sqrt(x);
  }
};
struct Reciprocal : UnaryFloat {
  template <class T>
  EMBER_HD T operator()(T x) const {
    return T(1) / x;
  }
};
struct Sin : UnaryFloat {
  template <class T>
  EMBER_HD T operator()(T x) const {
    return std::sin(x);
  }
};
struct Cos : UnaryFloat {
  template <class T>
  EMBER_HD T operator()(T x) const {
    return std::cos(x);
  }
};
struct Tan : UnaryFloat {
  template <class T>
  EMBER_HD T operator()(T x) const {
    return std::tan(x);
  }
};
struct Tanh : UnaryFloat {
  template <class T>
  EMBER_HD T operator()(T x) const {
    return std::tanh(x);
  }
};
struct Sigmoid : UnaryFloat {
  template <class T>
  EMBER_HD T operator()(T x) const {
    return T(1) / (T(1) + exp_(-x));
  }
};
struct Relu : UnaryNumeric {
  template <class T>
  EMBER_HD T operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>) {
      if (x != x) return x;
    }
    return x > T(0) ? x : T(0);
  }
};
struct LeakyRelu : UnaryFloat {
  double slope = 0.01;
  static LeakyRelu make(const OpParams& p) {
    LeakyRelu f;
    f.slope = p.a;
    return f;
  }
  template <class T>
  EMBER_HD T operator()(T x) const {
    return x > T(0) ? x : x * static_cast<T>(slope);
  }
};
struct Gelu : UnaryFloat {  // exact: x * Phi(x)
  template <class T>
  EMBER_HD T operator()(T x) const {
#if !defined(__CUDA_ARCH__)
    if constexpr (std::is_same_v<T, float>) return x * normal_cdf_fast(x);
#endif
    return x * T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440)));
  }
};
// GELU's tanh form 0.5 x (1 + tanh z), z = sqrt(2/pi) (x + 0.044715 x^3), as x sigmoid(2 z): the same
// function without the cancellation of 1 + tanh z in the negative tail (and vectorisable on the host).
// Past 2z = -80 the value is below 1e-34 |x|: x * 0 there (-0, and NaN at -inf as the tanh form), so
// the host's saturating exp and the device's agree.
inline constexpr double kGeluTanhTail = -80;
struct GeluTanh : UnaryFloat {
  template <class T>
  EMBER_HD T operator()(T x) const {
    const T z2 = T(1.59576912160573071176) * (x + T(0.044715) * x * x * x);
    return z2 < T(kGeluTanhTail) ? x * T(0) : x / (T(1) + exp_(-z2));
  }
};
struct Silu : UnaryFloat {
  template <class T>
  EMBER_HD T operator()(T x) const {
    return x / (T(1) + exp_(-x));
  }
};
struct Softplus : UnaryFloat {
  double beta = 1, threshold = 20;
  static Softplus make(const OpParams& p) {
    Softplus f;
    f.beta = p.a;
    f.threshold = p.b;
    return f;
  }
  template <class T>
  EMBER_HD T operator()(T x) const {
    T bx = x * static_cast<T>(beta);
    return bx > static_cast<T>(threshold) ? x : std::log1p(std::exp(bx)) / static_cast<T>(beta);
  }
};
// elu and selu: scale * (x > 0 ? x : alpha * (exp(x) - 1)); selu fixes alpha and scale.
struct Elu : UnaryFloat {
  double alpha = 1, scale = 1;
  static Elu make(const OpParams& p) {
    Elu f;
    f.alpha = p.a;
    f.scale = p.b;
    return f;
  }
  template <class T>
  EMBER_HD T operator()(T x) const {
    return static_cast<T>(scale) * (x > T(0) ? x : static_cast<T>(alpha) * std::expm1(x));
  }
};
struct Mish : UnaryFloat {  // x * tanh(softplus(x)); softplus(x) = x above 20, as PyTorch
  template <class T>
  EMBER_HD T operator()(T x) const {
    return x * std::tanh(x > T(20) ? x : std::log1p(std::exp(x)));
  }
};
struct LogSigmoid : UnaryFloat {  // min(x, 0) - log1p(exp(-|x|)): no overflow either way
  template <class T>
  EMBER_HD T operator()(T x) const {
    T ax = x < T(0) ? -x : x;
    return (x < T(0) ? x : T(0)) - std::log1p(std::exp(-ax));
  }
};
struct Erf : UnaryFloat {
  template <class T>
  EMBER_HD T operator()(T x) const {
#if !defined(__CUDA_ARCH__)
    if constexpr (std::is_same_v<T, float>) return erf_fast(x);
#endif
    return std::erf(x);
  }
};
struct Floor : UnaryNumeric {
  template <class T>
  EMBER_HD T operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>)
      return std::floor(x);
    else
      return x;
  }
};
struct Ceil : UnaryNumeric {
  template <class T>
  EMBER_HD T operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>)
      return std::ceil(x);
    else
      return x;
  }
};
struct Round : UnaryNumeric {  // half to even, as PyTorch
  template <class T>
  EMBER_HD T operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>)
      return std::nearbyint(x);
    else
      return x;
  }
};
struct Trunc : UnaryNumeric {
  template <class T>
  EMBER_HD T operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>)
      return std::trunc(x);
    else
      return x;
  }
};
struct LogicalNot : Predicate {
  template <class T>
  EMBER_HD bool operator()(T x) const {
    return !static_cast<bool>(x);
  }
};
struct IsNan : Predicate {
  template <class T>
  EMBER_HD bool operator()(T x) const {
    return nan_(x);
  }
};
struct IsInf : Predicate {
  template <class T>
  EMBER_HD bool operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>)
      return std::isinf(x);
    else
      return false;
  }
};
struct IsFinite : Predicate {
  template <class T>
  EMBER_HD bool operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>)
      return std::isfinite(x);
    else
      return true;
  }
};
struct Clamp : UnaryNumeric {  // NaN propagates; absent bounds are skipped
  double lo = 0, hi = 0;
  bool has_lo = false, has_hi = false;
  static Clamp make(const OpParams& p) {
    Clamp f;
    f.lo = p.a;
    f.hi = p.b;
    f.has_lo = p.has_a;
    f.has_hi = p.has_b;
    return f;
  }
  template <class T>
  EMBER_HD T operator()(T x) const {
    if (nan_(x)) return x;
    if (has_lo && x < static_cast<T>(lo)) x = static_cast<T>(lo);
    if (has_hi && x > static_cast<T>(hi)) x = static_cast<T>(hi);
    return x;
  }
};
struct NanToNum : UnaryNumeric {
  double nan = 0, posinf = 0, neginf = 0;
  static NanToNum make(const OpParams& p) {
    NanToNum f;
    f.nan = p.a;
    f.posinf = p.b;
    f.neginf = p.c;
    return f;
  }
  template <class T>
  EMBER_HD T operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>) {
      if (x != x) return static_cast<T>(nan);
      if (std::isinf(x)) return static_cast<T>(x > 0 ? posinf : neginf);
    }
    return x;
  }
};
struct PowScalar : UnaryNumeric {
  double e = 1;
  static PowScalar make(const OpParams& p) {
    PowScalar f;
    f.e = p.a;
    return f;
  }
  template <class T>
  EMBER_HD T operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>) {
      if (e == 2) return x * x;
      if (e == 0.5) return std::sqrt(x);
      return std::pow(x, static_cast<T>(e));
    } else {
      int64_t n = static_cast<int64_t>(e);
      T r = 1, b = x;  // exact integer power by squaring
      for (; n > 0; n >>= 1, b = static_cast<T>(b * b))
        if (n & 1) r = static_cast<T>(r * b);
      return r;
    }
  }
};

// ---------------------------------------------------------------- binary
struct BinaryNumeric {
  using Types = NumericTypes;
  static constexpr bool kBoolOut = false;
  static constexpr bool kIntToFloat = false;
};
struct Add : BinaryNumeric {
  using Types = AllTypes;
  double alpha = 1;
  static Add make(const OpParams& p) {
    Add f;
    f.alpha = p.a;
    return f;
  }
  template <class T>
  EMBER_HD T operator()(T x, T y) const {
    if constexpr (std::is_same_v<T, bool>)
      return x || y;
    else
      return alpha == 1 ? x + y : static_cast<T>(x + static_cast<T>(alpha) * y);
  }
};
struct Sub : BinaryNumeric {
  double alpha = 1;
  static Sub make(const OpParams& p) {
    Sub f;
    f.alpha = p.a;
    return f;
  }
  template <class T>
  EMBER_HD T operator()(T x, T y) const {
    return alpha == 1 ? static_cast<T>(x - y) : static_cast<T>(x - static_cast<T>(alpha) * y);
  }
};
struct Mul : BinaryNumeric {
  using Types = AllTypes;
  template <class T>
  EMBER_HD T operator()(T x, T y) const {
    if constexpr (std::is_same_v<T, bool>)
      return x && y;
    else
      return static_cast<T>(x * y);
  }
};
struct Div : BinaryNumeric {  // true division; integer inputs compute in f32
  using Types = FloatTypes;
  static constexpr bool kIntToFloat = true;
  template <class T>
  EMBER_HD T operator()(T x, T y) const {
    return x / y;
  }
};
struct DivFloor : BinaryNumeric {
  template <class T>
  EMBER_HD T operator()(T x, T y) const {
    if constexpr (std::is_floating_point_v<T>) {
      return std::floor(x / y);
    } else {
      if (y == 0) return 0;  // checked by the builder; keeps the kernel free of traps
      T q = x / y;
      if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
      return q;
    }
  }
};
struct DivTrunc : BinaryNumeric {
  template <class T>
  EMBER_HD T operator()(T x, T y) const {
    if constexpr (std::is_floating_point_v<T>)
      return std::trunc(x / y);
    else
      return y == 0 ? T(0) : static_cast<T>(x / y);
  }
};
struct Remainder : BinaryNumeric {  // Python's modulo: the result takes the divisor's sign
  template <class T>
  EMBER_HD T operator()(T x, T y) const {
    if constexpr (std::is_floating_point_v<T>) {
      T r = std::fmod(x, y);
      return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
    } else {
      if (y == 0) return 0;
      T r = static_cast<T>(x % y);
      return (r != 0 && ((r < 0) != (y < 0))) ? static_cast<T>(r + y) : r;
    }
  }
};
struct Fmod : BinaryNumeric {  // C's fmod: the result takes the dividend's sign
  template <class T>
  EMBER_HD T operator()(T x, T y) const {
    if constexpr (std::is_floating_point_v<T>)
      return std::fmod(x, y);
    else
      return y == 0 ? T(0) : static_cast<T>(x % y);
  }
};
struct Atan2 : BinaryNumeric {
  using Types = FloatTypes;
  static constexpr bool kIntToFloat = true;
  template <class T>
  EMBER_HD T operator()(T y, T x) const {
    return std::atan2(y, x);
  }
};
struct Maximum : BinaryNumeric {
  using Types = AllTypes;
  template <class T>
  EMBER_HD T operator()(T x, T y) const {
    if (nan_(x)) return x;
    if (nan_(y)) return y;
    return x > y ? x : y;
  }
};
struct Minimum : BinaryNumeric {
  using Types = AllTypes;
  template <class T>
  EMBER_HD T operator()(T x, T y) const {
    if (nan_(x)) return x;
    if (nan_(y)) return y;
    return x < y ? x : y;
  }
};
struct Pow : BinaryNumeric {
  template <class T>
  EMBER_HD T operator()(T x, T y) const {
    if constexpr (std::is_floating_point_v<T>) {
      return std::pow(x, y);
    } else {
      if (y < 0) return x == 1 ? T(1) : (x == static_cast<T>(-1) ? ((y & 1) ? x : T(1)) : T(0));
      T r = 1, b = x;
      for (auto n = y; n > 0; n >>= 1, b = static_cast<T>(b * b))
        if (n & 1) r = static_cast<T>(r * b);
      return r;
    }
  }
};
struct Eq : Predicate {
  template <class T>
  EMBER_HD bool operator()(T x, T y) const {
    return x == y;
  }
};
struct Ne : Predicate {
  template <class T>
  EMBER_HD bool operator()(T x, T y) const {
    return x != y;
  }
};
struct Lt : Predicate {
  template <class T>
  EMBER_HD bool operator()(T x, T y) const {
    return x < y;
  }
};
struct Le : Predicate {
  template <class T>
  EMBER_HD bool operator()(T x, T y) const {
    return x <= y;
  }
};
struct Gt : Predicate {
  template <class T>
  EMBER_HD bool operator()(T x, T y) const {
    return x > y;
  }
};
struct Ge : Predicate {
  template <class T>
  EMBER_HD bool operator()(T x, T y) const {
    return x >= y;
  }
};
struct LogicalAnd : Predicate {
  template <class T>
  EMBER_HD bool operator()(T x, T y) const {
    return static_cast<bool>(x) && static_cast<bool>(y);
  }
};
struct LogicalOr : Predicate {
  template <class T>
  EMBER_HD bool operator()(T x, T y) const {
    return static_cast<bool>(x) || static_cast<bool>(y);
  }
};
struct LogicalXor : Predicate {
  template <class T>
  EMBER_HD bool operator()(T x, T y) const {
    return static_cast<bool>(x) != static_cast<bool>(y);
  }
};
struct LerpScalar : UnaryFloat {  // binary: start + w * (end - start)
  double w = 0;
  static LerpScalar make(const OpParams& p) {
    LerpScalar f;
    f.w = p.a;
    return f;
  }
  template <class T>
  EMBER_HD T operator()(T x, T y) const {
    T wt = static_cast<T>(w);
    return wt < T(0.5) ? x + wt * (y - x) : y - (y - x) * (T(1) - wt);
  }
};

// ---------------------------------------------------------------- ternary
struct Lerp : UnaryFloat {
  template <class T>
  EMBER_HD T operator()(T x, T y, T w) const {
    return std::abs(w) < T(0.5) ? x + w * (y - x) : y - (y - x) * (T(1) - w);
  }
};
struct Addcmul : UnaryNumeric {
  double value = 1;
  static Addcmul make(const OpParams& p) {
    Addcmul f;
    f.value = p.a;
    return f;
  }
  template <class T>
  EMBER_HD T operator()(T x, T a, T b) const {
    return static_cast<T>(x + static_cast<T>(value) * a * b);
  }
};
struct Addcdiv : UnaryFloat {
  double value = 1;
  static Addcdiv make(const OpParams& p) {
    Addcdiv f;
    f.value = p.a;
    return f;
  }
  template <class T>
  EMBER_HD T operator()(T x, T a, T b) const {
    return x + static_cast<T>(value) * a / b;
  }
};
// where(cond, a, b): the condition arrives converted to T; nonzero selects a.
struct Where : UnaryNumeric {
  using Types = AllTypes;
  template <class T>
  EMBER_HD T operator()(T c, T a, T b) const {
    return c != T(0) ? a : b;
  }
};

// First-order backward helpers (used when no graph is built): the gradient through relu given its
// output (PyTorch's threshold_backward: 0 where the output is not positive), and through exact gelu
// given its input, g * (Phi(x) + x phi(x)).
struct ReluBackward : BinaryNumeric {
  template <class T>
  EMBER_HD T operator()(T g, T y) const {
    return y > T(0) ? g : T(0);
  }
};
struct GeluBackward : BinaryNumeric {
  using Types = FloatTypes;
  static constexpr bool kIntToFloat = true;
  template <class T>
  EMBER_HD T operator()(T g, T x) const {
#if !defined(__CUDA_ARCH__)
    if constexpr (std::is_same_v<T, float>)
      return g * (normal_cdf_fast(x) + x * exp_fast(-0.5f * x * x) * 0.39894228040143267794f);
#endif
    return g * (T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440))) +
                x * std::exp(T(-0.5) * x * x) * T(0.39894228040143267794));
  }
};

// d/dx of GeluTanh times g: with s = sigmoid(2 z) = (1 + tanh z) / 2, s (1 + 2 k (1 - s) x (1 + 3 c x^2)),
// k = sqrt(2/pi), c = 0.044715; 0 in GeluTanh's tail (where x (1 + 3 c x^2) may overflow), NaN at +-inf as
// the tanh form's x (1 - tanh^2 z). The backward of gelu's tanh form and of addmm_gelu (core/ops/linalg.cpp)
// on CPU and CUDA alike.
struct GeluTanhBackward : BinaryNumeric {
  using Types = FloatTypes;
  static constexpr bool kIntToFloat = true;
  template <class T>
  EMBER_HD T operator()(T g, T x) const {
    const T k = T(0.79788456080286535588), c = T(0.044715), x2 = x * x;
    const T z2 = T(2) * k * (x + c * x2 * x);
    const T s = T(1) / (T(1) + exp_(-z2));
    const T d = z2 < T(kGeluTanhTail) ? T(0) : s * (T(1) + T(2) * k * (T(1) - s) * x * (T(1) + T(3) * c * x2));
    return std::isinf(x) ? std::numeric_limits<T>::quiet_NaN() : g * d;
  }
};

using UnaryFunctors =
    TypeList<Neg, Abs, Sign, Exp, Exp2, Log, Log2, Log1p, Expm1, Sqrt, Rsqrt, Reciprocal, Sin, Cos, Tan, Tanh, Sigmoid,
             Relu, LeakyRelu, Gelu, GeluTanh, Silu, Softplus, Erf, Floor, Ceil, Round, Trunc, LogicalNot, IsNan, IsInf,
             IsFinite, Clamp, NanToNum, PowScalar, Elu, Mish, LogSigmoid>;
using BinaryFunctors =
    TypeList<Add, Sub, Mul, Div, DivFloor, DivTrunc, Remainder, Maximum, Minimum, Pow, Eq, Ne, Lt, Le, Gt, Ge,
             LogicalAnd, LogicalOr, LogicalXor, LerpScalar, ReluBackward, GeluBackward, Fmod, Atan2, GeluTanhBackward>;
using TernaryFunctors = TypeList<Lerp, Addcmul, Addcdiv, Where>;

// Binary ops whose CUDA kernel also takes a float32 operand beside a float16/bfloat16 one (read as it is
// and widened on load, as PyTorch's TensorIterator does), for a float32 result: autocast's residual adds
// of a bfloat16 block output to the float32 stream then need no cast pass (core/ops/elementwise.cpp).
template <class F>
inline constexpr bool kTakesHalfOperand = std::is_same_v<F, Add> || std::is_same_v<F, Sub> || std::is_same_v<F, Mul>;

template <class T, class List>
struct index_of;
template <class T, class... Ts>
struct index_of<T, TypeList<T, Ts...>> : std::integral_constant<int, 0> {};
template <class T, class U, class... Ts>
struct index_of<T, TypeList<U, Ts...>> : std::integral_constant<int, 1 + index_of<T, TypeList<Ts...>>::value> {};
template <class T, class List>
inline constexpr int index_of_v = index_of<T, List>::value;

template <class F>
inline F make_functor(const OpParams& p) {  // host only: make() reads OpParams
  if constexpr (requires { F::make(p); })
    return F::make(p);
  else
    return F{};
}

}  // namespace ember::kernels
