// CUDA matrix products: batched GEMM through cuBLASLt (f32 with optional TF32, f64, f16/bf16 with f32
// accumulation), its bias and bias+GELU epilogues (Linear), GELU_AUX_BIAS (addmm_gelu's forward keeps
// the pre-GELU values for its backward), BGRADA/BGRADB (a weight gradient's GEMM also sums the bias
// gradient), and dot as a two-pass reduction.
// Why this shape: every layout decision (which operand is cuBLASLt's A, transpose flags, leading dims,
// batch strides, copies, batch folding, types, epilogue) is linalg_plan::plan_gemm, plain C++ that the
// CPU tests check; this file only turns a plan into descriptors. The heuristic's algorithm is cached per
// plan key and device. A plan cuBLASLt cannot run (integer dtypes, k == 0 or alpha == 0, no algorithm
// found) runs the reference kernel: linalg_plan::lt_element, the same code the CPU tests evaluate plans with.
// The cuBLASLt-only epilogues (GELU_AUX_BIAS, BGRADA/B) without an algorithm run their unfused paths instead.
#include <cublasLt.h>
#include <cublas_v2.h>

#include <cstdio>
#include <map>
#include <mutex>
#include <utility>

#include "core/backend.hpp"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/runtime.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/linalg.hpp"
#include "kernels/linalg_math.hpp"

namespace ember::kernels::cuda {
namespace {

namespace lp = linalg_plan;

// ------------------------------------------------------------------------------------------ kernels

// One thread per element of D (grid-stride, 64-bit indices); C and D share storage.
template <class T>
__global__ void reference_gemm_kernel(lp::Plan p, const T* A, const T* B, T* C, const T* bias, lp::ref_acc_t<T> alpha,
                                      lp::ref_acc_t<T> beta, bool beta_zero) {
  const int64_t total = p.batch * p.m * p.n;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = idx % p.m, j = (idx / p.m) % p.n, bi = idx / (p.m * p.n);
    const T v = lp::lt_element<T>(p, A, B, C, bias, alpha, beta, beta_zero, bi, i, j);
    C[bi * p.lc.batch_stride + i + j * p.lc.ld] = v;
  }
}

// dot's accumulator: f32 for f16/bf16, unsigned wrap-around for integers (as cpu::dot).
template <class T, bool = std::is_integral_v<T>>
struct DotAcc {
  using type = acc_t<T>;
};
template <class T>
struct DotAcc<T, true> {  // 32 bits at least: warp shuffles take no 8-bit values
  using type = std::conditional_t<sizeof(T) == 8, unsigned long long, uint32_t>;
};

// Pass 1: each block's partial sum of x[i] * y[i] into partial[blockIdx.x] (a fixed order: deterministic).
template <class T, class R>
__global__ void dot_partial_kernel(const T* x, int64_t sx, const T* y, int64_t sy, int64_t n, R* partial) {
  __shared__ R shared[kWarp];
  R acc = R(0);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    acc = static_cast<R>(acc + static_cast<R>(x[i * sx]) * static_cast<R>(y[i * sy]));
  acc = block_reduce(acc, SumOp{}, R(0), shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// Pass 2: one block sums the partials and writes the result in T.
template <class T, class R>
__global__ void __launch_bounds__(1024) dot_final_kernel(const R* partial, int parts, T* out) {
  __shared__ R shared[kWarp];
  R acc = R(0);
  for (int i = threadIdx.x; i < parts; i += blockDim.x) acc = static_cast<R>(acc + partial[i]);
  acc = block_reduce(acc, SumOp{}, R(0), shared);
  if (threadIdx.x == 0) *out = static_cast<T>(acc);
}

// ------------------------------------------------------------------------------------------ cuBLASLt

#define EMBER_CUBLAS_CHECK(expr) check_cublas((expr), #expr, __FILE__, __LINE__)

void check_cublas(cublasStatus_t s, const char* expr, const char* file, int line) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  throw Error(detail::cat_str("[cublasLt] ", expr, " failed at ", file, ":", line, ": ", cublasGetStatusName(s), ": ",
                              cublasGetStatusString(s)));
}

// A failed cublasLtMatmul: the op's problem and device in the message.
void check_matmul(cublasStatus_t s, const lp::Plan& p, int dev) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  throw Error(detail::cat_str("[matmul] cublasLtMatmul failed on cuda:", dev, " for ", lp::describe(p), ": ",
                              cublasGetStatusName(s), ": ", cublasGetStatusString(s)));
}

constexpr uint64_t kMaxWorkspaceBytes = uint64_t{32} << 20;

// One handle per device, created on first use and kept for the process (destroying it at exit races
// the driver's own teardown).
cublasLtHandle_t handle(int dev) {
  static std::mutex mu;
  static std::map<int, cublasLtHandle_t> handles;
  std::lock_guard lock(mu);
  cublasLtHandle_t& h = handles[dev];
  if (h == nullptr) {
    DeviceGuard guard(dev);
    RelaxedCaptureGuard relaxed;  // a first use inside a CUDA-graph capture: not stream work
    EMBER_CUBLAS_CHECK(cublasLtCreate(&h));
  }
  return h;
}

cudaDataType_t data_type(lp::DataType d) {
  switch (d) {
    case lp::DataType::F64:
      return CUDA_R_64F;
    case lp::DataType::F16:
      return CUDA_R_16F;
    case lp::DataType::BF16:
      return CUDA_R_16BF;
    default:
      return CUDA_R_32F;
  }
}
cublasComputeType_t compute_type(lp::ComputeType c) {
  switch (c) {
    case lp::ComputeType::F64:
      return CUBLAS_COMPUTE_64F;
    case lp::ComputeType::F32FastTF32:
      return CUBLAS_COMPUTE_32F_FAST_TF32;
    default:
      return CUBLAS_COMPUTE_32F;
  }
}
cublasOperation_t op_of(lp::Op o) { return o == lp::Op::N ? CUBLAS_OP_N : CUBLAS_OP_T; }
cublasLtEpilogue_t epilogue_of(lp::Epilogue e) {
  switch (e) {
    case lp::Epilogue::Bias:
      return CUBLASLT_EPILOGUE_BIAS;
    case lp::Epilogue::GeluBias:
      return CUBLASLT_EPILOGUE_GELU_BIAS;
    case lp::Epilogue::GeluAuxBias:
      return CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    case lp::Epilogue::BgradA:
      return CUBLASLT_EPILOGUE_BGRADA;
    case lp::Epilogue::BgradB:
      return CUBLASLT_EPILOGUE_BGRADB;
    default:
      return CUBLASLT_EPILOGUE_DEFAULT;
  }
}

// The descriptors of one plan (batch count = plan.chunk), destroyed with the object.
struct Descriptors {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;

