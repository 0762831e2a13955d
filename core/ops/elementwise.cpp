// Elementwise ops: each public function is one row naming its functor (kernels/functors.hpp). The
// builders check devices, promote types as PyTorch does, broadcast, and call the kernel family.
#include "core/ops/elementwise.hpp"

#include <array>
#include <cmath>
#include <limits>

#include "core/autograd.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/reduce.hpp"
#include "core/profiler.hpp"
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
    if (!first)
      first = t;
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
  profiler::OpRecord prof(op, {&x});
  autograd::NoGradGuard no_grad;  // the conversions below are not part of the tape
  DType ct = compute_dtype<F>(op, x.dtype());
  Tensor out = make_tensor(x.shape(), F::kBoolOut ? kBool : ct, x.device());
  unary(index_of_v<F, UnaryFunctors>, out, x.to(ct), p);
  return out;
}

// Whether a float32 op on CUDA may read a float16/bfloat16 operand as it is (kernels::kTakesHalfOperand):
// one operand float32, the other 2-byte, both contiguous of the result's shape.
template <class F>
bool takes_half_operand(DType ct, const Shape& shape, const Tensor& a, const Tensor& b) {
  if constexpr (!kTakesHalfOperand<F>) {
    return false;
  } else {
    auto half = [](const Tensor& t) { return t.dtype() == kF16 || t.dtype() == kBF16; };
    return ct == kF32 && a.device().is_cuda() && ((a.dtype() == kF32 && half(b)) || (half(a) && b.dtype() == kF32)) &&
           a.shape() == shape && b.shape() == shape && a.is_contiguous() && b.is_contiguous();
  }
}

template <class F>
Tensor binary_op(const char* op, const Tensor& a, const Tensor& b, const OpParams& p = {}) {
  profiler::OpRecord prof(op, {&a, &b});
  autograd::NoGradGuard no_grad;
  check_devices(op, {&a, &b});
  DType ct = compute_dtype<F>(op, result_type(a, b));
  Shape shape = broadcast_shapes(a.shape(), b.shape(), (std::string("[") + op + "]").c_str());
  Device dev = a.impl().wrapped_number ? b.device() : a.device();
  Tensor out = make_tensor(shape, F::kBoolOut ? kBool : ct, dev);
  if (takes_half_operand<F>(ct, shape, a, b))
    binary(index_of_v<F, BinaryFunctors>, out, a, b, p);
  else
    binary(index_of_v<F, BinaryFunctors>, out, a.to(ct).expand(shape), b.to(ct).expand(shape), p);
  return out;
}

template <class F>
Tensor ternary_op(const char* op, const Tensor& a, const Tensor& b, const Tensor& c, DType ct, const OpParams& p = {}) {
  profiler::OpRecord prof(op, {&a, &b, &c});
  autograd::NoGradGuard no_grad;
  check_devices(op, {&a, &b, &c});
  ct = compute_dtype<F>(op, ct);
  std::string tag = std::string("[") + op + "]";
  Shape shape = broadcast_shapes(broadcast_shapes(a.shape(), b.shape(), tag.c_str()), c.shape(), tag.c_str());
  Tensor out = make_tensor(shape, F::kBoolOut ? kBool : ct, a.device());
  ternary(index_of_v<F, TernaryFunctors>, out, a.to(ct).expand(shape), b.to(ct).expand(shape), c.to(ct).expand(shape),
          p);
  return out;
}

bool can_cast(DType from, DType to) {
  if (is_floating(from) && !is_floating(to)) return false;
  if (from != kBool && to == kBool) return false;
  return true;
}

// Writes `result` (computed out of place) into self, checking PyTorch's in-place rules; under
// autograd this is how every in-place op enters the tape (autograd::assign).
Tensor& assign_inplace(const char* op, Tensor& self, const Tensor& result) {
  EMBER_CHECK(result.shape() == self.shape(), ShapeError, "[", op, "] output with shape ", self.shape(),
              " doesn't match the broadcast shape ", result.shape());
  EMBER_CHECK(can_cast(result.dtype(), self.dtype()), DTypeError, "[", op, "] result type ", result.dtype(),
              " can't be cast to the desired output type ", self.dtype());
  return autograd::assign(self, result, op);
}

