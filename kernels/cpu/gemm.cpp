// CPU matrix products: OpenBLAS sgemm/dgemm (row- or column-contiguous operands passed by trans flag and
// leading dim, never copied), f16/bf16 through f32, integer i-k-j loops, batching, dot, thread counts.
#include <cblas.h>
#include <strings.h>
#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <vector>

#include "kernels/cpu/blas.hpp"
#include "kernels/cpu/loops.hpp"
#include "kernels/cpu/tiles.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/linalg.hpp"

namespace ember::kernels::cpu {
namespace {

// OpenBLAS always runs single-threaded and all threading is oneTBB's: one pool, no two pools spinning
// against each other, and on 2 cores our split of a GEMM into column (or row) blocks ran 10-30% faster
// than OpenBLAS's own threads. Work is counted in multiply-adds (m * n * k). Below kMinParallelWork a
// batch stays on one thread; from kMinSplitGemm one GEMM is split into blocks; a batch of GEMMs up to
// kMaxBatchParallelGemm each is split by matrix rather than inside each matrix.
constexpr double kMinParallelWork = 1 << 17;
constexpr double kMinSplitGemm = 1 << 20;
constexpr double kMaxBatchParallelGemm = 1 << 24;
constexpr int64_t kSplitAlign = 32;  // block edges on a multiple of the micro-kernels' widths

template <class T>
constexpr bool kBlasType = std::is_same_v<T, float> || std::is_same_v<T, double>;

struct BlasOperand {
  CBLAS_TRANSPOSE trans;
  int64_t ld;
};

// How a rows x cols matrix with element strides (rs, cs) can be handed to row-major BLAS, if at all.
// Strides of size-1 dims do not matter; BLAS wants ld >= max(1, stored row length).
std::optional<BlasOperand> blas_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  if (cs == 1 || cols == 1) {
    int64_t ld = rows <= 1 ? std::max<int64_t>(cols, 1) : rs;
    if (ld >= std::max<int64_t>(cols, 1)) return BlasOperand{CblasNoTrans, ld};
  }
  if (rs == 1 || rows == 1) {
    int64_t ld = cols <= 1 ? std::max<int64_t>(rows, 1) : cs;
    if (ld >= std::max<int64_t>(rows, 1)) return BlasOperand{CblasTrans, ld};
  }
  return std::nullopt;
}

template <class T>
std::unique_ptr<T[]> pack(const T* src, int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  std::unique_ptr<T[]> buf(new T[static_cast<size_t>(std::max<int64_t>(rows * cols, 1))]);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) buf[i * cols + j] = src[i * rs + j * cs];
  return buf;
}

// C <- beta * C, where beta == 0 writes zeros (NaN in C does not survive, as BLAS).
template <class T>
void scale(int64_t m, int64_t n, T beta, T* c, int64_t rs, int64_t cs) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      T& x = c[i * rs + j * cs];
      x = beta == T(0) ? T(0) : static_cast<T>(beta * x);
    }
}

void check_blas_int(std::initializer_list<int64_t> values) {
  for (int64_t v : values)
    EMBER_CHECK(v <= INT_MAX, ValueError, "[matmul] matrix dimension or stride ", v, " exceeds BLAS's 32-bit int");
}

void blas_gemv(CBLAS_TRANSPOSE t, int64_t rows, int64_t cols, float alpha, const float* a, int64_t lda, const float* x,
               int64_t incx, float beta, float* y, int64_t incy) {
  cblas_sgemv(CblasRowMajor, t, int(rows), int(cols), alpha, a, int(lda), x, int(incx), beta, y, int(incy));
}
void blas_gemv(CBLAS_TRANSPOSE t, int64_t rows, int64_t cols, double alpha, const double* a, int64_t lda,
               const double* x, int64_t incx, double beta, double* y, int64_t incy) {
  cblas_dgemv(CblasRowMajor, t, int(rows), int(cols), alpha, a, int(lda), x, int(incx), beta, y, int(incy));
}

