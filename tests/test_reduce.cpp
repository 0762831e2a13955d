// Reductions, scans, sort/topk and softmax: PyTorch fixtures over dtypes and views, independent
// loop references, dims semantics, zero-size inputs, NaN handling, large (parallel) inputs, errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <sstream>

#include "test_util.hpp"

using namespace ember;
using ember::testing::allclose;
using ember::testing::equal;

namespace {
const double kNaN = std::nan(""), kInf = std::numeric_limits<double>::infinity();

DType dtype_from(const std::string& s) {
  if (s == "f32" || s == "long") return kF32;
  if (s == "f64") return kF64;
  if (s == "f16") return kF16;
  if (s == "bf16") return kBF16;
  if (s == "i32") return kI32;
  return kI64;
}
double rtol(DType dt) { return dt == kF64 ? 1e-10 : dt == kF32 ? 2e-5 : dt == kF16 ? 4e-3 : 2e-2; }
double atol(DType dt) { return dt == kF64 ? 1e-10 : dt == kF32 ? 1e-5 : dt == kF16 ? 2e-3 : 2e-2; }

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::stringstream ss(s);
  for (std::string p; std::getline(ss, p, sep);) parts.push_back(p);
  return parts;
}

// The fixture script's "long" input, from its formula.
Tensor long_input() {
  std::vector<float> v;
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3000; ++j)
      v.push_back(static_cast<float>(static_cast<double>((i * 7919 + j * 104729) % 1000) / 250.0 - 2.0));
  return tensor(v, Shape{2, 3000});
}

Tensor fixture_view(const Tensor& x, const std::string& v) {
  if (v == "t") return x.permute({2, 0, 1});
  if (v == "s") return x.slice(1, 0, std::nullopt, 2).slice(2, 1, std::nullopt);
  return x;
}

// Reference reduction by plain loops in double over the row-major elements of x.
std::vector<double> ref_reduce(const Tensor& x, std::vector<int64_t> dims, double init,
                               const std::function<double(double, double)>& fold,
                               const std::function<double(double, int64_t)>& fin) {
  auto v = x.to_vector<double>();
  const int64_t nd = x.dim();
  std::vector<bool> red(static_cast<size_t>(nd), dims.empty());
  for (int64_t d : dims) red[static_cast<size_t>((d + nd) % nd)] = true;
  std::vector<int64_t> keep(x.shape().begin(), x.shape().end());
  for (int64_t d = 0; d < nd; ++d)
    if (red[d]) keep[d] = 1;
  int64_t m = std::accumulate(keep.begin(), keep.end(), int64_t{1}, std::multiplies<>());
  std::vector<double> acc(static_cast<size_t>(m), init);
  std::vector<int64_t> cnt(static_cast<size_t>(m), 0);
  for (size_t flat = 0; flat < v.size(); ++flat) {
    int64_t rem = static_cast<int64_t>(flat), o = 0, mul = 1;
    for (int64_t d = nd - 1; d >= 0; --d) {
      int64_t c = rem % x.shape()[d];
      rem /= x.shape()[d];
      if (!red[d]) o += c * mul;
      mul *= keep[d];
    }
    acc[o] = fold(acc[o], v[flat]);
    ++cnt[o];
  }
  for (int64_t o = 0; o < m; ++o) acc[o] = fin(acc[o], cnt[o]);
  return acc;
}

bool close_to(const Tensor& got, const std::vector<double>& want, double rt, double at) {
  return allclose(got.reshape({got.numel()}).to(kF64), tensor(want, {.dtype = kF64}), rt, at);
}

double fin_plain(double a, int64_t) { return a; }
double fold_add(double a, double b) { return a + b; }

Tensor random_of(DType dt, const Shape& shape) {
  if (is_floating(dt)) return randn(shape).to(dt);
  if (dt == kBool) return randint(0, 2, shape).to(kBool);
  // u8 from 0: a negative draw converted to u8 is undefined behaviour (clang's UBSan reports it).
  return randint(dt == kU8 ? 0 : -5, 6, shape, {.dtype = dt});
}
}  // namespace