  // bias: the bias read by BIAS / GELU_BIAS / GELU_AUX_BIAS, or the vector BGRADA / BGRADB write.
  // aux (GELU_AUX_BIAS only): the pre-GELU output, leading dim aux_ld (lp::plan_aux).
  Descriptors(const lp::Plan& p, const void* bias, void* aux = nullptr, int64_t aux_ld = 0) {
    EMBER_CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, compute_type(p.compute), data_type(p.scale)));
    const cublasOperation_t ta = op_of(p.op_a), tb = op_of(p.op_b);
    const cublasLtEpilogue_t ep = epilogue_of(p.epilogue);
    EMBER_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
    EMBER_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
    if (p.epilogue != lp::Epilogue::None) {
      EMBER_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof(ep)));
      EMBER_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    }
    if (p.epilogue == lp::Epilogue::GeluAuxBias) {
      EMBER_CUBLAS_CHECK(
          cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof(aux)));
      EMBER_CUBLAS_CHECK(
          cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof(aux_ld)));
    }
    layout(a, p, p.la);
    layout(b, p, p.lb);
    layout(c, p, p.lc);
    EMBER_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = kMaxWorkspaceBytes;
    EMBER_CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> aligns[] = {
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, p.align_a},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, p.align_b},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, p.align_c},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, p.align_c}};
    for (const auto& [attr, bytes] : aligns)
      EMBER_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &bytes, sizeof(bytes)));
  }
  ~Descriptors() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;

  static void layout(cublasLtMatrixLayout_t& l, const lp::Plan& p, const lp::Layout& x) {
    EMBER_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, data_type(p.data), static_cast<uint64_t>(x.rows),
                                                  static_cast<uint64_t>(x.cols), x.ld));
    if (p.chunk > 1) {
      const int32_t count = static_cast<int32_t>(p.chunk);
      const int64_t stride = x.batch_stride;
      EMBER_CUBLAS_CHECK(
          cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
      EMBER_CUBLAS_CHECK(
          cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
    }
  }
};

