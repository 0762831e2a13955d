// The CUDA CPU emulator's cub::DeviceRadixSort (tools/cuda_emu): a stable sort on the key bits
// [begin_bit, end_bit), as a radix sort is, queued on `stream` as a one-thread grid.
#pragma once
#include <algorithm>
#include <numeric>
#include <vector>

#include "emu.hpp"

namespace cub {
struct DeviceRadixSort {
  template <class K, class V>
  static cudaError_t SortPairs(void* temp, size_t& bytes, const K* keys_in, K* keys_out, const V* values_in,
                               V* values_out, int64_t n, int begin_bit = 0, int end_bit = sizeof(K) * 8,
                               cudaStream_t stream = 0) {
    if (temp == nullptr) {
      bytes = 16;
      return cudaSuccess;
    }
    ::emu::launch(
        ::emu::LaunchConfig(1, 1, 0, stream), "cub::DeviceRadixSort::SortPairs",
        [](const K* ki, K* ko, const V* vi, V* vo, int64_t count, int b0, int b1) {
          auto bits = [&](K k) {
            using U = std::make_unsigned_t<K>;
            U u = static_cast<U>(k) >> b0;
            const int w = b1 - b0;
            return w >= static_cast<int>(sizeof(U) * 8) ? u : static_cast<U>(u & ((U{1} << w) - 1));
          };
          std::vector<int64_t> order(static_cast<size_t>(count));
          std::iota(order.begin(), order.end(), int64_t{0});
          std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return bits(ki[a]) < bits(ki[b]); });
          std::vector<K> ks(static_cast<size_t>(count));
          std::vector<V> vs(static_cast<size_t>(count));
          for (int64_t k = 0; k < count; ++k) {
            ks[k] = ki[order[k]];
            vs[k] = vi[order[k]];
          }
          std::copy(ks.begin(), ks.end(), ko);
          std::copy(vs.begin(), vs.end(), vo);
        },
        keys_in, keys_out, values_in, values_out, n, begin_bit, end_bit);
    return cudaGetLastError();
  }
};
}  // namespace cub
