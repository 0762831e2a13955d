// Matrix-product builders: argument checks, PyTorch's matmul shape rules (1-D operands get a dim prepended
// or appended and removed again; batch dims broadcast), output allocation; compute is kernels::gemm.
// Backwards are products with transposed views (the GEMM takes them by trans flag, without copies); on
// CUDA a bias row's gradient is summed by the weight gradient's GEMM (cuBLASLt BGRADA/BGRADB). addmm_gelu
// fuses Linear/Conv1D + GELU(tanh) (cuBLASLt GELU_AUX_BIAS forward).
#include "core/ops/linalg.hpp"

#include <tuple>
#include <utility>

#include "core/autocast.hpp"
#include "core/autograd.hpp"
#include "core/flop_counter.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/reduce.hpp"
#include "core/ops/shape.hpp"
#include "core/profiler.hpp"
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

// The matrix transpose of the last two dims, a view.
Tensor mt(const Tensor& t) { return t.transpose(-1, -2); }

// alpha * t, skipping the multiply when alpha is 1 (PyTorch's maybe_multiply).
Tensor scaled(const Tensor& t, const Scalar& alpha) { return alpha.to_double() == 1.0 ? t : t * alpha; }

// Whether t's matrices are stored transposed (t^T contiguous), as a Linear weight used as w.t() is.
bool column_major(const Tensor& t) {
  return t.dim() >= 2 && t.size(-1) > 1 && t.size(-2) > 1 && t.stride(-2) == 1 && mt(t).is_contiguous();
}

using Product = Tensor (*)(const Tensor&, const Tensor&);

// x @ y, computed as (y^T @ x^T)^T when the operand it is the gradient of is column-major: the gradient
// then has its operand's layout (as PyTorch's), so the gradient of a w.t() view lands contiguous in w.
Tensor product_in_layout(Product prod, const Tensor& x, const Tensor& y, bool col_major) {
  return col_major ? mt(prod(mt(y), mt(x))) : prod(x, y);
}

// The gradient of b in b @ ... = a^T @ g (2-D, in b's layout, see product_in_layout) and the gradient of
// a bias [N] added to every row of the product = g summed over its rows. On CUDA without grad mode the sum
// comes out of the same cuBLASLt call (BGRADB when b is row-major, BGRADA for its transposed product,
// linalg_plan); g.sum(0) otherwise. Counted and profiled as the mm that it is.
std::pair<Tensor, Tensor> weight_and_bias_grad(const Tensor& a, const Tensor& g, bool b_cm) {
  const int64_t k = a.size(1), n = g.size(1);
  profiler::OpRecord prof("mm", {&a, &g});
  count_flops("mm", 2 * k * n * a.size(0));
  Tensor bias_grad = make_tensor({n}, g.dtype(), g.device());
  Tensor gw;
  bool fused = false;
  {
    autograd::NoGradGuard no_grad;
    if (b_cm) {  // (g^T @ a)^T: g is the GEMM's a, its sums over k (rows of g) are BgradA
      Tensor t = make_tensor({n, k}, g.dtype(), g.device());
      fused = kernels::gemm_bgrad(t, mt(g), a, bias_grad, /*of_b=*/false);
      gw = mt(t);
    } else {
      gw = make_tensor({k, n}, g.dtype(), g.device());
      fused = kernels::gemm_bgrad(gw, mt(a), g, bias_grad, /*of_b=*/true);
    }
  }
  if (!fused) bias_grad = sum(g, {0});
  return {gw, bias_grad};
}

// Whether a 2-D product's backward may take the bias gradient from the weight gradient's GEMM: on CUDA,
// the input a bias [N] added with beta = alpha = 1, both gradients wanted, first-order (no graph built).
bool fuse_bias_grad(autograd::Ctx& c, const Tensor& g) {
  return g.device().is_cuda() && g.dim() == 2 && c.needs_grad(0) && c.needs_grad(2) && !autograd::is_grad_enabled();
}

