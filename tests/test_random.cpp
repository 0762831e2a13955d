// Random ops: determinism of the counter-based generator, distribution moments, ranges, state.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "kernels/philox.hpp"
#include "test_util.hpp"

using namespace ember;
using ember::testing::equal;

namespace {
std::pair<double, double> moments(const Tensor& t) {
  auto v = t.to_vector<double>();
  double m = 0, s = 0;
  for (double x : v) m += x;
  m /= static_cast<double>(v.size());
  for (double x : v) s += (x - m) * (x - m);
  return {m, std::sqrt(s / static_cast<double>(v.size() - 1))};
}
}  // namespace

TEST_CASE("same seed gives the same numbers; draws advance the generator") {
  manual_seed(42);
  Tensor a = randn({1000});
  Tensor b = randn({1000});
  manual_seed(42);
  CHECK(equal(randn({1000}), a));
  CHECK(equal(randn({1000}), b));
  CHECK(!equal(a, b));
  Generator g(7), h(7);
  CHECK(equal(rand({5, 5}, {}, &g), rand({5, 5}, {}, &h)));
  // saving and restoring the state replays the stream
  GeneratorState s = g.state();
  Tensor x = randn({100}, {}, &g);
  g.set_state(s);
  CHECK(equal(randn({100}, {}, &g), x));
}

TEST_CASE("element i does not depend on the draw's size or the thread split") {
  Generator g1(3), g2(3);
  Tensor big = rand({200000}, {}, &g1);  // parallel path
  Tensor small = rand({1000}, {}, &g2);  // serial path
  CHECK(equal(big.narrow(0, 0, 1000), small));
}

TEST_CASE("distribution moments and ranges") {
  manual_seed(1);
  auto [m, s] = moments(randn({200000}));
  CHECK(std::abs(m) < 0.01);
  CHECK(std::abs(s - 1) < 0.01);
  Tensor u = rand({100000}, {.dtype = kF64});
  auto [um, us] = moments(u);
  CHECK(std::abs(um - 0.5) < 0.005);
  CHECK(std::abs(us - std::sqrt(1.0 / 12)) < 0.005);
  CHECK(u.min().item<double>() >= 0);
  CHECK(u.max().item<double>() < 1);
  Tensor n = empty({50000}, {.dtype = kF64});
  n.normal_(3.0, 0.5);
  auto [nm, ns] = moments(n);
  CHECK(std::abs(nm - 3) < 0.01);
  CHECK(std::abs(ns - 0.5) < 0.01);
  Tensor w = empty({10000});
  w.uniform_(-2, 5);
  CHECK(w.min().item<float>() >= -2);
  CHECK(w.max().item<float>() < 5);
  for (DType dt : {kF16, kBF16}) {
    Tensor h = rand({10000}, {.dtype = dt});
    CHECK(h.dtype() == dt);
    CHECK(h.max().item<float>() < 1);
  }
}

TEST_CASE("randint, bernoulli, randperm, dropout") {
  manual_seed(5);
  Tensor r = randint(-3, 4, {10000});
  CHECK(r.dtype() == kI64);
  auto v = r.to_vector<int64_t>();
  std::set<int64_t> seen(v.begin(), v.end());
  CHECK(seen == std::set<int64_t>{-3, -2, -1, 0, 1, 2, 3});
  CHECK_THROWS_AS(randint(3, 3, {2}), ValueError);
  // A range the dtype cannot hold is refused (PyTorch does the same), not drawn and converted.
  CHECK_THROWS_WITH_AS(randint(-5, 6, {2}, {.dtype = kU8}), doctest::Contains("does not fit uint8"), ValueError);
  CHECK_THROWS_AS(randint(0, 257, {2}, {.dtype = kU8}), ValueError);
  CHECK_THROWS_AS(randint(0, 3, {2}, {.dtype = kBool}), ValueError);
  CHECK_THROWS_AS(randint(-1, (int64_t{1} << 31) + 1, {2}, {.dtype = kI32}), ValueError);
  CHECK(randint(0, 256, {1000}, {.dtype = kU8}).max().item<int64_t>() <= 255);
  CHECK(randint(0, 2, {8}, {.dtype = kBool}).dtype() == kBool);
  Tensor b = bernoulli(full({20000}, 0.3));
  CHECK(std::abs(b.mean().item<float>() - 0.3) < 0.015);
  CHECK_THROWS_AS(bernoulli(full({2}, 1.5)), ValueError);
  Tensor p = randperm(100);
  auto pv = p.to_vector<int64_t>();
  std::sort(pv.begin(), pv.end());
  for (int64_t i = 0; i < 100; ++i) CHECK(pv[i] == i);
  Tensor x = ones({10000});
  Tensor d = dropout(x, 0.25);
  auto dv = d.to_vector<float>();
  int64_t kept = std::count_if(dv.begin(), dv.end(), [](float e) { return e != 0; });
  CHECK(std::abs(kept / 10000.0 - 0.75) < 0.02);
  for (float e : dv) CHECK((e == 0 || std::abs(e - 1 / 0.75f) < 1e-6));
  CHECK(equal(dropout(x, 0.25, false), x));
  CHECK(equal(dropout(x, 1.0), zeros({10000})));
  CHECK_THROWS_AS(dropout(x, 1.5), ValueError);
  CHECK_THROWS_AS(rand({2}, {.dtype = kI32}), DTypeError);
}

TEST_CASE("random fill of a non-contiguous view writes only the view") {
  Tensor a = zeros({4, 6});
  Tensor col = a.select(1, 2);
  col.uniform_(1, 2);
  auto v = a.to_vector<float>();
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 6; ++j) {
      float e = v[i * 6 + j];
      if (j == 2)
        CHECK((e >= 1 && e < 2));
      else
        CHECK(e == 0);
    }
}

TEST_CASE("the CPU fill draws exactly the per-element Philox values the CUDA kernel uses") {
  // kernels::DrawAt is the definition both backends follow; the CPU fill batches the blocks.
  for (int64_t n : {1, 7, 33, 100001}) {
    CAPTURE(n);
    for (bool normal : {false, true}) {
      Generator g(1234);
      g.advance(5);  // an odd starting block
      uint64_t base = g.state().offset;
      auto v = (normal ? randn({n}, {.dtype = kF64}, &g) : rand({n}, {.dtype = kF64}, &g)).to_vector<double>();
      for (int64_t i = 0; i < n; i += std::max<int64_t>(1, n / 97)) {
        kernels::DrawAt d(1234, base, i);
        CHECK(v[static_cast<size_t>(i)] == (normal ? std::fma(1.0, d.normal(), 0.0) : d.uniform()));
      }
    }
    // Bernoulli (dropout's mask) in float32 takes a vectorised path, and float64 the generic one.
    for (DType dt : {kF32, kF64}) {
      CAPTURE(dt);
      for (double prob : {0.0, 0.37, 0.9, 1.0}) {
        Generator g(99);
        g.advance(3);
        uint64_t base = g.state().offset;
        Tensor t = empty({n}, {.dtype = dt});
        bernoulli_(t, prob, &g);
        auto v = t.to_vector<double>();
        int64_t wrong = 0;
        for (int64_t i = 0; i < n; ++i)
          wrong += v[static_cast<size_t>(i)] != (kernels::DrawAt(99, base, i).uniform() < prob ? 1.0 : 0.0);
        CHECK(wrong == 0);
      }
    }
  }
}