#if defined(__AVX2__) && defined(__FMA__)
// C = alpha A W^T + beta C for a short A (a Linear layer's batch of up to 48) and a wide W [n, k] with
// contiguous rows. OpenBLAS packs all of W on every call, a third of the time at m = 32. Here only A
// is packed, into [k][16] panels of 16 of its rows, and a 6x16 register tile (kernels/cpu/tiles.hpp)
// broadcasts six rows of W from where they lie. On 2 Zen 4 cores: 0.75-0.95x OpenBLAS's time at m = 32
// (n = 1024, k = 784 or 1024), 0.6x at m = 16.
namespace short_a {

using tiles::kMR;
using tiles::kNR;

// Where it measured faster than OpenBLAS on 2 threads; from m = 64 on OpenBLAS's packing pays off.
bool applies(int64_t m, int64_t n, int64_t k) { return m >= 2 && m <= 48 && n >= 512 && k >= 16 && k <= 4096; }

void gemm(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* w, int64_t ldw,
          float beta, float* c, int64_t ldc) {
  // A's rows in panels of 16, [k][16] each, zero past row m.
  const int64_t panels = (m + kNR - 1) / kNR;
  tiles::Buffer packed = tiles::aligned_floats(panels * k * kNR);
  for (int64_t q = 0; q < panels; ++q) {
    float* dst = packed.get() + q * k * kNR;
    for (int64_t j = 0; j < kNR; ++j) {
      const float* row = q * kNR + j < m ? a + (q * kNR + j) * lda : nullptr;
      for (int64_t p = 0; p < k; ++p) dst[p * kNR + j] = row ? row[p] : 0.0f;
    }
  }
  // Rows [i0, i1) of W against every panel; W's six rows stay in L1 across the panels.
  auto rows = [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i += kMR) {
      const int64_t mr = std::min(kMR, i1 - i);
      const float* rows[kMR];
      for (int64_t t = 0; t < mr; ++t) rows[t] = w + (i + t) * ldw;
      for (int64_t q = 0; q < panels; ++q)
        tiles::rows_by_panel(mr, k, rows, packed.get() + q * k * kNR, alpha, beta, c + q * kNR * ldc + i, ldc,
                             std::min(kNR, m - q * kNR));
    }
  };
  const int threads = get_num_threads();
  // Four blocks per thread: a thread the VM preempts holds back less of the product.
  const int64_t parts = std::min<int64_t>(4 * threads, n / (4 * kMR));
  if (parts < 2 || double(m) * double(n) * double(k) < kMinSplitGemm) return rows(0, n);
  auto edge = [&](int64_t q) { return q == parts ? n : n * q / parts / kMR * kMR; };
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, parts, 1), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t q = r.begin(); q < r.end(); ++q) rows(edge(q), edge(q + 1));
  });
}

}  // namespace short_a
#endif