// In-place forms run the kernel into self directly, unless autograd must see the op: then `row` (the
// differentiable out-of-place op) computes the result from a copy of self, so a node that saves self
// keeps its old value (PyTorch's original_self), and assign_inplace writes it.
template <class F, class Row>
Tensor& binary_inplace(const char* op, Tensor& self, const Tensor& b, const OpParams& p, Row row) {
  if (autograd::needs_grad({&self, &b})) return assign_inplace(op, self, row(self.clone()));
  DType ct = compute_dtype<F>(op, result_type(self, b));
  bool direct = ct == self.dtype() && !F::kBoolOut && b.impl().storage != self.impl().storage &&
                broadcast_shapes(self.shape(), b.shape(), op) == self.shape();
  if (!direct) return assign_inplace(op, self, binary_op<F>(op, self, b, p));
  check_devices(op, {&self, &b});
  check_no_internal_overlap(self, op);
  const bool as_is = takes_half_operand<F>(ct, self.shape(), self, b);
  binary(index_of_v<F, BinaryFunctors>, self, self, as_is ? b : b.to(ct).expand(self.shape()), p);
  self.impl().storage->bump_version(op);
  return self;
}

// self's value before an in-place op, as the out-of-place op that autograd records must see it.
Tensor original(const Tensor& self, std::initializer_list<const Tensor*> operands) {
  return autograd::needs_grad(operands) ? self.clone() : self;
}

template <class F, class Row>
Tensor& unary_inplace(const char* op, Tensor& self, Row row) {
  if (autograd::needs_grad(self)) return assign_inplace(op, self, row(self.clone()));
  DType ct = compute_dtype<F>(op, self.dtype());
  if (ct != self.dtype() || F::kBoolOut) return assign_inplace(op, self, unary_op<F>(op, self));
  check_no_internal_overlap(self, op);
  unary(index_of_v<F, UnaryFunctors>, self, self, {});
  self.impl().storage->bump_version(op);
  return self;
}

// ---------------------------------------------------------------- derivative rows
// What a derivative sees: the output's gradient, the operands and output it asked to keep, and which
// inputs need a gradient. A unary derivative returns d(loss)/dx; an n-ary one returns one per input.
struct Keep {
  bool a = false, b = false, c = false, out = false;
};
struct D {
  Tensor g, a, b, c, out;
  bool need[3] = {false, false, false};
};

template <class Fn>
void record_row(const char* op, Tensor& y, std::initializer_list<const Tensor*> inputs, Keep k, Fn fn) {
  if (!is_floating(y.dtype()) || !autograd::needs_grad(inputs)) return;
  std::array<Tensor, 4> saved;  // no heap for the bookkeeping of the most common ops
  size_t n_saved = 0;
  const Tensor* const* in = inputs.begin();
  if (k.a) saved[n_saved++] = *in[0];
  if (k.b) saved[n_saved++] = *in[1];
  if (k.c) saved[n_saved++] = *in[2];
  if (k.out) saved[n_saved++] = y;
  size_t n = inputs.size();
  Tensor* outputs[] = {&y};
  auto backward = [k, n, fn](autograd::Ctx& c) {
    D d;
    d.g = c.grad();
    size_t i = 0;
    if (k.a) d.a = c.saved(i++);
    if (k.b) d.b = c.saved(i++);
    if (k.c) d.c = c.saved(i++);
    if (k.out) d.out = c.saved(i++);
    for (size_t j = 0; j < n; ++j) d.need[j] = c.needs_grad(j);
    if constexpr (std::is_same_v<decltype(fn(d)), Tensor>)
      return autograd::Grads{fn(d)};
    else
      return autograd::Grads(fn(d));
  };
  autograd::attach(std::make_shared<autograd::FnNode<decltype(backward)>>(op, std::move(backward)), outputs,
                   {inputs.begin(), inputs.size()}, {saved.data(), n_saved});
}

template <class F, class Fn>
Tensor unary_row(const char* op, const Tensor& x, const OpParams& p, Keep k, Fn fn) {
  Tensor y = unary_op<F>(op, x, p);
  record_row(op, y, {&x}, k, fn);
  return y;
}
template <class F, class Fn>
Tensor binary_row(const char* op, const Tensor& a, const Tensor& b, const OpParams& p, Keep k, Fn fn) {
  Tensor y = binary_op<F>(op, a, b, p);
  record_row(op, y, {&a, &b}, k, fn);
  return y;
}
template <class F, class Fn>
Tensor ternary_row(const char* op, const Tensor& a, const Tensor& b, const Tensor& c, DType ct, const OpParams& p,
                   Keep k, Fn fn) {
  Tensor y = ternary_op<F>(op, a, b, c, ct, p);
  record_row(op, y, {&a, &b, &c}, k, fn);
  return y;
}
Tensor zero_grad(const D& d) { return zeros_like(d.g); }  // piecewise-constant ops