struct Algo {
  bool found = false;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace = 0;
};

// The heuristic's choices by (device, plan); an entry without an algorithm makes the caller run its
// fallback at once.
struct AlgoCache {
  std::mutex mu;
  std::map<std::pair<int, lp::Key>, Algo> algos;
};
AlgoCache& algo_cache() {
  static AlgoCache c;
  return c;
}

// The heuristic's first choice for a plan on a device, cached (cuBLASLt's heuristic costs microseconds
// per call, more than a small GEMM). `fallback` names what the caller runs instead when there is none.
Algo find_algo(int dev, const lp::Plan& p, const Descriptors& d, const char* fallback) {
  AlgoCache& c = algo_cache();
  const auto key = std::make_pair(dev, lp::cache_key(p));
  {
    std::lock_guard lock(c.mu);
    auto it = c.algos.find(key);
    if (it != c.algos.end()) return it->second;
  }
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  const cublasStatus_t s =
      cublasLtMatmulAlgoGetHeuristic(handle(dev), d.op, d.a, d.b, d.c, d.c, d.pref, 1, &result, &returned);
  // "Not supported" means none; so do the refusals an epilogue may meet (as at its launch below). Any other
  // failure (a descriptor bug, no memory) is raised, not cached: the shape would run the fallback for good.
  const bool refused =
      s == CUBLAS_STATUS_NOT_SUPPORTED ||
      (p.epilogue != lp::Epilogue::None && (s == CUBLAS_STATUS_INVALID_VALUE || s == CUBLAS_STATUS_ARCH_MISMATCH));
  if (!refused) EMBER_CUBLAS_CHECK(s);
  Algo algo;
  if (s == CUBLAS_STATUS_SUCCESS && returned > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
    algo = {true, result.algo, result.workspaceSize};
  } else {
    std::fprintf(stderr, "[matmul] cuBLASLt has no algorithm for %s (%s); running %s\n", lp::describe(p).c_str(),
                 cublasGetStatusName(s), fallback);
  }
  std::lock_guard lock(c.mu);
  c.algos.emplace(key, algo);
  return algo;
}

template <class T>
void launch_reference(int dev, const lp::Plan& p, const T* A, const T* B, T* C, const T* bias, const Scalar& alpha,
                      const Scalar& beta, bool beta_zero) {
  using R = lp::ref_acc_t<T>;
  auto scalar = [](const Scalar& s) {
    if constexpr (std::is_integral_v<T>)
      return static_cast<R>(s.to<T>());
    else
      return static_cast<R>(s.to_double());
  };
  const int64_t total = p.batch * p.m * p.n;
  reference_gemm_kernel<T><<<blocks_for(total, kThreads), kThreads, 0, current_stream(dev)>>>(
      p, A, B, C, bias, scalar(alpha), scalar(beta), beta_zero);
  EMBER_CUDA_CHECK(cudaGetLastError());
}