TEST_CASE("reductions match PyTorch fixtures over dtypes, views and dims") {
  auto fx = ember::testing::fixtures("reduce");
  int checked = 0;
  for (const auto& entry : fx) {  // not a structured binding: clang 14 cannot capture one in CAPTURE
    const std::string& name = entry.first;
    const Tensor& expect = entry.second;
    auto f = split(name, '.');
    if (f[0] == "in" || f.back() == "idx") continue;
    CAPTURE(name);
    const std::string op = f[0], param = f[4];
    const DType dt = dtype_from(f[1]);
    Tensor x = f[1] == "long" ? long_input() : fixture_view(fx.at("in." + f[1]), f[2]);
    Shape dims;
    if (f[3] != "all")
      for (auto& d : split(f[3], '_')) dims.push_back(d[0] == 'm' ? -std::stoll(d.substr(1)) : std::stoll(d));
    const int64_t d0 = dims.empty() ? 0 : dims[0];
    Tensor got, idx;
    if (op == "sum")
      got = sum(x, dims);
    else if (op == "amax")
      got = amax(x, dims);
    else if (op == "mean")
      got = mean(x, dims);
    else if (op == "var")
      got = var(x, dims, std::stoll(param.substr(1)));
    else if (op == "std")
      got = ember::std(x, dims, std::stoll(param.substr(1)));
    else if (op == "logsumexp")
      got = logsumexp(x, dims);
    else if (op == "norm") {
      std::string p = param.substr(1);
      std::replace(p.begin(), p.end(), '_', '.');  // "p3_5" is p = 3.5
      got = norm(x, p == "inf" ? kInf : p == "minf" ? -kInf : std::stod(p), dims);
    } else if (op == "cumsum")
      got = cumsum(x, d0);
    else if (op == "softmax")
      got = softmax(x, d0);
    else if (op == "log_softmax")
      got = log_softmax(x, d0);
    else if (op == "sort")
      std::tie(got, idx) = sort(x, d0, param == "desc", true);
    else if (op == "topk")
      std::tie(got, idx) = topk(x, 3, d0, param == "k3l1");
    else if (op == "max")
      std::tie(got, idx) = max(x, d0);
    else if (op == "min")
      std::tie(got, idx) = min(x, d0);
    else
      FAIL("unknown fixture op " << op);
    if (param == "every37") got = got.slice(1, 0, std::nullopt, 37);
    CHECK(got.dtype() == expect.dtype());
    CHECK(allclose(got, expect, rtol(dt), atol(dt)));
    if (idx.defined()) CHECK(equal(idx, fx.at(name + ".idx")));
    ++checked;
  }
  CHECK(checked > 500);
}

TEST_CASE("sum, mean, prod, amax, amin, all, any match loops over dtypes, dims, keepdim and views") {
  manual_seed(7);
  const std::vector<DType> dtypes = {kF32, kF64, kF16, kBF16, kI32, kI64, kU8, kBool};
  const std::vector<std::vector<int64_t>> dim_sets = {{}, {0}, {1}, {-1}, {0, 2}, {1, 2}, {2, 0, 1}};
  for (DType dt : dtypes) {
    Tensor base = random_of(dt, {3, 4, 5});
    if (dt == kU8) base = randint(0, 4, {3, 4, 5}, {.dtype = kU8});
    for (int view = 0; view < 3; ++view) {
      Tensor x = view == 0 ? base : view == 1 ? base.permute({1, 2, 0}) : base.slice(2, 1, std::nullopt, 2);
      for (const auto& dv : dim_sets) {
        Shape dims(dv);
        for (bool keep : {false, true}) {
          CAPTURE(dt);
          CAPTURE(view);
          CAPTURE(dims);
          CAPTURE(keep);
          const double rt = is_floating(dt) ? rtol(dt) : 0, at = is_floating(dt) ? atol(dt) : 0;
          Tensor s = sum(x, dims, keep);
          CHECK(s.dtype() == (is_floating(dt) ? dt : kI64));
          CHECK(s.dim() == (keep ? x.dim() : x.dim() - static_cast<int64_t>(dv.empty() ? 3 : dv.size())));
          CHECK(close_to(s, ref_reduce(x, dv, 0, fold_add, fin_plain), rt, at));
          auto mx = ref_reduce(
              x, dv, -kInf, [](double a, double b) { return std::max(a, b); }, fin_plain);
          auto mn = ref_reduce(
              x, dv, kInf, [](double a, double b) { return std::min(a, b); }, fin_plain);
          CHECK(close_to(amax(x, dims, keep), mx, 0, 0));
          CHECK(close_to(amin(x, dims, keep), mn, 0, 0));
          CHECK(amax(x, dims, keep).dtype() == dt);
          auto al = ref_reduce(
              x, dv, 1, [](double a, double b) { return double(a != 0 && b != 0); }, fin_plain);
          auto an = ref_reduce(
              x, dv, 0, [](double a, double b) { return double(a != 0 || b != 0); }, fin_plain);
          CHECK(all(x, dims, keep).dtype() == kBool);
          CHECK(close_to(all(x, dims, keep), al, 0, 0));
          CHECK(close_to(any(x, dims, keep), an, 0, 0));
          if (dt != kF16 && dt != kBF16 && dt != kU8) {  // products of 60 values overflow the small types
            Tensor p = prod(x, dims, keep);
            CHECK(p.dtype() == (is_floating(dt) ? dt : kI64));
            CHECK(close_to(p,
                           ref_reduce(
                               x, dv, 1, [](double a, double b) { return a * b; }, fin_plain),
                           1e-4, 1e-12));
          }
          if (is_floating(dt)) {
            auto m = ref_reduce(x, dv, 0, fold_add, [](double a, int64_t n) { return a / double(n); });
            CHECK(close_to(mean(x, dims, keep), m, rt, at));
          }
        }
      }
    }
  }
}

