// Gradient checks for the reduce ops (gradcheck, gradgradcheck, PyTorch reference gradients).
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <map>
#include <string>

#include "gradcheck.hpp"
#include "test_util.hpp"

using namespace ember;
using ember::testing::allclose;
using ember::testing::gradcheck;
using ember::testing::gradgradcheck;
using ember::testing::noncontiguous;

namespace {

using Fn = std::function<Tensor(const Tensor&)>;

Tensor leaf(std::vector<double> v, Shape s) { return tensor(v, s, {.dtype = kF64}).requires_grad_(); }
Tensor f64(std::vector<double> v, Shape s) { return tensor(v, s, {.dtype = kF64}); }

Tensor normal(const Shape& s, uint64_t seed) {
  manual_seed(seed);
  return randn(s, {.dtype = kF64, .requires_grad = true});
}

// Magnitudes in [0.5, 2.5): away from 0 where ops have kinks (norm, sign) or divide by x (prod).
Tensor away_from_zero(const Shape& s, uint64_t seed) {
  manual_seed(seed);
  Tensor x = randn(s, {.dtype = kF64});
  Tensor m = rand(s, {.dtype = kF64});
  return (sign(x) * (m * 2 + 0.5)).requires_grad_();
}

testing::GradFn wrap(const Fn& f) {
  return [f](const std::vector<Tensor>& a) { return f(a[0]); };
}

// gradcheck on x itself and on a non-contiguous copy of it.
bool check(const Fn& f, const Tensor& x) { return gradcheck(wrap(f), {x}) && gradcheck(wrap(f), {noncontiguous(x)}); }
bool check2(const Fn& f, const Tensor& x) { return gradgradcheck(wrap(f), {x}); }

// The gradient of x for y = f(x) fed g (create_graph off).
Tensor grad_of(const Fn& f, const Tensor& x, const Tensor& g) { return autograd::grad({f(x)}, {x}, {g})[0]; }
Tensor grad_of(const Fn& f, const Tensor& x) {
  Tensor y = f(x);
  return autograd::grad({y}, {x}, {ones(y.shape(), {.dtype = kF64})})[0];
}

// Dims configurations for the reductions: all dims, one, several, negative, keepdim, 0-dim.
struct DimsCase {
  Shape shape, dims;
  bool keepdim;
};
const std::vector<DimsCase> kDims = {
    {{3, 4}, {}, false},
    {{3, 4}, {}, true},
    {{3, 4}, {1}, false},
    {{3, 4}, {-2}, true},
    {{2, 3, 2}, {0, 2}, false},
    {{2, 3, 2}, {-1, 0}, true},
    {{2, 3, 2}, {1}, false},
    {{}, {}, false},
    {{}, {0}, true},
};
std::string name(const DimsCase& c) {
  return "shape " + c.shape.str() + " dims " + c.dims.str() + (c.keepdim ? " keepdim" : "");
}

}  // namespace

TEST_CASE("grad reduce: sum and mean over every dims configuration") {
  uint64_t seed = 1;
  for (const DimsCase& c : kDims) {
    CAPTURE(name(c));
    Tensor x = normal(c.shape, seed++);
    CHECK(check([&](const Tensor& t) { return sum(t, c.dims, c.keepdim); }, x));
    CHECK(check([&](const Tensor& t) { return mean(t, c.dims, c.keepdim); }, x));
  }
  CHECK(check2([](const Tensor& t) { return mean(t * t, {1}); }, normal({2, 3}, 7)));
}

