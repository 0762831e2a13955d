// Launch planning of the fused CUDA flash attention: the acceptance rules, grids, shared memory and
// workspaces (see kernels/attention_plan.hpp).
#include "kernels/attention_plan.hpp"

#include <algorithm>
#include <sstream>

namespace ember::kernels {
namespace {

FlashPlan refuse(const std::string& why) {
  FlashPlan p;
  p.reason = why;
  return p;
}

}  // namespace

FlashPlan plan_flash_attention(const FlashProblem& pr, bool deterministic) {
  if (!pr.cuda) return refuse("it runs on CUDA tensors only");
  if (!pr.low_precision) return refuse("it takes float16 or bfloat16 query, key and value of one dtype");
  if (pr.has_mask) return refuse("it takes no attn_mask (is_causal only)");
  if (pr.dropout_p != 0.0) return refuse("it takes no dropout");
  if (pr.e != 64 && pr.e != 128) {
    std::ostringstream os;
    os << "it takes head dims 64 and 128, got " << pr.e;
    return refuse(os.str());
  }
  if (pr.ev != pr.e) {
    std::ostringstream os;
    os << "it needs value's head dim equal to query's, got " << pr.ev << " and " << pr.e;
    return refuse(os.str());
  }
  if (pr.batch_heads < 1 || pr.l < 1 || pr.s < 1) return refuse("it takes no empty dim");
  if (pr.batch_heads > kFlashMaxGridY) {
    std::ostringstream os;
    os << "it takes at most " << kFlashMaxGridY << " batch * heads, got " << pr.batch_heads;
    return refuse(os.str());
  }
  if (!pr.aligned) return refuse("it needs 16-byte aligned tensors");
  const int64_t smem =
      std::max({flash_forward_smem(pr.e).total(), flash_backward_smem(pr.e).total(), flash_dq_smem(pr.e).total()});
  if (smem > pr.max_smem) {
    std::ostringstream os;
    os << "it needs " << smem << " bytes of shared memory per block at head dim " << pr.e << ", the device has "
       << pr.max_smem;
    return refuse(os.str());
  }

  FlashPlan p;
  p.fused = true;
  p.head_dim = static_cast<int>(pr.e);
  p.query_tiles = (pr.l + p.block_q - 1) / p.block_q;
  p.key_tiles = (pr.s + p.block_k - 1) / p.block_k;
  p.grid_y = pr.batch_heads;
  p.forward_smem = flash_forward_smem(pr.e).total();
  p.backward_smem = flash_backward_smem(pr.e).total();
  p.dq_smem = flash_dq_smem(pr.e).total();
  p.delta_bytes = pr.batch_heads * pr.l * 4;
  p.dq_atomic = !deterministic;
  p.dq_accum_bytes = p.dq_atomic ? pr.batch_heads * pr.l * pr.e * 4 : 0;
  return p;
}

std::optional<SdpaOperand> sdpa_operand(std::span<const int64_t> shape, std::span<const int64_t> strides,
                                        uint64_t address, int64_t itemsize) {
  if ((shape.size() != 3 && shape.size() != 4) || strides.size() != shape.size()) return std::nullopt;
  if (address % 16 != 0) return std::nullopt;
  SdpaOperand op;
  const size_t skip = 4 - shape.size();  // 3 dims: h = 1 at index 1
  for (size_t i = 0, j = 0; i < 4; ++i) {
    if (skip == 1 && i == 1) {
      op.dim[i] = 1;  // its stride is set below
      continue;
    }
    op.dim[i] = shape[j];
    op.stride[i] = strides[j];
    ++j;
  }
  if (op.dim[3] > 1 && op.stride[3] != 1) return std::nullopt;
  op.stride[3] = 1;
  for (int i = 2; i >= 0; --i) {
    if (op.dim[i] == 1) {
      op.stride[i] = op.dim[i + 1] * op.stride[i + 1];  // a size-1 dim's stride is free: a tidy one
    } else if (op.stride[i] <= 0 || (op.stride[i] * itemsize) % 16 != 0) {
      return std::nullopt;  // expanded (stride 0) or rows off 16 bytes
    }
  }
  return op;
}

SdpaOperand sdpa_contiguous(int64_t b, int64_t h, int64_t s, int64_t d) {
  return {.dim = {b, h, s, d}, .stride = {h * s * d, s * d, d, 1}};
}

SdpaOperand sdpa_bshd(int64_t b, int64_t h, int64_t s, int64_t d) {
  return {.dim = {b, h, s, d}, .stride = {s * h * d, d, h * d, 1}};
}

std::string cudnn_sdpa_refusal(const CudnnSdpaProblem& p) {
  std::ostringstream os;
  if (!p.available) return "Ember was built without cuDNN's frontend (tools/setup.sh fetches it)";
  if (!p.cuda) return "it runs on CUDA tensors only";
  if (p.sm < 80) {
    os << "it needs compute capability 8.0 or newer, the device has " << p.sm / 10 << "." << p.sm % 10;
    return os.str();
  }
  if (!p.low_precision) return "it takes float16 or bfloat16 query, key and value of one dtype";
  if (p.has_mask) return "it takes no attn_mask (is_causal only)";
  if (p.dropout_p != 0.0) return "it takes no dropout";
  if (p.e < 8 || p.e > kCudnnSdpaMaxHeadDim || p.e % 8 != 0) {
    os << "it takes head dims that are multiples of 8 up to " << kCudnnSdpaMaxHeadDim << ", got " << p.e;
    return os.str();
  }
  if (p.ev != p.e) {
    os << "it needs value's head dim equal to query's, got " << p.ev << " and " << p.e;
    return os.str();
  }
  if (p.batch_heads < 1 || p.l < 1 || p.s < 1) return "it takes no empty dim";
  return {};
}

// The largest layout must fit one block's opt-in shared memory on sm_80/sm_90.
static_assert(flash_backward_smem(128).total() <= kFlashMaxSmem);
static_assert(flash_forward_smem(128).total() <= kFlashMaxSmem);
static_assert(flash_dq_smem(128).total() <= kFlashMaxSmem);

}  // namespace ember::kernels
