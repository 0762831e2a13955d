// AVX2 register tiles shared by the CPU kernels that pack only one operand of a product: the Linear
// forward at small batch (kernels/cpu/gemm.cpp, short_a) and the stride-1 conv weight gradient
// (kernels/cpu/conv.cpp, padded). Builds without AVX2 + FMA do not use them.
#pragma once

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <new>

namespace ember::kernels::cpu::tiles {

constexpr int64_t kMR = 6, kNR = 16;

// c[j * ldc + i] = alpha * sum_p panel[p][j] * rows[i][p] + beta * c[j * ldc + i] for i < MR, j < cols
// (beta 0 overwrites, as BLAS): MR rows read where they lie, broadcast against a [k][16] panel of the
// packed operand; the tile holds the transpose of c's block, so it is written back transposed.
template <int MR>
void rows_by_panel(int64_t k, const float* const* rows, const float* __restrict panel, float alpha, float beta,
                   float* c, int64_t ldc, int64_t cols) {
  __m256 lo[MR], hi[MR];
  const float* r[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) lo[i] = hi[i] = _mm256_setzero_ps(), r[i] = rows[i];
  for (int64_t p = 0; p < k; ++p, panel += kNR) {
    const __m256 b0 = _mm256_load_ps(panel), b1 = _mm256_load_ps(panel + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 ri = _mm256_broadcast_ss(r[i] + p);
      lo[i] = _mm256_fmadd_ps(ri, b0, lo[i]);
      hi[i] = _mm256_fmadd_ps(ri, b1, hi[i]);
    }
  }
  alignas(32) float t[MR][kNR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) _mm256_store_ps(t[i], lo[i]), _mm256_store_ps(t[i] + 8, hi[i]);
  for (int64_t j = 0; j < cols; ++j)
    for (int i = 0; i < MR; ++i) {
      float& o = c[j * ldc + i];
      o = beta == 0.0f ? alpha * t[i][j] : alpha * t[i][j] + beta * o;
    }
}

// rows_by_panel for mr = 1 .. kMR rows.
inline void rows_by_panel(int64_t mr, int64_t k, const float* const* rows, const float* panel, float alpha, float beta,
                          float* c, int64_t ldc, int64_t cols) {
  using Fn = void (*)(int64_t, const float* const*, const float*, float, float, float*, int64_t, int64_t);
  static constexpr Fn kFns[kMR + 1] = {nullptr,          rows_by_panel<1>, rows_by_panel<2>, rows_by_panel<3>,
                                       rows_by_panel<4>, rows_by_panel<5>, rows_by_panel<6>};
  kFns[mr](k, rows, panel, alpha, beta, c, ldc, cols);
}

// 32-byte aligned float buffers for the panels.
struct AlignedFree {
  void operator()(float* f) const { ::operator delete[](f, std::align_val_t{32}); }
};
using Buffer = std::unique_ptr<float[], AlignedFree>;
inline Buffer aligned_floats(int64_t n) {
  return Buffer(static_cast<float*>(
      ::operator new[](static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float), std::align_val_t{32})));
}

}  // namespace ember::kernels::cpu::tiles
#endif