TEST_CASE("grad reduce: prod over dims, with zeros (one zero passes the others' product, two give 0)") {
  uint64_t seed = 10;
  for (const DimsCase& c : kDims) {
    CAPTURE(name(c));
    CHECK(check([&](const Tensor& t) { return prod(t, c.dims, c.keepdim); }, away_from_zero(c.shape, seed++)));
  }
  // prod is a polynomial: gradcheck holds at zeros too. Row 1 has one zero, row 2 two.
  Tensor z = leaf({0.7, -1.2, 0.9, 1.4, 1.1, -0.8, 0.0, 1.3, 0.0, 0.6, -1.5, 0.0}, {3, 4});
  CHECK(check([](const Tensor& t) { return prod(t, {1}); }, z));
  CHECK(check([](const Tensor& t) { return prod(t, {0}, true); }, z));
  CHECK(check([](const Tensor& t) { return prod(t); }, leaf({0.7, -1.2, 0.0, 1.4, 1.1, -0.8}, {2, 3})));
  Tensor z3 = leaf({0.7, 0.0, 0.9, 1.4, 1.1, -0.8, 0.0, 1.3, 0.0, 0.6, -1.5, 0.5}, {2, 3, 2});
  CHECK(check([](const Tensor& t) { return prod(t, {0, 2}); }, z3));
  // Hand-computed: [2, 0, 3] -> [0, 6, 0]; [0, 0, 3] -> 0; [2, 4, 3] -> [12, 6, 8].
  Tensor h = leaf({2, 0, 3, 0, 0, 3, 2, 4, 3}, {3, 3});
  CHECK(allclose(grad_of([](const Tensor& t) { return prod(t, {1}); }, h), f64({0, 6, 0, 0, 0, 0, 12, 6, 8}, {3, 3})));
  // Second derivatives, exact with zeros as well (also with two zeros in a row, where they survive).
  CHECK(check2([](const Tensor& t) { return prod(t, {1}); }, away_from_zero({2, 3}, 20)));
  CHECK(check2([](const Tensor& t) { return prod(t, {1}); }, z));
  CHECK(check2([](const Tensor& t) { return prod(t, {0, 2}, true); }, z3));
  CHECK(check2([](const Tensor& t) { return prod(t); }, leaf({0.0, 1.5, 0.0, -0.5}, {2, 2})));
}

TEST_CASE("grad reduce: var, std and var_mean with corrections") {
  uint64_t seed = 30;
  for (const DimsCase& c : kDims) {
    CAPTURE(name(c));
    Tensor x = normal(c.shape, seed++);
    // One element per slice: only correction 0 is finite.
    std::vector<int64_t> corrections = c.shape.empty() ? std::vector<int64_t>{0} : std::vector<int64_t>{0, 1, 2};
    for (int64_t k : corrections) {
      CAPTURE(k);
      CHECK(check([&](const Tensor& t) { return var(t, c.dims, k, c.keepdim); }, x));
      if (!c.shape.empty()) CHECK(check([&](const Tensor& t) { return ember::std(t, c.dims, k, c.keepdim); }, x));
      CHECK(check(
          [&](const Tensor& t) {
            auto [v, m] = var_mean(t, c.dims, k, c.keepdim);
            return v * 1.3 + m * m;
          },
          x));
    }
  }
  // Each output alone: the other's gradient is filled with zeros.
  Tensor x = normal({3, 4}, 40);
  CHECK(check([](const Tensor& t) { return std::get<1>(var_mean(t, {1})); }, x));
  CHECK(check([](const Tensor& t) { return std::get<0>(var_mean(t, {0})); }, x));
  // std of a constant slice (std = 0): gradient 0, not NaN, as PyTorch; 0-dim std likewise.
  Tensor flat = leaf({2, 2, 2, 1, 3, 5}, {2, 3});
  CHECK(allclose(grad_of([](const Tensor& t) { return ember::std(t, {1}); }, flat),
                 f64({0, 0, 0, -0.5, 0, 0.5}, {2, 3})));  // (x - mean) / ((n-1) std), std = 2
  CHECK(allclose(grad_of([](const Tensor& t) { return ember::std(t, {}, 0); }, leaf({1.5}, {})), f64({0}, {})));
  CHECK(check2([](const Tensor& t) { return var(t, {1}); }, x));
  CHECK(check2([](const Tensor& t) { return ember::std(t, {0}, 0, true); }, x));
  CHECK(check2(
      [](const Tensor& t) {
        auto [v, m] = var_mean(t, {-1});
        return v * m;
      },
      x));
}

