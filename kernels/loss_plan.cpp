// Launch planning of the CUDA cross entropy; see loss_plan.hpp.
#include "kernels/loss_plan.hpp"

#include <algorithm>

namespace ember::kernels {

CrossEntropyPlan plan_cross_entropy(int64_t positions, int64_t classes) {
  CrossEntropyPlan p;
  p.threads_per_position = classes >= kCeBlockRowFrom ? p.block : 32;
  p.positions_per_block = p.block / p.threads_per_position;
  const int64_t ppb = p.positions_per_block;
  p.grid = std::clamp<int64_t>((positions + ppb - 1) / ppb, 1, kCeMaxGrid);
  const int64_t elements = positions * classes;
  const int64_t per_block = int64_t{p.block} * 4;  // four elements per thread per grid-stride pass
  p.backward_grid = std::clamp<int64_t>((elements + per_block - 1) / per_block, 1, kCeMaxBackwardGrid);
  p.workspace_slots = kWsPartials + 2 * p.grid;
  p.backward_index32 = elements < (int64_t{1} << 31);
  return p;
}

}  // namespace ember::kernels