// One cuBLASLt call per chunk of the batch; the reference kernel when cuBLASLt has no algorithm.
template <class T>
void launch_lt(int dev, const lp::Plan& plan, const T* A, const T* B, T* C, const T* bias, const Scalar& alpha,
               const Scalar& beta, bool beta_zero) {
  const float alpha_f = static_cast<float>(alpha.to_double()), beta_f = beta_zero ? 0.f : float(beta.to_double());
  const double alpha_d = alpha.to_double(), beta_d = beta_zero ? 0.0 : beta.to_double();
  const bool f64 = plan.scale == lp::DataType::F64;
  const void* alpha_p = f64 ? static_cast<const void*>(&alpha_d) : static_cast<const void*>(&alpha_f);
  const void* beta_p = f64 ? static_cast<const void*>(&beta_d) : static_cast<const void*>(&beta_f);
  for (int64_t start = 0; start < plan.batch; start += plan.chunk) {
    lp::Plan p = plan;
    p.batch = p.chunk = std::min(plan.chunk, plan.batch - start);
    const T* a = A + start * plan.la.batch_stride;
    const T* b = B + start * plan.lb.batch_stride;
    T* c = C + start * plan.lc.batch_stride;
    // A later chunk's pointers may be less aligned than the first's (odd batch strides in 2-byte types).
    p.align_a = lp::alignment(reinterpret_cast<uint64_t>(a));
    p.align_b = lp::alignment(reinterpret_cast<uint64_t>(b));
    p.align_c = lp::alignment(reinterpret_cast<uint64_t>(c));
    Descriptors d(p, bias);
    const Algo algo = find_algo(dev, p, d, "the reference GEMM kernel (one thread per output element)");
    if (!algo.found) {
      launch_reference(dev, p, a, b, c, bias, alpha, beta, beta_zero);
      continue;
    }
    // From the caching allocator: stream-ordered, so the next GEMM may reuse the block at once.
    Tensor workspace;
    if (algo.workspace > 0)
      workspace = make_tensor({static_cast<int64_t>(algo.workspace)}, kU8, Device(Device::Kind::CUDA, dev));
    check_matmul(cublasLtMatmul(handle(dev), d.op, alpha_p, a, d.a, b, d.b, beta_p, c, d.c, c, d.c, &algo.algo,
                                dptr<void>(workspace), algo.workspace, current_stream(dev)),
                 p, dev);
  }
}

// One cuBLASLt call (alpha 1, beta 0) of a plan of one matrix whose epilogue only cuBLASLt computes
// (GELU_AUX_BIAS, BGRADA/B): false, with nothing run, when the heuristic has no algorithm for it or
// cuBLASLt refuses the call (NOT_SUPPORTED, INVALID_VALUE, ARCH_MISMATCH: said once on stderr, and the
// plan then goes to the fallback at once). Other failures throw.
template <class T>
bool try_lt_epilogue(int dev, const lp::Plan& p, const T* A, const T* B, T* C, void* bias, void* aux, int64_t aux_ld) {
  const Descriptors d(p, bias, aux, aux_ld);
  const char* fallback = p.epilogue == lp::Epilogue::GeluAuxBias
                             ? "the unfused addmm_gelu (a GEMM with the bias epilogue, then a GELU pass)"
                             : "a GEMM without the epilogue; the caller sums the bias gradient separately";
  const Algo algo = find_algo(dev, p, d, fallback);
  if (!algo.found) return false;
  const float one = 1.f, zero = 0.f;
  Tensor workspace;
  if (algo.workspace > 0)
    workspace = make_tensor({static_cast<int64_t>(algo.workspace)}, kU8, Device(Device::Kind::CUDA, dev));
  const cublasStatus_t s = cublasLtMatmul(handle(dev), d.op, &one, A, d.a, B, d.b, &zero, C, d.c, C, d.c, &algo.algo,
                                          dptr<void>(workspace), algo.workspace, current_stream(dev));
  if (s == CUBLAS_STATUS_NOT_SUPPORTED || s == CUBLAS_STATUS_INVALID_VALUE || s == CUBLAS_STATUS_ARCH_MISMATCH) {
    std::fprintf(stderr, "[matmul] cuBLASLt refused the epilogue for %s (%s); running %s\n", lp::describe(p).c_str(),
                 cublasGetStatusName(s), fallback);
    AlgoCache& c = algo_cache();
    std::lock_guard lock(c.mu);
    c.algos[std::make_pair(dev, lp::cache_key(p))] = Algo{};
    return false;
  }
  check_matmul(s, p, dev);
  return true;
}