TEST_CASE("dims semantics: empty means all, negative wrap, duplicates and range errors, 0-dim inputs") {
  Tensor x = arange(0, 24, 1, kF32).reshape({2, 3, 4});
  CHECK(sum(x).item<float>() == 276);
  CHECK(equal(sum(x, {-1}), sum(x, {2})));
  CHECK(equal(sum(x, {-3, -1}), sum(x, {0, 2})));
  CHECK(sum(x, {}, true).shape() == Shape{1, 1, 1});
  CHECK(sum(x, {1}, true).shape() == Shape{2, 1, 4});
  CHECK_THROWS_AS(sum(x, {1, 1}), ValueError);
  CHECK_THROWS_AS(sum(x, {0, -3}), ValueError);
  CHECK_THROWS_AS(sum(x, {3}), IndexError);
  CHECK_THROWS_AS(amax(x, {-4}), IndexError);
  CHECK_THROWS_AS(max(x, 5), IndexError);
  try {
    sum(x, {2, -1});
    FAIL("expected a ValueError");
  } catch (const ValueError& e) {
    CHECK(std::string(e.what()).rfind("[sum]", 0) == 0);
  }
  // 0-dim: dim 0 / -1 reduce the single element
  Tensor s = scalar_tensor(3.5);
  CHECK(sum(s).dim() == 0);
  CHECK(sum(s, {0}).item<float>() == 3.5f);
  CHECK(sum(s, {-1}, true).dim() == 0);
  CHECK(mean(s).item<float>() == 3.5f);
  CHECK(amax(s, {0}).item<float>() == 3.5f);
  CHECK(std::isnan(var(s).item<float>()));
  CHECK(var(s, {}, 0).item<float>() == 0);
  auto [v, i] = max(s, 0);
  CHECK(v.item<float>() == 3.5f);
  CHECK(i.item<int64_t>() == 0);
  CHECK(argmax(s).item<int64_t>() == 0);
  CHECK(cumsum(s, 0).item<float>() == 3.5f);
  CHECK(softmax(s, 0).item<float>() == 1.0f);
  CHECK(log_softmax(s, -1).item<float>() == 0.0f);
  CHECK(sort(s).values.item<float>() == 3.5f);
  CHECK(topk(s, 1).indices.item<int64_t>() == 0);
  CHECK_THROWS_AS(sum(s, {1}), IndexError);
  // tensor methods forward to the same ops
  CHECK(equal(x.sum({1}, true), sum(x, {1}, true)));
  CHECK(equal(x.prod(1), prod(x, {1})));
  CHECK(equal(x.all(0), all(x, {0})));
}

TEST_CASE("result dtypes follow PyTorch") {
  Tensor b = tensor({true, true, false});
  CHECK(sum(b).dtype() == kI64);
  CHECK(sum(b).item<int64_t>() == 2);
  Tensor i = tensor({1, 2, 3}, {.dtype = kI32});
  CHECK(sum(i).dtype() == kI64);
  CHECK(prod(i).dtype() == kI64);
  CHECK(prod(i).item<int64_t>() == 6);
  CHECK(cumsum(i, 0).dtype() == kI64);
  CHECK(cumprod(b, 0).dtype() == kI64);
  CHECK(sum(i, {}, false, kF64).dtype() == kF64);
  CHECK(sum(i, {}, false, kI32).dtype() == kI32);
  CHECK(sum(tensor({0.5, 0.25}), {}, false, kF64).item<double>() == 0.75);
  // with a dtype the input is converted first: 0.6 truncates to 0 in i64
  CHECK(sum(tensor({0.6, 1.6}), {}, false, kI64).item<int64_t>() == 1);
  CHECK(amax(i).dtype() == kI32);
  CHECK(all(tensor({1.0, 2.0})).dtype() == kBool);
  CHECK(any(tensor({0, 0}, {.dtype = kU8})).dtype() == kBool);
  CHECK(logsumexp(i, {0}).dtype() == kF32);
  CHECK(logsumexp(i, {0}).item<float>() == doctest::Approx(std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0))));
  CHECK(max(i, 0).indices.dtype() == kI64);
  CHECK(argmax(i).dtype() == kI64);
  CHECK_THROWS_AS(mean(i), DTypeError);
  CHECK_THROWS_AS(var(i), DTypeError);
  CHECK_THROWS_AS(ember::std(i), DTypeError);
  CHECK_THROWS_AS(norm(i), DTypeError);
  CHECK_THROWS_AS(softmax(i, 0), DTypeError);
  CHECK_THROWS_AS(log_softmax(b, 0), DTypeError);
  for (DType dt : {kF16, kBF16}) {
    Tensor h = full({100000}, 1.0, {.dtype = dt});  // the f16 sum overflows; the f32 accumulator does not
    CHECK(mean(h).item<float>() == 1.0f);
    CHECK(mean(h).dtype() == dt);
    CHECK(sum(h, {}, false, kF32).item<float>() == 100000.0f);
  }
}

