// The CUDA CPU emulator's cub::DeviceScan (tools/cuda_emu): the same two-call protocol (a null
// temp_storage asks for its size), the scan queued on `stream` as a one-thread grid.
#pragma once
#include "emu.hpp"

namespace cub {
struct DeviceScan {
  template <class In, class Out>
  static cudaError_t ExclusiveSum(void* temp, size_t& bytes, In in, Out out, int64_t n, cudaStream_t stream = 0) {
    if (temp == nullptr) {
      bytes = 16;
      return cudaSuccess;
    }
    ::emu::launch(
        ::emu::LaunchConfig(1, 1, 0, stream), "cub::DeviceScan::ExclusiveSum",
        [](In i, Out o, int64_t count) {
          std::remove_cvref_t<decltype(*o)> sum{};
          for (int64_t k = 0; k < count; ++k) {
            auto v = i[k];
            o[k] = sum;
            sum = sum + v;
          }
        },
        in, out, n);
    return cudaGetLastError();
  }
};
}  // namespace cub