// Records a product op (mm, bmm, addmm, baddbmm: a @ b with equal ranks) with an optional added input:
// grad_input = beta * g (summed to input's shape by the engine), grad_a = alpha * g @ b^T,
// grad_b = alpha * a^T @ g. `prod` is mm or bmm.
void record_product(const char* op, Tensor& out, const Tensor* input, const Tensor& a, const Tensor& b,
                    const Scalar& beta, const Scalar& alpha, Product prod) {
  const bool need_a = autograd::needs_grad(a), need_b = autograd::needs_grad(b);
  // A bias row of a 2-D product: on CUDA its gradient comes out of the weight gradient's GEMM.
  const bool bias_row = input != nullptr && prod == mm && input->dim() == 1 && input->size(0) == out.size(-1) &&
                        beta.to_double() == 1.0 && alpha.to_double() == 1.0;
  autograd::record(op, {&out}, {input, &a, &b}, {need_b ? a : Tensor(), need_a ? b : Tensor()},
                   [beta, alpha, prod, bias_row, a_cm = column_major(a), b_cm = column_major(b)](autograd::Ctx& c) {
                     const Tensor& g = c.grad();
                     autograd::Grads r(3);
                     if (bias_row && fuse_bias_grad(c, g)) {
                       std::tie(r[2], r[0]) = weight_and_bias_grad(c.saved(0), g, b_cm);
                       if (c.needs_grad(1)) r[1] = product_in_layout(prod, g, mt(c.saved(1)), a_cm);
                       return r;
                     }
                     if (c.needs_grad(0)) r[0] = scaled(g, beta);
                     if (c.needs_grad(1)) r[1] = scaled(product_in_layout(prod, g, mt(c.saved(1)), a_cm), alpha);
                     if (c.needs_grad(2)) r[2] = scaled(product_in_layout(prod, mt(c.saved(0)), g, b_cm), alpha);
                     return r;
                   });
}

// matmul's backward for a [..., M, K] or [K] and b [..., K, N] or [K] (not both 1-D), g the product's
// gradient. A 1-D operand's dim is restored in g and removed from its gradient again; gradients w.r.t.
// broadcast batch dims are summed by the engine, except that a batched a against an unbatched b folds
// the batch into the rows of one GEMM (a^T @ g over all rows) instead of summing a batch of products.
autograd::Grads matmul_backward(autograd::Ctx& c, int64_t da, int64_t db, bool a_cm, bool b_cm) {
  Tensor g = c.grad();
  if (da == 1) g = g.unsqueeze(-2);  // [..., 1, N]
  if (db == 1) g = g.unsqueeze(-1);  // [..., M, 1]
  autograd::Grads r(2);
  if (c.needs_grad(0)) {
    const Tensor b = c.saved(1);
    Tensor ga = product_in_layout(matmul, g, db == 1 ? b.unsqueeze(0) : mt(b), a_cm);  // [..., M, K]
    r[0] = da == 1 ? ga.squeeze(-2) : ga;
  }
  if (c.needs_grad(1)) {
    const Tensor a = c.saved(0);
    Tensor gb;
    if (da >= 3 && db <= 2) {
      const int64_t k = a.size(-1);
      gb = product_in_layout(mm, mt(a.reshape({-1, k})), g.reshape({-1, g.size(-1)}), b_cm);  // [K, N]
    } else {
      gb = product_in_layout(matmul, da == 1 ? a.unsqueeze(1) : mt(a), g, b_cm);  // [..., K, N]
    }
    r[1] = db == 1 ? gb.squeeze(-1) : gb;
  }
  return r;
}

[[noreturn]] void throw_mismatch(const char* op, const Tensor& a, const Tensor& b) {
  throw ShapeError(detail::cat_str("[", op, "] shapes ", a.shape(), " and ", b.shape(), " cannot be multiplied"));
}

// An input that is one row [N] (any leading dims of size 1) added with beta 1: a bias, which cuBLASLt adds
// in its epilogue instead of a copy of the broadcast input plus beta = 1.
bool is_bias(const Tensor& input, const Shape& shape, const Scalar& beta) {
  return beta.to_double() == 1.0 && is_floating(input.dtype()) && input.dim() >= 1 && input.size(-1) == shape.back() &&
         input.numel() == shape.back();
}