Tensor wrap(const Scalar& s) { return scalar_to_tensor(s); }

void check_no_int_zero(const char* op, const Tensor& divisor, DType ct) {
  if (is_floating(ct)) return;
  EMBER_CHECK(!any(eq(divisor, wrap(0))).item<bool>(), ValueError, "[", op, "] integer division by zero");
}

double dtype_max(DType dt) {
  return visit_dtype<AllTypes>(dt, "[nan_to_num]", [&]<class T>() -> double {
    if constexpr (std::is_same_v<T, half>)
      return 65504.0;
    else if constexpr (std::is_same_v<T, bfloat16>)
      return 3.3895313892515355e38;
    else
      return static_cast<double>(std::numeric_limits<T>::max());
  });
}

}  // namespace

// ---------------------------------------------------------------- unary rows
// Each row: name, functor, what the derivative keeps, the derivative (PyTorch's formulas).
constexpr double kLn2 = 0.69314718055994530942;
constexpr double kSqrt1_2 = 0.70710678118654752440;     // 1/sqrt(2)
constexpr double kInvSqrt2Pi = 0.39894228040143267794;  // 1/sqrt(2 pi)
constexpr double k2InvSqrtPi = 1.12837916709551257390;  // 2/sqrt(pi)

Tensor neg(const Tensor& x) {
  EMBER_CHECK(x.dtype() != kBool, DTypeError, "[neg] negation of a bool tensor is not supported; use logical_not");
  return unary_row<Neg>("neg", x, {}, {}, [](const D& d) { return -d.g; });
}
Tensor abs(const Tensor& x) {
  return unary_row<Abs>("abs", x, {}, {.a = true}, [](const D& d) { return d.g * sign(d.a); });
}
Tensor sign(const Tensor& x) { return unary_row<Sign>("sign", x, {}, {}, zero_grad); }
Tensor exp(const Tensor& x) {
  return unary_row<Exp>("exp", x, {}, {.out = true}, [](const D& d) { return d.g * d.out; });
}
Tensor exp2(const Tensor& x) {
  return unary_row<Exp2>("exp2", x, {}, {.out = true}, [](const D& d) { return d.g * d.out * kLn2; });
}
Tensor log(const Tensor& x) {
  return unary_row<Log>("log", x, {}, {.a = true}, [](const D& d) { return d.g / d.a; });
}
Tensor log2(const Tensor& x) {
  return unary_row<Log2>("log2", x, {}, {.a = true}, [](const D& d) { return d.g / (d.a * kLn2); });
}
Tensor log1p(const Tensor& x) {
  return unary_row<Log1p>("log1p", x, {}, {.a = true}, [](const D& d) { return d.g / (d.a + 1); });
}
Tensor expm1(const Tensor& x) {
  return unary_row<Expm1>("expm1", x, {}, {.out = true}, [](const D& d) { return d.g * (d.out + 1); });
}
Tensor sqrt(const Tensor& x) {
  return unary_row<Sqrt>("sqrt", x, {}, {.out = true}, [](const D& d) { return d.g / (d.out * 2); });
}
Tensor rsqrt(const Tensor& x) {
  return unary_row<Rsqrt>("rsqrt", x, {}, {.out = true}, [](const D& d) { return d.g * d.out * d.out * d.out * -0.5; });
}
Tensor reciprocal(const Tensor& x) {
  return unary_row<Reciprocal>("reciprocal", x, {}, {.out = true}, [](const D& d) { return -d.g * d.out * d.out; });
}
Tensor sin(const Tensor& x) {
  return unary_row<Sin>("sin", x, {}, {.a = true}, [](const D& d) { return d.g * cos(d.a); });
}
Tensor cos(const Tensor& x) {
  return unary_row<Cos>("cos", x, {}, {.a = true}, [](const D& d) { return -d.g * sin(d.a); });
}
Tensor tan(const Tensor& x) {
  return unary_row<Tan>("tan", x, {}, {.out = true}, [](const D& d) { return d.g * (d.out * d.out + 1); });
}
Tensor tanh(const Tensor& x) {
  return unary_row<Tanh>("tanh", x, {}, {.out = true}, [](const D& d) { return d.g * (1 - d.out * d.out); });
}
Tensor sigmoid(const Tensor& x) {
  return unary_row<Sigmoid>("sigmoid", x, {}, {.out = true}, [](const D& d) { return d.g * d.out * (1 - d.out); });
}
Tensor relu(const Tensor& x) {
  return unary_row<Relu>("relu", x, {}, {.out = true}, [](const D& d) {
    // One fused kernel for the first-order backward; the composite when a graph is built.
    return autograd::is_grad_enabled() ? d.g * (d.out > 0) : binary_op<ReluBackward>("relu_backward", d.g, d.out);
  });
}
Tensor leaky_relu(const Tensor& x, double slope) {
  return unary_row<LeakyRelu>("leaky_relu", x, {.a = slope}, {.a = true},
                              [slope](const D& d) { return where(d.a > 0, d.g, d.g * slope); });
}
Tensor gelu(const Tensor& x, const std::string& approximate) {
  if (approximate == "none")
    return unary_row<Gelu>("gelu", x, {}, {.a = true}, [](const D& d) {
      if (!autograd::is_grad_enabled()) return binary_op<GeluBackward>("gelu_backward", d.g, d.a);
      Tensor cdf = (erf(d.a * kSqrt1_2) + 1) * 0.5;
      Tensor pdf = exp(d.a * d.a * -0.5) * kInvSqrt2Pi;
      return d.g * (cdf + d.a * pdf);
    });
  EMBER_CHECK(approximate == "tanh", ValueError, "[gelu] approximate must be 'none' or 'tanh', got '", approximate,
              "'");
  return unary_row<GeluTanh>("gelu", x, {}, {.a = true}, [](const D& d) { return gelu_tanh_backward(d.g, d.a); });
}
Tensor gelu_tanh_backward(const Tensor& grad, const Tensor& x) {
  if (!autograd::is_grad_enabled()) return binary_op<GeluTanhBackward>("gelu_tanh_backward", grad, x);
  // A graph for double backward, in public ops: with s = sigmoid(2z) = (1 + tanh z) / 2 (no cancellation
  // in the negative tail), d/dx = s (1 + 2 k (1 - s) x (1 + 3 c x^2)).
  constexpr double k = 0.79788456080286535588, c = 0.044715;  // sqrt(2/pi)
  Tensor x2 = x * x;
  Tensor s = sigmoid((x + x * x2 * c) * (2 * k));
  return grad * s * ((1 - s) * x * (x2 * (3 * c) + 1) * (2 * k) + 1);
}
Tensor silu(const Tensor& x) {
  return unary_row<Silu>("silu", x, {}, {.a = true}, [](const D& d) {
    Tensor s = sigmoid(d.a);
    return d.g * s * (d.a * (1 - s) + 1);
  });
}
Tensor softplus(const Tensor& x, double beta, double threshold) {
  return unary_row<Softplus>("softplus", x, {.a = beta, .b = threshold}, {.a = true}, [beta, threshold](const D& d) {
    Tensor bx = d.a * beta;
    return d.g * where(bx > threshold, ones_like(bx), sigmoid(bx));
  });
}
Tensor elu(const Tensor& x, double alpha) {
  return unary_row<Elu>("elu", x, {.a = alpha, .b = 1.0}, {.a = true},
                        [alpha](const D& d) { return where(d.a > 0, d.g, d.g * exp(d.a) * alpha); });
}
Tensor selu(const Tensor& x) {
  constexpr double alpha = 1.6732632423543772848170429916717, scale = 1.0507009873554804934193349852946;
  return unary_row<Elu>("selu", x, {.a = alpha, .b = scale}, {.a = true},
                        [](const D& d) { return where(d.a > 0, d.g * scale, d.g * exp(d.a) * (alpha * scale)); });
}
Tensor mish(const Tensor& x) {
  return unary_row<Mish>("mish", x, {}, {.a = true}, [](const D& d) {
    Tensor t = tanh(softplus(d.a));
    return d.g * (t + d.a * sigmoid(d.a) * (1 - t * t));
  });
}
Tensor logsigmoid(const Tensor& x) {
  return unary_row<LogSigmoid>("logsigmoid", x, {}, {.a = true}, [](const D& d) { return d.g * sigmoid(-d.a); });
}
Tensor hardtanh(const Tensor& x, double min_val, double max_val) {
  EMBER_CHECK(min_val <= max_val, ValueError, "[hardtanh] min_val (", min_val, ") must not exceed max_val (", max_val,
              ")");
  // The gradient passes strictly inside (min_val, max_val), as PyTorch's hardtanh_backward.
  return unary_row<Clamp>("hardtanh", x, {.a = min_val, .b = max_val}, {.a = true},
                          [min_val, max_val](const D& d) { return d.g * ((d.a > min_val) & (d.a < max_val)); });
}
Tensor relu6(const Tensor& x) { return hardtanh(x, 0.0, 6.0); }
Tensor erf(const Tensor& x) {
  return unary_row<Erf>("erf", x, {}, {.a = true}, [](const D& d) { return d.g * exp(-(d.a * d.a)) * k2InvSqrtPi; });
}
Tensor floor(const Tensor& x) { return unary_row<Floor>("floor", x, {}, {}, zero_grad); }
Tensor ceil(const Tensor& x) { return unary_row<Ceil>("ceil", x, {}, {}, zero_grad); }
Tensor round(const Tensor& x) { return unary_row<Round>("round", x, {}, {}, zero_grad); }
Tensor trunc(const Tensor& x) { return unary_row<Trunc>("trunc", x, {}, {}, zero_grad); }
Tensor logical_not(const Tensor& x) { return unary_op<LogicalNot>("logical_not", x); }
Tensor isnan(const Tensor& x) { return unary_op<IsNan>("isnan", x); }
Tensor isinf(const Tensor& x) { return unary_op<IsInf>("isinf", x); }
Tensor isfinite(const Tensor& x) { return unary_op<IsFinite>("isfinite", x); }

