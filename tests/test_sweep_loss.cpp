// Device parity sweep rows of the loss family: cross_entropy over class indices ([N, C] and [N, C, K]
// logits; label smoothing, ignore_index, class weights; reductions none/mean/sum; a row past 1024 classes
// takes the CUDA kernel's block-per-row variant), nll_loss, mse, l1, smooth_l1, binary_cross_entropy and
// binary_cross_entropy_with_logits, forward and backward; see sweep.hpp.
#include "sweep.hpp"

using namespace ember;
using namespace ember::testing::sweep;
namespace F = ember::nn::functional;

namespace {
using V = std::vector<Tensor>;

// Class indices and class weights: contiguous, no grad.
Arg index(Shape shape, int64_t hi) { return {std::move(shape), Fill::Index, hi, false, false}; }
Arg weight(int64_t c) { return {{c}, Fill::Positive, 0, false, false}; }
}  // namespace

TEST_CASE("sweep: loss cross_entropy") {
  const Shape x2{6, 5}, t2{6}, x3{3, 5, 4}, t3{3, 4};
  run({
      {"cross_entropy [N, C] mean", {{x2}, index(t2, 5)}, [](const V& a) { return V{F::cross_entropy(a[0], a[1])}; }},
      {"cross_entropy [N, C] none",
       {{x2}, index(t2, 5)},
       [](const V& a) { return V{F::cross_entropy(a[0], a[1], {}, -100, "none")}; }},
      {"cross_entropy [N, C] sum",
       {{x2}, index(t2, 5)},
       [](const V& a) { return V{F::cross_entropy(a[0], a[1], {}, -100, "sum")}; }},
      {"cross_entropy [N, C, K] mean",
       {{x3}, index(t3, 5)},
       [](const V& a) { return V{F::cross_entropy(a[0], a[1])}; }},
      {"cross_entropy [N, C, K] none",
       {{x3}, index(t3, 5)},
       [](const V& a) { return V{F::cross_entropy(a[0], a[1], {}, -100, "none")}; }},
      {"cross_entropy smoothing",
       {{x2}, index(t2, 5)},
       [](const V& a) { return V{F::cross_entropy(a[0], a[1], {}, -100, "mean", 0.2)}; }},
      {"cross_entropy ignore_index",  // class 1 is ignored wherever it is drawn
       {{x3}, index(t3, 5)},
       [](const V& a) { return V{F::cross_entropy(a[0], a[1], {}, 1, "mean")}; }},
      {"cross_entropy weights",
       {{x2}, index(t2, 5), weight(5)},
       [](const V& a) { return V{F::cross_entropy(a[0], a[1], a[2], -100, "mean")}; }},
      {"cross_entropy weights smoothing ignore [N, C, K] sum",
       {{x3}, index(t3, 5), weight(5)},
       [](const V& a) { return V{F::cross_entropy(a[0], a[1], a[2], 2, "sum", 0.1)}; }},
      {"cross_entropy weights smoothing none",
       {{x2}, index(t2, 5), weight(5)},
       [](const V& a) { return V{F::cross_entropy(a[0], a[1], a[2], -100, "none", 0.3)}; }},
      {"cross_entropy 1100 classes",  // past 1024 classes: a block per row on CUDA
       {{{3, 1100}}, index({3}, 1100)},
       [](const V& a) { return V{F::cross_entropy(a[0], a[1], {}, -100, "mean", 0.1)}; },
       {kF32, kF64},
       true,
       4.0},
  });
}

TEST_CASE("sweep: loss nll and regression") {
  const Shape s{6, 5};
  run({
      {"nll_loss mean", {{s}, index({6}, 5)}, [](const V& a) { return V{F::nll_loss(a[0], a[1])}; }},
      {"nll_loss weights ignore none",
       {{{3, 5, 4}}, index({3, 4}, 5), weight(5)},
       [](const V& a) { return V{F::nll_loss(a[0], a[1], a[2], 1, "none")}; }},
      {"nll_loss weights sum",
       {{s}, index({6}, 5), weight(5)},
       [](const V& a) { return V{F::nll_loss(a[0], a[1], a[2], -100, "sum")}; }},
      {"mse_loss mean", {{s}, {s}}, [](const V& a) { return V{F::mse_loss(a[0], a[1])}; }},
      {"mse_loss none", {{s}, {s}}, [](const V& a) { return V{F::mse_loss(a[0], a[1], "none")}; }},
      {"l1_loss sum", {{s}, {s}}, [](const V& a) { return V{F::l1_loss(a[0], a[1], "sum")}; }},
      {"smooth_l1_loss", {{s}, {s}}, [](const V& a) { return V{F::smooth_l1_loss(a[0], a[1], "mean", 1.5)}; }},
  });
}

TEST_CASE("sweep: loss binary cross entropy") {
  const Shape s{6, 5};
  run({
      {"binary_cross_entropy",  // probabilities from sigmoid of the drawn values
       {{s}, {s}},
       [](const V& a) { return V{F::binary_cross_entropy(sigmoid(a[0]), sigmoid(a[1]))}; }},
      {"binary_cross_entropy weight none",
       {{s}, {s}, {{5}, Fill::Positive, 0, false}},
       [](const V& a) { return V{F::binary_cross_entropy(sigmoid(a[0]), sigmoid(a[1]), a[2], "none")}; }},
      {"bce_with_logits",
       {{s}, {s}},
       [](const V& a) { return V{F::binary_cross_entropy_with_logits(a[0], sigmoid(a[1]))}; }},
      {"bce_with_logits weight pos_weight sum",
       {{s}, {s}, {{5}, Fill::Positive, 0, false}, {{5}, Fill::Positive, 0, false}},
       [](const V& a) { return V{F::binary_cross_entropy_with_logits(a[0], sigmoid(a[1]), a[2], "sum", a[3])}; }},
  });
}
