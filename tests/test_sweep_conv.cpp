// Device parity sweep rows of the convolution family (conv1d, conv2d, the transposes; forward and the
// input, weight and bias gradients); see sweep.hpp. On CUDA these run through cuDNN.
#include "sweep.hpp"

using namespace ember;
using namespace ember::testing::sweep;

namespace {
using V = std::vector<Tensor>;
}

TEST_CASE("sweep: conv") {
  // Sums of tens of products: twice the elementwise tolerance.
  constexpr double kTol = 2.0;
  std::vector<Row> rows = {
      {"conv1d bias stride 2 padding 1",
       {{{2, 4, 9}}, {{6, 4, 3}}, {{6}}},
       [](const V& a) { return V{conv1d(a[0], a[1], a[2], 2, 1)}; }},
      {"conv1d groups 2 dilation 2",
       {{{2, 4, 10}}, {{4, 2, 3}}},
       [](const V& a) { return V{conv1d(a[0], a[1], {}, 1, 2, 2, 2)}; }},
      {"conv2d bias padding 1",
       {{{2, 3, 7, 6}}, {{4, 3, 3, 3}}, {{4}}},
       [](const V& a) {
         return V{conv2d(a[0], a[1], a[2], {1, 1}, {1, 1})};
       }},
      {"conv2d stride dilation groups",
       {{{2, 4, 9, 8}}, {{6, 2, 3, 2}}},
       [](const V& a) {
         return V{conv2d(a[0], a[1], {}, {2, 1}, {1, 0}, {1, 2}, 2)};
       }},
      {"conv2d depthwise bias",
       {{{2, 4, 6, 6}}, {{4, 1, 3, 3}}, {{4}}},
       [](const V& a) {
         return V{conv2d(a[0], a[1], a[2], {2, 2}, {1, 1}, {1, 1}, 4)};
       }},
      {"conv2d 1x1", {{{3, 5, 4, 4}}, {{2, 5, 1, 1}}}, [](const V& a) { return V{conv2d(a[0], a[1])}; }},
      {"conv2d unbatched",
       {{{3, 6, 5}}, {{2, 3, 3, 3}}, {{2}}},
       [](const V& a) {
         return V{conv2d(a[0], a[1], a[2], {1, 1}, {1, 1})};
       }},
      {"conv_transpose2d bias stride 2 output_padding 1",
       {{{2, 4, 5, 4}}, {{4, 3, 3, 3}}, {{3}}},
       [](const V& a) {
         return V{conv_transpose2d(a[0], a[1], a[2], {2, 2}, {1, 1}, {1, 1})};
       }},
      // Output padding 1 at stride 1 (allowed by dilation 2): the conv of the output is larger than the
      // input, so cuDNN's output gradient is zero-padded.
      {"conv_transpose2d groups 2 dilation 2 output_padding 1",
       {{{2, 4, 5, 5}}, {{4, 3, 3, 3}}, {{6}}},
       [](const V& a) {
         return V{conv_transpose2d(a[0], a[1], a[2], {1, 1}, {0, 0}, {1, 1}, 2, {2, 2})};
       }},
      {"conv_transpose1d bias stride 2 output_padding 1",
       {{{2, 4, 7}}, {{4, 3, 3}}, {{3}}},
       [](const V& a) { return V{conv_transpose1d(a[0], a[1], a[2], 2, 1, 1)}; }},
  };
  for (Row& r : rows) r.tol = kTol;
  run(rows);
}