template <class T>
void blas_path(int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t a_rs, int64_t a_cs, const T* b,
               int64_t b_rs, int64_t b_cs, T beta, T* c, int64_t c_rs, int64_t c_cs) {
  auto lc = blas_layout(m, n, c_rs, c_cs);
  if (!lc) {  // C strided in both dims: compute into a packed buffer
    std::unique_ptr<T[]> buf = beta == T(0) ? std::unique_ptr<T[]>(new T[size_t(m * n)]) : pack(c, m, n, c_rs, c_cs);
    blas_path(m, n, k, alpha, a, a_rs, a_cs, b, b_rs, b_cs, beta, buf.get(), n, int64_t{1});
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * c_rs + j * c_cs] = buf[i * n + j];
    return;
  }
  if (lc->trans == CblasTrans)  // column-major C: compute C^T = B^T A^T, whose C is row-major
    return blas_path(n, m, k, alpha, b, b_cs, b_rs, a, a_cs, a_rs, beta, c, c_cs, c_rs);

  std::unique_ptr<T[]> abuf, bbuf;
  auto la = blas_layout(m, k, a_rs, a_cs);
  if (!la) {
    abuf = pack(a, m, k, a_rs, a_cs);
    a = abuf.get();
    la = BlasOperand{CblasNoTrans, std::max<int64_t>(k, 1)};
  }
  auto lb = blas_layout(k, n, b_rs, b_cs);
  if (!lb) {
    bbuf = pack(b, k, n, b_rs, b_cs);
    b = bbuf.get();
    lb = BlasOperand{CblasNoTrans, std::max<int64_t>(n, 1)};
  }
  check_blas_int({m, n, k, la->ld, lb->ld, lc->ld});
  if (n == 1) {  // matrix-vector: y = A x, B's column is x (stride = its ld), C's column is y
    if (beta == T(0)) scale(m, n, T(0), c, lc->ld, int64_t{1});  // BLAS may scale y by 0 rather than overwrite
    if (la->trans == CblasNoTrans)
      blas_gemv(CblasNoTrans, m, k, alpha, a, la->ld, b, lb->ld, beta, c, lc->ld);
    else
      blas_gemv(CblasTrans, k, m, alpha, a, la->ld, b, lb->ld, beta, c, lc->ld);
    return;
  }
  if (m == 1) {  // vector-matrix: y = B^T x, A's row is x, C's row is y
    if (beta == T(0)) scale(m, n, T(0), c, lc->ld, int64_t{1});
    int64_t incx = la->trans == CblasNoTrans ? 1 : la->ld;
    if (lb->trans == CblasNoTrans)
      blas_gemv(CblasTrans, k, n, alpha, b, lb->ld, a, incx, beta, c, 1);
    else
      blas_gemv(CblasNoTrans, n, k, alpha, b, lb->ld, a, incx, beta, c, 1);
    return;
  }
#if defined(__AVX2__) && defined(__FMA__)
  if constexpr (std::is_same_v<T, float>) {
    if (la->trans == CblasNoTrans && lb->trans == CblasTrans && short_a::applies(m, n, k))
      return short_a::gemm(m, n, k, alpha, a, la->ld, b, lb->ld, beta, c, lc->ld);
  }
#endif
  const int threads = get_num_threads();
  const double work = double(m) * double(n) * double(k);
  const int64_t split = std::max(m, n);
  const int64_t parts = std::min<int64_t>(threads, split / kSplitAlign);
  if (work < kMinSplitGemm || parts < 2)
    return blas_gemm(la->trans, lb->trans, m, n, k, alpha, a, la->ld, b, lb->ld, beta, c, lc->ld);
  // Blocks of C's columns (B's columns) when n >= m, else of C's rows (A's rows); each block one GEMM.
  const bool by_cols = n >= m;
  auto edge = [&](int64_t p) {
    return std::min(split, (split * p / parts + kSplitAlign / 2) / kSplitAlign * kSplitAlign);
  };
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, parts, 1), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t p = r.begin(); p < r.end(); ++p) {
      const int64_t lo = p == 0 ? 0 : edge(p), hi = p == parts - 1 ? split : edge(p + 1);
      if (hi <= lo) continue;
      if (by_cols) {
        const T* bp = b + (lb->trans == CblasNoTrans ? lo : lo * lb->ld);
        blas_gemm(la->trans, lb->trans, m, hi - lo, k, alpha, a, la->ld, bp, lb->ld, beta, c + lo, lc->ld);
      } else {
        const T* ap = a + (la->trans == CblasNoTrans ? lo * la->ld : lo);
        blas_gemm(la->trans, lb->trans, hi - lo, n, k, alpha, ap, la->ld, b, lb->ld, beta, c + lo * lc->ld, lc->ld);
      }
    }
  });
}

