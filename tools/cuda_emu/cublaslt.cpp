// The CUDA CPU emulator's cuBLASLt (tools/cuda_emu): the descriptors, the heuristic and cublasLtMatmul with
// the epilogues the backend uses, as cuBLASLt documents them (column-major layouts, D = alpha op(A) op(B) +
// beta C, then the bias, GELU (tanh form) and the GELU input in aux; BGRADA/B sum op(A)'s rows / op(B)'s
// columns over k). What a real call would refuse is refused: layouts that do not match the operation,
// attribute buffers of the wrong size, aux leading dims that are not multiples of 8, pointers less aligned
// than the preference promised, a missing workspace. The product runs on the stream (captured in graphs).
#include <cublasLt.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "emu.hpp"

namespace {

struct Desc {
  cublasComputeType_t compute;
  cudaDataType_t scale;
  int32_t trans_a = CUBLAS_OP_N, trans_b = CUBLAS_OP_N;
  uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
  void* aux = nullptr;
  int64_t aux_ld = 0, bias_batch_stride = 0, aux_batch_stride = 0;
  int32_t pointer_mode = CUBLASLT_POINTER_MODE_HOST;
};
struct Layout {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld;
  int32_t batch = 1;
  int64_t batch_stride = 0;
  int32_t order = CUBLASLT_ORDER_COL;
};
struct Pref {
  uint64_t max_workspace = 0;
  uint32_t align[4] = {256, 256, 256, 256};  // A, B, C, D
};
struct Algo {
  uint32_t align[4];
  uint64_t workspace;
};
static_assert(sizeof(Desc) <= sizeof(cublasLtMatmulDescOpaque_t) &&
              sizeof(Layout) <= sizeof(cublasLtMatrixLayoutOpaque_t) &&
              sizeof(Pref) <= sizeof(cublasLtMatmulPreferenceOpaque_t) && sizeof(Algo) <= sizeof(cublasLtMatmulAlgo_t));

Desc& of(cublasLtMatmulDesc_t d) { return *reinterpret_cast<Desc*>(d->data); }
Layout& of(cublasLtMatrixLayout_t l) { return *reinterpret_cast<Layout*>(l->data); }
Pref& of(cublasLtMatmulPreference_t p) { return *reinterpret_cast<Pref*>(p->data); }

cublasStatus_t refuse(cublasStatus_t s, const std::string& why) {
  std::fprintf(stderr, "[cuda emulator] cuBLASLt: %s\n", why.c_str());
  return s;
}

template <class T>
cublasStatus_t set(T& field, const void* buf, size_t size, const char* name) {
  if (size != sizeof(T))
    return refuse(CUBLAS_STATUS_INVALID_VALUE, std::string(name) + ": a buffer of " + std::to_string(size) +
                                                   " bytes where " + std::to_string(sizeof(T)) + " are expected");
  std::memcpy(&field, buf, sizeof(T));
  return CUBLAS_STATUS_SUCCESS;
}

size_t size_of(cudaDataType_t t) {
  switch (t) {
    case CUDA_R_64F:
      return 8;
    case CUDA_R_32F:
      return 4;
    case CUDA_R_16F:
    case CUDA_R_16BF:
      return 2;
    default:
      return 0;
  }
}
double load(const void* p, cudaDataType_t t, int64_t i) {
  switch (t) {
    case CUDA_R_64F:
      return static_cast<const double*>(p)[i];
    case CUDA_R_32F:
      return static_cast<const float*>(p)[i];
    case CUDA_R_16F:
      return __half2float(static_cast<const __half*>(p)[i]);
    default:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  }
}
void store(void* p, cudaDataType_t t, int64_t i, double v) {
  switch (t) {
    case CUDA_R_64F:
      static_cast<double*>(p)[i] = v;
      break;
    case CUDA_R_32F:
      static_cast<float*>(p)[i] = static_cast<float>(v);
      break;
    case CUDA_R_16F:
      static_cast<__half*>(p)[i] = __float2half(static_cast<float>(v));
      break;
    default:
      static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16(static_cast<float>(v));
      break;
  }
}

struct Shape {
  uint64_t m, n, k;
};

// The checks of the operation against its layouts, as the heuristic and the call make them.
cublasStatus_t validate(const Desc& d, const Layout& a, const Layout& b, const Layout& c, const Layout& dd, Shape& s) {
  for (const Layout* l : {&a, &b, &c, &dd}) {
    if (l->order != CUBLASLT_ORDER_COL)
      return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "only column-major layouts are emulated");
    if (l->ld < static_cast<int64_t>(l->rows) || l->ld < 1)
      return refuse(CUBLAS_STATUS_INVALID_VALUE, "a leading dimension below the row count");
    if (size_of(l->type) == 0) return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "a data type the emulator does not know");
  }
  if (a.type != b.type || c.type != dd.type || a.type != c.type)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "A, B, C and D of different types");
  const bool ta = d.trans_a != CUBLAS_OP_N, tb = d.trans_b != CUBLAS_OP_N;
  s.m = ta ? a.cols : a.rows;
  s.k = ta ? a.rows : a.cols;
  const uint64_t kb = tb ? b.cols : b.rows;
  s.n = tb ? b.rows : b.cols;
  if (kb != s.k || c.rows != s.m || c.cols != s.n || dd.rows != s.m || dd.cols != s.n || c.ld != dd.ld)
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "layouts that do not match op(A) [m x k] op(B) [k x n] = D [m x n]: A " +
                                                   std::to_string(a.rows) + "x" + std::to_string(a.cols) +
                                                   (ta ? "^T" : "") + ", B " + std::to_string(b.rows) + "x" +
                                                   std::to_string(b.cols) + (tb ? "^T" : "") + ", C " +
                                                   std::to_string(c.rows) + "x" + std::to_string(c.cols));
  if (a.batch != dd.batch || b.batch != dd.batch || c.batch != dd.batch)
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "layouts with different batch counts");
  const bool f64 = a.type == CUDA_R_64F;
  const bool compute_ok = f64 ? (d.compute == CUBLAS_COMPUTE_64F && d.scale == CUDA_R_64F)
                              : ((d.compute == CUBLAS_COMPUTE_32F || d.compute == CUBLAS_COMPUTE_32F_FAST_TF32) &&
                                 d.scale == CUDA_R_32F && (d.compute == CUBLAS_COMPUTE_32F || a.type == CUDA_R_32F));
  if (!compute_ok) return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "a compute and scale type this data type does not take");
  const uint32_t ep = d.epilogue;
  const bool bias =
      ep == CUBLASLT_EPILOGUE_BIAS || ep == CUBLASLT_EPILOGUE_GELU_BIAS || ep == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
  const bool bgrad = ep == CUBLASLT_EPILOGUE_BGRADA || ep == CUBLASLT_EPILOGUE_BGRADB;
  if (!bias && !bgrad && ep != CUBLASLT_EPILOGUE_DEFAULT)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "an epilogue the emulator does not know");
  if ((bias || bgrad) && d.bias == nullptr)
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "a bias epilogue without a bias pointer");
  if (ep == CUBLASLT_EPILOGUE_GELU_AUX_BIAS) {
    if (d.aux == nullptr) return refuse(CUBLAS_STATUS_INVALID_VALUE, "GELU_AUX_BIAS without an aux pointer");
    if (d.aux_ld % 8 != 0 || d.aux_ld < static_cast<int64_t>(s.m))
      return refuse(CUBLAS_STATUS_INVALID_VALUE, "an aux leading dim of " + std::to_string(d.aux_ld) +
                                                     " (a multiple of 8, at least the " + std::to_string(s.m) +
                                                     " rows)");
    if (d.aux_batch_stride % 8 != 0)
      return refuse(CUBLAS_STATUS_INVALID_VALUE, "an aux batch stride not a multiple of 8");
  }
  return CUBLAS_STATUS_SUCCESS;
}