// beta * input + alpha * a @ b for a [..., M, K], b [..., K, N] already broadcast to one batch shape.
Tensor product(const Shape& shape, const Tensor& a, const Tensor& b, const Tensor* input, const Scalar& beta,
               const Scalar& alpha) {
  autograd::NoGradGuard no_grad;  // the broadcast view of input is scaffolding
  Tensor out = make_tensor(shape, a.dtype(), a.device());
  const bool use_input = input != nullptr && beta.to_double() != 0.0;
  if (use_input && out.device().is_cuda() && is_bias(*input, shape, beta)) {  // Linear's x @ w^T + b: one call
    kernels::gemm_bias(out, a, b, input->reshape({shape.back()}), alpha, false);
    return out;
  }
  if (use_input) kernels::copy(out, input->expand(shape));
  kernels::gemm(out, a, b, alpha, use_input ? beta : Scalar(0));
  return out;
}

// matmul of operands with at least one of them 2-D or more; call without grad mode (views are scaffolding).
Tensor matmul_forward(const Tensor& a, const Tensor& b) {
  const int64_t da = a.dim(), db = b.dim();
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
  // Allocated in the result's shape (not a view of a bigger one), so the node sits on a plain tensor.
  Shape final = batch;
  if (da != 1) final.push_back(m);
  if (db != 1) final.push_back(n);
  Tensor out = make_tensor(final, a.dtype(), a.device());
  if (FlopCounter::active()) count_flops("matmul", 2 * shape_numel(batch) * m * n * k);
  kernels::gemm(out.view(so), a2.expand(sa), b2.expand(sb), 1, 0);
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  profiler::OpRecord prof("matmul", {&a, &b});
  if (autocast::should_cast(CastPolicy::kLowerPrecision, {&a, &b}))
    return matmul(autocast::lower(a), autocast::lower(b));
  check_operands("matmul", a, b);
  const int64_t da = a.dim(), db = b.dim();
  EMBER_CHECK(da >= 1 && db >= 1, ShapeError, "[matmul] both arguments need at least 1 dim, got ", describe(a), " and ",
              describe(b));
  if (da == 1 && db == 1) {
    if (a.numel() != b.numel()) throw_mismatch("matmul", a, b);
    return dot(a, b);
  }
  Tensor out;
  {
    autograd::NoGradGuard no_grad;  // the node is recorded on a and b themselves
    out = matmul_forward(a, b);
  }
  if (autograd::needs_grad({&a, &b})) {
    const bool need_a = autograd::needs_grad(a), need_b = autograd::needs_grad(b);
    autograd::record("matmul", {&out}, {&a, &b}, {need_b ? a : Tensor(), need_a ? b : Tensor()},
                     [da, db, a_cm = column_major(a), b_cm = column_major(b)](autograd::Ctx& c) {
                       return matmul_backward(c, da, db, a_cm, b_cm);
                     });
  }
  return out;
}

Tensor mm(const Tensor& a, const Tensor& b) {
  profiler::OpRecord prof("mm", {&a, &b});
  if (autocast::should_cast(CastPolicy::kLowerPrecision, {&a, &b})) return mm(autocast::lower(a), autocast::lower(b));
  check_operands("mm", a, b);
  EMBER_CHECK(a.dim() == 2 && b.dim() == 2, ShapeError, "[mm] expected 2-D tensors, got ", describe(a), " and ",
              describe(b));
  if (a.shape()[1] != b.shape()[0]) throw_mismatch("mm", a, b);
  count_flops("mm", 2 * a.shape()[0] * b.shape()[1] * a.shape()[1]);
  Tensor out = product({a.shape()[0], b.shape()[1]}, a, b, nullptr, 0, 1);
  if (autograd::needs_grad({&a, &b})) record_product("mm", out, nullptr, a, b, 0, 1, mm);
  return out;
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  profiler::OpRecord prof("bmm", {&a, &b});
  if (autocast::should_cast(CastPolicy::kLowerPrecision, {&a, &b})) return bmm(autocast::lower(a), autocast::lower(b));
  check_operands("bmm", a, b);
  EMBER_CHECK(a.dim() == 3 && b.dim() == 3, ShapeError, "[bmm] expected 3-D tensors, got ", describe(a), " and ",
              describe(b));
  EMBER_CHECK(a.shape()[0] == b.shape()[0], ShapeError, "[bmm] batch sizes differ: ", describe(a), " and ",
              describe(b));
  if (a.shape()[2] != b.shape()[1]) throw_mismatch("bmm", a, b);
  count_flops("bmm", 2 * a.shape()[0] * a.shape()[1] * b.shape()[2] * a.shape()[2]);
  Tensor out = product({a.shape()[0], a.shape()[1], b.shape()[2]}, a, b, nullptr, 0, 1);
  if (autograd::needs_grad({&a, &b})) record_product("bmm", out, nullptr, a, b, 0, 1, bmm);
  return out;
}