// Integers: i-k-j order so the inner loop streams rows of B and C; arithmetic wraps (unsigned) as PyTorch's.
template <class T>
void int_path(int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t a_rs, int64_t a_cs, const T* b,
              int64_t b_rs, int64_t b_cs, T beta, T* c, int64_t c_rs, int64_t c_cs) {
  using U = std::make_unsigned_t<T>;
  std::unique_ptr<T[]> bbuf;
  if (b_cs != 1 && n > 1) {
    bbuf = pack(b, k, n, b_rs, b_cs);
    b = bbuf.get();
    b_rs = n;
  }
  const U ua = static_cast<U>(alpha), ub = static_cast<U>(beta);
  if (n <= 0) return;
  const size_t width = static_cast<size_t>(n);
  auto rows = [&, width](int64_t i0, int64_t i1) {
    std::vector<U> acc(width);
    for (int64_t i = i0; i < i1; ++i) {
      std::fill(acc.begin(), acc.end(), U(0));
      for (int64_t kk = 0; kk < k; ++kk) {
        const U x = static_cast<U>(a[i * a_rs + kk * a_cs]);
        const T* brow = b + kk * b_rs;
        for (int64_t j = 0; j < n; ++j) acc[j] = static_cast<U>(acc[j] + x * static_cast<U>(brow[j]));
      }
      T* crow = c + i * c_rs;
      for (int64_t j = 0; j < n; ++j) {
        U r = static_cast<U>(ua * acc[j]);
        if (beta != T(0)) r = static_cast<U>(r + ub * static_cast<U>(crow[j * c_cs]));
        crow[j * c_cs] = static_cast<T>(r);
      }
    }
  };
  const double work = double(m) * double(n) * double(k);
  if (work < kMinParallelWork || m == 1) return rows(0, m);
  const int64_t grain = std::max<int64_t>(1, int64_t(kMinParallelWork / std::max(1.0, double(n) * double(k))));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, m, grain),
                    [&](const tbb::blocked_range<int64_t>& r) { rows(r.begin(), r.end()); });
}

// Dims [0, last] of t collapsed into one, if their strides allow it: the collapsed stride.
std::optional<int64_t> collapse_stride(const Tensor& t, int64_t last) {
  int64_t inner_stride = 1, inner_size = 1;
  bool have = false;
  for (int64_t d = last; d >= 0; --d) {
    int64_t sz = t.shape()[d];
    if (sz == 1) continue;
    if (!have) {
      inner_stride = t.strides()[d];
      inner_size = sz;
      have = true;
    } else {
      if (t.strides()[d] != inner_stride * inner_size) return std::nullopt;
      inner_size *= sz;
    }
  }
  return inner_stride;
}

template <class T>
void gemm_batched(const Tensor& out, const Tensor& a, const Tensor& b, T alpha, T beta) {
  const int64_t nd = out.dim(), nb = nd - 2;
  const int64_t m = out.shape()[nd - 2], n = out.shape()[nd - 1], k = a.shape()[nd - 1];
  int64_t batch = 1;
  for (int64_t d = 0; d < nb; ++d) batch *= out.shape()[d];
  if (batch == 0 || m == 0 || n == 0) return;
  T* pc = out.data_ptr<T>();
  const T* pa = a.data_ptr<T>();
  const T* pb = b.data_ptr<T>();
  const int64_t a_rs = a.strides()[nd - 2], a_cs = a.strides()[nd - 1];
  const int64_t b_rs = b.strides()[nd - 2], b_cs = b.strides()[nd - 1];
  const int64_t c_rs = out.strides()[nd - 2], c_cs = out.strides()[nd - 1];

  // B shared by the whole batch, and A's and C's batch dims stack onto M: one GEMM of batch * m rows.
  if (batch > 1 && std::all_of(b.strides().begin(), b.strides().begin() + nb, [](int64_t s) { return s == 0; })) {
    auto sa = collapse_stride(a, nd - 2), sc = collapse_stride(out, nd - 2);
    if (sa && sc) return gemm_strided<T>(batch * m, n, k, alpha, pa, *sa, a_cs, pb, b_rs, b_cs, beta, pc, *sc, c_cs);
  }
  auto offset = [&](const Tensor& t, int64_t idx) {
    int64_t off = 0;
    for (int64_t d = nb - 1; d >= 0; --d) {
      off += (idx % out.shape()[d]) * t.strides()[d];
      idx /= out.shape()[d];
    }
    return off;
  };
  auto one = [&](int64_t i) {
    gemm_strided<T>(m, n, k, alpha, pa + offset(a, i), a_rs, a_cs, pb + offset(b, i), b_rs, b_cs, beta,
                    pc + offset(out, i), c_rs, c_cs);
  };
  // Many small matrices: split the batch across threads; otherwise each (large) GEMM splits itself.
  const double work = double(m) * double(n) * double(k);
  const int threads = get_num_threads();
  if (threads > 1 && batch >= threads && work <= kMaxBatchParallelGemm && work * double(batch) >= kMinParallelWork) {
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, batch), [&](const tbb::blocked_range<int64_t>& r) {
      for (int64_t i = r.begin(); i < r.end(); ++i) one(i);
    });
    return;
  }
  for (int64_t i = 0; i < batch; ++i) one(i);
}

