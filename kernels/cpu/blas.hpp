// Typed row-major wrappers over OpenBLAS's sgemm/dgemm, shared by the CPU kernels that call BLAS on raw
// tiles (gemm.cpp's strided products, attention.cpp's score and value tiles). The caller has checked
// that every size and leading dimension fits BLAS's 32-bit int.
#pragma once
#include <cblas.h>

#include <cstdint>

namespace ember::kernels::cpu {

inline void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, float alpha,
                      const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}
inline void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, double alpha,
                      const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

}  // namespace ember::kernels::cpu