TEST_CASE("grad reduce: amax, amin, max(), min() away from ties") {
  uint64_t seed = 50;
  for (const DimsCase& c : kDims) {
    CAPTURE(name(c));
    Tensor x = normal(c.shape, seed++);
    CHECK(check([&](const Tensor& t) { return amax(t, c.dims, c.keepdim); }, x));
    CHECK(check([&](const Tensor& t) { return amin(t, c.dims, c.keepdim); }, x));
  }
  for (const Shape& s : {Shape{3, 4}, Shape{2, 3, 2}, Shape{}}) {
    Tensor x = normal(s, seed++);
    CHECK(check([](const Tensor& t) { return max(t); }, x));
    CHECK(check([](const Tensor& t) { return min(t); }, x));
  }
  CHECK(check2([](const Tensor& t) { return amax(t * t, {1}) * 2; }, normal({2, 3}, 60)));
  CHECK(check2([](const Tensor& t) { return amin(t * t, {0}, true); }, normal({2, 3}, 61)));
  CHECK(check2([](const Tensor& t) { return max(t * t); }, normal({2, 3}, 62)));
  CHECK(check2([](const Tensor& t) { return min(t * t); }, normal({2, 3}, 63)));
}

TEST_CASE("grad reduce: amax/amin/max()/min() ties share the gradient evenly (hand-computed)") {
  Tensor x = leaf({1, 3, 3, 2, 2, 2}, {2, 3});
  CHECK(allclose(grad_of([](const Tensor& t) { return amax(t, {1}); }, x, f64({1, 3}, {2})),
                 f64({0, 0.5, 0.5, 1, 1, 1}, {2, 3})));
  CHECK(allclose(grad_of([](const Tensor& t) { return amin(t, {1}, true); }, x, f64({1, 3}, {2, 1})),
                 f64({1, 0, 0, 1, 1, 1}, {2, 3})));
  CHECK(allclose(grad_of([](const Tensor& t) { return amax(t); }, x), f64({0, 0.5, 0.5, 0, 0, 0}, {2, 3})));
  CHECK(allclose(grad_of([](const Tensor& t) { return max(t); }, x), f64({0, 0.5, 0.5, 0, 0, 0}, {2, 3})));
  CHECK(allclose(grad_of([](const Tensor& t) { return amin(t, {0}); }, leaf({1, 2, 1, 3}, {2, 2})),
                 f64({0.5, 1, 0.5, 0}, {2, 2})));
  Tensor y = leaf({1, 3, 1, 2, 1, 2}, {2, 3});
  CHECK(allclose(grad_of([](const Tensor& t) { return min(t); }, y, f64({6}, {})), f64({2, 0, 2, 0, 2, 0}, {2, 3})));
  // A NaN result: the NaNs take the gradient.
  Tensor n = leaf({1, NAN, 3}, {3});
  CHECK(allclose(grad_of([](const Tensor& t) { return max(t); }, n), f64({0, 1, 0}, {3})));
}