TEST_CASE("zero-size inputs: identities, NaN mean and errors for max-like ops") {
  Tensor e = zeros({0, 3});
  CHECK(sum(e).item<float>() == 0);
  CHECK(prod(e).item<float>() == 1);
  CHECK(std::isnan(mean(e).item<float>()));
  CHECK(equal(sum(e, {0}), zeros({3})));
  CHECK(equal(prod(e, {0}), ones({3})));
  CHECK(sum(e, {1}).shape() == Shape{0});
  CHECK(amax(e, {1}).shape() == Shape{0});  // nothing reduced over a zero-size dim
  CHECK(max(e, 1).indices.shape() == Shape{0});
  CHECK(all(e).item<bool>() == true);
  CHECK(any(e).item<bool>() == false);
  CHECK(std::isinf(logsumexp(e, {0}).to_vector<float>()[0]));
  CHECK(logsumexp(e, {0}).to_vector<float>()[0] < 0);
  CHECK(norm(e).item<float>() == 0);
  CHECK(std::isnan(var(e).item<float>()));
  CHECK(cumsum(e, 0).shape() == Shape{0, 3});
  CHECK(sort(e, 0).values.shape() == Shape{0, 3});
  CHECK(softmax(e, 0).shape() == Shape{0, 3});
  CHECK(topk(e, 0, 0).values.shape() == Shape{0, 3});
  CHECK_THROWS_AS(amax(e), ShapeError);
  CHECK_THROWS_AS(amin(e, {0}), ShapeError);
  CHECK_THROWS_AS(max(e), ShapeError);
  CHECK_THROWS_AS(min(e), ShapeError);
  CHECK_THROWS_AS(max(e, 0), ShapeError);
  CHECK_THROWS_AS(argmax(e), ShapeError);
  CHECK_THROWS_AS(argmin(e, 0), ShapeError);
  CHECK_THROWS_AS(norm(e, kInf), ShapeError);
  try {
    amax(e, {0});
    FAIL("expected a ShapeError");
  } catch (const ShapeError& err) {
    std::string msg = err.what();
    CHECK(msg.rfind("[amax]", 0) == 0);
    CHECK(msg.find("[0, 3]") != std::string::npos);
  }
}

TEST_CASE("max/min/argmax/argmin: first index of the extreme, NaN counts as the extreme") {
  Tensor x = tensor({{1.0, 5.0, 5.0, -2.0}, {-7.0, 0.0, -7.0, 3.0}});
  auto [v, i] = max(x, 1);
  CHECK(v.to_vector<float>() == std::vector<float>{5, 3});
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{1, 3});
  auto [v2, i2] = min(x, 1, true);
  CHECK(v2.shape() == Shape{2, 1});
  CHECK(i2.to_vector<int64_t>() == std::vector<int64_t>{3, 0});
  CHECK(argmax(x).item<int64_t>() == 1);
  CHECK(argmin(x).item<int64_t>() == 4);
  CHECK(argmax(x, 0).to_vector<int64_t>() == std::vector<int64_t>{0, 0, 0, 1});
  CHECK(argmax(x, {}, true).shape() == Shape{1, 1});
  CHECK(argmin(x.t()).item<int64_t>() == 1);  // flat index into the transposed (row-major) view
  CHECK(max(x).item<float>() == 5);
  CHECK(min(x).item<float>() == -7);
  Tensor n = tensor({{1.0, kNaN, 3.0, kNaN}, {2.0, 1.0, 0.0, 4.0}});
  CHECK(argmax(n, 1).to_vector<int64_t>() == std::vector<int64_t>{1, 3});
  CHECK(argmin(n, 1).to_vector<int64_t>() == std::vector<int64_t>{1, 2});
  CHECK(std::isnan(min(n, 1).values.to_vector<float>()[0]));
  CHECK(std::isnan(amax(n).item<float>()));
  CHECK(std::isnan(amin(n, {0}).to_vector<float>()[1]));
  CHECK(amin(n, {0}).to_vector<float>()[2] == 0);
  CHECK(argmax(n).item<int64_t>() == 1);
  // Long rows take the vectorised path: NaN and ties placed late, in every float dtype and ints
  for (DType dt : {kF32, kF64, kF16, kBF16, kI32, kI64, kU8}) {
    CAPTURE(dt);
    Tensor r = zeros({3, 1000}, {.dtype = dt});
    r.select(0, 0).narrow(0, 700, 1).fill_(9);
    r.select(0, 0).narrow(0, 900, 1).fill_(9);
    r.select(0, 1).narrow(0, 555, 1).fill_(2);
    if (is_floating(dt)) {
      r.select(0, 2).narrow(0, 10, 1).fill_(5);
      r.select(0, 2).narrow(0, 800, 1).fill_(kNaN);
    }
    auto idx = argmax(r, 1).to_vector<int64_t>();
    CHECK(idx[0] == 700);
    CHECK(idx[1] == 555);
    CHECK(idx[2] == (is_floating(dt) ? 800 : 0));
    CHECK(argmax(r).item<int64_t>() == (is_floating(dt) ? 2800 : 700));  // the NaN wins
    CHECK(argmin(r, 1).to_vector<int64_t>()[0] == 0);
    CHECK(argmax(r.t(), 0).to_vector<int64_t>()[1] == 555);  // outer-mode path
  }
  // The value is the element at the index: a long row whose max is 0 first at a +0.0, later at a -0.0.
  Tensor z = full({40}, -1.0);
  z.narrow(0, 1, 1).fill_(0.0);
  z.narrow(0, 16, 1).fill_(-0.0);
  auto [zv, zi] = max(z, 0);
  CHECK(zi.item<int64_t>() == 1);
  CHECK(!std::signbit(zv.item<float>()));
  auto [nv, ni] = min(-z, 0);
  CHECK(ni.item<int64_t>() == 1);
  CHECK(std::signbit(nv.item<float>()));  // -(+0.0)
  // bool extremes
  Tensor b = tensor({false, true, true});
  CHECK(amax(b).item<bool>());
  CHECK(argmax(b).item<int64_t>() == 1);
}

