// Device parity sweep rows of the reduction family (reductions, var/std, logsumexp, arg-reductions,
// scans, sort/topk, softmax); see sweep.hpp. Sort and topk compare indices too: both devices sort
// stably and send ties to the lower index.
#include "sweep.hpp"

using namespace ember;
using namespace ember::testing::sweep;

namespace {
using V = std::vector<Tensor>;
const std::vector<DType> kInt = {kI64};  // Index/Mask arguments ignore the row dtype: one pass
}  // namespace

TEST_CASE("sweep: reduce") {
  const Shape s{5, 7}, c{4, 5, 6};
  run({
      {"sum dim", {{s}}, [](const V& a) { return V{sum(a[0], {1})}; }},
      {"sum dim 0 keepdim", {{s}}, [](const V& a) { return V{sum(a[0], {0}, true)}; }},
      {"sum dims",
       {{c}},
       [](const V& a) {
         return V{sum(a[0], {0, 2})};
       }},
      {"sum all", {{c}}, [](const V& a) { return V{sum(a[0])}; }, {kF32, kF64, kF16, kBF16}, true, 4.0},
      {"mean dims keepdim",
       {{c}},
       [](const V& a) {
         return V{mean(a[0], {1, 2}, true)};
       }},
      {"mean all", {{s}}, [](const V& a) { return V{mean(a[0])}; }},
      {"prod dim",
       {{s, Fill::Positive}},
       [](const V& a) { return V{prod(a[0], {1})}; },
       {kF32, kF64, kF16, kBF16},
       true,
       4.0},
      {"prod dims",
       {{c, Fill::Unit}},
       [](const V& a) {
         return V{prod(a[0], {0, 1}, true)};
       }},
      {"amax dim", {{s}}, [](const V& a) { return V{amax(a[0], {1})}; }},
      {"amin dims",
       {{c}},
       [](const V& a) {
         return V{amin(a[0], {0, 2}, true)};
       }},
      {"max all", {{s}}, [](const V& a) { return V{max(a[0])}; }},
      {"norm l0", {{s}}, [](const V& a) { return V{norm(a[0], 0.0, {1})}; }},
      {"norm l1", {{s}}, [](const V& a) { return V{norm(a[0], 1.0, {0})}; }},
      {"norm l2",
       {{c}},
       [](const V& a) {
         return V{norm(a[0], 2.0, {1, 2}, true)};
       }},
      {"norm l2 all", {{s}}, [](const V& a) { return V{norm(a[0])}; }},
      {"norm inf", {{s}}, [](const V& a) { return V{norm(a[0], INFINITY, {1})}; }},
      {"norm -inf", {{s}}, [](const V& a) { return V{norm(a[0], -INFINITY, {1})}; }},
      {"norm p=3", {{s}}, [](const V& a) { return V{norm(a[0], 3.0, {1})}; }, {kF32, kF64, kF16, kBF16}, true, 4.0},
      {"var dim", {{s}}, [](const V& a) { return V{var(a[0], {1})}; }, {kF32, kF64, kF16, kBF16}, true, 4.0},
      {"std dims keepdim",
       {{c}},
       [](const V& a) {
         return V{ember::std(a[0], {0, 2}, 0, true)};
       },
       {kF32, kF64, kF16, kBF16},
       true,
       4.0},
      {"var_mean",
       {{s}},
       [](const V& a) {
         auto [v, m] = var_mean(a[0], {0});
         return V{v, m};
       },
       {kF32, kF64, kF16, kBF16},
       true,
       4.0},
      {"logsumexp", {{s}}, [](const V& a) { return V{logsumexp(a[0], {1})}; }},
      {"logsumexp dims",
       {{c}},
       [](const V& a) {
         return V{logsumexp(a[0], {0, 1}, true)};
       }},
      {"argmax dim", {{s}}, [](const V& a) { return V{argmax(a[0], 1)}; }, {kF32, kF64, kF16, kBF16}, false},
      {"argmin flat", {{s}}, [](const V& a) { return V{argmin(a[0])}; }, {kF32, kF64, kF16, kBF16}, false},
      {"max dim",
       {{s}},
       [](const V& a) {
         auto [v, i] = max(a[0], 1);
         return V{v, i};
       }},
      {"min dim 0 keepdim",
       {{s}},
       [](const V& a) {
         auto [v, i] = min(a[0], 0, true);
         return V{v, i};
       }},
      {"cumsum", {{s}}, [](const V& a) { return V{cumsum(a[0], 1)}; }},
      {"cumsum dim 0", {{s}}, [](const V& a) { return V{cumsum(a[0], 0)}; }},
      {"cumprod",
       {{s, Fill::Positive}},
       [](const V& a) { return V{cumprod(a[0], 1)}; },
       {kF32, kF64, kF16, kBF16},
       true,
       4.0},
      {"cumprod dim 0", {{s, Fill::Unit}}, [](const V& a) { return V{cumprod(a[0], 0)}; }},
      {"sort",
       {{s}},
       [](const V& a) {
         auto [v, i] = sort(a[0], 1);
         return V{v, i};
       }},
      {"sort dim 0 descending",
       {{s}},
       [](const V& a) {
         auto [v, i] = sort(a[0], 0, true);
         return V{v, i};
       }},
      {"topk",
       {{s}},
       [](const V& a) {
         auto [v, i] = topk(a[0], 3, 1);
         return V{v, i};
       }},
      {"topk smallest dim 0",
       {{s}},
       [](const V& a) {
         auto [v, i] = topk(a[0], 2, 0, false);
         return V{v, i};
       }},
      {"softmax", {{s}}, [](const V& a) { return V{softmax(a[0], -1)}; }},
      {"softmax dim 0", {{s}}, [](const V& a) { return V{softmax(a[0], 0)}; }},
      {"log_softmax", {{s}}, [](const V& a) { return V{log_softmax(a[0], -1)}; }},
      {"log_softmax dim 1 of 3", {{c}}, [](const V& a) { return V{log_softmax(a[0], 1)}; }},
      // Long lines: the CUDA reductions split them in two passes (N >= 65536), sort takes the global network.
      {"sum long", {{{2, 70000}}}, [](const V& a) { return V{sum(a[0], {1})}; }, {kF32, kF64, kF16, kBF16}, true, 4.0},
      {"argmax long",
       {{{2, 70000}}},
       [](const V& a) {
         return V{argmax(a[0], 1), argmin(a[0], 1)};
       },
       {kF32, kF64, kF16, kBF16},
       false},
      {"softmax long",
       {{{2, 70000}}},
       [](const V& a) {
         return V{softmax(a[0], 1), logsumexp(a[0], {1})};
       },
       {kF32, kF64, kF16, kBF16},
       true,
       4.0},
      {"sort long",
       {{{2, 3000}}},
       [](const V& a) {
         auto [v, i] = sort(a[0], 1, true);
         return V{v, i};
       }},
      // Integer and bool inputs (Index/Mask arguments: one pass whatever the dtype list).
      {"sum i32", {{s, Fill::Index, 9}}, [](const V& a) { return V{sum(a[0].to(kI32), {1})}; }, kInt, false},
      {"prod u8 all", {{s, Fill::Index, 3}}, [](const V& a) { return V{prod(a[0].to(kU8), {0})}; }, kInt, false},
      {"amax i64",
       {{c, Fill::Index, 50}},
       [](const V& a) {
         return V{amax(a[0], {0, 2})};
       },
       kInt,
       false},
      {"all/any bool",
       {{c, Fill::Mask}},
       [](const V& a) {
         return V{all(a[0], {1}), any(a[0], {0, 2}, true), all(a[0]), any(a[0])};
       },
       kInt,
       false},
      {"any i64", {{s, Fill::Index, 2}}, [](const V& a) { return V{any(a[0], {1})}; }, kInt, false},
      {"argmax i64 ties",
       {{s, Fill::Index, 3}},
       [](const V& a) {
         return V{argmax(a[0], 1), argmin(a[0], 0)};
       },
       kInt,
       false},
      {"max bool",
       {{s, Fill::Mask}},
       [](const V& a) {
         auto [v, i] = max(a[0], 1);
         return V{v, i};
       },
       kInt,
       false},
      {"cumsum bool/i32",
       {{s, Fill::Mask}, {s, Fill::Index, 5}},
       [](const V& a) {
         return V{cumsum(a[0], 1), cumprod(a[1].to(kI32), 0)};
       },
       kInt,
       false},
      {"sort i64 ties",
       {{s, Fill::Index, 4}},
       [](const V& a) {
         auto [v, i] = sort(a[0], 1, true);
         auto [tv, ti] = topk(a[0], 2, 0);
         return V{v, i, tv, ti};
       },
       kInt,
       false},
  });
}
