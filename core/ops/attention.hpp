// The blocked (memory-efficient, flash-style) scaled dot-product attention op, and the switch that
// nn::functional::scaled_dot_product_attention consults to pick it over the composed matmul/softmax
// path (which stays as the reference and takes everything the blocked op does not).
#pragma once
#include <cstdint>
#include <optional>

#include "core/tensor.hpp"

namespace ember {

// Which implementation scaled_dot_product_attention runs on this thread (as torch.nn.attention.sdpa_kernel).
// Auto: the blocked op where it applies and the score matrix is large enough (below), else the composed
// one. Math: always the composed one. Blocked: the blocked op wherever it applies (else the composed one).
// On CUDA, Auto and Blocked take the fused kernel (fused_attention below) wherever it applies.
enum class SdpaBackend : uint8_t { Auto, Math, Blocked };
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

// Whether fused_attention takes these (already validated) arguments: query, key and value on one CUDA
// device, all f16 or all bf16 (or cast to one by autocast: attention is a lower-precision autocast op),
// no attn_mask (is_causal only), no dropout, and a shape kernels::plan_flash_attention accepts (head dim
// 64 or 128, value's head dim equal, batch * heads <= 65535). The Math backend turns it off.
bool use_fused_attention(const Tensor& query, const Tensor& key, const Tensor& value, const Tensor& attn_mask,
                         double dropout_p);
// softmax(q k^T * scale) v by the fused CUDA flash-attention kernels (kernels/cuda/attention.cu): batch
// dims broadcast, top-left causal; saves q, k, v, the output and the f32 row logsumexp, never the [L, S]
// scores; under create_graph the backward is the composed formula in public ops. Raises ValueError for
// calls use_fused_attention refuses.
Tensor fused_attention(const Tensor& query, const Tensor& key, const Tensor& value, bool is_causal = false,
                       std::optional<double> scale = {});
// How many fused_attention forwards ran in this process (tests check that the fused path was taken).
int64_t fused_attention_calls();

}  // namespace ember
