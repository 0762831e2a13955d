// Device parity sweep rows of the indexing family (index_select, gather, scatter, index_add, masked ops,
// take_along_dim, one_hot, embedding); see sweep.hpp. Indices are contiguous i64 (vary = false) with
// duplicates; the long rows (k > 32 positions along dim over few lines) reach the CUDA per-element
// (atomic) and, under DeterministicGuard, the sorted scatter kernels.
#include "sweep.hpp"

using namespace ember;
using namespace ember::testing::sweep;

namespace {
using V = std::vector<Tensor>;

Arg index(Shape shape, int64_t hi) { return {std::move(shape), Fill::Index, hi, false, false}; }
Arg mask(Shape shape) { return {std::move(shape), Fill::Mask, 0, false, false}; }
}  // namespace

TEST_CASE("sweep: index") {
  const Shape s{5, 7};
  const std::vector<DType> ints = {kI32, kI64};
  run({
      {"index_select dim 0", {{s}, index({6}, 5)}, [](const V& a) { return V{index_select(a[0], 0, a[1])}; }},
      {"index_select dim 1", {{s}, index({9}, 7)}, [](const V& a) { return V{index_select(a[0], 1, a[1])}; }},
      {"index_select i32 index",
       {{s}, index({4}, 7)},
       [](const V& a) { return V{index_select(a[0], 1, a[1].to(kI32))}; }},
      {"index_select int", {{s}, index({6}, 5)}, [](const V& a) { return V{index_select(a[0], 0, a[1])}; }, ints},
      {"gather dim 1", {{s}, index({5, 4}, 7)}, [](const V& a) { return V{gather(a[0], 1, a[1])}; }},
      {"gather dim 0", {{s}, index({8, 7}, 5)}, [](const V& a) { return V{gather(a[0], 0, a[1].to(kI32))}; }},
      {"gather int", {{s}, index({5, 4}, 7)}, [](const V& a) { return V{gather(a[0], 1, a[1])}; }, ints},
      {"take_along_dim", {{s}, index({5, 3}, 7)}, [](const V& a) { return V{take_along_dim(a[0], a[1], 1)}; }},
      {"scatter", {{s}, index({3, 7}, 5), {{3, 7}}}, [](const V& a) { return V{scatter(a[0], 0, a[1], a[2])}; }},
      {"scatter dim 1", {{s}, index({5, 4}, 7), {{5, 6}}}, [](const V& a) { return V{scatter(a[0], 1, a[1], a[2])}; }},
      {"scatter value", {{s}, index({4, 7}, 5)}, [](const V& a) { return V{scatter(a[0], 0, a[1], Scalar(2.5))}; }},
      {"scatter_add",
       {{s}, index({8, 7}, 5), {{8, 7}}},
       [](const V& a) { return V{scatter_add(a[0], 0, a[1], a[2])}; }},
      {"scatter_add long dim",
       {{{3, 4}}, index({3, 60}, 4), {{3, 60}}},
       [](const V& a) { return V{scatter_add(a[0], 1, a[1], a[2])}; }},
      {"scatter_add int",
       {{s}, index({8, 7}, 5), {{8, 7}}},
       [](const V& a) { return V{scatter_add(a[0], 0, a[1], a[2])}; },
       ints},
      {"index_add", {{s}, index({9}, 5), {{9, 7}}}, [](const V& a) { return V{index_add(a[0], 0, a[1], a[2], 2)}; }},
      {"index_add dim 1",
       {{s}, index({10}, 7), {{5, 10}}},
       [](const V& a) { return V{index_add(a[0], 1, a[1], a[2])}; }},
      {"index_add long",
       {{{4, 3}}, index({100}, 4), {{100, 3}}},
       [](const V& a) { return V{index_add(a[0], 0, a[1], a[2], 0.5)}; }},
      {"index_add int",
       {{s}, index({9}, 5), {{9, 7}}},
       [](const V& a) { return V{index_add(a[0], 0, a[1], a[2])}; },
       ints},
      {"masked_fill", {{s}, mask(s)}, [](const V& a) { return V{masked_fill(a[0], a[1], -1.5)}; }},
      {"masked_fill broadcast mask", {{s}, mask({7})}, [](const V& a) { return V{masked_fill(a[0], a[1], 3)}; }},
      {"masked_fill int", {{s}, mask(s)}, [](const V& a) { return V{masked_fill(a[0], a[1], 4)}; }, ints},
      {"masked_select", {{s}, mask(s)}, [](const V& a) { return V{masked_select(a[0], a[1])}; }},
      {"masked_select broadcast mask", {{s}, mask({7})}, [](const V& a) { return V{masked_select(a[0], a[1])}; }},
      {"masked_select int", {{s}, mask(s)}, [](const V& a) { return V{masked_select(a[0], a[1])}; }, ints},
      {"embedding", {{{10, 6}}, index({4, 5}, 10)}, [](const V& a) { return V{embedding(a[1], a[0])}; }},
      {"embedding padding_idx", {{{10, 6}}, index({4, 5}, 10)}, [](const V& a) { return V{embedding(a[1], a[0], 3)}; }},
      {"embedding many tokens", {{{10, 6}}, index({300}, 10)}, [](const V& a) { return V{embedding(a[1], a[0])}; }},
      {"one_hot", {index({4, 3}, 6)}, [](const V& a) { return V{one_hot(a[0], 6)}; }, {kF32}, false},
  });
}

// The same long scatters with the switch on for forward and backward: CUDA sorts the shared index and
// sums each destination's run in order (no float atomics).
TEST_CASE("sweep: index deterministic") {
  DeterministicGuard det(true);
  run({
      {"index_add long deterministic",
       {{{4, 3}}, index({100}, 4), {{100, 3}}},
       [](const V& a) { return V{index_add(a[0], 0, a[1], a[2], 0.5)}; }},
      {"scatter_add long dim deterministic",
       {{{3, 4}}, index({3, 60}, 4), {{3, 60}}},
       [](const V& a) { return V{scatter_add(a[0], 1, a[1], a[2])}; }},
      {"embedding many tokens deterministic",
       {{{10, 6}}, index({300}, 10)},
       [](const V& a) { return V{embedding(a[1], a[0], -2)}; }},
  });
}
