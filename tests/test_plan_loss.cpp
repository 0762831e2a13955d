// Host planning of the CUDA cross entropy (kernels/loss_plan.hpp) and the math it shares with the CPU
// kernel (kernels/loss_math.hpp): the forward's grid-stride walk gives every position to exactly one
// thread group, the workspace holds every block's partial, the backward covers every gradient element,
// and the online logsumexp gives the two-pass result however a row is split and merged.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/loss_math.hpp"
#include "kernels/loss_plan.hpp"
#include "test_util.hpp"

using namespace ember;
using namespace ember::kernels;

namespace {

// Walks the forward kernel's loops: block b, group g, pass r take position b * ppb + g + r * grid * ppb.
void check_forward_cover(int64_t positions, int64_t classes) {
  CAPTURE(positions);
  CAPTURE(classes);
  const CrossEntropyPlan p = plan_cross_entropy(positions, classes);
  CHECK(p.block % 32 == 0);
  CHECK(p.block <= 1024);
  CHECK(p.threads_per_position * p.positions_per_block == p.block);
  CHECK((p.threads_per_position == 32 || p.threads_per_position == p.block));
  CHECK(p.threads_per_position == (classes >= kCeBlockRowFrom ? p.block : 32));
  CHECK(p.grid >= 1);
  CHECK(p.grid <= kCeMaxGrid);
  CHECK(p.grid <= 2147483647);
  // The kernel's partial of block b sits at slots kWsPartials + 2b and + 2b + 1.
  CHECK(p.workspace_slots == kWsPartials + 2 * p.grid);
  CHECK(kWsPartials + 2 * (p.grid - 1) + 1 < p.workspace_slots);
  CHECK(kWsBadIndex != kWsLossSum);
  CHECK(kWsWeightTotal < kWsPartials);
  if (positions <= 200000) {
    std::vector<int> seen(static_cast<size_t>(positions), 0);
    const int64_t ppb = p.positions_per_block;
    for (int64_t b = 0; b < p.grid; ++b)
      for (int64_t base = b * ppb; base < positions; base += p.grid * ppb)
        for (int64_t g = 0; g < ppb; ++g)
          if (base + g < positions) ++seen[static_cast<size_t>(base + g)];
    CHECK(std::all_of(seen.begin(), seen.end(), [](int s) { return s == 1; }));
  } else {
    CHECK(p.grid == kCeMaxGrid);  // a grid-stride loop then covers the rest
  }
  // Backward: thread e of a grid-stride walk over positions * classes elements.
  CHECK(p.backward_grid >= 1);
  CHECK(p.backward_grid <= kCeMaxBackwardGrid);
  const int64_t elements = positions * classes;
  // 32-bit index math only where no index, nor the last grid-stride step past the end, wraps.
  CHECK(p.backward_index32 == (elements < (int64_t{1} << 31)));
  if (p.backward_index32) CHECK(elements + p.backward_grid * p.block <= int64_t{UINT32_MAX});
  if (elements <= 300000) {
    std::vector<int> seen(static_cast<size_t>(elements), 0);
    const int64_t stride = p.backward_grid * p.block;
    for (int64_t t = 0; t < stride; ++t)
      for (int64_t e = t; e < elements; e += stride) ++seen[static_cast<size_t>(e)];
    CHECK(std::all_of(seen.begin(), seen.end(), [](int s) { return s == 1; }));
  }
}

// log(sum(exp(x))) in long double, two-pass, as the reference.
long double reference_lse(const std::vector<double>& x) {
  long double m = -INFINITY;
  for (double v : x) m = std::max<long double>(m, v);
  if (std::isinf(static_cast<double>(m))) return m;
  long double s = 0;
  for (double v : x) s += std::exp(static_cast<long double>(v) - m);
  return m + std::log(s);
}

// The online logsumexp of x split into `parts` contiguous pieces, merged as a butterfly (as a warp does).
template <class A>
A split_lse(const std::vector<double>& x, int parts) {
  std::vector<LseAcc<A>> acc(static_cast<size_t>(parts));
  for (size_t i = 0; i < x.size(); ++i) acc[i % static_cast<size_t>(parts)].add(static_cast<A>(x[i]));
  for (int o = parts / 2; o > 0; o /= 2)
    for (int l = 0; l < parts; ++l)
      if ((l & o) == 0)
        acc[static_cast<size_t>(l)].merge(acc[static_cast<size_t>(l | o)].m, acc[static_cast<size_t>(l | o)].s);
  return acc[0].result();
}

}  // namespace

TEST_CASE("plan loss: the forward grid gives each position one group; the backward covers every element") {
  for (int64_t positions : {1, 7, 8, 9, 255, 256, 257, 4096, 16383, 16384, 16385, 100000, 1000000})
    for (int64_t classes : {1, 2, 10, 1023, 1024, 50257}) check_forward_cover(positions, classes);
  check_forward_cover(70000, 50257);  // 3.5e9 gradient elements: 64-bit index math
}