// The plan of a one-matrix product with an epilogue only cuBLASLt computes, if it can run as planned
// (no copies, a float type, k > 0); the caller's unfused path otherwise.
bool fusable(const lp::Plan& plan) {
  return !plan.empty && !plan.copy_a && !plan.copy_b && !plan.copy_c && plan.lt_types && plan.k > 0 &&
         plan.batch == 1 && plan.epilogue != lp::Epilogue::None;
}

// A contiguous copy of t on its device (a broadcast operand is materialised).
Tensor contiguous_copy(const Tensor& t) {
  Tensor dst = make_tensor(t.shape(), t.dtype(), t.device());
  copy(dst, t);
  return dst;
}

// out = alpha * a @ b + beta * out, with cuBLASLt's epilogue e (bias then a contiguous, aligned [N]).
template <class T>
void run_gemm(int dev, const Tensor& out, const Tensor& a, const Tensor& b, const T* bias, const Scalar& alpha,
              const Scalar& beta, lp::Epilogue e) {
  const lp::Problem prob = lp::make_problem(out, a, b, e, float32_matmul_allows_tf32());
  lp::Plan plan = lp::plan_gemm(prob);
  if (plan.empty) return;
  const bool beta_zero = beta.to_double() == 0.0;
  if (plan.copy_a || plan.copy_b || plan.copy_c) {
    const Tensor a2 = plan.copy_a ? contiguous_copy(a) : a, b2 = plan.copy_b ? contiguous_copy(b) : b;
    const Tensor c2 = !plan.copy_c ? out
                      : beta_zero  ? make_tensor(out.shape(), out.dtype(), out.device())
                                   : contiguous_copy(out);
    run_gemm<T>(dev, c2, a2, b2, bias, alpha, beta, e);
    if (plan.copy_c) copy(out, c2);
    return;
  }
  const T* pa = dptr<T>(a);
  const T* pb = dptr<T>(b);
  const T* A = plan.swap ? pb : pa;
  const T* B = plan.swap ? pa : pb;
  T* C = dptr<T>(out);
  if (alpha.to_double() == 0.0) plan.k = 0;  // beta * C (+ epilogue) without reading A and B
  if (!plan.lt_types || plan.k == 0) return launch_reference(dev, plan, A, B, C, bias, alpha, beta, beta_zero);
  launch_lt(dev, plan, A, B, C, bias, alpha, beta, beta_zero);
}

}  // namespace

// ------------------------------------------------------------------------------------------ launchers

void gemm(const Tensor& out, const Tensor& a, const Tensor& b, const Scalar& alpha, const Scalar& beta) {
  const int dev = device_index(out.device(), "matmul");
  DeviceGuard guard(dev);
  visit_dtype<NumericTypes>(out.dtype(), "[matmul]",
                            [&]<class T>() { run_gemm<T>(dev, out, a, b, nullptr, alpha, beta, lp::Epilogue::None); });
}

void gemm_bias(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& bias, const Scalar& alpha,
               bool gelu) {
  const int dev = device_index(out.device(), "linear");
  DeviceGuard guard(dev);
  EMBER_CHECK(bias.numel() == out.size(-1), ShapeError, "[linear] bias ", describe(bias), " does not match output ",
              describe(out));
  if (!lp::supports_epilogue(out.dtype())) {  // f64: the bias broadcast into out, then beta = 1
    copy(out, bias.reshape({1, bias.numel()}).expand(out.shape()));
    visit_dtype<NumericTypes>(out.dtype(), "[linear]",
                              [&]<class T>() { run_gemm<T>(dev, out, a, b, nullptr, alpha, 1, lp::Epilogue::None); });
    if (gelu) unary(index_of_v<GeluTanh, UnaryFunctors>, out, out, {});
    return;
  }
  // cuBLASLt reads the bias as a contiguous vector; a fresh allocation is also 256-byte aligned.
  const bool usable = bias.is_contiguous() && lp::alignment(reinterpret_cast<uint64_t>(dptr<void>(bias))) >= 16;
  const Tensor vec = usable ? bias : contiguous_copy(bias);
  visit_dtype<FloatTypes>(out.dtype(), "[linear]", [&]<class T>() {
    run_gemm<T>(dev, out, a, b, dptr<T>(vec), alpha, 0, gelu ? lp::Epilogue::GeluBias : lp::Epilogue::Bias);
  });
}

