// Launch planning of the CUDA cross entropy (kernels/cuda/loss.cu), plain C++ so that CPU tests cover
// it: how many threads share a position's row, how many positions a block takes, the grid, and the
// layout of the one device workspace (error flag, the two sums, the class-weight total, per-block sums).
#pragma once
#include <cstdint>

namespace ember::kernels {

struct CrossEntropyPlan {
  int block = 256;                // threads per block
  int threads_per_position = 32;  // a warp per row, or the whole block for long rows
  int positions_per_block = 8;    // block / threads_per_position
  int64_t grid = 1;               // forward blocks; a grid-stride loop covers the rest of the positions
  int64_t backward_grid = 1;      // blocks of the elementwise backward (grid-stride over N * C * K)
  int64_t workspace_slots = 4;    // 8-byte slots of the workspace (see the kWs* offsets)
  bool backward_index32 = true;   // the backward's index math in 32 bits (nothing wraps)
};

// Workspace slots (8 bytes each): the smallest bad flat target index (all ones when none), the sum of the
// losses and of the target weights (doubles), the class-weight total W (double), then one
// {loss sum, weight sum} pair of doubles per forward block.
inline constexpr int64_t kWsBadIndex = 0;
inline constexpr int64_t kWsLossSum = 1;
inline constexpr int64_t kWsWeightSum = 2;
inline constexpr int64_t kWsWeightTotal = 3;
inline constexpr int64_t kWsPartials = 4;

inline constexpr int64_t kCeMaxGrid = 2048;          // forward blocks (each adds one partial pair)
inline constexpr int64_t kCeMaxBackwardGrid = 8192;  // backward blocks
inline constexpr int64_t kCeBlockRowFrom = 1024;     // classes from which a whole block shares a row

// positions = N * K rows of `classes` values (strided by K, which changes addresses, not work); the
// backward covers positions * classes gradient elements.
CrossEntropyPlan plan_cross_entropy(int64_t positions, int64_t classes);

}  // namespace ember::kernels