TEST_CASE("grad reduce: max(dim)/min(dim) send the gradient to the selected index; indices stay constants") {
  uint64_t seed = 70;
  for (int64_t d : {0, 1, -1})
    for (bool k : {false, true}) {
      CAPTURE(d);
      CAPTURE(k);
      Tensor x = normal({3, 4}, seed++);
      CHECK(check([&](const Tensor& t) { return max(t, d, k).values; }, x));
      CHECK(check([&](const Tensor& t) { return min(t, d, k).values; }, x));
    }
  Tensor x3 = normal({2, 3, 2}, seed++);
  CHECK(check([](const Tensor& t) { return max(t, 1).values; }, x3));
  CHECK(check([](const Tensor& t) { return min(t, -3, true).values; }, x3));
  CHECK(check([](const Tensor& t) { return max(t, 0).values; }, normal({}, seed++)));
  CHECK(check2([](const Tensor& t) { return max(t * t, 1).values; }, normal({2, 3}, seed++)));
  CHECK(check2([](const Tensor& t) { return min(t * t, 0, true).values; }, normal({2, 3}, seed++)));
  // Ties: only the returned (first) index gets the gradient, unlike amax.
  Tensor t = leaf({2, 5, 5, 1, 1, 0}, {2, 3});
  auto [v, i] = max(t, 1);
  CHECK(v.requires_grad());
  CHECK_FALSE(i.requires_grad());
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{1, 0});
  CHECK(allclose(autograd::grad({v}, {t}, {f64({2, 3}, {2})})[0], f64({0, 2, 0, 3, 0, 0}, {2, 3})));
  auto [vm, im] = min(t, 0, true);
  CHECK(allclose(autograd::grad({vm}, {t}, {f64({1, 2, 3}, {1, 3})})[0], f64({0, 0, 0, 1, 2, 3}, {2, 3})));
}