Tensor clamp(const Tensor& x, std::optional<Scalar> min, std::optional<Scalar> max) {
  EMBER_CHECK(min || max, ValueError, "[clamp] at least one of min or max must be given");
  Tensor lo = wrap(min.value_or(0)), hi = wrap(max.value_or(0));
  DType ct = result_type({&x, min ? &lo : &x, max ? &hi : &x});
  OpParams p{.a = min ? min->to_double() : 0, .b = max ? max->to_double() : 0, .has_a = bool(min), .has_b = bool(max)};
  Tensor y = unary_op<Clamp>("clamp", x.to(ct), p);
  // Gradient passes strictly inside the bounds: 0 at x == min or x == max, as torch 2.x does.
  record_row("clamp", y, {&x}, {.a = true}, [min, max](const D& d) {
    Tensor pass = min ? d.a > *min : d.a < *max;
    if (min && max) pass = pass & (d.a < *max);
    return d.g * pass;
  });
  return y;
}
Tensor clamp_min(const Tensor& x, const Scalar& min) { return clamp(x, min, std::nullopt); }
Tensor clamp_max(const Tensor& x, const Scalar& max) { return clamp(x, std::nullopt, max); }
Tensor clamp_min(const Tensor& x, const Tensor& min) { return clamp(x, min, Tensor()); }
Tensor clamp_max(const Tensor& x, const Tensor& max) { return clamp(x, Tensor(), max); }
Tensor clamp(const Tensor& x, const Tensor& min, const Tensor& max) {
  EMBER_CHECK(min.defined() || max.defined(), ValueError, "[clamp] at least one of min or max must be given");
  Tensor r = min.defined() ? maximum(x, min) : x;
  return max.defined() ? minimum(r, max) : r;
}
Tensor nan_to_num(const Tensor& x, double nan, std::optional<double> posinf, std::optional<double> neginf) {
  DType ct = x.dtype();
  double big = is_floating(ct) ? dtype_max(ct) : 0;
  return unary_row<NanToNum>("nan_to_num", x, {.a = nan, .b = posinf.value_or(big), .c = neginf.value_or(-big)},
                             {.a = true}, [](const D& d) { return d.g * isfinite(d.a); });
}
Tensor pow(const Tensor& x, const Scalar& e) {
  Tensor w = wrap(e);
  DType ct = result_type(x, w);
  EMBER_CHECK(is_floating(ct) || e.to_double() >= 0, ValueError,
              "[pow] integers to negative integer powers are not allowed");
  double k = e.to_double();
  Tensor y = unary_op<PowScalar>("pow", x.to(ct), {.a = k});
  record_row("pow", y, {&x}, {.a = true},
             [k](const D& d) { return k == 0 ? zeros_like(d.g) : d.g * pow(d.a, k - 1) * k; });
  return y;
}
// d/dx = e x^(e-1) (0 where e = 0); d/de = x^e log x (0 where x = 0 and e >= 0), as PyTorch.
Tensor pow_exponent_grad(const D& d, const Tensor& base) {
  Tensor r = d.g * d.out * log(base);
  return where((base == 0) & (d.b >= 0), zeros_like(r), r);
}
Tensor pow(const Tensor& x, const Tensor& e) {
  return binary_row<Pow>("pow", x, e, {}, {.a = true, .b = true, .out = true}, [](const D& d) {
    Tensor gx;
    if (d.need[0]) {
      gx = d.g * d.b * pow(d.a, d.b - 1);
      gx = where(d.b == 0, zeros_like(gx), gx);
    }
    return autograd::Grads{gx, d.need[1] ? pow_exponent_grad(d, d.a) : Tensor()};
  });
}
Tensor pow(const Scalar& base, const Tensor& e) {
  return binary_row<Pow>("pow", wrap(base), e, {}, {.a = true, .b = true, .out = true}, [](const D& d) {
    return autograd::Grads{Tensor(), pow_exponent_grad(d, d.a.to(d.g.device()))};  // the base: a wrapped number
  });
}

