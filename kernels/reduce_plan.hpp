// Device-independent planning of the reduction family, compiled in every build and unit tested on the
// CPU (tests/test_plan_reduce.cpp): the kept/reduced split of a tensor (ReducePlan, shared by the CPU
// engine and the CUDA kernels), the offset arithmetic the CUDA kernels do per output and element, the
// CUDA launch geometry (row vs column kernel, threads per output, split of long reductions into two
// passes) and the per-row bitonic sort network.
#pragma once
#include <cstdint>

#include "core/half.hpp"
#include "core/tensor.hpp"

namespace ember::kernels {

inline constexpr int kReduceMaxDims = 16;

struct ReducePlan {
  int nk = 0, nr = 0;
  int64_t ksize[kReduceMaxDims], kin[kReduceMaxDims], kout[kReduceMaxDims];  // kept dims, outer to inner
                                                                             // (in: bytes, out: elements)
  int64_t rsize[kReduceMaxDims], rin[kReduceMaxDims];                        // reduced dims, outer to inner (bytes)
  int64_t M = 1, N = 1;                                                      // outputs; reduced elements per output
  bool outer = false;  // the innermost input dim is kept: accumulate whole output rows
  const char* in = nullptr;
};

// `out` has in's rank with size 1 on the reduced dims (a dim of size 1 in `in` is never "reduced").
ReducePlan make_reduce_plan(const Tensor& out, const Tensor& in);

// Output o (flat over the kept dims, innermost fastest): its input byte offset and output element offset.
EMBER_HD void kept_offsets(const ReducePlan& p, int64_t o, int64_t& in_off, int64_t& out_off) {
  in_off = 0;
  out_off = 0;
  for (int d = p.nk - 1; d >= 0; --d) {
    const int64_t q = o / p.ksize[d], i = o - q * p.ksize[d];
    in_off += i * p.kin[d];
    out_off += i * p.kout[d];
    o = q;
  }
}
// Reduced element r (flat over the reduced dims, innermost fastest): its input byte offset.
EMBER_HD int64_t reduced_offset(const ReducePlan& p, int64_t r) {
  if (p.nr == 1) return r * p.rin[0];
  int64_t off = 0;
  for (int d = p.nr - 1; d >= 0; --d) {
    const int64_t q = r / p.rsize[d];
    off += (r - q * p.rsize[d]) * p.rin[d];
    r = q;
  }
  return off;
}

// ---------------------------------------------------------------- CUDA reduction launch geometry
// A block holds `outs` outputs of `lanes` threads each (lanes a power of two). Row kernel (the reduced
// elements are innermost): the lanes of an output are adjacent threads, reading adjacent elements.
// Column kernel (a kept dim is innermost): the outputs are adjacent threads, reading adjacent elements.
// Blocks walk the outputs grid-stride along x; along y the reduced range is cut into `splits` chunks
// whose partial states go to a workspace that a second pass combines in chunk order.
struct ReduceLaunch {
  bool col = false;
  int lanes = 1, outs = 1;
  int64_t splits = 1, chunk = 1;  // chunk * splits >= N; every chunk non-empty
  int64_t grid_x = 1;             // blocks along the outputs (grid-stride beyond)
  int64_t smem = 0;               // dynamic shared bytes: one state per thread
  int64_t workspace = 0;          // bytes of partial states (splits * M states), 0 without a split

  int threads() const { return lanes * outs; }
  EMBER_HD int lane_of(int tid) const { return col ? tid / outs : tid % lanes; }
  EMBER_HD int slot_of(int tid) const { return col ? tid % outs : tid / lanes; }
  // The shared-memory index of (slot, lane): the lanes of one output are contiguous.
  EMBER_HD int smem_index(int slot, int lane) const { return slot * lanes + lane; }
};

inline constexpr int kReduceMaxThreads = 512;           // threads() never exceeds it (the kernel's launch bound)
inline constexpr int64_t kMaxGridX = int64_t{1} << 20;  // grid-stride beyond (2^31 - 1 is the limit)
inline constexpr int64_t kMaxSplits = 1024;             // grid y is at most 65535

// max_splits = 1 forbids the two-pass split (ops whose combine is not needed across blocks).
ReduceLaunch plan_reduce_launch(int64_t M, int64_t N, bool col, int64_t state_size, int sm_count,
                                int64_t max_splits = kMaxSplits);

// ---------------------------------------------------------------- per-row bitonic sort
// Each row of n elements is padded to P = 2^k slots (padding sorts last) and sorted by the bitonic
// network: for k = 2, 4, ..., P and j = k/2, ..., 1, slot i and i ^ j compare-exchange, ascending when
// (i & k) == 0. Keys compare by (key, index), a total order, so the network gives the stable order.
// Rows with P <= kSortSharedMax run the whole network in shared memory; longer rows run one launch
// per (k, j) step on a global workspace.
inline constexpr int64_t kSortSharedMax = 2048;

struct SortLaunch {
  int64_t P = 1;          // padded row length
  bool shared = true;     // one block per row, the network in shared memory
  int threads = 1;        // shared: P / 2 (at least 1); global: kernel threads per block
  int64_t smem = 0;       // shared: P * (key + index) bytes
  int64_t workspace = 0;  // bytes: rows * P * (key + index)
  int64_t steps = 0;      // number of (k, j) steps of the network
};
SortLaunch plan_sort_launch(int64_t rows, int64_t n, int64_t key_size);

// Compare-exchange t (of P / 2) at step (k, j): slots i and i + j, ascending when (i & k) == 0.
EMBER_HD int64_t bitonic_slot(int64_t t, int64_t j) { return 2 * j * (t / j) + t % j; }
EMBER_HD bool bitonic_ascending(int64_t i, int64_t k) { return (i & k) == 0; }

}  // namespace ember::kernels
