// The GEMM of a linalg_plan::Plan, one output element at a time, read exactly as cuBLASLt reads the
// plan's layouts (column-major, ld, batch stride, transpose flags) and with its epilogue. EMBER_HD: the
// CUDA reference kernel (integer dtypes, k == 0, no algorithm) runs it, and the CPU plan tests evaluate
// every plan with it against cpu::gemm, so a wrong layout fails on the CPU. Also the CPU's GELU epilogue.
#pragma once
#include <cstdint>
#include <type_traits>

#include "core/dtype.hpp"
#include "kernels/functors.hpp"
#include "kernels/linalg_plan.hpp"

namespace ember::kernels::linalg_plan {

// Accumulator: f32 for f16/bf16 (CUBLAS_COMPUTE_32F), the type itself for f32/f64, and unsigned
// wrap-around arithmetic for integers (as cpu::gemm's integer loops).
template <class T, bool = std::is_integral_v<T>>
struct RefAcc {
  using type = acc_t<T>;
};
template <class T>
struct RefAcc<T, true> {
  using type = std::make_unsigned_t<T>;
};
template <class T>
using ref_acc_t = typename RefAcc<T>::type;

// The epilogue after alpha * A B + beta * C: bias (of D's row i), then GELU (tanh form, as cuBLASLt's).
template <class R>
EMBER_HD R apply_epilogue(Epilogue e, R v, R bias) {
  if (e == Epilogue::None || is_bgrad(e)) return v;  // BGRAD writes the bias pointer, not D
  v = static_cast<R>(v + bias);
  if constexpr (!std::is_integral_v<R>) {
    if (e == Epilogue::GeluBias || e == Epilogue::GeluAuxBias) v = GeluTanh{}(v);
  }
  return v;
}

// D[i, j] of matrix `bi` of the plan's batch: alpha * sum_k op(A)[i, k] op(B)[k, j] (+ beta * C[i, j]
// unless beta_zero: C is then never read), then the epilogue. A, B and C point at matrix 0.
template <class T>
EMBER_HD T lt_element(const Plan& p, const T* A, const T* B, const T* C, const T* bias, ref_acc_t<T> alpha,
                      ref_acc_t<T> beta, bool beta_zero, int64_t bi, int64_t i, int64_t j) {
  using R = ref_acc_t<T>;
  const T* a = A + bi * p.la.batch_stride;
  const T* b = B + bi * p.lb.batch_stride;
  R sum = R(0);
  for (int64_t kk = 0; kk < p.k; ++kk) {
    const R x = static_cast<R>(p.op_a == Op::N ? a[i + kk * p.la.ld] : a[kk + i * p.la.ld]);
    const R y = static_cast<R>(p.op_b == Op::N ? b[kk + j * p.lb.ld] : b[j + kk * p.lb.ld]);
    sum = static_cast<R>(sum + x * y);
  }
  R v = static_cast<R>(alpha * sum);
  if (!beta_zero) v = static_cast<R>(v + beta * static_cast<R>(C[bi * p.lc.batch_stride + i + j * p.lc.ld]));
  return static_cast<T>(apply_epilogue(p.epilogue, v, bias != nullptr ? static_cast<R>(bias[i]) : R(0)));
}

}  // namespace ember::kernels::linalg_plan
