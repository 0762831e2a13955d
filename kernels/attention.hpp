// Kernel entries of the blocked (flash-style) attention: softmax(q k^T * scale + mask) v computed
// tile by tile with an online softmax, so that neither the [L, S] scores nor their softmax are ever
// stored; the backward recomputes them per tile from the saved row logsumexp. The CPU kernel
// (kernels/cpu/attention.cpp) takes f32/f64 and masks; the fused CUDA kernel (kernels/cuda/attention.cu)
// takes f16/bf16, head dims 64/128, no mask (kernels/attention_plan.hpp says which calls). Both share
// the per-row math of kernels/attention_math.hpp.
#pragma once
#include <cstdint>
#include <string>

#include "core/tensor.hpp"

namespace ember::kernels {

struct AttentionParams {
  double scale = 1.0;
  bool causal = false;         // keys j <= i only (top-left aligned); excludes a mask
  bool deterministic = false;  // CUDA: dQ from its own pass instead of float atomics (core/determinism.hpp)
};

// Tile sizes (rows of queries x keys) of one task: kept here so tests can pick shapes that straddle them.
inline constexpr int64_t kAttnQueryBlock = 64;
inline constexpr int64_t kAttnKeyBlock = 128;

// q [B, L, E], k [B, S, E], v [B, S, Ev], out [B, L, Ev]: contiguous, f32 or f64 on the CPU (lse [B, L]
// of the same dtype), or f16/bf16 on CUDA (lse f32; no mask; see plan_flash_attention). lse gets each
// row's logsumexp (-inf for a row that no key may attend; its output is 0).
// mask: undefined, or [batch..., L, S] (any strides, e.g. an expanded view; the batch dims flatten to B
// in row-major order): bool (true = attend) or of q's dtype (added to the scores).
void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       const Tensor& mask, const AttentionParams& p);
// dq, dk, dv (contiguous, shaped as q, k, v) <- the gradients of the loss given d out = dout (contiguous
// [B, L, Ev]), from the forward's inputs, output and lse.
void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout, const Tensor& q,
                        const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse, const Tensor& mask,
                        const AttentionParams& p);

namespace cpu {
void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       const Tensor& mask, const AttentionParams& p);
void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout, const Tensor& q,
                        const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse, const Tensor& mask,
                        const AttentionParams& p);
}  // namespace cpu

// The fused flash-attention kernels (kernels/cuda/attention.cu; without CUDA they raise DeviceError).
// Raise ValueError naming the reason for a call that plan_flash_attention refuses.
namespace cuda {
// The device's opt-in shared memory per block (cached; 0 without CUDA), for FlashProblem::max_smem.
int64_t flash_max_smem(int device);
void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       const Tensor& mask, const AttentionParams& p);
void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout, const Tensor& q,
                        const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse, const Tensor& mask,
                        const AttentionParams& p);

// cuDNN's fused attention (kernels/cuda/attention_cudnn.cpp): q [b, h, l, e], k and v [b, h, s, e], out
// and dout [b, h, l, e], the gradients as their inputs, each with strides sdpa_operand accepts (any
// layout with rows on 16 bytes; no copies); stats f32 [b, h, l] contiguous, each row's logsumexp (the
// lse of attention_forward, so either backward can follow either forward). No mask. Each signature's
// graph is built once; false, with the reason in `why`, where cuDNN does not take it (remembered), so
// that the caller falls back. Without cuDNN's frontend, always false.
bool cudnn_attention_available();
bool cudnn_attention_forward(const Tensor& out, const Tensor& stats, const Tensor& q, const Tensor& k, const Tensor& v,
                             const AttentionParams& p, std::string* why);
bool cudnn_attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout,
                              const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& stats,
                              const AttentionParams& p, std::string* why);
// The device's compute capability, major * 10 + minor.
int compute_capability(int device);
}  // namespace cuda

}  // namespace ember::kernels