// f32 copy of t that keeps broadcast (stride-0) dims unmaterialised.
Tensor to_f32(const Tensor& t) {
  Shape compact = t.shape();
  for (size_t d = 0; d < compact.size(); ++d)
    if (t.strides()[d] == 0) compact[d] = 1;
  Tensor dst = make_tensor(compact, kF32);
  copy(dst, make_view(t, compact, t.strides(), t.storage_offset()));
  return dst.expand(t.shape());
}

std::mutex g_threads_mutex;
std::unique_ptr<tbb::global_control> g_parallelism;

// Debian 12's OpenBLAS 0.3.21 (DYNAMIC_ARCH) does not recognise CPUs newer than itself (Sapphire and
// Emerald Rapids) and falls back to its SSE3 "Prescott" kernels: sgemm ran about 6x slower than with
// its AVX-512 kernels on such a machine. Unless the user chose a core (OPENBLAS_CORETYPE), rerun
// OpenBLAS's own core selection with the best kernel set this CPU supports, at program start (before
// any BLAS call). The hooks are weak symbols: an OpenBLAS without runtime dispatch just skips this.
extern "C" void gotoblas_dynamic_init(void) __attribute__((weak));
extern "C" void gotoblas_dynamic_quit(void) __attribute__((weak));

const char* best_openblas_core() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512cd"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  if (__builtin_cpu_supports("avx")) return "Sandybridge";
#endif
  return nullptr;
}

bool select_openblas_core() {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr || !gotoblas_dynamic_init || !gotoblas_dynamic_quit) return false;
  const char* current = openblas_get_corename();
  const char* best = best_openblas_core();
  if (current == nullptr || strcasecmp(current, "prescott") != 0 || best == nullptr) return false;
  setenv("OPENBLAS_CORETYPE", best, 1);
  gotoblas_dynamic_quit();
  gotoblas_dynamic_init();
  unsetenv("OPENBLAS_CORETYPE");
  return true;
}
[[maybe_unused]] const bool g_openblas_core_selected = select_openblas_core();

bool blas_single_threaded() {
  openblas_set_num_threads(1);
  return true;
}
[[maybe_unused]] const bool g_blas_single_threaded = blas_single_threaded();

}  // namespace

template <class T>
void gemm_strided(int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t a_rs, int64_t a_cs, const T* b,
                  int64_t b_rs, int64_t b_cs, T beta, T* c, int64_t c_rs, int64_t c_cs) {
  if (m == 0 || n == 0) return;
  if (k == 0 || alpha == T(0)) return scale(m, n, beta, c, c_rs, c_cs);
  if constexpr (kBlasType<T>)
    blas_path(m, n, k, alpha, a, a_rs, a_cs, b, b_rs, b_cs, beta, c, c_rs, c_cs);
  else
    int_path(m, n, k, alpha, a, a_rs, a_cs, b, b_rs, b_cs, beta, c, c_rs, c_cs);
}

#define EMBER_GEMM_STRIDED(T)                                                                                         \
  template void gemm_strided<T>(int64_t, int64_t, int64_t, T, const T*, int64_t, int64_t, const T*, int64_t, int64_t, \
                                T, T*, int64_t, int64_t);
EMBER_GEMM_STRIDED(float)
EMBER_GEMM_STRIDED(double)
EMBER_GEMM_STRIDED(int32_t)
EMBER_GEMM_STRIDED(int64_t)
EMBER_GEMM_STRIDED(uint8_t)
#undef EMBER_GEMM_STRIDED