TEST_CASE("var, std, var_mean and norm match loops; corrections and p values") {
  manual_seed(3);
  Tensor x = randn({5, 6, 7}, {.dtype = kF64}) * 3.0 + 1.0;
  for (Tensor in : {x, x.transpose(0, 2)}) {
    for (std::vector<int64_t> dv : {std::vector<int64_t>{}, {0}, {2}, {0, 1}}) {
      for (int64_t corr : {0, 1, 2}) {
        CAPTURE(dv);
        CAPTURE(corr);
        auto mean_ref = ref_reduce(in, dv, 0, fold_add, [](double a, int64_t n) { return a / double(n); });
        // second pass around the reference means
        auto v = in.to_vector<double>();
        Tensor m = mean(in, Shape(dv), true).expand(in.shape()).contiguous();
        auto mv = m.to_vector<double>();
        std::vector<double> sq(v.size());
        for (size_t k = 0; k < v.size(); ++k) sq[k] = (v[k] - mv[k]) * (v[k] - mv[k]);
        Tensor sqt = tensor(sq, in.shape(), {.dtype = kF64});
        auto var_ref = ref_reduce(sqt, dv, 0, fold_add, [corr](double a, int64_t n) { return a / double(n - corr); });
        CHECK(close_to(var(in, Shape(dv), corr), var_ref, 1e-12, 1e-12));
        std::vector<double> sd(var_ref.size());
        for (size_t k = 0; k < sd.size(); ++k) sd[k] = std::sqrt(var_ref[k]);
        CHECK(close_to(ember::std(in, Shape(dv), corr), sd, 1e-12, 1e-12));
        auto [vv, mm] = var_mean(in, Shape(dv), corr, true);
        CHECK(close_to(vv, var_ref, 1e-12, 1e-12));
        CHECK(close_to(mm, mean_ref, 1e-12, 1e-12));
        CHECK(mm.dim() == 3);
      }
      for (double p : {0.0, 1.0, 2.0, 3.0, 0.5, kInf, -kInf}) {
        CAPTURE(p);
        std::vector<double> ref;
        if (std::isinf(p)) {
          ref = ref_reduce(
              in, dv, p > 0 ? 0 : kInf,
              [p](double a, double b) { return p > 0 ? std::max(a, std::abs(b)) : std::min(a, std::abs(b)); },
              fin_plain);
        } else if (p == 0) {
          ref = ref_reduce(
              in, dv, 0, [](double a, double b) { return a + (b != 0); }, fin_plain);
        } else {
          ref = ref_reduce(
              in, dv, 0, [p](double a, double b) { return a + std::pow(std::abs(b), p); },
              [p](double a, int64_t) { return std::pow(a, 1 / p); });
        }
        CHECK(close_to(norm(in, p, Shape(dv)), ref, 1e-12, 1e-12));
      }
    }
  }
  // precision: a large offset does not swamp the variance of f32 data
  Tensor big = full({10000}, 1e4);
  big.narrow(0, 0, 5000).fill_(1e4 + 1);
  CHECK(var(big).item<float>() == doctest::Approx(0.25 * 10000 / 9999).epsilon(1e-5));
  CHECK(norm(tensor({3.0, -4.0})).item<float>() == 5.0f);
  CHECK(x.norm(1.0, {0}, true).shape() == Shape{1, 6, 7});
  CHECK_THROWS_AS(norm(x, kNaN), ValueError);
}

