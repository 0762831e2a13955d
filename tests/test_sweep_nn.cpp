// Device parity sweep rows of the pooling and normalisation family (max_pool2d with indices, avg_pool2d,
// adaptive_avg_pool2d, layer_norm, rms_norm, group_norm, batch_norm in training and evaluation with
// running statistics; forward and backward); see sweep.hpp. Shapes reach both CUDA row variants (a
// warp per row, a block per row past 1024 columns) and batch_norm's multi-chunk channel reduction.
#include "sweep.hpp"

using namespace ember;
using namespace ember::testing::sweep;
namespace F = ember::nn::functional;

namespace {
using V = std::vector<Tensor>;

// Running statistics: contiguous, no grad (batch_norm updates them in place).
Arg stat(Shape shape, Fill fill) { return {std::move(shape), fill, 0, false, false}; }

// run(), after checking that every row runs on the CPU in each of its dtypes (a row that threw on
// both devices would compare nothing).
void run_checked(const std::vector<Row>& rows) {
  for (const Row& row : rows)
    for (DType dt : row.dtypes) {
      std::vector<Tensor> vals;
      for (const Arg& a : row.args) vals.push_back(testing::sweep::detail::values(a));
      const testing::sweep::detail::Result r =
          testing::sweep::detail::evaluate(row, vals, dt, Layout::Contiguous, kCPU);
      CAPTURE(row.name);
      CAPTURE(dt);
      CHECK_MESSAGE(r.error.empty(), r.error);
    }
  run(rows);
}
}  // namespace

TEST_CASE("sweep: nn pooling") {
  const Shape x{2, 3, 9, 8};
  run_checked({
      {"max_pool2d k3 s2 p1",
       {{x}},
       [](const V& a) {
         auto [out, idx] = F::max_pool2d_with_indices(a[0], {3, 3}, std::array<int64_t, 2>{2, 2}, {1, 1});
         return V{out, idx};
       }},
      {"max_pool2d dilation ceil",
       {{x}},
       [](const V& a) {
         auto [out, idx] = F::max_pool2d_with_indices(a[0], {3, 2}, std::array<int64_t, 2>{2, 1}, {1, 1}, {1, 2}, true);
         return V{out, idx};
       }},
      {"max_pool2d unbatched overlapping",
       {{{3, 7, 6}}},
       [](const V& a) {
         return V{F::max_pool2d(a[0], {3, 3}, std::array<int64_t, 2>{1, 1})};
       }},
      {"max_pool2d int ties",
       {{x}},
       [](const V& a) {
         auto [out, idx] = F::max_pool2d_with_indices(a[0], {2, 3}, std::array<int64_t, 2>{1, 2}, {1, 1});
         return V{out, idx};
       },
       {kI32, kI64},
       false},
      {"avg_pool2d count_include_pad",
       {{x}},
       [](const V& a) {
         return V{F::avg_pool2d(a[0], {3, 3}, std::array<int64_t, 2>{2, 2}, {1, 1}, false, true)};
       }},
      {"avg_pool2d exclude pad ceil",
       {{x}},
       [](const V& a) {
         return V{F::avg_pool2d(a[0], {3, 2}, std::array<int64_t, 2>{2, 1}, {1, 1}, true, false)};
       }},
      {"avg_pool2d default stride",
       {{x}},
       [](const V& a) {
         return V{F::avg_pool2d(a[0], {2, 2})};
       }},
      {"adaptive_avg_pool2d divisible",
       {{x}},
       [](const V& a) {
         return V{F::adaptive_avg_pool2d(a[0], {3, 4})};
       }},
      {"adaptive_avg_pool2d non-divisible",
       {{x}},
       [](const V& a) {
         return V{F::adaptive_avg_pool2d(a[0], {4, 5})};
       }},
      {"adaptive_avg_pool2d upsampling",
       {{{2, 2, 3, 5}}},
       [](const V& a) {
         return V{F::adaptive_avg_pool2d(a[0], {7, 6})};
       }},
      {"adaptive_avg_pool2d global",
       {{x}},
       [](const V& a) {
         return V{F::adaptive_avg_pool2d(a[0], {1, 1})};
       }},
  });
}

TEST_CASE("sweep: nn normalisation") {
  // Row statistics and their backward sums: twice the elementwise tolerance.
  constexpr double kTol = 2.0;
  const std::vector<DType> floats = {kF32, kF64, kF16, kBF16};
  run_checked({
      {"layer_norm affine",
       {{{6, 10}}, {{10}}, {{10}}},
       [](const V& a) { return V{F::layer_norm(a[0], {10}, a[1], a[2])}; },
       floats,
       true,
       kTol},
      {"layer_norm affine many rows",  // the parameter gradients' CUDA reduction: 9 row chunks, 2 column tiles
       {{{300, 37}}, {{37}}, {{37}}},
       [](const V& a) { return V{F::layer_norm(a[0], {37}, a[1], a[2])}; },
       floats,
       true,
       kTol},
      {"layer_norm plain two dims",
       {{{3, 4, 5, 6}}},
       [](const V& a) {
         return V{F::layer_norm(a[0], {5, 6})};
       },
       floats,
       true,
       kTol},
      {"layer_norm weight only long rows",
       {{{3, 1500}}, {{1500}}},
       [](const V& a) { return V{F::layer_norm(a[0], {1500}, a[1])}; },
       floats,
       true,
       kTol},
      {"rms_norm weight",
       {{{5, 12}}, {{12}}},
       [](const V& a) { return V{F::rms_norm(a[0], {12}, a[1])}; },
       floats,
       true,
       kTol},
      {"rms_norm plain long rows",
       {{{2, 1300}}},
       [](const V& a) { return V{F::rms_norm(a[0], {1300}, {}, 1e-6)}; },
       floats,
       true,
       kTol},
      {"group_norm affine",
       {{{2, 6, 4, 5}}, {{6}}, {{6}}},
       [](const V& a) { return V{F::group_norm(a[0], 3, a[1], a[2])}; },
       floats,
       true,
       kTol},
      {"group_norm plain", {{{3, 4, 7}}}, [](const V& a) { return V{F::group_norm(a[0], 2)}; }, floats, true, kTol},
      {"batch_norm training running stats",
       {{{4, 3, 5, 6}}, {{3}}, {{3}}, stat({3}, Fill::Normal), stat({3}, Fill::Positive)},
       [](const V& a) {
         Tensor y = F::batch_norm(a[0], a[3], a[4], a[1], a[2], true, 0.1, 1e-5);
         return V{y, a[3], a[4]};
       },
       floats,
       true,
       kTol},
      {"batch_norm training no affine 2-d",
       {{{8, 5}}},
       [](const V& a) { return V{F::batch_norm(a[0], {}, {}, {}, {}, true)}; },
       floats,
       true,
       kTol},
      {"batch_norm training many chunks",
       {{{64, 2, 16, 32}}, {{2}}, {{2}}},
       [](const V& a) { return V{F::batch_norm(a[0], {}, {}, a[1], a[2], true)}; },
       floats,
       true,
       kTol},
      {"batch_norm eval",
       {{{4, 3, 5, 6}}, {{3}}, {{3}}, stat({3}, Fill::Normal), stat({3}, Fill::Positive)},
       [](const V& a) { return V{F::batch_norm(a[0], a[3], a[4], a[1], a[2], false)}; },
       floats,
       true,
       kTol},
  });
}