TEST_CASE("plan loss: long rows get the whole block, short rows a warp") {
  CHECK(plan_cross_entropy(100, 10).threads_per_position == 32);
  CHECK(plan_cross_entropy(100, 10).positions_per_block == 8);
  CHECK(plan_cross_entropy(100, 50257).threads_per_position == 256);
  CHECK(plan_cross_entropy(100, 50257).positions_per_block == 1);
  CHECK(plan_cross_entropy(100, 50257).grid == 100);
  CHECK(plan_cross_entropy(10000000, 10).grid == kCeMaxGrid);
}

TEST_CASE("plan loss: the online logsumexp merges to the two-pass value however the row is split") {
  std::mt19937 rng(5);
  std::normal_distribution<double> nd(0.0, 8.0);
  for (int n : {1, 2, 5, 31, 32, 33, 100, 1000}) {
    std::vector<double> x(static_cast<size_t>(n));
    for (double& v : x) v = nd(rng);
    const long double want = reference_lse(x);
    for (int parts : {1, 2, 4, 8, 32}) {
      CAPTURE(n);
      CAPTURE(parts);
      CHECK(std::abs(split_lse<double>(x, parts) - static_cast<double>(want)) <= 1e-12 * (1 + std::abs(want)));
      CHECK(std::abs(split_lse<float>(x, parts) - static_cast<double>(want)) <= 2e-6 * (1 + std::abs(want)));
    }
  }
}

TEST_CASE("plan loss: the online logsumexp keeps the two-pass result on inf, -inf and NaN") {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  for (int parts : {1, 2, 4, 32}) {
    CAPTURE(parts);
    CHECK(split_lse<double>({-inf, -inf, -inf}, parts) == -inf);
    CHECK(split_lse<double>({1.0, inf, 3.0}, parts) == inf);
    CHECK(split_lse<double>({inf, inf}, parts) == inf);
    CHECK(std::isnan(split_lse<double>({1.0, nan, 3.0}, parts)));
    CHECK(std::isnan(split_lse<double>({-inf, nan, -inf}, parts)));
    CHECK(std::isnan(split_lse<float>({2.0, 1.0, 0.5, nan}, parts)));
    // NaN beside +inf is NaN wherever each sits and however the row is split.
    CHECK(std::isnan(split_lse<double>({nan, inf, 0.0}, parts)));
    CHECK(std::isnan(split_lse<double>({0.0, nan, inf}, parts)));
    CHECK(std::isnan(split_lse<double>({inf, 0.0, nan, inf}, parts)));
    CHECK(std::isnan(split_lse<float>({-inf, -inf, -inf, nan}, parts)));
    // -inf entries add nothing: log(e^0 + e^0) = log 2.
    CHECK(split_lse<double>({0.0, -inf, 0.0, -inf}, parts) == doctest::Approx(std::log(2.0)).epsilon(1e-15));
  }
}

TEST_CASE("plan loss: the shared loss and gradient formulas") {
  // One position with C = 3, x = (1, 2, 3), target 2, weights (0.5, 1, 2), smoothing 0.3.
  const double x[3] = {1, 2, 3}, w[3] = {0.5, 1, 2};
  const double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  const double ls = 0.3, keep = 0.7, lsc = ls / 3, wtot = 3.5, dot = 0.5 * 1 + 1 * 2 + 2 * 3;
  // PyTorch: (1 - ls) w_t (lse - x_t) + ls / C sum_c w_c (lse - x_c).
  double want = keep * w[2] * (lse - x[2]);
  for (int c = 0; c < 3; ++c) want += lsc * w[c] * (lse - x[c]);
  CHECK(ce_position_loss<double>(lse, x[2], w[2], keep, lsc, wtot, dot, true) == doctest::Approx(want).epsilon(1e-14));
  CHECK(ce_position_loss<double>(lse, x[2], w[2], keep, lsc, wtot, dot, false) ==
        doctest::Approx(keep * w[2] * (lse - x[2])).epsilon(1e-14));
  // The gradient sums to coef (s * 1 - sum q) = 0 when weights are uniform (softmax sums to 1).
  const double coef = 1.7, cs = ce_grad_scale<double>(coef, keep, 1.0, lsc, 3.0);
  double total = 0;
  for (int c = 0; c < 3; ++c) {
    double g = ce_grad_base<double>(cs, std::exp(x[c] - lse), coef, lsc, 1.0);
    if (c == 2) g -= ce_grad_target<double>(coef, keep, 1.0);
    total += g;
  }
  CHECK(std::abs(total) < 1e-14);
}
