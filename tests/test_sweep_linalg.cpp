// Device parity sweep rows of the linalg family (matmul in its 1-D/2-D/batched forms, mm, bmm, addmm,
// baddbmm, dot, outer, linear with and without bias); see sweep.hpp.
#include "nn/functional.hpp"
#include "sweep.hpp"

using namespace ember;
using namespace ember::testing::sweep;

namespace {
using V = std::vector<Tensor>;
}

TEST_CASE("sweep: linalg") {
  run({
      {"matmul 2-D", {{{4, 6}}, {{6, 5}}}, [](const V& a) { return V{matmul(a[0], a[1])}; }},
      {"matmul batched, b broadcast", {{{3, 4, 6}}, {{6, 5}}}, [](const V& a) { return V{matmul(a[0], a[1])}; }},
      {"matmul batched, a broadcast", {{{4, 6}}, {{2, 3, 6, 5}}}, [](const V& a) { return V{matmul(a[0], a[1])}; }},
      {"matmul batch dims broadcast", {{{2, 1, 4, 6}}, {{3, 6, 5}}}, [](const V& a) { return V{matmul(a[0], a[1])}; }},
      {"matmul vector-matrix", {{{6}}, {{6, 5}}}, [](const V& a) { return V{matmul(a[0], a[1])}; }},
      {"matmul matrix-vector", {{{4, 6}}, {{6}}}, [](const V& a) { return V{matmul(a[0], a[1])}; }},
      {"matmul batched-vector", {{{3, 4, 6}}, {{6}}}, [](const V& a) { return V{matmul(a[0], a[1])}; }},
      {"matmul vector-vector", {{{7}}, {{7}}}, [](const V& a) { return V{matmul(a[0], a[1])}; }},
      {"mm", {{{4, 6}}, {{6, 5}}}, [](const V& a) { return V{mm(a[0], a[1])}; }},
      {"mm 1-row", {{{1, 6}}, {{6, 5}}}, [](const V& a) { return V{mm(a[0], a[1])}; }},
      {"bmm", {{{3, 4, 6}}, {{3, 6, 5}}}, [](const V& a) { return V{bmm(a[0], a[1])}; }},
      {"addmm alpha beta",
       {{{4, 5}}, {{4, 6}}, {{6, 5}}},
       [](const V& a) { return V{addmm(a[0], a[1], a[2], 0.5, 2.0)}; }},
      {"addmm bias", {{{5}}, {{4, 6}}, {{6, 5}}}, [](const V& a) { return V{addmm(a[0], a[1], a[2])}; }},
      {"addmm bias alpha",
       {{{1, 5}}, {{4, 6}}, {{6, 5}}},
       [](const V& a) { return V{addmm(a[0], a[1], a[2], 1, -1.5)}; }},
      {"baddbmm",
       {{{3, 4, 5}}, {{3, 4, 6}}, {{3, 6, 5}}},
       [](const V& a) { return V{baddbmm(a[0], a[1], a[2], 0.5, 2.0)}; }},
      {"baddbmm bias", {{{5}}, {{3, 4, 6}}, {{3, 6, 5}}}, [](const V& a) { return V{baddbmm(a[0], a[1], a[2])}; }},
      {"dot", {{{7}}, {{7}}}, [](const V& a) { return V{dot(a[0], a[1])}; }},
      {"dot long",
       {{{300}}, {{300}}},
       [](const V& a) { return V{dot(a[0], a[1])}; },
       {kF32, kF64, kF16, kBF16},
       true,
       4.0},
      {"outer", {{{4}}, {{5}}}, [](const V& a) { return V{outer(a[0], a[1])}; }},
      {"linear", {{{4, 6}}, {{5, 6}}}, [](const V& a) { return V{nn::functional::linear(a[0], a[1])}; }},
      {"linear bias",
       {{{4, 6}}, {{5, 6}}, {{5}}},
       [](const V& a) { return V{nn::functional::linear(a[0], a[1], a[2])}; }},
      {"linear bias 3-D input",
       {{{2, 4, 6}}, {{5, 6}}, {{5}}},
       [](const V& a) { return V{nn::functional::linear(a[0], a[1], a[2])}; }},
      {"linear bias 1-D input",
       {{{6}}, {{5, 6}}, {{5}}},
       [](const V& a) { return V{nn::functional::linear(a[0], a[1], a[2])}; }},
      {"int matmul",
       {{{4, 6}, Fill::Index, 7}, {{6, 5}, Fill::Index, 7}},
       [](const V& a) { return V{matmul(a[0], a[1])}; },
       {kI64}},
      {"int dot",
       {{{9}, Fill::Index, 7}, {{9}, Fill::Index, 7}},
       [](const V& a) { return V{dot(a[0], a[1])}; },
       {kI64}},
  });
}