uint32_t alignment(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t r = 256;
  while (r > 1 && a % r != 0) r /= 2;
  return r;
}

float gelu_tanh(double x) {
  const double c = 0.7978845608028654;
  return static_cast<float>(0.5 * x * (1.0 + std::tanh(c * (x + 0.044715 * x * x * x))));
}

struct Call {
  Desc d;
  Layout la, lb, lc, ld;
  Shape s;
  double alpha, beta;
  const void *a, *b, *c;
  void* out;
};

// op(A) as row-major m x k and op(B) as column-major (n rows of k), widened, so each output is one
// contiguous dot product.
template <class Acc>
void run_typed(const Call& k) {
  const cudaDataType_t t = k.ld.type;
  const bool ta = k.d.trans_a != CUBLAS_OP_N, tb = k.d.trans_b != CUBLAS_OP_N;
  const uint32_t ep = k.d.epilogue;
  const bool add_bias =
      ep == CUBLASLT_EPILOGUE_BIAS || ep == CUBLASLT_EPILOGUE_GELU_BIAS || ep == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
  const bool gelu = ep == CUBLASLT_EPILOGUE_GELU_BIAS || ep == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
  const int64_t m = static_cast<int64_t>(k.s.m), n = static_cast<int64_t>(k.s.n), kk = static_cast<int64_t>(k.s.k);
  std::vector<Acc> a(static_cast<size_t>(m * kk)), b(static_cast<size_t>(n * kk));
  for (int64_t bi = 0; bi < k.ld.batch; ++bi) {
    const int64_t oa = bi * k.la.batch_stride, ob = bi * k.lb.batch_stride, oc = bi * k.lc.batch_stride,
                  od = bi * k.ld.batch_stride;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t p = 0; p < kk; ++p)
        a[i * kk + p] = static_cast<Acc>(load(k.a, t, oa + (ta ? p + i * k.la.ld : i + p * k.la.ld)));
    for (int64_t j = 0; j < n; ++j)
      for (int64_t p = 0; p < kk; ++p)
        b[j * kk + p] = static_cast<Acc>(load(k.b, t, ob + (tb ? j + p * k.lb.ld : p + j * k.lb.ld)));
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < m; ++i) {
        const Acc* ar = a.data() + i * kk;
        const Acc* bc = b.data() + j * kk;
        Acc acc = 0;
        for (int64_t p = 0; p < kk; ++p) acc += ar[p] * bc[p];
        Acc v = static_cast<Acc>(k.alpha) * acc;
        if (k.beta != 0) v += static_cast<Acc>(k.beta * load(k.c, t, oc + i + j * k.lc.ld));
        if (add_bias) v += static_cast<Acc>(load(k.d.bias, t, bi * k.d.bias_batch_stride + i));
        if (ep == CUBLASLT_EPILOGUE_GELU_AUX_BIAS) store(k.d.aux, t, bi * k.d.aux_batch_stride + i + j * k.d.aux_ld, v);
        if (gelu) v = gelu_tanh(v);
        store(k.out, t, od + i + j * k.ld.ld, v);
      }
    if (ep == CUBLASLT_EPILOGUE_BGRADA || ep == CUBLASLT_EPILOGUE_BGRADB) {
      const bool on_a = ep == CUBLASLT_EPILOGUE_BGRADA;
      const std::vector<Acc>& src = on_a ? a : b;
      for (int64_t i = 0; i < (on_a ? m : n); ++i) {
        Acc sum = 0;
        for (int64_t p = 0; p < kk; ++p) sum += src[i * kk + p];
        store(const_cast<void*>(k.d.bias), t, bi * k.d.bias_batch_stride + i, sum);
      }
    }
  }
}