Tensor addmm(const Tensor& input, const Tensor& a, const Tensor& b, const Scalar& beta, const Scalar& alpha) {
  profiler::OpRecord prof("addmm", {&input, &a, &b});
  if (autocast::should_cast(CastPolicy::kLowerPrecision, {&input, &a, &b}))
    return addmm(autocast::lower(input), autocast::lower(a), autocast::lower(b), beta, alpha);
  check_operands("addmm", a, b);
  EMBER_CHECK(a.dim() == 2 && b.dim() == 2, ShapeError, "[addmm] expected 2-D matrices, got ", describe(a), " and ",
              describe(b));
  if (a.shape()[1] != b.shape()[0]) throw_mismatch("addmm", a, b);
  Shape shape{a.shape()[0], b.shape()[1]};
  check_input("addmm", input, a, shape);
  count_flops("addmm", 2 * shape[0] * shape[1] * a.shape()[1]);
  Tensor out = product(shape, a, b, &input, beta, alpha);
  if (autograd::needs_grad({&input, &a, &b})) record_product("addmm", out, &input, a, b, beta, alpha, mm);
  return out;
}

Tensor addmm_gelu(const Tensor& bias, const Tensor& a, const Tensor& b) {
  profiler::OpRecord prof("addmm_gelu", {&bias, &a, &b});
  if (autocast::should_cast(CastPolicy::kLowerPrecision, {&bias, &a, &b}))
    return addmm_gelu(autocast::lower(bias), autocast::lower(a), autocast::lower(b));
  check_operands("addmm_gelu", a, b);
  EMBER_CHECK(is_floating(a.dtype()), DTypeError, "[addmm_gelu] expected floating-point tensors, got ", describe(a));
  EMBER_CHECK(a.dim() == 2 && b.dim() == 2, ShapeError, "[addmm_gelu] expected 2-D matrices, got ", describe(a),
              " and ", describe(b));
  if (a.shape()[1] != b.shape()[0]) throw_mismatch("addmm_gelu", a, b);
  Shape shape{a.shape()[0], b.shape()[1]};
  check_input("addmm_gelu", bias, a, shape);
  EMBER_CHECK(bias.dim() == 1 && bias.size(0) == shape[1], ShapeError, "[addmm_gelu] bias must be 1-D [", shape[1],
              "], got ", describe(bias));
  count_flops("addmm_gelu", 2 * shape[0] * shape[1] * a.shape()[1]);
  Tensor out, pre;  // pre = a @ b + bias, kept for the backward (cuBLASLt's GELU aux buffer on CUDA)
  {
    autograd::NoGradGuard no_grad;
    out = make_tensor(shape, a.dtype(), a.device());
    pre = make_tensor(shape, a.dtype(), a.device());
    kernels::gemm_bias_gelu(out, pre, a, b, bias);
  }
  if (autograd::needs_grad({&bias, &a, &b})) {
    autograd::record("addmm_gelu", {&out}, {&bias, &a, &b}, {pre, a, b, bias},
                     [a_cm = column_major(a), b_cm = column_major(b)](autograd::Ctx& c) {
                       // With a graph (double backward) pre is recomputed from the inputs so that it is
                       // differentiable; otherwise the saved one feeds one elementwise pass.
                       const Tensor pre =
                           autograd::is_grad_enabled() ? addmm(c.saved(3), c.saved(1), c.saved(2)) : c.saved(0);
                       const Tensor d_pre = gelu_tanh_backward(c.grad(), pre);
                       autograd::Grads r(3);
                       if (c.needs_grad(1)) r[1] = product_in_layout(mm, d_pre, mt(c.saved(2)), a_cm);
                       if (fuse_bias_grad(c, d_pre)) {
                         std::tie(r[2], r[0]) = weight_and_bias_grad(c.saved(1), d_pre, b_cm);
                         return r;
                       }
                       if (c.needs_grad(2)) r[2] = product_in_layout(mm, mt(c.saved(1)), d_pre, b_cm);
                       if (c.needs_grad(0)) r[0] = sum(d_pre, {0});
                       return r;
                     });
  }
  return out;
}