TEST_CASE("logsumexp is stable for large and infinite values") {
  Tensor x = tensor({{1000.0, 1000.0}, {-kInf, -kInf}, {-kInf, 0.0}, {kInf, 1.0}, {kNaN, 1.0}});
  auto r = logsumexp(x, {1}).to_vector<float>();
  CHECK(r[0] == doctest::Approx(1000.0 + std::log(2.0)));
  CHECK((std::isinf(r[1]) && r[1] < 0));
  CHECK(r[2] == 0.0f);
  CHECK((std::isinf(r[3]) && r[3] > 0));
  CHECK(std::isnan(r[4]));
  manual_seed(5);
  for (DType dt : {kF32, kF64, kF16, kBF16}) {
    Tensor y = (randn({4, 50, 3}) * 4.0).to(dt);
    for (std::vector<int64_t> dv : {std::vector<int64_t>{1}, {0, 2}, {}}) {
      CAPTURE(dt);
      CAPTURE(dv);
      auto mx = ref_reduce(
          y, dv, -kInf, [](double a, double b) { return std::max(a, b); }, fin_plain);
      std::vector<double> ref(mx.size(), 0);
      // sum of exp(x - max) per output, by the loop helper on shifted values
      Tensor shifted = y.to(kF64) - amax(y.to(kF64), Shape(dv), true);
      auto s = ref_reduce(exp(shifted), dv, 0, fold_add, fin_plain);
      for (size_t k = 0; k < ref.size(); ++k) ref[k] = mx[k] + std::log(s[k]);
      CHECK(close_to(logsumexp(y, Shape(dv)), ref, rtol(dt), atol(dt)));
    }
  }
}

TEST_CASE("cumsum and cumprod match loops along every dim and on views") {
  manual_seed(11);
  for (DType dt : {kF32, kF64, kF16, kI32, kI64, kBool}) {
    Tensor base = dt == kBool       ? randint(0, 2, {3, 4, 5}).to(kBool)
                  : is_floating(dt) ? (rand({3, 4, 5}) + 0.5).to(dt)
                                    : randint(-3, 4, {3, 4, 5}, {.dtype = dt});
    for (Tensor x : {base, base.permute({2, 0, 1}), base.slice(1, 1, std::nullopt, 2)}) {
      for (int64_t d = -1; d < x.dim(); ++d) {
        CAPTURE(dt);
        CAPTURE(d);
        const int64_t dim = (d + x.dim()) % x.dim();
        Tensor xc = x.contiguous();
        auto v = xc.to_vector<double>();
        std::vector<double> cs(v.size()), cp(v.size());
        int64_t inner = 1;
        for (int64_t k = dim + 1; k < x.dim(); ++k) inner *= x.shape()[k];
        const int64_t n = x.shape()[dim];
        for (size_t k = 0; k < v.size(); ++k) {
          int64_t pos = (static_cast<int64_t>(k) / inner) % n;
          cs[k] = v[k] + (pos > 0 ? cs[k - inner] : 0);
          cp[k] = v[k] * (pos > 0 ? cp[k - inner] : 1);
        }
        Tensor s = cumsum(x, d), p = cumprod(x, d);
        CHECK(s.dtype() == (is_floating(dt) ? dt : kI64));
        CHECK(s.shape() == x.shape());
        double rt = is_floating(dt) ? rtol(dt) : 0;
        CHECK(close_to(s, cs, rt, rt));
        CHECK(close_to(p, cp, rt, rt));
      }
    }
  }
}

TEST_CASE("sort and argsort: stable, descending, NaN sorts as the largest") {
  Tensor x = tensor({3, 1, 2, 1, 3, 0});
  auto [v, i] = sort(x, 0, false, true);
  CHECK(v.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 1, 2, 3, 3});
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{5, 1, 3, 2, 0, 4});
  auto [vd, id] = sort(x, 0, true, true);
  CHECK(vd.to_vector<int64_t>() == std::vector<int64_t>{3, 3, 2, 1, 1, 0});
  CHECK(id.to_vector<int64_t>() == std::vector<int64_t>{0, 4, 2, 1, 3, 5});
  CHECK(equal(argsort(x, -1, true, true), id));
  Tensor n = tensor({2.0, kNaN, -1.0, kInf, kNaN, -kInf});
  auto [nv, ni] = sort(n);
  auto nvv = nv.to_vector<float>();
  CHECK(nvv[0] == -INFINITY);
  CHECK(nvv[1] == -1.0f);
  CHECK(nvv[3] == INFINITY);
  CHECK((std::isnan(nvv[4]) && std::isnan(nvv[5])));
  CHECK(ni.to_vector<int64_t>() == std::vector<int64_t>{5, 2, 0, 3, 1, 4});
  auto [dv, di] = sort(n, 0, true);
  CHECK(di.to_vector<int64_t>() == std::vector<int64_t>{1, 4, 3, 0, 2, 5});
  // along dim 0 of a matrix and on a transposed view, in several dtypes
  manual_seed(2);
  for (DType dt : {kF32, kF64, kBF16, kI32, kU8, kBool}) {
    CAPTURE(dt);
    Tensor m = random_of(dt, {6, 9}).t();
    auto [sv, si] = sort(m, 0);
    auto mv = m.contiguous().to_vector<double>(), svv = sv.to_vector<double>();
    auto siv = si.to_vector<int64_t>();
    const int64_t rows = m.shape()[0], cols = m.shape()[1];
    bool ok = true;
    for (int64_t c = 0; c < cols; ++c)
      for (int64_t r = 0; r < rows; ++r) {
        ok &= svv[r * cols + c] == mv[siv[r * cols + c] * cols + c];  // values are the input at the indices
        if (r > 0) ok &= svv[(r - 1) * cols + c] <= svv[r * cols + c];
      }
    CHECK(ok);
  }
}