void gemm(const Tensor& out, const Tensor& a, const Tensor& b, const Scalar& alpha, const Scalar& beta) {
  using GemmTypes = TypeList<float, double, half, bfloat16, int32_t, int64_t, uint8_t>;
  visit_dtype<GemmTypes>(out.dtype(), "[matmul]", [&]<class T>() {
    if constexpr (std::is_same_v<T, half> || std::is_same_v<T, bfloat16>) {
      const bool keep = beta.to_double() != 0.0;
      Tensor c32 = keep ? to_f32(out).contiguous() : make_tensor(out.shape(), kF32);
      gemm_batched<float>(c32, to_f32(a), to_f32(b), alpha.to<float>(), beta.to<float>());
      copy(out, c32);
    } else {
      gemm_batched<T>(out, a, b, alpha.to<T>(), beta.to<T>());
    }
  });
}

void gemm_bias(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& bias, const Scalar& alpha,
               bool gelu) {
  // bias broadcast into out, then beta = 1 (what cuBLASLt's epilogue computes, with one more rounding).
  copy(out, bias.expand(out.shape()));
  gemm(out, a, b, alpha, 1);
  if (gelu) unary(index_of_v<GeluTanh, UnaryFunctors>, out, out, {});
}

void gemm_bias_gelu(const Tensor& out, const Tensor& pre, const Tensor& a, const Tensor& b, const Tensor& bias) {
  gemm_bias(pre, a, b, bias, 1, false);  // the bits of addmm(bias, a, b): bias copied in, then beta = 1
  unary(index_of_v<GeluTanh, UnaryFunctors>, out, pre, {});
}

void dot(const Tensor& out, const Tensor& a, const Tensor& b) {
  visit_dtype<NumericTypes>(a.dtype(), "[dot]", [&]<class T>() {
    const int64_t n = a.numel(), sa = a.strides()[0], sb = b.strides()[0];
    const T* x = a.data_ptr<T>();
    const T* y = b.data_ptr<T>();
    T r{};
    if constexpr (kBlasType<T>) {
      if (n > 0 && n <= INT_MAX && sa > 0 && sb > 0 && sa <= INT_MAX && sb <= INT_MAX) {
        if constexpr (std::is_same_v<T, float>)
          r = cblas_sdot(int(n), x, int(sa), y, int(sb));
        else
          r = cblas_ddot(int(n), x, int(sa), y, int(sb));
      } else {
        for (int64_t i = 0; i < n; ++i) r += x[i * sa] * y[i * sb];
      }
    } else if constexpr (std::is_integral_v<T>) {
      using U = std::make_unsigned_t<T>;
      U acc = 0;
      for (int64_t i = 0; i < n; ++i) acc = static_cast<U>(acc + static_cast<U>(x[i * sa]) * static_cast<U>(y[i * sb]));
      r = static_cast<T>(acc);
    } else {  // f16/bf16: accumulate in float
      float acc = 0.f;
      for (int64_t i = 0; i < n; ++i) acc += static_cast<float>(x[i * sa]) * static_cast<float>(y[i * sb]);
      r = T(acc);
    }
    *out.data_ptr<T>() = r;
  });
}

void set_num_threads(int n) {
  EMBER_CHECK(n >= 1, ValueError, "[set_num_threads] expected a positive thread count, got ", n);
  std::lock_guard lock(g_threads_mutex);
  g_parallelism.reset();  // two live controls would limit to the smaller of their values
  g_parallelism = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, size_t(n));
}

int get_num_threads() {
  return static_cast<int>(tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism));
}

namespace {
// EMBER_NUM_THREADS sets the thread count at start-up (as OMP_NUM_THREADS does for PyTorch).
bool apply_thread_env() {
  const char* v = std::getenv("EMBER_NUM_THREADS");
  if (v == nullptr) return false;
  int n = std::atoi(v);
  EMBER_CHECK(n >= 1, ValueError, "[EMBER_NUM_THREADS] expected a positive thread count, got '", v, "'");
  set_num_threads(n);
  return true;
}
[[maybe_unused]] const bool g_thread_env_applied = apply_thread_env();
}  // namespace

}  // namespace ember::kernels::cpu
