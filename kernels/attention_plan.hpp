// Launch planning of the fused CUDA flash attention (kernels/cuda/attention.cu), plain C++ so that CPU
// tests cover it: which calls the fused kernel takes (and why not), the tiles, the shared-memory layout
// of each kernel (the .cu carves its dynamic shared memory with these same constexpr offsets), grids
// and workspaces.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace ember::kernels {

// Query rows x keys of one tile, for both head dims: 4 warps, each owning 16 query (or key) rows, so
// every warp-level product is a row of 16x16x16 tensor-core fragments.
inline constexpr int kFlashBlockQ = 64;
inline constexpr int kFlashBlockK = 64;
inline constexpr int kFlashWarps = 4;
inline constexpr int kFlashThreads = 32 * kFlashWarps;
// Row padding of the shared tiles (elements): rows of 64/128 half values would put a fragment's 16
// rows in the same banks; 8 halves (4 floats) keep wmma's ldm rule (multiple of 16 bytes) and the
// 32-byte alignment of every fragment's first row.
inline constexpr int kFlashPadHalf = 8;
inline constexpr int kFlashPadFloat = 4;
inline constexpr int64_t kFlashMaxSmem = 227 * 1024;  // sm_80/sm_90 opt-in limit per block
inline constexpr int64_t kFlashMaxGridY = 65535;      // batch * heads ride on grid.y

// Shared-memory layout (bytes) of one kernel for head dim d. Regions in this order, each a multiple of
// 32 bytes: 2-byte tiles first, then float tiles.
struct FlashSmem {
  int64_t q = 0, k = 0, v = 0, dout = 0;  // [64 x (d + pad)] 2-byte tiles (absent ones 0 bytes)
  int64_t p = 0, ds = 0;                  // [64 x (64 + pad)] 2-byte tiles: probabilities, score grads
  int64_t s = 0;                          // float scores (and dP; the backward's dQ scratch aliases both)
  int64_t acc = 0;                        // float accumulators: O (forward), dQ (dq pass), dK and dV
  int64_t rows = 0;                       // float lse and delta of a query tile
  constexpr int64_t total() const { return q + k + v + dout + p + ds + s + acc + rows; }
};

constexpr int64_t flash_ld_half(int64_t cols) { return cols + kFlashPadHalf; }
constexpr int64_t flash_ld_float(int64_t cols) { return cols + kFlashPadFloat; }
constexpr int64_t flash_tile_half(int64_t rows, int64_t cols) { return rows * flash_ld_half(cols) * 2; }
constexpr int64_t flash_tile_float(int64_t rows, int64_t cols) { return rows * flash_ld_float(cols) * 4; }

// Forward: Q, K, V; P; scores; the O accumulator.
constexpr FlashSmem flash_forward_smem(int64_t d) {
  FlashSmem m;
  m.q = flash_tile_half(kFlashBlockQ, d);
  m.k = m.v = flash_tile_half(kFlashBlockK, d);
  m.p = flash_tile_half(kFlashBlockQ, kFlashBlockK);
  m.s = flash_tile_float(kFlashBlockQ, kFlashBlockK);
  m.acc = flash_tile_float(kFlashBlockQ, d);
  return m;
}
// Backward dK/dV pass (one key tile per block, walking the query tiles): K, V, Q, dO; P, dS; scores
// and dP (the dQ scratch [64 x d] floats reuses them, so the region is the larger of the two); dK, dV.
constexpr FlashSmem flash_backward_smem(int64_t d) {
  FlashSmem m;
  m.q = flash_tile_half(kFlashBlockQ, d);
  m.dout = flash_tile_half(kFlashBlockQ, d);
  m.k = m.v = flash_tile_half(kFlashBlockK, d);
  m.p = m.ds = flash_tile_half(kFlashBlockQ, kFlashBlockK);
  const int64_t scores = 2 * flash_tile_float(kFlashBlockQ, kFlashBlockK), dq = flash_tile_float(kFlashBlockQ, d);
  m.s = scores > dq ? scores : dq;
  m.acc = 2 * flash_tile_float(kFlashBlockK, d);
  m.rows = 2 * kFlashBlockQ * 4;
  return m;
}
// Deterministic dQ pass (one query tile per block, walking the key tiles): as the backward, but one
// [64 x d] float accumulator (dQ) and the scores region only for S and dP.
constexpr FlashSmem flash_dq_smem(int64_t d) {
  FlashSmem m = flash_backward_smem(d);
  m.s = 2 * flash_tile_float(kFlashBlockQ, kFlashBlockK);
  m.acc = flash_tile_float(kFlashBlockQ, d);
  return m;
}

