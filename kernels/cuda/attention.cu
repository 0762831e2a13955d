// Fused flash attention (FlashAttention-2 scheme) for CUDA f16/bf16, head dims 64 and 128, causal or
// not, any L and S. Tensor cores through nvcuda::wmma (16x16x16 fragments, f32 accumulators); every
// other value is f32. Tiles of 64 query rows x 64 keys, 4 warps per block, each warp owning 16 rows,
// so a warp's scores, softmax and products touch only its own rows (a __syncwarp, not a
// __syncthreads, between them). Shared-memory layouts and grids come from kernels/attention_plan.hpp;
// the per-row softmax (OnlineSoftmax, attn_prob, attn_dscore, attn_row_delta, attn_visible) from
// kernels/attention_math.hpp, which the CPU kernel runs too.
//   forward:  grid (query tiles, batch*heads); walks the key tiles up to the causal bound, online softmax
//             per row, O accumulated in shared f32; writes out and the row logsumexp (f32, scaled scores).
//   backward: delta_kernel D_i = rowsum(dO O); dkdv_kernel: grid (key tiles, batch*heads) walks the query
//             tiles that see its keys, recomputes P from lse, dV += P^T dO, dP = dO V^T, dS = P (dP - D),
//             dK += dS^T Q, and (atomic path) dQ += dS K with f32 atomics into a workspace; under
//             ember's deterministic mode dq_kernel instead walks the key tiles per query tile.
// Performance notes (target: >= 0.9x torch SDPA on H100; never measured yet): the choices that matter are
// the 64x64 tiles with 4 warps, K/V tiles in shared memory reused by 64 query rows, 128-bit tile loads,
// padded rows (no bank conflicts on fragment loads), and grid.x over the tiles of one head so that its
// K/V stay in L2. Left for later: cp.async double buffering of K/V, keeping O and P in registers
// (mma.sync fragments with a known layout instead of wmma's opaque one), ldmatrix, and 128-row tiles.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <atomic>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/dtype.hpp"
#include "kernels/attention.hpp"
#include "kernels/attention_math.hpp"
#include "kernels/attention_plan.hpp"
#include "kernels/cuda/runtime.hpp"