void run(const Call& k) {
  if (k.ld.type == CUDA_R_64F)
    run_typed<double>(k);
  else
    run_typed<float>(k);
}

}  // namespace

extern "C" {

const char* cublasGetStatusName(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    default:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
  }
}
const char* cublasGetStatusString(cublasStatus_t s) { return cublasGetStatusName(s); }

cublasStatus_t cublasLtCreate(cublasLtHandle_t* h) {
  static char handle;
  *h = reinterpret_cast<cublasLtHandle_t>(&handle);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* d, cublasComputeType_t compute, cudaDataType_t scale) {
  *d = new cublasLtMatmulDescOpaque_t{};
  new (&of(*d)) Desc{compute, scale};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
  delete d;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t size) {
  Desc& d = of(desc);
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
      return set(d.trans_a, buf, size, "TRANSA");
    case CUBLASLT_MATMUL_DESC_TRANSB:
      return set(d.trans_b, buf, size, "TRANSB");
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
      return set(d.epilogue, buf, size, "EPILOGUE");
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
      return set(d.bias, buf, size, "BIAS_POINTER");
    case CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE:
      return set(d.bias_batch_stride, buf, size, "BIAS_BATCH_STRIDE");
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER:
      return set(d.aux, buf, size, "EPILOGUE_AUX_POINTER");
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD:
      return set(d.aux_ld, buf, size, "EPILOGUE_AUX_LD");
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE:
      return set(d.aux_batch_stride, buf, size, "EPILOGUE_AUX_BATCH_STRIDE");
    case CUBLASLT_MATMUL_DESC_POINTER_MODE:
      return set(d.pointer_mode, buf, size, "POINTER_MODE");
    default:
      return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "matmul attribute " + std::to_string(attr) + " is not emulated");
  }
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* l, cudaDataType type, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
  *l = new cublasLtMatrixLayoutOpaque_t{};
  new (&of(*l)) Layout{type, rows, cols, ld};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
  delete l;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t layout, cublasLtMatrixLayoutAttribute_t attr,
                                                const void* buf, size_t size) {
  Layout& l = of(layout);
  switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT:
      return set(l.batch, buf, size, "BATCH_COUNT");
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET:
      return set(l.batch_stride, buf, size, "STRIDED_BATCH_OFFSET");
    case CUBLASLT_MATRIX_LAYOUT_ORDER:
      return set(l.order, buf, size, "ORDER");
    default:
      return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "layout attribute " + std::to_string(attr) + " is not emulated");
  }
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* p) {
  *p = new cublasLtMatmulPreferenceOpaque_t{};
  new (&of(*p)) Pref{};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
  delete p;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                                                    size_t size) {
  Pref& p = of(pref);
  switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
      return set(p.max_workspace, buf, size, "MAX_WORKSPACE_BYTES");
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
      return set(p.align[0], buf, size, "MIN_ALIGNMENT_A_BYTES");
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
      return set(p.align[1], buf, size, "MIN_ALIGNMENT_B_BYTES");
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
      return set(p.align[2], buf, size, "MIN_ALIGNMENT_C_BYTES");
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES:
      return set(p.align[3], buf, size, "MIN_ALIGNMENT_D_BYTES");
    default:
      return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "preference attribute " + std::to_string(attr) + " is not emulated");
  }
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                              cublasLtMatrixLayout_t d, cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int* returned) {
  if (requested <= 0) return CUBLAS_STATUS_INVALID_VALUE;
  Shape s{};
  const cublasStatus_t st = validate(of(desc), of(a), of(b), of(c), of(d), s);
  *returned = 0;
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  const Pref& p = of(pref);
  Algo algo{};
  for (int i = 0; i < 4; ++i) algo.align[i] = p.align[i];
  algo.workspace = std::min<uint64_t>(p.max_workspace, 4096);  // exercises the caller's workspace
  results[0] = {};
  std::memcpy(results[0].algo.data, &algo, sizeof(algo));
  results[0].workspaceSize = algo.workspace;
  results[0].state = CUBLAS_STATUS_SUCCESS;
  results[0].wavesCount = 1.0f;
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t desc, const void* alpha, const void* A,
                              cublasLtMatrixLayout_t adesc, const void* B, cublasLtMatrixLayout_t bdesc,
                              const void* beta, const void* C, cublasLtMatrixLayout_t cdesc, void* D,
                              cublasLtMatrixLayout_t ddesc, const cublasLtMatmulAlgo_t* algo, void* workspace,
                              size_t workspace_bytes, cudaStream_t stream) {
  Call k{of(desc), of(adesc), of(bdesc), of(cdesc), of(ddesc), {}, 0, 0, A, B, C, D};
  if (const cublasStatus_t st = validate(k.d, k.la, k.lb, k.lc, k.ld, k.s); st != CUBLAS_STATUS_SUCCESS) return st;
  if (k.d.pointer_mode != CUBLASLT_POINTER_MODE_HOST) return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "device pointer mode");
  const bool f64 = k.d.scale == CUDA_R_64F;
  k.alpha = f64 ? *static_cast<const double*>(alpha) : *static_cast<const float*>(alpha);
  k.beta = f64 ? *static_cast<const double*>(beta) : *static_cast<const float*>(beta);
  if (algo == nullptr)
    return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "no algorithm given (the emulator has no internal heuristic)");
  Algo al;
  std::memcpy(&al, algo->data, sizeof(al));
  const void* ptrs[4] = {A, B, C, D};
  const char* names = "ABCD";
  for (int i = 0; i < 4; ++i)
    if (alignment(ptrs[i]) < std::min<uint32_t>(al.align[i], 256))
      return refuse(CUBLAS_STATUS_INVALID_VALUE,
                    std::string("matrix ") + names[i] + " is " + std::to_string(alignment(ptrs[i])) +
                        "-byte aligned; the algorithm was chosen for " + std::to_string(al.align[i]));
  if (al.workspace > 0 && (workspace == nullptr || workspace_bytes < al.workspace))
    return refuse(CUBLAS_STATUS_INVALID_VALUE, "the algorithm's workspace is missing");
  ::emu::launch(
      ::emu::LaunchConfig(1, 1, 0, stream), "cublasLtMatmul", [](const Call& c) { run(c); }, k);
  return cudaPeekAtLastError() == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

}  // extern "C"
