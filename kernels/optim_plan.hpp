// Multi-tensor planning of the CUDA optimizer steps and the gradient-norm reduction (kernels/cuda/optim.cu),
// plain C++ so that CPU tests cover it. One launch covers many tensors: every block takes one chunk of one
// tensor, named in the launch's argument struct (tensor pointers, sizes, and per block the tensor slot
// and chunk), which is passed by value and so must fit CUDA's 4 KiB kernel-parameter limit.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ember::kernels {

inline constexpr int64_t kMtaChunk = 65536;  // elements per block
inline constexpr int kMtaMaxBlocks = 320;    // chunks per launch
inline constexpr int kMtaParamLimit = 4096;  // CUDA's kernel-parameter bytes
inline constexpr int kMtaScalarRoom = 256;   // bytes kept for the step's scalars beside the struct

// Tensors per launch by depth (operands per tensor: param, grad, states), as PyTorch's multi_tensor_apply.
constexpr int mta_max_tensors(int depth) {
  return depth <= 1 ? 110 : depth == 2 ? 64 : depth == 3 ? 48 : depth == 4 ? 36 : 30;
}

// The kernel argument: ptrs[k][s] is operand k of tensor slot s.
template <int Depth>
struct MtaArgs {
  static constexpr int kMaxTensors = mta_max_tensors(Depth);
  void* ptrs[Depth][kMaxTensors];
  int64_t numel[kMaxTensors];
  uint8_t block_tensor[kMtaMaxBlocks];  // slot of each block's tensor
  int32_t block_chunk[kMtaMaxBlocks];   // chunk of that tensor: elements [chunk * kMtaChunk, +kMtaChunk)
};
static_assert(sizeof(MtaArgs<1>) + kMtaScalarRoom <= kMtaParamLimit);
static_assert(sizeof(MtaArgs<2>) + kMtaScalarRoom <= kMtaParamLimit);
static_assert(sizeof(MtaArgs<3>) + kMtaScalarRoom <= kMtaParamLimit);
static_assert(sizeof(MtaArgs<4>) + kMtaScalarRoom <= kMtaParamLimit);
static_assert(sizeof(MtaArgs<5>) + kMtaScalarRoom <= kMtaParamLimit);
static_assert(mta_max_tensors(1) <= 256, "block_tensor is one byte");

struct MtaBlock {
  int slot;       // index into MtaLaunch::tensors
  int64_t chunk;  // chunk of that tensor
};
struct MtaLaunch {
  std::vector<int64_t> tensors;  // indices into the caller's list; a tensor cut between launches is in both
  std::vector<MtaBlock> blocks;
};

// Launches covering every element of every tensor exactly once: chunks never cross a tensor, a launch
// holds at most max_tensors tensors and max_blocks blocks, and tensors of size 0 are skipped.
std::vector<MtaLaunch> plan_multi_tensor(const std::vector<int64_t>& numels, int max_tensors,
                                         int max_blocks = kMtaMaxBlocks, int64_t chunk = kMtaChunk);

// Fills a launch's argument struct: ptrs[k][j] is operand k of the caller's tensor j (may be null).
template <int Depth>
MtaArgs<Depth> mta_args(const MtaLaunch& l, const std::vector<int64_t>& numels,
                        const std::vector<void*> (&ptrs)[Depth]) {
  MtaArgs<Depth> a{};
  for (std::size_t s = 0; s < l.tensors.size(); ++s) {
    const auto j = static_cast<std::size_t>(l.tensors[s]);
    a.numel[s] = numels[j];
    for (int k = 0; k < Depth; ++k) a.ptrs[k][s] = ptrs[k].empty() ? nullptr : ptrs[k][j];
  }
  for (std::size_t b = 0; b < l.blocks.size(); ++b) {
    a.block_tensor[b] = static_cast<uint8_t>(l.blocks[b].slot);
    a.block_chunk[b] = static_cast<int32_t>(l.blocks[b].chunk);
  }
  return a;
}

}  // namespace ember::kernels