// One call as the fused kernel would see it: q [bh, l, e], k [bh, s, e], v [bh, s, ev].
struct FlashProblem {
  int64_t batch_heads = 0, l = 0, s = 0, e = 0, ev = 0;
  bool cuda = true;           // all of q, k, v on one CUDA device
  bool low_precision = true;  // all f16 or all bf16 (after autocast)
  bool has_mask = false;      // an attn_mask other than is_causal
  double dropout_p = 0.0;
  bool aligned = true;               // q, k, v (and out, dout) start on 16-byte boundaries
  int64_t max_smem = kFlashMaxSmem;  // the device's opt-in shared memory per block (sm_80: 163 KiB)
};

struct FlashPlan {
  bool fused = false;
  std::string reason;  // why the fused kernel does not take the call (empty when it does)
  int head_dim = 0;
  int block_q = kFlashBlockQ, block_k = kFlashBlockK, threads = kFlashThreads;
  int64_t query_tiles = 0, key_tiles = 0;                    // grid.x of the forward / dq pass and of the dK/dV pass
  int64_t grid_y = 0;                                        // batch * heads
  int64_t forward_smem = 0, backward_smem = 0, dq_smem = 0;  // dynamic shared memory, bytes
  // Backward workspaces: the rows' D_i = rowsum(dO * O) (f32 [bh, l]) always; the f32 dQ accumulator
  // [bh, l, e] only on the atomic (non-deterministic) path.
  int64_t delta_bytes = 0, dq_accum_bytes = 0;
  bool dq_atomic = false;
};

// deterministic: ember's deterministic mode (core/determinism.hpp): dQ then comes from its own pass
// instead of float atomics.
FlashPlan plan_flash_attention(const FlashProblem& p, bool deterministic = false);

// ---------------------------------------------------------------------- cuDNN's fused attention
// (kernels/cuda/attention_cudnn.cpp, through cuDNN's frontend graph API)

// One operand of cuDNN's SDPA graph: dims [b, h, s, d] and their strides in elements.
struct SdpaOperand {
  std::array<int64_t, 4> dim{}, stride{};
  bool operator==(const SdpaOperand&) const = default;
};

// How a tensor [..., s, d] with these element strides, starting at `address`, reads as an operand
// without a copy: 4 dims as they are, 3 dims as [b, 1, s, d]; d's stride 1, every other stride of a
// dim above 1 a multiple of 16 bytes, and the start on 16 bytes (cuDNN's 128-bit loads). nullopt
// where it needs a copy (other ranks included).
std::optional<SdpaOperand> sdpa_operand(std::span<const int64_t> shape, std::span<const int64_t> strides,
                                        uint64_t address, int64_t itemsize);
// The operand of a contiguous [b, h, s, d] tensor, and of the [b, s, h, d] memory that the outputs of
// a 4-dim call take (as PyTorch's flash attention: the usual transpose(1, 2).reshape after attention is
// then free), viewed as [b, h, s, d].
SdpaOperand sdpa_contiguous(int64_t b, int64_t h, int64_t s, int64_t d);
SdpaOperand sdpa_bshd(int64_t b, int64_t h, int64_t s, int64_t d);

// One call as cuDNN would see it before its own support check (which has the last word, on the device).
struct CudnnSdpaProblem {
  bool available = true;      // built with cuDNN's frontend
  bool cuda = true;           // all of q, k, v on one CUDA device
  bool low_precision = true;  // all f16 or all bf16 (after autocast)
  bool has_mask = false;
  double dropout_p = 0.0;
  int64_t batch_heads = 0, l = 0, s = 0, e = 0, ev = 0;
  int sm = 90;  // the device's compute capability, major * 10 + minor
};
inline constexpr int64_t kCudnnSdpaMaxHeadDim = 128;
// Empty where cuDNN's fused attention may take the call, else why it does not.
std::string cudnn_sdpa_refusal(const CudnnSdpaProblem& p);

}  // namespace ember::kernels
