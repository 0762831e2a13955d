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

// The largest layout must fit one block's opt-in shared memory on sm_80/sm_90.
static_assert(flash_backward_smem(128).total() <= kFlashMaxSmem);
static_assert(flash_forward_smem(128).total() <= kFlashMaxSmem);
static_assert(flash_dq_smem(128).total() <= kFlashMaxSmem);

}  // namespace ember::kernels