TEST_CASE("topk: largest and smallest, k bounds, dims") {
  Tensor x = tensor({{5.0, 1.0, 4.0, 2.0, 3.0}, {0.0, -1.0, 7.0, 7.0, kNaN}});
  auto [v, i] = topk(x, 2);
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{0, 2, 4, 2});
  CHECK(v.to_vector<float>()[0] == 5.0f);
  CHECK(std::isnan(v.to_vector<float>()[2]));
  auto [vs, is] = topk(x, 3, 1, false);
  CHECK(is.to_vector<int64_t>() == std::vector<int64_t>{1, 3, 4, 1, 0, 2});
  CHECK(vs.to_vector<float>()[3] == -1.0f);
  auto [vk, ik] = topk(x, 1, 0);
  CHECK(vk.shape() == Shape{1, 5});
  CHECK(ik.to_vector<int64_t>() == std::vector<int64_t>{0, 0, 1, 1, 1});
  CHECK(topk(x, 0).values.shape() == Shape{2, 0});
  CHECK(topk(x, 5).values.shape() == Shape{2, 5});
  CHECK_THROWS_AS(topk(x, 6), IndexError);
  CHECK_THROWS_AS(topk(x, -1), IndexError);
  // against a full sort on long rows (the selection path); distinct values so ties cannot differ
  manual_seed(9);
  for (DType dt : {kF32, kI64}) {
    Tensor r = (randn({3, 2000}) * 1000.0).to(dt);
    if (dt == kI64) r = argsort(rand({3, 2000}), 1);  // a permutation per row
    auto [tv, ti] = topk(r, 10, 1);
    auto [sv, si] = sort(r, 1, true);
    CHECK(equal(tv, sv.narrow(1, 0, 10)));
    CHECK(equal(ti, si.narrow(1, 0, 10)));
    auto [tv2, ti2] = topk(r.t(), 7, 0, false);
    auto [sv2, si2] = sort(r.t(), 0);
    CHECK(equal(tv2, sv2.narrow(0, 0, 7)));
    CHECK(equal(ti2, si2.narrow(0, 0, 7)));
  }
}

TEST_CASE("softmax and log_softmax: loops on every dim, stability, infinities, low precision") {
  manual_seed(4);
  for (DType dt : {kF32, kF64, kF16, kBF16}) {
    Tensor base = (randn({4, 5, 33}) * 5.0).to(dt);
    for (Tensor x : {base, base.permute({2, 0, 1}), base.slice(2, 0, std::nullopt, 3)}) {
      for (int64_t d = 0; d < 3; ++d) {
        CAPTURE(dt);
        CAPTURE(d);
        Tensor xd = x.to(kF64);
        Tensor shifted = xd - amax(xd, {d}, true);
        Tensor e = exp(shifted);
        Tensor ref = e / sum(e, {d}, true);
        Tensor lref = shifted - log(sum(e, {d}, true));
        Tensor sm = softmax(x, d), lsm = log_softmax(x, d);
        CHECK(sm.dtype() == dt);
        CHECK(sm.is_contiguous());
        CHECK(allclose(sm, ref.to(dt), rtol(dt), atol(dt)));
        CHECK(allclose(lsm, lref.to(dt), rtol(dt), dt == kBF16 ? 0.1 : atol(dt) * 10));
      }
    }
  }
  Tensor big = tensor({{1000.0, 1000.0, -1000.0}, {-kInf, 0.0, -kInf}, {-kInf, -kInf, -kInf}});
  auto s = softmax(big, 1).to_vector<float>();
  CHECK(s[0] == 0.5f);
  CHECK(s[2] == 0.0f);
  CHECK(s[3] == 0.0f);
  CHECK(s[4] == 1.0f);
  CHECK(std::isnan(s[6]));  // all -inf has no maximum to shift by, as PyTorch
  auto l = log_softmax(big, 1).to_vector<float>();
  CHECK(l[0] == doctest::Approx(-std::log(2.0)));
  CHECK(l[2] == doctest::Approx(-2000.0 - std::log(2.0)));
  CHECK((std::isinf(l[3]) && l[3] < 0));
  CHECK(l[4] == 0.0f);
  // the vectorised exp is accurate over its whole range, including gradual underflow: the softmax of
  // (0, x) is (1, e^x) / (1 + e^x), on the row kernel and on the column kernel
  std::vector<float> pairs;
  for (int k = 0; k <= 2000; ++k) pairs.insert(pairs.end(), {0.0f, -110.0f + 0.055f * static_cast<float>(k)});
  Tensor rows = tensor(pairs, Shape{2001, 2});
  for (Tensor got : {softmax(rows, 1), softmax(rows.t().contiguous(), 0).t()}) {
    auto g = got.contiguous().to_vector<float>();
    bool ok = true;
    for (size_t k = 0; k < pairs.size(); k += 2) {
      double e = std::exp(static_cast<double>(pairs[k + 1]));
      ok &= std::abs(g[k] - 1 / (1 + e)) <= 4e-7 / (1 + e);
      ok &= std::abs(g[k + 1] - e / (1 + e)) <= 4e-7 * e / (1 + e) + 3e-45;
    }
    CHECK(ok);
  }
}