// ---------------------------------------------------------------- binary rows
// Gradients come back in the promoted dtype and the broadcast shape; the engine casts and sums them
// down to each input's own.
Tensor add(const Tensor& a, const Tensor& b, const Scalar& alpha) {
  double k = alpha.to_double();
  return binary_row<Add>("add", a, b, {.a = k}, {}, [k](const D& d) {
    return autograd::Grads{d.g, d.need[1] ? (k == 1 ? d.g : d.g * k) : Tensor()};
  });
}
Tensor sub(const Tensor& a, const Tensor& b, const Scalar& alpha) {
  EMBER_CHECK(a.dtype() != kBool || b.dtype() != kBool, DTypeError,
              "[sub] subtraction of two bool tensors is not supported; use logical_xor");
  double k = alpha.to_double();
  return binary_row<Sub>("sub", a, b, {.a = k}, {}, [k](const D& d) {
    return autograd::Grads{d.g, d.need[1] ? (k == 1 ? -d.g : d.g * -k) : Tensor()};
  });
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return binary_row<Mul>("mul", a, b, {}, {.a = autograd::needs_grad(b), .b = autograd::needs_grad(a)}, [](const D& d) {
    return autograd::Grads{d.need[0] ? d.g * d.b : Tensor(), d.need[1] ? d.g * d.a : Tensor()};
  });
}
Tensor div(const Tensor& a, const Tensor& b, const std::string& mode) {
  if (mode.empty())
    return binary_row<Div>("div", a, b, {}, {.a = autograd::needs_grad(b), .b = true}, [](const D& d) {
      return autograd::Grads{d.need[0] ? d.g / d.b : Tensor(), d.need[1] ? -d.g * d.a / (d.b * d.b) : Tensor()};
    });
  DType ct = result_type(a, b);
  check_no_int_zero("div", b, ct);
  auto zero = [](const D& d) { return autograd::Grads{zeros_like(d.g), zeros_like(d.g)}; };
  if (mode == "floor") return binary_row<DivFloor>("div", a, b, {}, {}, zero);
  EMBER_CHECK(mode == "trunc", ValueError, "[div] rounding_mode must be '', 'floor' or 'trunc', got '", mode, "'");
  return binary_row<DivTrunc>("div", a, b, {}, {}, zero);
}
Tensor floor_divide(const Tensor& a, const Tensor& b) { return div(a, b, "floor"); }
Tensor remainder(const Tensor& a, const Tensor& b) {
  check_no_int_zero("remainder", b, result_type(a, b));
  return binary_row<Remainder>("remainder", a, b, {}, {.a = true, .b = true}, [](const D& d) {
    return autograd::Grads{d.g, d.need[1] ? -d.g * div(d.a, d.b, "floor") : Tensor()};
  });
}
// C's fmod (the dividend's sign): d/da = 1, d/db = -trunc(a / b), as PyTorch.
Tensor fmod(const Tensor& a, const Tensor& b) {
  check_no_int_zero("fmod", b, result_type(a, b));
  return binary_row<Fmod>("fmod", a, b, {}, {.a = true, .b = true}, [](const D& d) {
    return autograd::Grads{d.g, d.need[1] ? -d.g * div(d.a, d.b, "trunc") : Tensor()};
  });
}
Tensor fmod(const Tensor& a, const Scalar& b) { return fmod(a, wrap(b)); }
// atan2(y, x): d/dy = x / (x^2 + y^2), d/dx = -y / (x^2 + y^2).
Tensor atan2(const Tensor& y, const Tensor& x) {
  return binary_row<Atan2>("atan2", y, x, {}, {.a = true, .b = true}, [](const D& d) {
    Tensor r = d.a * d.a + d.b * d.b;
    return autograd::Grads{d.need[0] ? d.g * d.b / r : Tensor(), d.need[1] ? -d.g * d.a / r : Tensor()};
  });
}
// The winner takes the gradient; ties split it evenly, as PyTorch.
Tensor share(const Tensor& g, const Tensor& win, const Tensor& tie) { return g * win + g * tie * 0.5; }
Tensor maximum(const Tensor& a, const Tensor& b) {
  return binary_row<Maximum>("maximum", a, b, {}, {.a = true, .b = true}, [](const D& d) {
    Tensor tie = d.a == d.b;
    return autograd::Grads{d.need[0] ? share(d.g, d.a > d.b, tie) : Tensor(),
                           d.need[1] ? share(d.g, d.b > d.a, tie) : Tensor()};
  });
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return binary_row<Minimum>("minimum", a, b, {}, {.a = true, .b = true}, [](const D& d) {
    Tensor tie = d.a == d.b;
    return autograd::Grads{d.need[0] ? share(d.g, d.a < d.b, tie) : Tensor(),
                           d.need[1] ? share(d.g, d.b < d.a, tie) : Tensor()};
  });
}
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
  EMBER_CHECK(cond.dtype() == kBool || cond.dtype() == kU8, DTypeError, "[where] condition must be a bool tensor, got ",
              describe(cond));
  return ternary_row<Where>("where", cond, a, b, result_type(a, b), {}, {.a = true}, [](const D& d) {
    Tensor zero = zeros_like(d.g);
    return autograd::Grads{Tensor(), d.need[1] ? where(d.a, d.g, zero) : Tensor(),
                           d.need[2] ? where(d.a, zero, d.g) : Tensor()};
  });
}
Tensor where(const Tensor& cond, const Tensor& a, const Scalar& b) { return where(cond, a, wrap(b)); }
Tensor where(const Tensor& cond, const Scalar& a, const Tensor& b) { return where(cond, wrap(a), b); }
Tensor lerp(const Tensor& start, const Tensor& end, const Scalar& w) {
  EMBER_CHECK(start.dtype() == end.dtype(), DTypeError, "[lerp] expected start and end of one dtype, got ",
              describe(start), " and ", describe(end));
  EMBER_CHECK(is_floating(start.dtype()), DTypeError, "[lerp] needs floating tensors, got ", describe(start));
  double k = w.to_double();
  return binary_row<LerpScalar>("lerp", start, end, {.a = k}, {}, [k](const D& d) {
    return autograd::Grads{d.g * (1 - k), d.g * k};
  });
}
Tensor lerp(const Tensor& start, const Tensor& end, const Tensor& w) {
  EMBER_CHECK(start.dtype() == end.dtype() && is_floating(start.dtype()), DTypeError,
              "[lerp] needs floating start and end of one dtype, got ", describe(start), " and ", describe(end));
  return ternary_row<Lerp>("lerp", start, end, w, start.dtype(), {}, {.a = true, .b = true, .c = true}, [](const D& d) {
    return autograd::Grads{d.need[0] ? d.g * (1 - d.c) : Tensor(), d.need[1] ? d.g * d.c : Tensor(),
                           d.need[2] ? d.g * (d.b - d.a) : Tensor()};
  });
}
Tensor addcmul(const Tensor& x, const Tensor& t1, const Tensor& t2, const Scalar& v) {
  double k = v.to_double();
  return ternary_row<Addcmul>(
      "addcmul", x, t1, t2, result_type({&x, &t1, &t2}), {.a = k}, {.b = true, .c = true}, [k](const D& d) {
        return autograd::Grads{d.g, d.need[1] ? d.g * d.c * k : Tensor(), d.need[2] ? d.g * d.b * k : Tensor()};
      });
}
Tensor addcdiv(const Tensor& x, const Tensor& t1, const Tensor& t2, const Scalar& v) {
  DType ct = result_type({&x, &t1, &t2});
  EMBER_CHECK(is_floating(ct), DTypeError, "[addcdiv] integer division is not supported, got ", describe(t1), " and ",
              describe(t2));
  double k = v.to_double();
  return ternary_row<Addcdiv>("addcdiv", x, t1, t2, ct, {.a = k}, {.b = true, .c = true}, [k](const D& d) {
    return autograd::Grads{d.g, d.need[1] ? d.g * k / d.c : Tensor(),
                           d.need[2] ? -d.g * k * d.b / (d.c * d.c) : Tensor()};
  });
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
Tensor operator&(const Tensor& a, const Tensor& b) {
  check_bool_operands("and", a, b);
  return logical_and(a, b);
}
Tensor operator|(const Tensor& a, const Tensor& b) {
  check_bool_operands("or", a, b);
  return logical_or(a, b);
}
Tensor operator^(const Tensor& a, const Tensor& b) {
  check_bool_operands("xor", a, b);
  return logical_xor(a, b);
}
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
Tensor& Tensor::neg_() {
  return unary_inplace<Neg>("neg_", *this, [&](const Tensor& s) { return ember::neg(s); });
}
Tensor& Tensor::abs_() {
  return unary_inplace<Abs>("abs_", *this, [&](const Tensor& s) { return ember::abs(s); });
}
Tensor& Tensor::exp_() {
  return unary_inplace<Exp>("exp_", *this, [&](const Tensor& s) { return ember::exp(s); });
}
Tensor& Tensor::log_() {
  return unary_inplace<Log>("log_", *this, [&](const Tensor& s) { return ember::log(s); });
}
Tensor& Tensor::sqrt_() {
  return unary_inplace<Sqrt>("sqrt_", *this, [&](const Tensor& s) { return ember::sqrt(s); });
}
Tensor& Tensor::tanh_() {
  return unary_inplace<Tanh>("tanh_", *this, [&](const Tensor& s) { return ember::tanh(s); });
}
Tensor& Tensor::sigmoid_() {
  return unary_inplace<Sigmoid>("sigmoid_", *this, [&](const Tensor& s) { return ember::sigmoid(s); });
}
Tensor& Tensor::relu_() {
  return unary_inplace<Relu>("relu_", *this, [&](const Tensor& s) { return ember::relu(s); });
}
Tensor& Tensor::clamp_(std::optional<Scalar> min, std::optional<Scalar> max) {
  return assign_inplace("clamp_", *this, ember::clamp(original(*this, {this}), min, max));
}
Tensor& Tensor::pow_(const Scalar& e) { return assign_inplace("pow_", *this, ember::pow(original(*this, {this}), e)); }
Tensor& Tensor::add_(const Tensor& o, const Scalar& alpha) {
  return binary_inplace<Add>("add_", *this, o, {.a = alpha.to_double()},
                             [&](const Tensor& s) { return ember::add(s, o, alpha); });
}
Tensor& Tensor::sub_(const Tensor& o, const Scalar& alpha) {
  return binary_inplace<Sub>("sub_", *this, o, {.a = alpha.to_double()},
                             [&](const Tensor& s) { return ember::sub(s, o, alpha); });
}
Tensor& Tensor::mul_(const Tensor& o) {
  return binary_inplace<Mul>("mul_", *this, o, {}, [&](const Tensor& s) { return ember::mul(s, o); });
}
Tensor& Tensor::div_(const Tensor& o) {
  return binary_inplace<Div>("div_", *this, o, {}, [&](const Tensor& s) { return ember::div(s, o); });
}
Tensor& Tensor::add_(const Scalar& o) { return add_(wrap(o)); }
Tensor& Tensor::mul_(const Scalar& o) { return mul_(wrap(o)); }
Tensor& Tensor::lerp_(const Tensor& end, const Scalar& w) {
  return assign_inplace("lerp_", *this, ember::lerp(original(*this, {this, &end}), end, w));
}
Tensor& Tensor::addcmul_(const Tensor& t1, const Tensor& t2, const Scalar& v) {
  return assign_inplace("addcmul_", *this, ember::addcmul(original(*this, {this, &t1, &t2}), t1, t2, v));
}
Tensor& Tensor::addcdiv_(const Tensor& t1, const Tensor& t2, const Scalar& v) {
  return assign_inplace("addcdiv_", *this, ember::addcdiv(original(*this, {this, &t1, &t2}), t1, t2, v));
}

}  // namespace ember