Tensor baddbmm(const Tensor& input, const Tensor& a, const Tensor& b, const Scalar& beta, const Scalar& alpha) {
  profiler::OpRecord prof("baddbmm", {&input, &a, &b});
  if (autocast::should_cast(CastPolicy::kLowerPrecision, {&input, &a, &b}))
    return baddbmm(autocast::lower(input), autocast::lower(a), autocast::lower(b), beta, alpha);
  check_operands("baddbmm", a, b);
  EMBER_CHECK(a.dim() == 3 && b.dim() == 3, ShapeError, "[baddbmm] expected 3-D tensors, got ", describe(a), " and ",
              describe(b));
  EMBER_CHECK(a.shape()[0] == b.shape()[0], ShapeError, "[baddbmm] batch sizes differ: ", describe(a), " and ",
              describe(b));
  if (a.shape()[2] != b.shape()[1]) throw_mismatch("baddbmm", a, b);
  Shape shape{a.shape()[0], a.shape()[1], b.shape()[2]};
  check_input("baddbmm", input, a, shape);
  count_flops("baddbmm", 2 * shape[0] * shape[1] * shape[2] * a.shape()[2]);
  Tensor out = product(shape, a, b, &input, beta, alpha);
  if (autograd::needs_grad({&input, &a, &b})) record_product("baddbmm", out, &input, a, b, beta, alpha, bmm);
  return out;
}

Tensor outer(const Tensor& a, const Tensor& b) {
  EMBER_CHECK(a.defined() && b.defined(), ValueError, "[outer] got an undefined tensor");
  EMBER_CHECK(a.dim() == 1 && b.dim() == 1, ShapeError, "[outer] expected 1-D tensors, got ", describe(a), " and ",
              describe(b));
  // An elementwise product of a column and a row: PyTorch's outer promotes dtypes the same way.
  return mul(a.unsqueeze(1), b.unsqueeze(0));
}

Tensor dot(const Tensor& a, const Tensor& b) {
  profiler::OpRecord prof("dot", {&a, &b});
  check_operands("dot", a, b);
  EMBER_CHECK(a.dim() == 1 && b.dim() == 1, ShapeError, "[dot] expected 1-D tensors, got ", describe(a), " and ",
              describe(b));
  EMBER_CHECK(a.numel() == b.numel(), ShapeError, "[dot] sizes differ: ", describe(a), " and ", describe(b));
  count_flops("dot", 2 * a.numel());
  Tensor out = make_tensor({}, a.dtype(), a.device());
  kernels::dot(out, a, b);
  if (autograd::needs_grad({&a, &b})) {
    const bool need_a = autograd::needs_grad(a), need_b = autograd::needs_grad(b);
    autograd::record("dot", {&out}, {&a, &b}, {need_b ? a : Tensor(), need_a ? b : Tensor()}, [](autograd::Ctx& c) {
      autograd::Grads r(2);
      if (c.needs_grad(0)) r[0] = c.grad() * c.saved(1);
      if (c.needs_grad(1)) r[1] = c.grad() * c.saved(0);
      return r;
    });
  }
  return out;
}

void set_num_threads(int n) { kernels::set_num_threads(n); }
int get_num_threads() { return kernels::get_num_threads(); }

}  // namespace ember