TEST_CASE("large inputs take the parallel paths and match double loops deterministically") {
  manual_seed(21);
  Tensor x = rand({3 << 20}) + 0.5;  // 3M floats: the split full reduction
  double ref = 0, ref_sq = 0;
  auto v = x.to_vector<float>();
  for (float f : v) ref += f;
  CHECK(sum(x).item<float>() == doctest::Approx(ref).epsilon(1e-6));
  CHECK(sum(x).item<float>() == sum(x).item<float>());
  CHECK(mean(x).item<float>() == doctest::Approx(ref / v.size()).epsilon(1e-6));
  for (float f : v) ref_sq += (f - ref / v.size()) * (f - ref / v.size());
  CHECK(var(x).item<float>() == doctest::Approx(ref_sq / (v.size() - 1)).epsilon(1e-5));
  v[2222222] = 7;
  Tensor y = tensor(v);
  CHECK(argmax(y).item<int64_t>() == 2222222);
  CHECK(amax(y).item<float>() == 7);
  // outer reductions: [4096, 300] over dim 0 (whole rows accumulate), and [300000, 3] (split)
  for (Shape shape : {Shape{4096, 300}, Shape{300000, 3}}) {
    CAPTURE(shape);
    Tensor m = randn(shape);
    auto sref = ref_reduce(m, {0}, 0, fold_add, fin_plain);
    CHECK(close_to(sum(m, {0}), sref, 1e-5, 1e-3));
    CHECK(close_to(amax(m, {0}),
                   ref_reduce(
                       m, {0}, -kInf, [](double a, double b) { return std::max(a, b); }, fin_plain),
                   0, 0));
    CHECK(close_to(sum(m.t(), {1}), sref, 1e-5, 1e-3));
    auto [mv, mi] = max(m, 0);
    auto mvv = mv.to_vector<float>(), all_v = m.to_vector<float>();
    auto miv = mi.to_vector<int64_t>();
    bool ok = true;
    for (int64_t c = 0; c < shape[1]; ++c) ok &= all_v[miv[c] * shape[1] + c] == mvv[c];
    CHECK(ok);
    CHECK(close_to(sum(m, {1}), ref_reduce(m, {1}, 0, fold_add, fin_plain), 1e-5, 1e-4));
  }
  // softmax rows of 1024 over 512 rows in parallel sum to one
  Tensor logits = randn({512, 1024}) * 3.0;
  CHECK(allclose(sum(softmax(logits, 1), {1}), ones({512}), 1e-5, 1e-5));
  CHECK(allclose(sum(softmax(logits, 0), {0}), ones({1024}), 1e-5, 1e-5));
}

TEST_CASE("every half value converts exactly on the vectorised reduction paths") {
  std::vector<float> vals, rows;
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    float v = half::from_bits(static_cast<uint16_t>(bits));
    vals.push_back(v);
    rows.push_back(v);
    rows.insert(rows.end(), 31, 0.0f);
  }
  Tensor h = tensor(rows, Shape{0x10000, 32}).to(kF16);
  auto s = sum(h, {1}).to_vector<float>();
  auto m = amax(h.neg(), {1}).to_vector<float>();
  bool ok = true;
  for (size_t k = 0; k < vals.size(); ++k) {
    float want = vals[k] + 0.0f;  // -0 + 0 = +0
    ok &= (std::isnan(want) && std::isnan(s[k])) || s[k] == want;
    float want_max = std::isnan(vals[k]) ? vals[k] : std::max(-vals[k], 0.0f);
    ok &= (std::isnan(want_max) && std::isnan(m[k])) || m[k] == want_max;
  }
  CHECK(ok);
}
