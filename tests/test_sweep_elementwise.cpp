// Device parity sweep rows of the elementwise family (unary, binary, ternary, casts); see sweep.hpp.
#include "sweep.hpp"

using namespace ember;
using namespace ember::testing::sweep;

namespace {
using V = std::vector<Tensor>;
}

TEST_CASE("sweep: elementwise") {
  const Shape s{5, 7};
  run({
      {"exp", {{s}}, [](const V& a) { return V{exp(a[0])}; }},
      {"tanh", {{s}}, [](const V& a) { return V{tanh(a[0])}; }},
      {"log", {{s, Fill::Positive}}, [](const V& a) { return V{log(a[0])}; }},
      {"erf", {{s, Fill::Unit}}, [](const V& a) { return V{erf(a[0])}; }},
      {"add broadcast", {{s}, {{7}}}, [](const V& a) { return V{a[0] + a[1]}; }},
      {"mul", {{s}, {s}}, [](const V& a) { return V{a[0] * a[1]}; }},
      {"div", {{s}, {s, Fill::Positive}}, [](const V& a) { return V{a[0] / a[1]}; }},
      {"pow", {{s, Fill::Positive}, {s}}, [](const V& a) { return V{pow(a[0], a[1] * 0.25)}; }},
      {"where", {{s, Fill::Mask}, {s}, {s}}, [](const V& a) { return V{where(a[0], a[1], a[2])}; }},
      {"to f32", {{s}}, [](const V& a) { return V{a[0].to(kF32)}; }},
      {"int add", {{s, Fill::Index, 9}, {s, Fill::Index, 9}}, [](const V& a) { return V{a[0] + a[1]}; }, {kI64}},
      {"elu", {{s}}, [](const V& a) { return V{elu(a[0], 0.7)}; }},
      {"selu", {{s}}, [](const V& a) { return V{selu(a[0])}; }},
      {"mish", {{s}}, [](const V& a) { return V{mish(a[0])}; }},
      {"logsigmoid", {{s}}, [](const V& a) { return V{logsigmoid(a[0])}; }},
      {"hardtanh", {{s}}, [](const V& a) { return V{hardtanh(a[0], -0.5, 0.5)}; }},
      {"relu6", {{s}}, [](const V& a) { return V{relu6(a[0] * 4)}; }},
      {"atan2", {{s}, {{7}, Fill::Positive}}, [](const V& a) { return V{atan2(a[0], a[1])}; }},
      {"fmod", {{s}, {{7}, Fill::Positive}}, [](const V& a) { return V{fmod(a[0], a[1])}; }},
      {"tril", {{s}}, [](const V& a) { return V{tril(a[0], 1)}; }},
      {"triu", {{s}}, [](const V& a) { return V{triu(a[0], -1)}; }},
  });
}
