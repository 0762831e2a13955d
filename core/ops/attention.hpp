// The blocked (memory-efficient, flash-style) scaled dot-product attention op, and the switch that
// nn::functional::scaled_dot_product_attention consults to pick it over the composed matmul/softmax
// path (which stays as the reference and takes everything the blocked op does not).
#pragma once
#include <cstdint>
#include <optional>

#include "core/tensor.hpp"

namespace ember {

// Which implementation scaled_dot_product_attention runs on this thread (as torch.nn.attention.sdpa_kernel).
// Auto: on the CPU the blocked op where it applies and the score matrix is large enough (below); on
// CUDA cuDNN's fused attention where it takes the call, else Ember's flash kernel where it applies; the
// composed path otherwise. Math: always the composed one. Blocked: Ember's own tiled kernels (the CPU
// blocked op, the CUDA flash kernel) wherever they apply. Cudnn: cuDNN's fused attention wherever it
// takes the call. Blocked and Cudnn leave the other calls to the composed path.
enum class SdpaBackend : uint8_t { Auto, Math, Blocked, Cudnn };
SdpaBackend sdpa_backend();

// Sets the backend for its lifetime on this thread.
class SdpaBackendGuard {
 public:
  explicit SdpaBackendGuard(SdpaBackend backend);
  ~SdpaBackendGuard();
  SdpaBackendGuard(const SdpaBackendGuard&) = delete;
  SdpaBackendGuard& operator=(const SdpaBackendGuard&) = delete;

 private:
  SdpaBackend prev_;
};

// Score-matrix sizes L * S from which Auto takes the blocked op. Measured on 2 cores (bench/RESULTS.md,
// forward + backward, 8 heads, E 64): causal it wins from L = S = 64 on (it skips the masked tiles);
// not causal the two are within about 10% of each other from 64 to 2048, the composed path ahead at
// 128. The blocked op's memory is O(L + S) per head instead of O(L S) throughout.
inline constexpr int64_t kBlockedAttentionMinScores = 256 * 256;
inline constexpr int64_t kBlockedCausalAttentionMinScores = 64 * 64;

// Whether blocked_attention takes these (already validated) arguments: CPU, query, key and value all
// f32 or all f64 and not cast down by autocast, no dropout, no empty dim, and attn_mask undefined, bool,
// or floating without requires_grad.
bool blocked_attention_applies(const Tensor& query, const Tensor& key, const Tensor& value, const Tensor& attn_mask,
                               double dropout_p);
// Whether scaled_dot_product_attention should run the blocked op here (the backend's choice above).
bool use_blocked_attention(const Tensor& query, const Tensor& key, const Tensor& value, const Tensor& attn_mask,
                           double dropout_p, bool is_causal);

// softmax(q k^T * scale + mask) v with the semantics of nn::functional::scaled_dot_product_attention
// (batch dims broadcast, top-left causal, a row with no key gives zeros), computed in tiles with an
// online softmax: it saves q, k, v, the output and each row's logsumexp, never the [L, S] scores. Its
// backward recomputes the tiles (under create_graph it is written in public ops, so it differentiates
// again). Raises for arguments outside blocked_attention_applies.
Tensor blocked_attention(const Tensor& query, const Tensor& key, const Tensor& value, const Tensor& attn_mask = {},
                         bool is_causal = false, std::optional<double> scale = {});

// ------------------------------------------------------------------------------------ fused CUDA

// Whether fused_attention takes these (already validated) arguments under the thread's backend: query,
// key and value on one CUDA device, all f16 or all bf16 (or cast to one by autocast: attention is a
// lower-precision autocast op), no attn_mask (is_causal only), no dropout, value's head dim equal to
// query's, and a shape cuDNN's fused attention (kernels::cudnn_sdpa_refusal: head dim a multiple of 8 up
// to 128, compute capability 8.0 on) or Ember's flash kernel (kernels::plan_flash_attention: head dim
// 64 or 128) takes.
bool use_fused_attention(const Tensor& query, const Tensor& key, const Tensor& value, const Tensor& attn_mask,
                         double dropout_p);
// softmax(q k^T * scale) v by a fused CUDA kernel: cuDNN's (kernels/cuda/attention_cudnn.cpp; 4-dim
// operands are read in place, the output is [B, L, H, E] memory viewed as [B, H, L, E], as PyTorch's
// flash attention) or Ember's flash kernels (kernels/cuda/attention.cu). Batch dims broadcast, top-left
// causal; saves q, k, v, the output and the f32 row logsumexp, never the [L, S] scores; under
// create_graph the backward is the composed formula in public ops. Where cuDNN refuses the call on the
// device (said once on stderr), Ember's kernel runs it, or, if that does not apply either, the result is
// undefined and the caller runs the composed path. Raises ValueError for calls use_fused_attention refuses.
Tensor fused_attention(const Tensor& query, const Tensor& key, const Tensor& value, bool is_causal = false,
                       std::optional<double> scale = {});
// How many fused_attention forwards ran in this process (either kernel), and how many of them cuDNN's
// (tests check which path was taken).
int64_t fused_attention_calls();
int64_t cudnn_attention_calls();

}  // namespace ember