void gemm_bias_gelu(const Tensor& out, const Tensor& pre, const Tensor& a, const Tensor& b, const Tensor& bias) {
  const int dev = device_index(out.device(), "addmm_gelu");
  DeviceGuard guard(dev);
  const lp::Plan plan =
      lp::plan_gemm(lp::make_problem(out, a, b, lp::Epilogue::GeluAuxBias, float32_matmul_allows_tf32()));
  const lp::AuxPlan aux = lp::plan_aux(plan, reinterpret_cast<uint64_t>(dptr<void>(pre)));
  const bool bias_ok = bias.is_contiguous() && lp::alignment(reinterpret_cast<uint64_t>(dptr<void>(bias))) >= 16;
  bool done = false;
  if (fusable(plan) && aux.ok && bias_ok && pre.is_contiguous() && pre.shape() == out.shape()) {
    visit_dtype<FloatTypes>(out.dtype(), "[addmm_gelu]", [&]<class T>() {
      const T* pa = dptr<T>(a);
      const T* pb = dptr<T>(b);
      done = try_lt_epilogue<T>(dev, plan, plan.swap ? pb : pa, plan.swap ? pa : pb, dptr<T>(out), dptr<void>(bias),
                                dptr<void>(pre), aux.ld);
    });
  }
  if (done) return;
  gemm_bias(pre, a, b, bias, 1, false);  // unfused: GEMM + bias epilogue, then one GELU pass
  unary(index_of_v<GeluTanh, UnaryFunctors>, out, pre, {});
}

bool gemm_bgrad(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& bias_grad, bool of_b) {
  const int dev = device_index(out.device(), "matmul");
  DeviceGuard guard(dev);
  const lp::Epilogue e = of_b ? lp::Epilogue::BgradB : lp::Epilogue::BgradA;
  const lp::Plan plan = lp::plan_gemm(lp::make_problem(out, a, b, e, float32_matmul_allows_tf32()));
  const bool vec_ok = bias_grad.is_contiguous() && bias_grad.dtype() == out.dtype() &&
                      lp::alignment(reinterpret_cast<uint64_t>(dptr<void>(bias_grad))) >= 16;
  bool done = false;
  if (fusable(plan) && vec_ok) {
    visit_dtype<FloatTypes>(out.dtype(), "[matmul]", [&]<class T>() {
      const T* pa = dptr<T>(a);
      const T* pb = dptr<T>(b);
      done = try_lt_epilogue<T>(dev, plan, plan.swap ? pb : pa, plan.swap ? pa : pb, dptr<T>(out),
                                dptr<void>(bias_grad), nullptr, 0);
    });
  }
  if (!done) gemm(out, a, b, 1, 0);
  return done;
}

void dot(const Tensor& out, const Tensor& a, const Tensor& b) {
  const int dev = device_index(out.device(), "dot");
  DeviceGuard guard(dev);
  visit_dtype<NumericTypes>(a.dtype(), "[dot]", [&]<class T>() {
    using R = typename DotAcc<T>::type;
    const int64_t n = a.numel();
    const int parts = static_cast<int>(std::min<int64_t>(blocks_for(n, kThreads), 1024));
    Tensor partial = make_tensor({static_cast<int64_t>(parts * sizeof(R))}, kU8, out.device());
    R* pp = static_cast<R*>(dptr<void>(partial));
    cudaStream_t stream = current_stream(dev);
    dot_partial_kernel<T, R>
        <<<parts, kThreads, 0, stream>>>(dptr<T>(a), a.strides()[0], dptr<T>(b), b.strides()[0], n, pp);
    EMBER_CUDA_CHECK(cudaGetLastError());
    dot_final_kernel<T, R><<<1, 1024, 0, stream>>>(pp, parts, dptr<T>(out));
    EMBER_CUDA_CHECK(cudaGetLastError());
  });
}

}  // namespace ember::kernels::cuda