namespace ember::kernels::cuda {
namespace {

namespace wmma = nvcuda::wmma;

constexpr int kBr = kFlashBlockQ, kBc = kFlashBlockK;
constexpr int kLdP = static_cast<int>(flash_ld_half(kBc));   // P and dS tiles (2-byte)
constexpr int kLdS = static_cast<int>(flash_ld_float(kBc));  // score and dP tiles (float)
static_assert(kBr == 16 * kFlashWarps && kBc == 16 * kFlashWarps && kBc == 64, "a warp owns 16 rows; 2 keys a lane");

// Ember's 2-byte types and the CUDA types wmma takes (same bits).
template <class E>
struct Wmma {
  using type = void;  // visit_dtype's unreachable float branch
};
template <>
struct Wmma<half> {
  using type = __half;
};
template <>
struct Wmma<bfloat16> {
  using type = __nv_bfloat16;
};

template <class W>
__device__ __forceinline__ W from_f(float x);
template <>
__device__ __forceinline__ __half from_f<__half>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

struct FlashArgs {
  int64_t l, s;
  float scale;
  bool causal;
};

__device__ __forceinline__ float warp_max(float x) {
  for (int o = 16; o > 0; o /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
__device__ __forceinline__ float warp_sum(float x) {
  for (int o = 16; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// dst[rows x D] (ld D + pad) <- rows [row0, row0 + rows) of a contiguous [n, D] matrix, zeros past n;
// 128-bit loads (the plan asks for 16-byte aligned bases; a row is D * 2 bytes).
template <int D, class W>
__device__ __forceinline__ void load_tile(W* dst, const W* src, int64_t row0, int64_t n, int rows) {
  constexpr int kVec = D / 8, kLd = static_cast<int>(flash_ld_half(D));
  for (int idx = threadIdx.x; idx < rows * kVec; idx += blockDim.x) {
    const int r = idx / kVec, c = idx % kVec;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (row0 + r < n) val = reinterpret_cast<const uint4*>(src + (row0 + r) * D)[c];
    *reinterpret_cast<uint4*>(dst + r * kLd + c * 8) = val;
  }
}

// Of a warp: c[16 x kBc] (ld kLdS) <- a[16 x D] b[kBc x D]^T, a and b 2-byte tiles (ld D + pad).
// Scores (Q K^T) and dP (dO V^T).
template <int D, class W>
__device__ __forceinline__ void warp_abt(float* c, const W* a, const W* b) {
  constexpr int kLd = static_cast<int>(flash_ld_half(D));
  wmma::fragment<wmma::matrix_a, 16, 16, 16, W, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, W, wmma::col_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> fc;
#pragma unroll
  for (int n = 0; n < kBc / 16; ++n) {
    wmma::fill_fragment(fc, 0.0f);
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      wmma::load_matrix_sync(fa, a + kk * 16, kLd);
      wmma::load_matrix_sync(fb, b + n * 16 * kLd + kk * 16, kLd);  // b^T as a column-major matrix
      wmma::mma_sync(fc, fa, fb, fc);
    }
    wmma::store_matrix_sync(c + n * 16, fc, kLdS, wmma::mem_row_major);
  }
}

// Of a warp: c[16 x D] (float, ld D + pad) (+)= a[16 x K] b[K x D]; a is 16 rows of a row-major tile
// (ld lda), or with kATrans 16 columns of a [K x 64] tile read transposed (P^T, dS^T); b row-major
// (ld D + pad). accumulate = false starts from zero instead of loading c.
template <int D, int K, bool kATrans, class W>
__device__ __forceinline__ void warp_ab(float* c, const W* a, int lda, const W* b, bool accumulate) {
  constexpr int kLdB = static_cast<int>(flash_ld_half(D)), kLdC = static_cast<int>(flash_ld_float(D));
  using ALayout = std::conditional_t<kATrans, wmma::col_major, wmma::row_major>;
  wmma::fragment<wmma::matrix_a, 16, 16, 16, W, ALayout> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, W, wmma::row_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> fc;
#pragma unroll
  for (int n = 0; n < D / 16; ++n) {
    if (accumulate)
      wmma::load_matrix_sync(fc, c + n * 16, kLdC, wmma::mem_row_major);
    else
      wmma::fill_fragment(fc, 0.0f);
#pragma unroll
    for (int kk = 0; kk < K / 16; ++kk) {
      wmma::load_matrix_sync(fa, kATrans ? a + kk * 16 * lda : a + kk * 16, lda);
      wmma::load_matrix_sync(fb, b + kk * 16 * kLdB + n * 16, kLdB);
      wmma::mma_sync(fc, fa, fb, fc);
    }
    wmma::store_matrix_sync(c + n * 16, fc, kLdC, wmma::mem_row_major);
  }
}

// Carves the dynamic shared memory in the plan's order.
struct Carve {
  unsigned char* at;
  template <class X>
  __device__ X* take(int64_t bytes) {
    X* p = reinterpret_cast<X*>(at);
    at += bytes;
    return p;
  }
};

// ---------------------------------------------------------------- forward

template <class W, int D>
__global__ void __launch_bounds__(kFlashThreads)
    flash_forward_kernel(const W* __restrict q, const W* __restrict k, const W* __restrict v, W* __restrict out,
                         float* __restrict lse, FlashArgs a) {
  constexpr FlashSmem kLayout = flash_forward_smem(D);
  constexpr int kLd = static_cast<int>(flash_ld_half(D)), kLdO = static_cast<int>(flash_ld_float(D));
  extern __shared__ __align__(128) unsigned char smem[];
  Carve cv{smem};
  W* sq = cv.take<W>(kLayout.q);
  W* sk = cv.take<W>(kLayout.k);
  W* sv = cv.take<W>(kLayout.v);
  W* sp = cv.take<W>(kLayout.p);
  float* ss = cv.take<float>(kLayout.s);
  float* so = cv.take<float>(kLayout.acc);

  const int64_t bh = blockIdx.y, i0 = static_cast<int64_t>(blockIdx.x) * kBr;
  q += bh * a.l * D;
  k += bh * a.s * D;
  v += bh * a.s * D;
  out += bh * a.l * D;
  lse += bh * a.l;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, r0 = warp * 16;

  load_tile<D>(sq, q, i0, a.l, kBr);
  for (int x = threadIdx.x; x < kBr * kLdO; x += blockDim.x) so[x] = 0.0f;
  OnlineSoftmax<float> st[16];  // this warp's rows (every lane holds the same state)
  const int64_t key_tiles = attn_key_tiles(i0 + kBr < a.l ? i0 + kBr : a.l, a.s, kBc, a.causal);
  for (int64_t t = 0; t < key_tiles; ++t) {
    const int64_t j0 = t * kBc;
    __syncthreads();  // the previous tile's K/V reads are done (and Q/O are in place on the first)
    load_tile<D>(sk, k, j0, a.s, kBc);
    load_tile<D>(sv, v, j0, a.s, kBc);
    __syncthreads();
    warp_abt<D>(ss + r0 * kLdS, sq + r0 * kLd, sk);
    __syncwarp();
#pragma unroll
    for (int r = 0; r < 16; ++r) {
      const int64_t i = i0 + r0 + r;
      float* row = ss + (r0 + r) * kLdS;
      const float neg_inf = -std::numeric_limits<float>::infinity();
      const float x0 = attn_visible(i, j0 + lane, a.s, a.causal) ? row[lane] * a.scale : neg_inf;
      const float x1 = attn_visible(i, j0 + lane + 32, a.s, a.causal) ? row[lane + 32] * a.scale : neg_inf;
      const float alpha = st[r].advance(warp_max(fmaxf(x0, x1)));
      const float m = st[r].shift();
      const float p0 = m == neg_inf ? 0.0f : __expf(x0 - m), p1 = m == neg_inf ? 0.0f : __expf(x1 - m);
      st[r].add(warp_sum(p0 + p1));
      sp[(r0 + r) * kLdP + lane] = from_f<W>(p0);
      sp[(r0 + r) * kLdP + lane + 32] = from_f<W>(p1);
      if (alpha != 1.0f)
        for (int c = lane; c < D; c += 32) so[(r0 + r) * kLdO + c] *= alpha;
    }
    __syncwarp();
    warp_ab<D, kBc, false>(so + r0 * kLdO, sp + r0 * kLdP, kLdP, sv, true);  // O += P V
  }
  __syncwarp();
#pragma unroll
  for (int r = 0; r < 16; ++r) {
    const int64_t i = i0 + r0 + r;
    if (i >= a.l) break;
    const float inv = st[r].inv_sum();
    for (int c = lane; c < D; c += 32) out[i * D + c] = from_f<W>(so[(r0 + r) * kLdO + c] * inv);
    if (lane == 0) lse[i] = st[r].lse();
  }
}

// ---------------------------------------------------------------- backward

// D_i = rowsum(dO_i * O_i): a thread per row (the math of the CPU kernel, attn_row_delta).
template <class E, int D>
__global__ void flash_delta_kernel(const E* __restrict dout, const E* __restrict out, float* __restrict delta,
                                   int64_t rows) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < rows;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    delta[i] = attn_row_delta<float>(dout + i * D, out + i * D, D);
}

// Of a warp, after S (ss) and dP (sdp) of its 16 rows are in place: P and dS of those rows as 2-byte
// tiles, from the saved lse and delta (srows: lse then delta of the query tile).
template <class W>
__device__ __forceinline__ void warp_probs_and_dscores(W* sp, W* sds, const float* ss, const float* sdp,
                                                       const float* slse, const float* sdelta, int64_t i0, int64_t j0,
                                                       int r0, int lane, const FlashArgs& a) {
#pragma unroll 4
  for (int r = 0; r < 16; ++r) {
    const int64_t i = i0 + r0 + r;
    const float m = slse[r0 + r], d = sdelta[r0 + r];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int c = lane + 32 * h;
      const bool keep = i < a.l && attn_visible(i, j0 + c, a.s, a.causal);
      const float p = keep ? attn_prob(ss[(r0 + r) * kLdS + c] * a.scale, m, [](float x) { return __expf(x); }) : 0.0f;
      sp[(r0 + r) * kLdP + c] = from_f<W>(p);
      sds[(r0 + r) * kLdP + c] = from_f<W>(attn_dscore(p, sdp[(r0 + r) * kLdS + c], d, a.scale));
    }
  }
}

// Loads the query tile's Q, dO, lse and delta (rows past l: zeros, and lse 0 — their P is masked anyway).
template <int D, class W>
__device__ __forceinline__ void load_query_side(W* sq, W* sdo, float* slse, float* sdelta, const W* q, const W* dout,
                                                const float* lse, const float* delta, int64_t i0, int64_t l) {
  load_tile<D>(sq, q, i0, l, kBr);
  load_tile<D>(sdo, dout, i0, l, kBr);
  for (int r = threadIdx.x; r < kBr; r += blockDim.x) {
    slse[r] = i0 + r < l ? lse[i0 + r] : 0.0f;
    sdelta[r] = i0 + r < l ? delta[i0 + r] : 0.0f;
  }
}

// One key tile per block: dK and dV of its keys; with dq_accum, also each query tile's dS K added into
// the f32 dQ workspace with atomics.
template <class W, int D>
__global__ void __launch_bounds__(kFlashThreads)
    flash_dkdv_kernel(const W* __restrict q, const W* __restrict k, const W* __restrict v, const W* __restrict dout,
                      const float* __restrict lse, const float* __restrict delta, W* __restrict dk, W* __restrict dv,
                      float* __restrict dq_accum, FlashArgs a) {
  constexpr FlashSmem kLayout = flash_backward_smem(D);
  constexpr int kLd = static_cast<int>(flash_ld_half(D)), kLdF = static_cast<int>(flash_ld_float(D));
  extern __shared__ __align__(128) unsigned char smem[];
  Carve cv{smem};
  W* sq = cv.take<W>(kLayout.q);
  W* sk = cv.take<W>(kLayout.k);
  W* sv = cv.take<W>(kLayout.v);
  W* sdo = cv.take<W>(kLayout.dout);
  W* sp = cv.take<W>(kLayout.p);
  W* sds = cv.take<W>(kLayout.ds);
  float* ss = cv.take<float>(kLayout.s);
  float* sdp = ss + kBr * kLdS;
  float* sdq = ss;  // dS K scratch [64 x D]: reuses S and dP once every warp has read them
  float* sdk = cv.take<float>(kLayout.acc);
  float* sdv = sdk + kBc * kLdF;
  float* slse = cv.take<float>(kLayout.rows);
  float* sdelta = slse + kBr;

  const int64_t bh = blockIdx.y, j0 = static_cast<int64_t>(blockIdx.x) * kBc;
  q += bh * a.l * D;
  dout += bh * a.l * D;
  k += bh * a.s * D;
  v += bh * a.s * D;
  dk += bh * a.s * D;
  dv += bh * a.s * D;
  lse += bh * a.l;
  delta += bh * a.l;
  if (dq_accum) dq_accum += bh * a.l * D;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, r0 = warp * 16;

  load_tile<D>(sk, k, j0, a.s, kBc);
  load_tile<D>(sv, v, j0, a.s, kBc);
  for (int x = threadIdx.x; x < 2 * kBc * kLdF; x += blockDim.x) sdk[x] = 0.0f;  // dK and dV
  const int64_t query_tiles = (a.l + kBr - 1) / kBr;
  for (int64_t t = attn_first_query_tile(j0, kBr, a.causal); t < query_tiles; ++t) {
    const int64_t i0 = t * kBr;
    __syncthreads();  // the previous tile's readers of Q, dO, P, dS and the scratch are done
    load_query_side<D>(sq, sdo, slse, sdelta, q, dout, lse, delta, i0, a.l);
    __syncthreads();
    warp_abt<D>(ss + r0 * kLdS, sq + r0 * kLd, sk);    // S = Q K^T (this warp's query rows)
    warp_abt<D>(sdp + r0 * kLdS, sdo + r0 * kLd, sv);  // dP = dO V^T
    __syncwarp();
    warp_probs_and_dscores(sp, sds, ss, sdp, slse, sdelta, i0, j0, r0, lane, a);
    __syncthreads();  // dV and dK read every query row of P and dS
    // This warp's 16 keys: dV += P^T dO, dK += dS^T Q (dS carries the scale).
    warp_ab<D, kBr, true>(sdv + r0 * kLdF, sp + r0, kLdP, sdo, true);
    warp_ab<D, kBr, true>(sdk + r0 * kLdF, sds + r0, kLdP, sq, true);
    if (dq_accum) {  // this warp's 16 query rows: dQ += dS K, into the f32 workspace
      warp_ab<D, kBc, false>(sdq + r0 * kLdF, sds + r0 * kLdP, kLdP, sk, false);
      __syncwarp();
      for (int r = 0; r < 16; ++r) {
        const int64_t i = i0 + r0 + r;
        if (i >= a.l) break;
        for (int c = lane; c < D; c += 32) atomicAdd(dq_accum + i * D + c, sdq[(r0 + r) * kLdF + c]);
      }
    }
  }
  __syncthreads();
  for (int x = threadIdx.x; x < kBc * D; x += blockDim.x) {
    const int r = x / D, c = x % D;
    if (j0 + r < a.s) {
      dk[(j0 + r) * D + c] = from_f<W>(sdk[r * kLdF + c]);
      dv[(j0 + r) * D + c] = from_f<W>(sdv[r * kLdF + c]);
    }
  }
}

// Deterministic dQ: one query tile per block walks its key tiles and sums dS K in a fixed order.
template <class W, int D>
__global__ void __launch_bounds__(kFlashThreads)
    flash_dq_kernel(const W* __restrict q, const W* __restrict k, const W* __restrict v, const W* __restrict dout,
                    const float* __restrict lse, const float* __restrict delta, W* __restrict dq, FlashArgs a) {
  constexpr FlashSmem kLayout = flash_dq_smem(D);
  constexpr int kLd = static_cast<int>(flash_ld_half(D)), kLdF = static_cast<int>(flash_ld_float(D));
  extern __shared__ __align__(128) unsigned char smem[];
  Carve cv{smem};
  W* sq = cv.take<W>(kLayout.q);
  W* sk = cv.take<W>(kLayout.k);
  W* sv = cv.take<W>(kLayout.v);
  W* sdo = cv.take<W>(kLayout.dout);
  W* sp = cv.take<W>(kLayout.p);
  W* sds = cv.take<W>(kLayout.ds);
  float* ss = cv.take<float>(kLayout.s);
  float* sdp = ss + kBr * kLdS;
  float* sdq = cv.take<float>(kLayout.acc);
  float* slse = cv.take<float>(kLayout.rows);
  float* sdelta = slse + kBr;

  const int64_t bh = blockIdx.y, i0 = static_cast<int64_t>(blockIdx.x) * kBr;
  q += bh * a.l * D;
  dout += bh * a.l * D;
  dq += bh * a.l * D;
  k += bh * a.s * D;
  v += bh * a.s * D;
  lse += bh * a.l;
  delta += bh * a.l;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, r0 = warp * 16;

  load_query_side<D>(sq, sdo, slse, sdelta, q, dout, lse, delta, i0, a.l);
  for (int x = threadIdx.x; x < kBr * kLdF; x += blockDim.x) sdq[x] = 0.0f;
  const int64_t key_tiles = attn_key_tiles(i0 + kBr < a.l ? i0 + kBr : a.l, a.s, kBc, a.causal);
  for (int64_t t = 0; t < key_tiles; ++t) {
    const int64_t j0 = t * kBc;
    __syncthreads();
    load_tile<D>(sk, k, j0, a.s, kBc);
    load_tile<D>(sv, v, j0, a.s, kBc);
    __syncthreads();
    warp_abt<D>(ss + r0 * kLdS, sq + r0 * kLd, sk);
    warp_abt<D>(sdp + r0 * kLdS, sdo + r0 * kLd, sv);
    __syncwarp();
    warp_probs_and_dscores(sp, sds, ss, sdp, slse, sdelta, i0, j0, r0, lane, a);
    __syncwarp();
    warp_ab<D, kBc, false>(sdq + r0 * kLdF, sds + r0 * kLdP, kLdP, sk, true);  // dQ += dS K
  }
  __syncwarp();
  for (int r = 0; r < 16; ++r) {
    const int64_t i = i0 + r0 + r;
    if (i >= a.l) break;
    for (int c = lane; c < D; c += 32) dq[i * D + c] = from_f<W>(sdq[(r0 + r) * kLdF + c]);
  }
}

template <class W>
__global__ void flash_dq_convert_kernel(const float* __restrict acc, W* __restrict dq, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dq[i] = from_f<W>(acc[i]);
}

// ---------------------------------------------------------------- launchers

constexpr const char* kOp = "scaled_dot_product_attention";
using FlashTypes = TypeList<half, bfloat16>;

bool aligned16(const Tensor& t) { return reinterpret_cast<uintptr_t>(dptr<const void>(t)) % 16 == 0; }

FlashPlan checked_plan(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                       std::initializer_list<const Tensor*> others, const AttentionParams& p) {
  std::vector<const Tensor*> all = {&q, &k, &v};
  all.insert(all.end(), others.begin(), others.end());
  bool contiguous = true, aligned = true;
  for (const Tensor* t : all) {  // devices first: the alignment check reads device addresses
    contiguous = contiguous && t->is_contiguous();
    EMBER_CHECK(t->device() == q.device(), DeviceError, "[", kOp, "] expected all tensors on one device, got query ",
                describe(q), " and ", describe(*t));
  }
  if (q.device().is_cuda())
    for (const Tensor* t : all) aligned = aligned && aligned16(*t);
  bool same = q.dtype() == k.dtype() && q.dtype() == v.dtype();
  EMBER_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3 && contiguous, ShapeError, "[", kOp,
              "] the fused CUDA kernel takes contiguous [B, L, E], [B, S, E], [B, S, E] tensors, got ", describe(q),
              ", ", describe(k), ", ", describe(v));
  const FlashPlan plan = plan_flash_attention({.batch_heads = q.size(0),
                                               .l = q.size(1),
                                               .s = k.size(1),
                                               .e = q.size(2),
                                               .ev = v.size(2),
                                               .cuda = q.device().is_cuda(),
                                               .low_precision = same && (q.dtype() == kF16 || q.dtype() == kBF16),
                                               .has_mask = mask.defined(),
                                               .dropout_p = 0.0,
                                               .aligned = aligned,
                                               .max_smem = flash_max_smem(q.device().index)},
                                              p.deterministic);
  EMBER_CHECK(plan.fused, ValueError, "[", kOp, "] the fused CUDA kernel does not take query ", describe(q), ", key ",
              describe(k), ", value ", describe(v), ": ", plan.reason);
  return plan;
}

// Runs f.template operator()<W, D>() for the call's dtype and head dim.
template <class F>
void visit_flash(DType dt, int head_dim, F&& f) {
  visit_dtype<FlashTypes>(dt, "[scaled_dot_product_attention] (fused CUDA kernel)", [&]<class E>() {
    using W = typename Wmma<E>::type;
    if constexpr (!std::is_void_v<W>) {
      if (head_dim == 64)
        f.template operator()<W, 64>();
      else
        f.template operator()<W, 128>();
    }
  });
}

template <class Kernel>
void allow_smem(Kernel kernel, int64_t bytes) {
  EMBER_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

unsigned blocks_of(int64_t n) { return blocks_for(n, kThreads); }

}  // namespace

int64_t flash_max_smem(int device) {
  constexpr int kMaxDevices = 64;
  static std::atomic<int64_t> cache[kMaxDevices] = {};
  const bool cached = device >= 0 && device < kMaxDevices;
  if (cached && cache[device].load(std::memory_order_relaxed) > 0) return cache[device].load(std::memory_order_relaxed);
  int bytes = 0;
  EMBER_CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  if (cached) cache[device].store(bytes, std::memory_order_relaxed);
  return bytes;
}

void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       const Tensor& mask, const AttentionParams& p) {
  const FlashPlan plan = checked_plan(q, k, v, mask, {&out, &lse}, p);
  EMBER_CHECK(lse.dtype() == kF32, DTypeError, "[", kOp, "] the fused kernel's lse is float32, got ", describe(lse));
  const int dev = device_index(q.device(), kOp);
  DeviceGuard guard(dev);
  cudaStream_t stream = current_stream(dev);
  const FlashArgs a{q.size(1), k.size(1), static_cast<float>(p.scale), p.causal};
  const dim3 grid(static_cast<unsigned>(plan.query_tiles), static_cast<unsigned>(plan.grid_y));
  visit_flash(q.dtype(), plan.head_dim, [&]<class W, int D>() {
    allow_smem(flash_forward_kernel<W, D>, plan.forward_smem);
    flash_forward_kernel<W, D><<<grid, plan.threads, plan.forward_smem, stream>>>(
        dptr<const W>(q), dptr<const W>(k), dptr<const W>(v), dptr<W>(out), dptr<float>(lse), a);
    EMBER_CUDA_CHECK(cudaGetLastError());
  });
}

void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout, const Tensor& q,
                        const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse, const Tensor& mask,
                        const AttentionParams& p) {
  const FlashPlan plan = checked_plan(q, k, v, mask, {&dq, &dk, &dv, &dout, &out, &lse}, p);
  const int dev = device_index(q.device(), kOp);
  DeviceGuard guard(dev);
  cudaStream_t stream = current_stream(dev);
  const int64_t rows = q.size(0) * q.size(1);
  const FlashArgs a{q.size(1), k.size(1), static_cast<float>(p.scale), p.causal};
  Tensor delta = make_tensor({rows}, kF32, q.device());
  Tensor dq_accum = plan.dq_atomic ? make_tensor({rows * q.size(2)}, kF32, q.device()) : Tensor();
  if (plan.dq_atomic)
    EMBER_CUDA_CHECK(cudaMemsetAsync(dptr<float>(dq_accum), 0, static_cast<size_t>(plan.dq_accum_bytes), stream));
  visit_flash(q.dtype(), plan.head_dim, [&]<class W, int D>() {
    using E = std::conditional_t<std::is_same_v<W, __half>, half, bfloat16>;
    flash_delta_kernel<E, D>
        <<<blocks_of(rows), kThreads, 0, stream>>>(dptr<const E>(dout), dptr<const E>(out), dptr<float>(delta), rows);
    EMBER_CUDA_CHECK(cudaGetLastError());
    allow_smem(flash_dkdv_kernel<W, D>, plan.backward_smem);
    const dim3 kv_grid(static_cast<unsigned>(plan.key_tiles), static_cast<unsigned>(plan.grid_y));
    flash_dkdv_kernel<W, D><<<kv_grid, plan.threads, plan.backward_smem, stream>>>(
        dptr<const W>(q), dptr<const W>(k), dptr<const W>(v), dptr<const W>(dout), dptr<const float>(lse),
        dptr<const float>(delta), dptr<W>(dk), dptr<W>(dv), plan.dq_atomic ? dptr<float>(dq_accum) : nullptr, a);
    EMBER_CUDA_CHECK(cudaGetLastError());
    if (plan.dq_atomic) {
      flash_dq_convert_kernel<W>
          <<<blocks_of(dq.numel()), kThreads, 0, stream>>>(dptr<const float>(dq_accum), dptr<W>(dq), dq.numel());
    } else {
      allow_smem(flash_dq_kernel<W, D>, plan.dq_smem);
      const dim3 q_grid(static_cast<unsigned>(plan.query_tiles), static_cast<unsigned>(plan.grid_y));
      flash_dq_kernel<W, D><<<q_grid, plan.threads, plan.dq_smem, stream>>>(
          dptr<const W>(q), dptr<const W>(k), dptr<const W>(v), dptr<const W>(dout), dptr<const float>(lse),
          dptr<const float>(delta), dptr<W>(dq), a);
    }
    EMBER_CUDA_CHECK(cudaGetLastError());
  });
}

}  // namespace ember::kernels::cuda
