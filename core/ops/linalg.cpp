// Matrix-product builders: argument checks, PyTorch's matmul shape rules (1-D operands get a dim prepended
// or appended and removed again; batch dims broadcast), output allocation; compute is kernels::gemm.
#include "core/ops/linalg.hpp"

#include "core/ops/elementwise.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/linalg.hpp"

namespace ember {
namespace {

void check_operands(const char* op, const Tensor& a, const Tensor& b) {
  EMBER_CHECK(a.defined() && b.defined(), ValueError, "[", op, "] got an undefined tensor");
  EMBER_CHECK(a.device() == b.device(), DeviceError, "[", op, "] expected tensors on one device, got ", describe(a),
              " and ", describe(b));
  EMBER_CHECK(a.dtype() == b.dtype(), DTypeError, "[", op, "] expected tensors of one dtype, got ", describe(a),
              " and ", describe(b));
  EMBER_CHECK(a.dtype() != kBool, DTypeError, "[", op, "] bool tensors are not supported, got ", describe(a));
}

void check_input(const char* op, const Tensor& input, const Tensor& a, const Shape& shape) {
  EMBER_CHECK(input.defined(), ValueError, "[", op, "] got an undefined input tensor");
  EMBER_CHECK(input.device() == a.device(), DeviceError, "[", op, "] expected tensors on one device, got input ",
              describe(input), " and ", describe(a));
  EMBER_CHECK(input.dtype() == a.dtype(), DTypeError, "[", op, "] expected tensors of one dtype, got input ",
              describe(input), " and ", describe(a));
  const int64_t lead = static_cast<int64_t>(shape.size()) - input.dim();
  bool ok = lead >= 0;
  for (int64_t d = 0; ok && d < input.dim(); ++d) ok = input.shape()[d] == 1 || input.shape()[d] == shape[lead + d];
  EMBER_CHECK(ok, ShapeError, "[", op, "] input ", input.shape(), " cannot be broadcast to the product's shape ",
              shape);
}

[[noreturn]] void throw_mismatch(const char* op, const Tensor& a, const Tensor& b) {
  throw ShapeError(detail::cat_str("[", op, "] shapes ", a.shape(), " and ", b.shape(), " cannot be multiplied"));
}

// beta * input + alpha * a @ b for a [..., M, K], b [..., K, N] already broadcast to one batch shape.
Tensor product(const Shape& shape, const Tensor& a, const Tensor& b, const Tensor* input, const Scalar& beta,
               const Scalar& alpha) {
  Tensor out = make_tensor(shape, a.dtype(), a.device());
  const bool use_input = input != nullptr && beta.to_double() != 0.0;
  if (use_input) kernels::copy(out, input->expand(shape));
  kernels::gemm(out, a, b, alpha, use_input ? beta : Scalar(0));
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_operands("matmul", a, b);
  const int64_t da = a.dim(), db = b.dim();
  EMBER_CHECK(da >= 1 && db >= 1, ShapeError, "[matmul] both arguments need at least 1 dim, got ", describe(a), " and ",
              describe(b));
  if (da == 1 && db == 1) {
    if (a.numel() != b.numel()) throw_mismatch("matmul", a, b);
    return dot(a, b);
  }
  // A 1-D operand becomes a matrix ([1, K] or [K, 1]) whose extra dim is removed from the result.
  Tensor a2 = da == 1 ? a.unsqueeze(0) : a;
  Tensor b2 = db == 1 ? b.unsqueeze(1) : b;
  const int64_t m = a2.shape()[a2.dim() - 2], k = a2.shape()[a2.dim() - 1];
  const int64_t n = b2.shape()[b2.dim() - 1];
  if (b2.shape()[b2.dim() - 2] != k) throw_mismatch("matmul", a, b);
  Shape batch = broadcast_shapes(Shape(a2.shape().begin(), a2.shape().end() - 2),
                                 Shape(b2.shape().begin(), b2.shape().end() - 2), "[matmul]");
  Shape sa = batch, sb = batch, so = batch;
  sa.push_back(m), sa.push_back(k);
  sb.push_back(k), sb.push_back(n);
  so.push_back(m), so.push_back(n);
  Tensor out = product(so, a2.expand(sa), b2.expand(sb), nullptr, 0, 1);
  if (da == 1 || db == 1) {
    Shape final = batch;
    if (da != 1) final.push_back(m);
    if (db != 1) final.push_back(n);
    out = out.view(final);
  }
  return out;
}

Tensor mm(const Tensor& a, const Tensor& b) {
  check_operands("mm", a, b);
  EMBER_CHECK(a.dim() == 2 && b.dim() == 2, ShapeError, "[mm] expected 2-D tensors, got ", describe(a), " and ",
              describe(b));
  if (a.shape()[1] != b.shape()[0]) throw_mismatch("mm", a, b);
  return product({a.shape()[0], b.shape()[1]}, a, b, nullptr, 0, 1);
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  check_operands("bmm", a, b);
  EMBER_CHECK(a.dim() == 3 && b.dim() == 3, ShapeError, "[bmm] expected 3-D tensors, got ", describe(a), " and ",
              describe(b));
  EMBER_CHECK(a.shape()[0] == b.shape()[0], ShapeError, "[bmm] batch sizes differ: ", describe(a), " and ",
              describe(b));
  if (a.shape()[2] != b.shape()[1]) throw_mismatch("bmm", a, b);
  return product({a.shape()[0], a.shape()[1], b.shape()[2]}, a, b, nullptr, 0, 1);
}

Tensor addmm(const Tensor& input, const Tensor& a, const Tensor& b, const Scalar& beta, const Scalar& alpha) {
  check_operands("addmm", a, b);
  EMBER_CHECK(a.dim() == 2 && b.dim() == 2, ShapeError, "[addmm] expected 2-D matrices, got ", describe(a), " and ",
              describe(b));
  if (a.shape()[1] != b.shape()[0]) throw_mismatch("addmm", a, b);
  Shape shape{a.shape()[0], b.shape()[1]};
  check_input("addmm", input, a, shape);
  return product(shape, a, b, &input, beta, alpha);
}

Tensor baddbmm(const Tensor& input, const Tensor& a, const Tensor& b, const Scalar& beta, const Scalar& alpha) {
  check_operands("baddbmm", a, b);
  EMBER_CHECK(a.dim() == 3 && b.dim() == 3, ShapeError, "[baddbmm] expected 3-D tensors, got ", describe(a), " and ",
              describe(b));
  EMBER_CHECK(a.shape()[0] == b.shape()[0], ShapeError, "[baddbmm] batch sizes differ: ", describe(a), " and ",
              describe(b));
  if (a.shape()[2] != b.shape()[1]) throw_mismatch("baddbmm", a, b);
  Shape shape{a.shape()[0], a.shape()[1], b.shape()[2]};
  check_input("baddbmm", input, a, shape);
  return product(shape, a, b, &input, beta, alpha);
}

Tensor outer(const Tensor& a, const Tensor& b) {
  EMBER_CHECK(a.defined() && b.defined(), ValueError, "[outer] got an undefined tensor");
  EMBER_CHECK(a.dim() == 1 && b.dim() == 1, ShapeError, "[outer] expected 1-D tensors, got ", describe(a), " and ",
              describe(b));
  // An elementwise product of a column and a row: PyTorch's outer promotes dtypes the same way.
  return mul(a.unsqueeze(1), b.unsqueeze(0));
}

Tensor dot(const Tensor& a, const Tensor& b) {
  check_operands("dot", a, b);
  EMBER_CHECK(a.dim() == 1 && b.dim() == 1, ShapeError, "[dot] expected 1-D tensors, got ", describe(a), " and ",
              describe(b));
  EMBER_CHECK(a.numel() == b.numel(), ShapeError, "[dot] sizes differ: ", describe(a), " and ", describe(b));
  Tensor out = make_tensor({}, a.dtype(), a.device());
  kernels::dot(out, a, b);
  return out;
}

void set_num_threads(int n) { kernels::set_num_threads(n); }
int get_num_threads() { return kernels::get_num_threads(); }

}  // namespace ember
