// Elementwise ops: each public function is one row naming its functor (kernels/functors.hpp). The
// builders check devices, promote types as PyTorch does, broadcast, and call the kernel family.
#include "core/ops/elementwise.hpp"

#include <cmath>
#include <limits>

#include "core/ops/creation.hpp"
#include "kernels/elementwise.hpp"

namespace ember {
namespace {

using namespace kernels;

template <class List>
bool supports(DType dt) {
  return []<class... Ts>(TypeList<Ts...>, DType d) { return ((dtype_of<Ts>() == d) || ...); }(List{}, dt);
}

// Operands share one device; a wrapped number (a C++ scalar) may sit on the CPU beside any device.
void check_devices(const char* op, std::initializer_list<const Tensor*> ts) {
  const Tensor* first = nullptr;
  for (const Tensor* t : ts) {
    if (t->impl().wrapped_number) continue;
    if (!first) first = t;
    else
      EMBER_CHECK(t->device() == first->device(), DeviceError, "[", op, "] expected all tensors on one device, got ",
                  describe(*first), " and ", describe(*t));
  }
}

template <class F>
DType compute_dtype(const char* op, DType dt) {
  if (F::kIntToFloat && !is_floating(dt)) dt = kF32;
  EMBER_CHECK(supports<typename F::Types>(dt), DTypeError, "[", op, "] dtype ", dt, " is not supported");
  return dt;
}

template <class F>
Tensor unary_op(const char* op, const Tensor& x, const OpParams& p = {}) {
  DType ct = compute_dtype<F>(op, x.dtype());
  Tensor out = make_tensor(x.shape(), F::kBoolOut ? kBool : ct, x.device());
  unary(index_of_v<F, UnaryFunctors>, out, x.to(ct), p);
  return out;
}

template <class F>
Tensor binary_op(const char* op, const Tensor& a, const Tensor& b, const OpParams& p = {}) {
  check_devices(op, {&a, &b});
  DType ct = compute_dtype<F>(op, result_type(a, b));
  Shape shape = broadcast_shapes(a.shape(), b.shape(), (std::string("[") + op + "]").c_str());
  Device dev = a.impl().wrapped_number ? b.device() : a.device();
  Tensor out = make_tensor(shape, F::kBoolOut ? kBool : ct, dev);
  binary(index_of_v<F, BinaryFunctors>, out, a.to(ct).expand(shape), b.to(ct).expand(shape), p);
  return out;
}

template <class F>
Tensor ternary_op(const char* op, const Tensor& a, const Tensor& b, const Tensor& c, DType ct,
                  const OpParams& p = {}) {
  check_devices(op, {&a, &b, &c});
  ct = compute_dtype<F>(op, ct);
  std::string tag = std::string("[") + op + "]";
  Shape shape = broadcast_shapes(broadcast_shapes(a.shape(), b.shape(), tag.c_str()), c.shape(), tag.c_str());
  Tensor out = make_tensor(shape, F::kBoolOut ? kBool : ct, a.device());
  ternary(index_of_v<F, TernaryFunctors>, out, a.to(ct).expand(shape), b.to(ct).expand(shape),
          c.to(ct).expand(shape), p);
  return out;
}

bool can_cast(DType from, DType to) {
  if (is_floating(from) && !is_floating(to)) return false;
  if (from != kBool && to == kBool) return false;
  return true;
}

// Writes `result` (computed out of place) into self, checking PyTorch's in-place rules.
Tensor& assign_inplace(const char* op, Tensor& self, const Tensor& result) {
  EMBER_CHECK(result.shape() == self.shape(), ShapeError, "[", op, "] output with shape ", self.shape(),
              " doesn't match the broadcast shape ", result.shape());
  EMBER_CHECK(can_cast(result.dtype(), self.dtype()), DTypeError, "[", op, "] result type ", result.dtype(),
              " can't be cast to the desired output type ", self.dtype());
  kernels::copy(self, result);
  self.impl().storage->bump_version();
  return self;
}

template <class F>
Tensor& binary_inplace(const char* op, Tensor& self, const Tensor& b, const OpParams& p = {}) {
  DType ct = compute_dtype<F>(op, result_type(self, b));
  bool direct = ct == self.dtype() && !F::kBoolOut && b.impl().storage != self.impl().storage &&
                broadcast_shapes(self.shape(), b.shape(), op) == self.shape();
  if (!direct) return assign_inplace(op, self, binary_op<F>(op, self, b, p));
  check_devices(op, {&self, &b});
  binary(index_of_v<F, BinaryFunctors>, self, self, b.to(ct).expand(self.shape()), p);
  self.impl().storage->bump_version();
  return self;
}

template <class F>
Tensor& unary_inplace(const char* op, Tensor& self, const OpParams& p = {}) {
  DType ct = compute_dtype<F>(op, self.dtype());
  if (ct != self.dtype() || F::kBoolOut) return assign_inplace(op, self, unary_op<F>(op, self, p));
  unary(index_of_v<F, UnaryFunctors>, self, self, p);
  self.impl().storage->bump_version();
  return self;
}

Tensor wrap(const Scalar& s) { return scalar_to_tensor(s); }

void check_no_int_zero(const char* op, const Tensor& divisor, DType ct) {
  if (is_floating(ct)) return;
  Tensor z = eq(divisor, wrap(0));
  bool any_zero = false;
  for (bool v : z.to_vector<bool>()) any_zero |= v;
  EMBER_CHECK(!any_zero, ValueError, "[", op, "] integer division by zero");
}

double dtype_max(DType dt) {
  return visit_dtype<AllTypes>(dt, "[nan_to_num]", [&]<class T>() -> double {
    if constexpr (std::is_same_v<T, half>) return 65504.0;
    else if constexpr (std::is_same_v<T, bfloat16>) return 3.3895313892515355e38;
    else return static_cast<double>(std::numeric_limits<T>::max());
  });
}

}  // namespace

// ---------------------------------------------------------------- unary rows
Tensor neg(const Tensor& x) {
  EMBER_CHECK(x.dtype() != kBool, DTypeError, "[neg] negation of a bool tensor is not supported; use logical_not");
  return unary_op<Neg>("neg", x);
}
Tensor abs(const Tensor& x) { return unary_op<Abs>("abs", x); }
Tensor sign(const Tensor& x) { return unary_op<Sign>("sign", x); }
Tensor exp(const Tensor& x) { return unary_op<Exp>("exp", x); }
Tensor exp2(const Tensor& x) { return unary_op<Exp2>("exp2", x); }
Tensor log(const Tensor& x) { return unary_op<Log>("log", x); }
Tensor log2(const Tensor& x) { return unary_op<Log2>("log2", x); }
Tensor log1p(const Tensor& x) { return unary_op<Log1p>("log1p", x); }
Tensor expm1(const Tensor& x) { return unary_op<Expm1>("expm1", x); }
Tensor sqrt(const Tensor& x) { return unary_op<Sqrt>("sqrt", x); }
Tensor rsqrt(const Tensor& x) { return unary_op<Rsqrt>("rsqrt", x); }
Tensor reciprocal(const Tensor& x) { return unary_op<Reciprocal>("reciprocal", x); }
Tensor sin(const Tensor& x) { return unary_op<Sin>("sin", x); }
Tensor cos(const Tensor& x) { return unary_op<Cos>("cos", x); }
Tensor tan(const Tensor& x) { return unary_op<Tan>("tan", x); }
Tensor tanh(const Tensor& x) { return unary_op<Tanh>("tanh", x); }
Tensor sigmoid(const Tensor& x) { return unary_op<Sigmoid>("sigmoid", x); }
Tensor relu(const Tensor& x) { return unary_op<Relu>("relu", x); }
Tensor leaky_relu(const Tensor& x, double slope) { return unary_op<LeakyRelu>("leaky_relu", x, {.a = slope}); }
Tensor gelu(const Tensor& x, const std::string& approximate) {
  if (approximate == "none") return unary_op<Gelu>("gelu", x);
  EMBER_CHECK(approximate == "tanh", ValueError, "[gelu] approximate must be 'none' or 'tanh', got '",
              approximate, "'");
  return unary_op<GeluTanh>("gelu", x);
}
Tensor silu(const Tensor& x) { return unary_op<Silu>("silu", x); }
Tensor softplus(const Tensor& x, double beta, double threshold) {
  return unary_op<Softplus>("softplus", x, {.a = beta, .b = threshold});
}
Tensor erf(const Tensor& x) { return unary_op<Erf>("erf", x); }
Tensor floor(const Tensor& x) { return unary_op<Floor>("floor", x); }
Tensor ceil(const Tensor& x) { return unary_op<Ceil>("ceil", x); }
Tensor round(const Tensor& x) { return unary_op<Round>("round", x); }
Tensor trunc(const Tensor& x) { return unary_op<Trunc>("trunc", x); }
Tensor logical_not(const Tensor& x) { return unary_op<LogicalNot>("logical_not", x); }
Tensor isnan(const Tensor& x) { return unary_op<IsNan>("isnan", x); }
Tensor isinf(const Tensor& x) { return unary_op<IsInf>("isinf", x); }
Tensor isfinite(const Tensor& x) { return unary_op<IsFinite>("isfinite", x); }

Tensor clamp(const Tensor& x, std::optional<Scalar> min, std::optional<Scalar> max) {
  EMBER_CHECK(min || max, ValueError, "[clamp] at least one of min or max must be given");
  Tensor lo = wrap(min.value_or(0)), hi = wrap(max.value_or(0));
  DType ct = result_type({&x, min ? &lo : &x, max ? &hi : &x});
  OpParams p{.a = min ? min->to_double() : 0, .b = max ? max->to_double() : 0, .has_a = bool(min), .has_b = bool(max)};
  return unary_op<Clamp>("clamp", x.to(ct), p);
}
Tensor clamp(const Tensor& x, const Tensor& min, const Tensor& max) {
  EMBER_CHECK(min.defined() || max.defined(), ValueError, "[clamp] at least one of min or max must be given");
  Tensor r = min.defined() ? maximum(x, min) : x;
  return max.defined() ? minimum(r, max) : r;
}
Tensor nan_to_num(const Tensor& x, double nan, std::optional<double> posinf, std::optional<double> neginf) {
  DType ct = x.dtype();
  double big = is_floating(ct) ? dtype_max(ct) : 0;
  return unary_op<NanToNum>("nan_to_num", x, {.a = nan, .b = posinf.value_or(big), .c = neginf.value_or(-big)});
}
Tensor pow(const Tensor& x, const Scalar& e) {
  Tensor w = wrap(e);
  DType ct = result_type(x, w);
  EMBER_CHECK(is_floating(ct) || e.to_double() >= 0, ValueError,
              "[pow] integers to negative integer powers are not allowed");
  return unary_op<PowScalar>("pow", x.to(ct), {.a = e.to_double()});
}
Tensor pow(const Tensor& x, const Tensor& e) { return binary_op<Pow>("pow", x, e); }
Tensor pow(const Scalar& base, const Tensor& e) { return binary_op<Pow>("pow", wrap(base), e); }

// ---------------------------------------------------------------- binary rows
Tensor add(const Tensor& a, const Tensor& b, const Scalar& alpha) {
  return binary_op<Add>("add", a, b, {.a = alpha.to_double()});
}
Tensor sub(const Tensor& a, const Tensor& b, const Scalar& alpha) {
  EMBER_CHECK(a.dtype() != kBool || b.dtype() != kBool, DTypeError,
              "[sub] subtraction of two bool tensors is not supported; use logical_xor");
  return binary_op<Sub>("sub", a, b, {.a = alpha.to_double()});
}
Tensor mul(const Tensor& a, const Tensor& b) { return binary_op<Mul>("mul", a, b); }
Tensor div(const Tensor& a, const Tensor& b, const std::string& mode) {
  if (mode.empty()) return binary_op<Div>("div", a, b);
  DType ct = result_type(a, b);
  check_no_int_zero("div", b, ct);
  if (mode == "floor") return binary_op<DivFloor>("div", a, b);
  EMBER_CHECK(mode == "trunc", ValueError, "[div] rounding_mode must be '', 'floor' or 'trunc', got '", mode, "'");
  return binary_op<DivTrunc>("div", a, b);
}
Tensor floor_divide(const Tensor& a, const Tensor& b) { return div(a, b, "floor"); }
Tensor remainder(const Tensor& a, const Tensor& b) {
  check_no_int_zero("remainder", b, result_type(a, b));
  return binary_op<Remainder>("remainder", a, b);
}
Tensor maximum(const Tensor& a, const Tensor& b) { return binary_op<Maximum>("maximum", a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return binary_op<Minimum>("minimum", a, b); }
Tensor eq(const Tensor& a, const Tensor& b) { return binary_op<Eq>("eq", a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary_op<Ne>("ne", a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary_op<Lt>("lt", a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return binary_op<Le>("le", a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary_op<Gt>("gt", a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary_op<Ge>("ge", a, b); }
Tensor logical_and(const Tensor& a, const Tensor& b) { return binary_op<LogicalAnd>("logical_and", a, b); }
Tensor logical_or(const Tensor& a, const Tensor& b) { return binary_op<LogicalOr>("logical_or", a, b); }
Tensor logical_xor(const Tensor& a, const Tensor& b) { return binary_op<LogicalXor>("logical_xor", a, b); }

// ---------------------------------------------------------------- ternary rows
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  EMBER_CHECK(cond.dtype() == kBool || cond.dtype() == kU8, DTypeError,
              "[where] condition must be a bool tensor, got ", describe(cond));
  return ternary_op<Where>("where", cond, a, b, result_type(a, b));
}
Tensor where(const Tensor& cond, const Tensor& a, const Scalar& b) { return where(cond, a, wrap(b)); }
Tensor where(const Tensor& cond, const Scalar& a, const Tensor& b) { return where(cond, wrap(a), b); }
Tensor lerp(const Tensor& start, const Tensor& end, const Scalar& w) {
  EMBER_CHECK(start.dtype() == end.dtype(), DTypeError, "[lerp] expected start and end of one dtype, got ",
              describe(start), " and ", describe(end));
  EMBER_CHECK(is_floating(start.dtype()), DTypeError, "[lerp] needs floating tensors, got ", describe(start));
  return binary_op<LerpScalar>("lerp", start, end, {.a = w.to_double()});
}
Tensor lerp(const Tensor& start, const Tensor& end, const Tensor& w) {
  EMBER_CHECK(start.dtype() == end.dtype() && is_floating(start.dtype()), DTypeError,
              "[lerp] needs floating start and end of one dtype, got ", describe(start), " and ", describe(end));
  return ternary_op<Lerp>("lerp", start, end, w, start.dtype());
}
Tensor addcmul(const Tensor& x, const Tensor& t1, const Tensor& t2, const Scalar& v) {
  return ternary_op<Addcmul>("addcmul", x, t1, t2, result_type({&x, &t1, &t2}), {.a = v.to_double()});
}
Tensor addcdiv(const Tensor& x, const Tensor& t1, const Tensor& t2, const Scalar& v) {
  DType ct = result_type({&x, &t1, &t2});
  EMBER_CHECK(is_floating(ct), DTypeError, "[addcdiv] integer division is not supported, got ", describe(t1),
              " and ", describe(t2));
  return ternary_op<Addcdiv>("addcdiv", x, t1, t2, ct, {.a = v.to_double()});
}

// ---------------------------------------------------------------- operators
Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator%(const Tensor& a, const Tensor& b) { return remainder(a, b); }
Tensor operator+(const Tensor& a, const Scalar& b) { return add(a, wrap(b)); }
Tensor operator-(const Tensor& a, const Scalar& b) { return sub(a, wrap(b)); }
Tensor operator*(const Tensor& a, const Scalar& b) { return mul(a, wrap(b)); }
Tensor operator/(const Tensor& a, const Scalar& b) { return div(a, wrap(b)); }
Tensor operator%(const Tensor& a, const Scalar& b) { return remainder(a, wrap(b)); }
Tensor operator+(const Scalar& a, const Tensor& b) { return add(wrap(a), b); }
Tensor operator-(const Scalar& a, const Tensor& b) { return sub(wrap(a), b); }
Tensor operator*(const Scalar& a, const Tensor& b) { return mul(wrap(a), b); }
Tensor operator/(const Scalar& a, const Tensor& b) { return div(wrap(a), b); }
Tensor operator==(const Tensor& a, const Tensor& b) { return eq(a, b); }
Tensor operator!=(const Tensor& a, const Tensor& b) { return ne(a, b); }
Tensor operator<(const Tensor& a, const Tensor& b) { return lt(a, b); }
Tensor operator<=(const Tensor& a, const Tensor& b) { return le(a, b); }
Tensor operator>(const Tensor& a, const Tensor& b) { return gt(a, b); }
Tensor operator>=(const Tensor& a, const Tensor& b) { return ge(a, b); }
Tensor operator==(const Tensor& a, const Scalar& b) { return eq(a, wrap(b)); }
Tensor operator!=(const Tensor& a, const Scalar& b) { return ne(a, wrap(b)); }
Tensor operator<(const Tensor& a, const Scalar& b) { return lt(a, wrap(b)); }
Tensor operator<=(const Tensor& a, const Scalar& b) { return le(a, wrap(b)); }
Tensor operator>(const Tensor& a, const Scalar& b) { return gt(a, wrap(b)); }
Tensor operator>=(const Tensor& a, const Scalar& b) { return ge(a, wrap(b)); }

static void check_bool_operands(const char* op, const Tensor& a, const Tensor& b) {
  EMBER_CHECK(a.dtype() == kBool && b.dtype() == kBool, DTypeError, "[", op,
              "] operators &, |, ^ need bool tensors, got ", describe(a), " and ", describe(b));
}
Tensor operator&(const Tensor& a, const Tensor& b) { check_bool_operands("and", a, b); return logical_and(a, b); }
Tensor operator|(const Tensor& a, const Tensor& b) { check_bool_operands("or", a, b); return logical_or(a, b); }
Tensor operator^(const Tensor& a, const Tensor& b) { check_bool_operands("xor", a, b); return logical_xor(a, b); }
Tensor operator~(const Tensor& a) {
  EMBER_CHECK(a.dtype() == kBool, DTypeError, "[not] operator ~ needs a bool tensor, got ", describe(a));
  return logical_not(a);
}
Tensor& operator+=(Tensor& a, const Tensor& b) { return a.add_(b); }
Tensor& operator-=(Tensor& a, const Tensor& b) { return a.sub_(b); }
Tensor& operator*=(Tensor& a, const Tensor& b) { return a.mul_(b); }
Tensor& operator/=(Tensor& a, const Tensor& b) { return a.div_(b); }
Tensor& operator+=(Tensor& a, const Scalar& b) { return a.add_(wrap(b)); }
Tensor& operator-=(Tensor& a, const Scalar& b) { return a.sub_(wrap(b)); }
Tensor& operator*=(Tensor& a, const Scalar& b) { return a.mul_(wrap(b)); }
Tensor& operator/=(Tensor& a, const Scalar& b) { return a.div_(wrap(b)); }

// ---------------------------------------------------------------- in-place methods
Tensor& Tensor::neg_() { return unary_inplace<Neg>("neg_", *this); }
Tensor& Tensor::abs_() { return unary_inplace<Abs>("abs_", *this); }
Tensor& Tensor::exp_() { return unary_inplace<Exp>("exp_", *this); }
Tensor& Tensor::log_() { return unary_inplace<Log>("log_", *this); }
Tensor& Tensor::sqrt_() { return unary_inplace<Sqrt>("sqrt_", *this); }
Tensor& Tensor::tanh_() { return unary_inplace<Tanh>("tanh_", *this); }
Tensor& Tensor::sigmoid_() { return unary_inplace<Sigmoid>("sigmoid_", *this); }
Tensor& Tensor::relu_() { return unary_inplace<Relu>("relu_", *this); }
Tensor& Tensor::clamp_(std::optional<Scalar> min, std::optional<Scalar> max) {
  return assign_inplace("clamp_", *this, ember::clamp(*this, min, max));
}
Tensor& Tensor::pow_(const Scalar& e) { return assign_inplace("pow_", *this, ember::pow(*this, e)); }
Tensor& Tensor::add_(const Tensor& o, const Scalar& alpha) {
  return binary_inplace<Add>("add_", *this, o, {.a = alpha.to_double()});
}
Tensor& Tensor::sub_(const Tensor& o, const Scalar& alpha) {
  return binary_inplace<Sub>("sub_", *this, o, {.a = alpha.to_double()});
}
Tensor& Tensor::mul_(const Tensor& o) { return binary_inplace<Mul>("mul_", *this, o); }
Tensor& Tensor::div_(const Tensor& o) { return binary_inplace<Div>("div_", *this, o); }
Tensor& Tensor::add_(const Scalar& o) { return add_(wrap(o)); }
Tensor& Tensor::mul_(const Scalar& o) { return mul_(wrap(o)); }
Tensor& Tensor::lerp_(const Tensor& end, const Scalar& w) { return assign_inplace("lerp_", *this, ember::lerp(*this, end, w)); }
Tensor& Tensor::addcmul_(const Tensor& t1, const Tensor& t2, const Scalar& v) {
  return assign_inplace("addcmul_", *this, ember::addcmul(*this, t1, t2, v));
}
Tensor& Tensor::addcdiv_(const Tensor& t1, const Tensor& t2, const Scalar& v) {
  return assign_inplace("addcdiv_", *this, ember::addcdiv(*this, t1, t2, v));
}

}  // namespace ember
