// The CUDA CPU emulator's nvcuda::wmma (tools/cuda_emu). As on the hardware, each lane owns some of an
// accumulator's elements (here element e belongs to lane e % 32; the hardware's layout is unspecified,
// and code may not rely on it): mma_sync computes, and store_matrix_sync writes, the calling lane's
// elements only, so "load C, C += A B, store C" by the warp's lanes in turn adds A B once. A and B
// fragments hold what the lane's elements need: the rows of A of its elements' rows (those of its
// parity), the column of B of its elements' column. Products accumulate in float.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "emu.hpp"

namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

namespace detail {
template <class Use, int M, int N, int K>
struct Dims;
template <int M, int N, int K>
struct Dims<matrix_a, M, N, K> {
  static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct Dims<matrix_b, M, N, K> {
  static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct Dims<accumulator, M, N, K> {
  static constexpr int rows = M, cols = N;
};
inline float to_float(float x) { return x; }
inline float to_float(__half x) { return __half2float(x); }
inline float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static constexpr int rows = detail::Dims<Use, M, N, K>::rows, cols = detail::Dims<Use, M, N, K>::cols;
  static constexpr int num_elements = rows * cols;
  float x[rows * cols];  // row-major tile, values of T widened
  float& at(int r, int c) { return x[r * cols + c]; }
  float at(int r, int c) const { return x[r * cols + c]; }
};

template <class Use, int M, int N, int K, class T, class L>
void fill_fragment(fragment<Use, M, N, K, T, L>& f, float v) {
  for (float& e : f.x) e = v;
}

// matrix_a / matrix_b: the layout is the fragment's. Lane l owns accumulator elements e = l + 32 t, at
// row e / N and column e % N; only the operand elements those need are read.
template <class Use, int M, int N, int K, class T, class L, class P>
void load_matrix_sync(fragment<Use, M, N, K, T, L>& f, const P* p, unsigned ldm) {
  static_assert(M * N % 32 == 0 && 32 % N == 0, "lane ownership assumes whole rows per 32 elements");
  using F = fragment<Use, M, N, K, T, L>;
  const int lane = ::emu::lane_id();
  auto read = [&](int r, int c) {
    f.at(r, c) = detail::to_float(std::is_same_v<L, col_major> ? p[r + c * ldm] : p[r * ldm + c]);
  };
  if constexpr (std::is_same_v<Use, matrix_a>) {
    for (int r = lane / N; r < F::rows; r += 32 / N)
      for (int c = 0; c < F::cols; ++c) read(r, c);
  } else {
    for (int r = 0; r < F::rows; ++r) read(r, lane % N);
  }
}
template <int M, int N, int K, class T, class P>
void load_matrix_sync(fragment<accumulator, M, N, K, T, void>& f, const P* p, unsigned ldm, layout_t layout) {
  for (int r = 0; r < M; ++r)
    for (int c = 0; c < N; ++c)
      f.at(r, c) = detail::to_float(layout == mem_col_major ? p[r + c * ldm] : p[r * ldm + c]);
}
template <int M, int N, int K, class T>
void store_matrix_sync(T* p, const fragment<accumulator, M, N, K, T, void>& f, unsigned ldm, layout_t layout) {
  for (int e = ::emu::lane_id(); e < M * N; e += 32) {
    const int r = e / N, c = e % N;
    (layout == mem_col_major ? p[r + c * ldm] : p[r * ldm + c]) = f.x[e];
  }
}
template <int M, int N, int K, class TA, class LA, class TB, class LB, class TC>
void mma_sync(fragment<accumulator, M, N, K, TC, void>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
              const fragment<matrix_b, M, N, K, TB, LB>& b, const fragment<accumulator, M, N, K, TC, void>& c) {
  for (int e = ::emu::lane_id(); e < M * N; e += 32) {
    const int i = e / N, j = e % N;
    float s = c.x[e];
    for (int k = 0; k < K; ++k) s += a.at(i, k) * b.at(k, j);
    d.x[e] = s;
  }
}

}  // namespace nvcuda::wmma