TEST_CASE("grad reduce: norm for p = 1, 2, 3, 0.5, 1.5, inf, -inf, 0") {
  uint64_t seed = 90;
  for (double p : {1.0, 2.0, 3.0, 0.5, 1.5, double(INFINITY), -double(INFINITY), 0.0})
    for (const DimsCase& c : kDims) {
      CAPTURE(p);
      CAPTURE(name(c));
      CHECK(check([&](const Tensor& t) { return norm(t, p, c.dims, c.keepdim); }, away_from_zero(c.shape, seed++)));
    }
  for (double p : {1.0, 2.0, 3.0, 0.5, 1.5, double(INFINITY), -double(INFINITY)}) {
    CAPTURE(p);
    CHECK(check2([&](const Tensor& t) { return norm(t, p, {1}); }, away_from_zero({2, 3}, seed++)));
  }
  CHECK(check2([](const Tensor& t) { return norm(t); }, away_from_zero({3, 2}, seed++)));
  // p = 2 at x = 0: gradient 0, no NaN (and none in the second derivative's other entries either).
  Tensor z = leaf({0, 0, 3, 4}, {2, 2});
  CHECK(allclose(grad_of([](const Tensor& t) { return norm(t, 2.0, {1}); }, z), f64({0, 0, 0.6, 0.8}, {2, 2})));
  CHECK(allclose(grad_of([](const Tensor& t) { return norm(t, 3.0, {1}); }, z),
                 f64({0, 0, 9 / std::pow(91.0, 2.0 / 3), 16 / std::pow(91.0, 2.0 / 3)}, {2, 2})));
  CHECK(allclose(grad_of([](const Tensor& t) { return norm(t, 0.5, {1}); }, z),
                 f64({0, 0, (std::sqrt(3.0) + 2) / std::sqrt(3.0), (std::sqrt(3.0) + 2) / 2}, {2, 2})));
  // Zero elements in a nonzero slice: sign(0) = 0 for p = 1 and the inf-norm ties share evenly.
  Tensor w = leaf({0, -2, 2, 1}, {4});
  CHECK(allclose(grad_of([](const Tensor& t) { return norm(t, 1.0); }, w), f64({0, -1, 1, 1}, {4})));
  CHECK(allclose(grad_of([](const Tensor& t) { return norm(t, INFINITY); }, w), f64({0, -0.5, 0.5, 0}, {4})));
  CHECK(allclose(grad_of([](const Tensor& t) { return norm(t, -INFINITY); }, w), f64({0, 0, 0, 0}, {4})));
  // p = 0 counts nonzeros: no gradient reaches x (PyTorch leaves .grad unset).
  Tensor x = normal({3}, seed++);
  norm(x, 0.0).backward();
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("grad reduce: logsumexp") {
  uint64_t seed = 120;
  for (const DimsCase& c : kDims) {
    CAPTURE(name(c));
    CHECK(check([&](const Tensor& t) { return logsumexp(t, c.dims, c.keepdim); }, normal(c.shape, seed++)));
  }
  CHECK(check2([](const Tensor& t) { return logsumexp(t, {1}); }, normal({2, 3}, seed++)));
  CHECK(check2([](const Tensor& t) { return logsumexp(t, {0, 2}, true); }, normal({2, 2, 2}, seed++)));
}

TEST_CASE("grad reduce: cumsum and cumprod (cumprod exact with zeros, to second order)") {
  uint64_t seed = 140;
  for (const Shape& s : {Shape{3, 4}, Shape{2, 3, 2}})
    for (int64_t d : {0, 1, -1}) {
      CAPTURE(s);
      CAPTURE(d);
      CHECK(check([&](const Tensor& t) { return cumsum(t, d); }, normal(s, seed++)));
      CHECK(check([&](const Tensor& t) { return cumprod(t, d); }, away_from_zero(s, seed++)));
    }
  CHECK(check([](const Tensor& t) { return cumsum(t, 0); }, normal({}, seed++)));
  CHECK(check([](const Tensor& t) { return cumprod(t, -1); }, normal({}, seed++)));
  // Rows with no zero, one zero, two zeros (and a zero first): gradcheck holds, cumprod is polynomial.
  Tensor z = leaf({0.7, -1.2, 0.9, 1.4, 1.1, -0.8, 0.0, 1.3, 0.0, 0.6, 0.0, -1.5}, {3, 4});
  CHECK(check([](const Tensor& t) { return cumprod(t, 1); }, z));
  CHECK(check([](const Tensor& t) { return cumprod(t, 0); }, z));
  // Hand-computed: x = [2, 0, 3], g = 1: [1 + x1 + x1 x2, x0 + x0 x2, x0 x1] = [1, 8, 0].
  CHECK(allclose(grad_of([](const Tensor& t) { return cumprod(t, 0); }, leaf({2, 0, 3}, {3})), f64({1, 8, 0}, {3})));
  CHECK(allclose(grad_of([](const Tensor& t) { return cumsum(t, 0); }, leaf({2, 0, 3}, {3}), f64({1, 2, 3}, {3})),
                 f64({6, 5, 3}, {3})));
  CHECK(check2([](const Tensor& t) { return cumsum(t * t, 1); }, normal({2, 3}, seed++)));
  CHECK(check2([](const Tensor& t) { return cumprod(t, 1); }, away_from_zero({2, 3}, seed++)));
  CHECK(check2([](const Tensor& t) { return cumprod(t, 1); }, z));
  CHECK(check2([](const Tensor& t) { return cumprod(t, 0); }, leaf({0.0, 1.5, 0.0, -0.5, 2.0, 0.0}, {3, 2})));
}

TEST_CASE("grad reduce: topk and sort scatter the values' gradient back to their indices") {
  uint64_t seed = 160;
  for (int64_t d : {0, 1, -1}) {
    CAPTURE(d);
    Tensor x = normal({3, 4}, seed++);
    CHECK(check([&](const Tensor& t) { return topk(t, 2, d).values; }, x));
    CHECK(check([&](const Tensor& t) { return topk(t, 2, d, false, false).values; }, x));
    CHECK(check([&](const Tensor& t) { return sort(t, d).values; }, x));
    CHECK(check([&](const Tensor& t) { return sort(t, d, true).values; }, x));
  }
  Tensor x3 = normal({2, 3, 2}, seed++);
  CHECK(check([](const Tensor& t) { return topk(t, 1, 1).values; }, x3));
  CHECK(check([](const Tensor& t) { return sort(t, 0, true).values; }, x3));
  Tensor s = normal({}, seed++);
  CHECK(check([](const Tensor& t) { return sort(t).values; }, s));
  CHECK(check([](const Tensor& t) { return topk(t, 1).values; }, s));
  // k = 0: an empty result, a zero gradient.
  Tensor e = normal({2, 3}, seed++);
  Tensor g0 = autograd::grad({topk(e, 0, 1).values.sum()}, {e})[0];
  CHECK(allclose(g0, zeros({2, 3}, {.dtype = kF64})));
  // Hand-computed: sort [3, 1, 2] fed [10, 20, 30] -> x gets [30, 10, 20].
  auto [sv, si] = sort(leaf({3, 1, 2}, {3}));
  CHECK_FALSE(si.requires_grad());
  Tensor h = leaf({3, 1, 2}, {3});
  CHECK(allclose(grad_of([](const Tensor& t) { return sort(t).values; }, h, f64({10, 20, 30}, {3})),
                 f64({30, 10, 20}, {3})));
  CHECK(allclose(grad_of([](const Tensor& t) { return topk(t, 2).values; }, h, f64({10, 20}, {2})),
                 f64({10, 0, 20}, {3})));
  CHECK(check2([](const Tensor& t) { return topk(t * t, 2, 1).values; }, normal({2, 4}, seed++)));
  CHECK(check2([](const Tensor& t) { return sort(t * t, 0).values; }, normal({3, 2}, seed++)));
}

TEST_CASE("grad reduce: softmax and log_softmax") {
  uint64_t seed = 180;
  for (const Shape& s : {Shape{3, 4}, Shape{2, 3, 2}})
    for (int64_t d : {0, 1, -1}) {
      CAPTURE(s);
      CAPTURE(d);
      Tensor x = normal(s, seed++);
      CHECK(check([&](const Tensor& t) { return softmax(t, d); }, x));
      CHECK(check([&](const Tensor& t) { return log_softmax(t, d); }, x));
    }
  Tensor s = normal({}, seed++);
  CHECK(check([](const Tensor& t) { return softmax(t, 0); }, s));
  CHECK(check([](const Tensor& t) { return log_softmax(t, -1); }, s));
  CHECK(check2([](const Tensor& t) { return softmax(t, 1); }, normal({2, 3}, seed++)));
  CHECK(check2([](const Tensor& t) { return log_softmax(t, 0); }, normal({3, 2}, seed++)));
}

TEST_CASE("grad reduce: integer and bool results are not recorded") {
  Tensor x = normal({3, 4}, 200);
  CHECK_FALSE(argmax(x).requires_grad());
  CHECK_FALSE(argmin(x, 1).requires_grad());
  CHECK_FALSE(argsort(x, 1).requires_grad());
  CHECK_FALSE(topk(x, 2).indices.requires_grad());
  CHECK_FALSE(all(x > 0).requires_grad());
  CHECK_FALSE(any(x > 0, {1}).requires_grad());
  CHECK_FALSE(sum(x > 0).requires_grad());
  // Under no_grad nothing is recorded.
  autograd::NoGradGuard g;
  CHECK_FALSE(prod(x).requires_grad());
  CHECK_FALSE(softmax(x, 1).requires_grad());
}

TEST_CASE("grad reduce: gradients match PyTorch") {
  TensorMap fx = testing::fixtures("grad_reduce");
  const double inf = INFINITY;
  const std::map<std::string, Fn> cases = {
      {"prod_dim1", [](const Tensor& t) { return prod(t, {1}); }},
      {"prod_all_zero", [](const Tensor& t) { return prod(t); }},
      {"prod_zeros", [](const Tensor& t) { return prod(t, {1}, true); }},
      {"var_dims",
       [](const Tensor& t) {
         return var(t, {0, 2}, 1, true);
       }},
      {"std_dim", [](const Tensor& t) { return ember::std(t, {1}, 0); }},
      {"amax_ties", [](const Tensor& t) { return amax(t, {1}); }},
      {"amax_all_ties", [](const Tensor& t) { return amax(t); }},
      {"amin_dims",
       [](const Tensor& t) {
         return amin(t, {0, 2});
       }},
      {"max_all_ties", [](const Tensor& t) { return max(t); }},
      {"min_all", [](const Tensor& t) { return min(t); }},
      {"max_dim", [](const Tensor& t) { return max(t, 1).values; }},
      {"min_dim_keep", [](const Tensor& t) { return min(t, 0, true).values; }},
      {"norm1", [](const Tensor& t) { return norm(t, 1.0, {1}); }},
      {"norm2_zero_row", [](const Tensor& t) { return norm(t, 2.0, {1}); }},
      {"norm3",
       [](const Tensor& t) {
         return norm(t, 3.0, {0, 1});
       }},
      {"norm1_5", [](const Tensor& t) { return norm(t, 1.5, {0}, true); }},
      {"norm0_5", [](const Tensor& t) { return norm(t, 0.5, {1}); }},
      {"norm_inf", [=](const Tensor& t) { return norm(t, inf, {1}); }},
      {"norm_neginf", [=](const Tensor& t) { return norm(t, -inf); }},
      {"norm0", [](const Tensor& t) { return norm(t, 0.0, {1}); }},
      {"logsumexp", [](const Tensor& t) { return logsumexp(t, {1}); }},
      {"cumsum", [](const Tensor& t) { return cumsum(t, 0); }},
      {"cumprod", [](const Tensor& t) { return cumprod(t, 1); }},
      {"cumprod_zeros", [](const Tensor& t) { return cumprod(t, 1); }},
      {"topk", [](const Tensor& t) { return topk(t, 2, 1).values; }},
      {"topk_smallest", [](const Tensor& t) { return topk(t, 2, 0, false).values; }},
      {"sort_desc", [](const Tensor& t) { return sort(t, 1, true).values; }},
      {"softmax", [](const Tensor& t) { return softmax(t, 1); }},
      {"log_softmax", [](const Tensor& t) { return log_softmax(t, 0); }},
  };
  for (const auto& [n_, f] : cases) {
    // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
    const auto& n = n_;
    CAPTURE(n);
    Tensor x = fx.at(n + ".x").clone().requires_grad_();
    auto g = autograd::grad({f(x)}, {x}, {fx.at(n + ".g")}, {}, false, true)[0];
    if (!g.defined()) g = zeros_like(x.detach());  // norm0: no gradient, PyTorch's None
    CHECK(allclose(g, fx.at(n + ".grad"), 1e-10, 1e-12));
  }
  Tensor x = fx.at("var_mean.x").clone().requires_grad_();
  auto [v, m] = var_mean(x, {0}, 1);
  CHECK(allclose(autograd::grad({v, m}, {x}, {fx.at("var_mean.g"), fx.at("var_mean.g2")})[0], fx.at("var_mean.grad"),
                 1e-10, 1e-12));
}

TEST_CASE("grad reduce: f32 inputs get f32 gradients matching the f64 ones") {
  const std::vector<std::pair<std::string, Fn>> ops = {
      {"prod", [](const Tensor& t) { return prod(t, {1}); }},
      {"cumprod", [](const Tensor& t) { return cumprod(t, 1); }},
      {"norm", [](const Tensor& t) { return norm(t, 3.0, {0}); }},
      {"std", [](const Tensor& t) { return ember::std(t, {1}); }},
      {"amax", [](const Tensor& t) { return amax(t); }},
      {"logsumexp", [](const Tensor& t) { return logsumexp(t, {0}); }},
      {"log_softmax", [](const Tensor& t) { return log_softmax(t, 1); }},
      {"sort", [](const Tensor& t) { return sort(t, 0).values; }},
  };
  Tensor base = f64({0.7, -1.2, 0.9, 1.4, 1.1, -0.8, 0.0, 1.3, 0.0, 0.6, 0.0, -1.5}, {3, 4});
  for (const auto& [n_, f] : ops) {
    // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
    const auto& n = n_;
    CAPTURE(n);
    Tensor x64 = base.clone().requires_grad_(), x32 = base.to(kF32).requires_grad_();
    Tensor g64 = grad_of(f, x64), g32 = grad_of(f, x32);
    CHECK(g32.dtype() == kF32);
    CHECK(allclose(g32.to(kF64), g64, 1e-5, 1e-6));
  }
}
