// Multi-tensor planning; see optim_plan.hpp.
#include "kernels/optim_plan.hpp"

#include "core/error.hpp"

namespace ember::kernels {

std::vector<MtaLaunch> plan_multi_tensor(const std::vector<int64_t>& numels, int max_tensors, int max_blocks,
                                         int64_t chunk) {
  EMBER_CHECK(max_tensors > 0 && max_blocks > 0 && chunk > 0, ValueError, "[multi_tensor] bad limits ", max_tensors,
              ", ", max_blocks, ", ", chunk);
  std::vector<MtaLaunch> out;
  MtaLaunch cur;
  for (size_t j = 0; j < numels.size(); ++j) {
    const int64_t n = numels[j];
    if (n <= 0) continue;
    cur.tensors.push_back(static_cast<int64_t>(j));
    const int64_t chunks = (n + chunk - 1) / chunk;
    EMBER_CHECK(chunks <= INT32_MAX, ValueError, "[multi_tensor] tensor of ", n, " elements has too many chunks");
    for (int64_t c = 0; c < chunks; ++c) {
      cur.blocks.push_back({static_cast<int>(cur.tensors.size()) - 1, c});
      const bool last = c == chunks - 1;
      const bool blocks_full = static_cast<int>(cur.blocks.size()) == max_blocks;
      const bool tensors_full = static_cast<int>(cur.tensors.size()) == max_tensors;
      if (blocks_full || (tensors_full && last)) {
        out.push_back(std::move(cur));
        cur = MtaLaunch{};
        if (!last) cur.tensors.push_back(static_cast<int64_t>(j));  // the rest of this tensor goes on
      }
    }
  }
  if (!cur.blocks.empty()) out.push_back(std::move(cur));
  return out;
}

}  // namespace ember::kernels
