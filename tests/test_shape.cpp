// Shape ops: the views (view/reshape, permute, transpose, squeeze, expand, narrow, slice, select,
// flatten, as_strided) and the copies (cat, stack, split, chunk, flip, repeat, pad). Expected values
// come from loops over row-major copies and from PyTorch fixtures.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ember.hpp"
#include "test_util.hpp"

using namespace ember;
using ember::testing::equal;
using ember::testing::for_each_index;
using ember::testing::Ref;

namespace {

// Distinct small values (exact in every dtype) so that misplaced elements show.
Tensor input(const Shape& s, DType dt, int64_t salt = 0) {
  std::vector<double> v(static_cast<size_t>(shape_numel(s)));
  for (size_t i = 0; i < v.size(); ++i) {
    v[i] = static_cast<double>((static_cast<int64_t>(i) * 7 + salt) % 101);
    if (dt == kBool) v[i] = static_cast<int64_t>(v[i]) % 3 == 0;
  }
  return tensor(v, s, TensorOptions{kF64}).to(dt);
}

bool shares_storage(const Tensor& a, const Tensor& b) { return a.impl().storage == b.impl().storage; }

#define EMBER_SHAPE_DTYPES float, double, half, bfloat16, int32_t, int64_t, uint8_t, bool

}  // namespace

// ---------------------------------------------------------------- views

TEST_CASE("view and reshape infer -1 and respect strides") {
  Tensor x = input({2, 3, 4}, kF32);
  Tensor v = x.view({4, -1});
  CHECK(v.shape() == Shape{4, 6});
  CHECK(shares_storage(v, x));
  CHECK(x.reshape({-1}).shape() == Shape{24});
  CHECK(x.view({2, -1, 2}).shape() == Shape{2, 6, 2});
  CHECK(equal(x.view({24}), tensor(Ref(x).v, {24}, TensorOptions{kF64}).to(kF32)));
  CHECK_THROWS_AS(x.view({-1, -1}), ShapeError);
  CHECK_THROWS_AS(x.view({5, -1}), ShapeError);
  CHECK_THROWS_AS(x.view({25}), ShapeError);
  CHECK_THROWS_AS(x.view({-2, 12}), ShapeError);
  CHECK(zeros({0, 4}).view({-1, 2}).shape() == Shape{0, 2});
  CHECK_THROWS_AS(zeros({0, 4}).view({0, -1}), ShapeError);  // -1 is ambiguous with a 0 elsewhere
  // A transposed tensor can split a dim as a view but cannot be flattened without a copy.
  Tensor t = x.transpose(1, 2);  // [2, 4, 3]
  Tensor split = t.view({2, 2, 2, 3});
  CHECK(shares_storage(split, x));
  Ref rt(t.contiguous()), rs(split.contiguous());
  CHECK(rt.v == rs.v);
  CHECK_THROWS_AS(t.view({2, 12}), ShapeError);
  Tensor r = t.reshape({2, 12});
  CHECK(!shares_storage(r, x));
  CHECK(Ref(r).v == rt.v);
  CHECK(shares_storage(x.reshape({6, 4}), x));  // contiguous: no copy
  CHECK(scalar_tensor(3.0).view({1, 1}).shape() == Shape{1, 1});
  CHECK(zeros({1, 1}).view({}).dim() == 0);
}

TEST_CASE("permute, transpose, t and mT") {
  Tensor x = input({2, 3, 4}, kI32);
  Tensor p = x.permute({2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(p.strides() == Shape{1, 12, 4});
  CHECK(shares_storage(p, x));
  Ref rx(x), rp(p.contiguous());
  bool ok = true;
  for_each_index(p.shape(), [&](const Shape& i) { ok &= rp[i] == rx[{i[1], i[2], i[0]}]; });
  CHECK(ok);
  CHECK(x.permute({-1, 0, 1}).shape() == Shape{4, 2, 3});
  CHECK_THROWS_AS(x.permute({0, 0, 1}), ShapeError);
  CHECK_THROWS_AS(x.permute({0, 1}), ShapeError);
  CHECK_THROWS_AS(x.permute({0, 1, 3}), IndexError);
  CHECK(equal(x.transpose(0, 2), x.permute({2, 1, 0})));
  CHECK(equal(x.transpose(-1, 0), x.permute({2, 1, 0})));
  CHECK(equal(x.mT(), x.permute({0, 2, 1})));
  Tensor m = input({3, 5}, kF64);
  CHECK(m.t().shape() == Shape{5, 3});
  CHECK(m.t().strides() == Shape{1, 5});
  CHECK(equal(m.t().t(), m));
  CHECK(tensor({1.0f, 2.0f}).t().shape() == Shape{2});
  CHECK(scalar_tensor(1.0).t().dim() == 0);
  CHECK_THROWS_AS(x.t(), ShapeError);
  CHECK_THROWS_AS(x.transpose(0, 3), IndexError);
}

TEST_CASE("squeeze and unsqueeze") {
  Tensor x = input({1, 3, 1, 2}, kF32);
  CHECK(x.squeeze().shape() == Shape{3, 2});
  CHECK(x.squeeze(0).shape() == Shape{3, 1, 2});
  CHECK(x.squeeze(-2).shape() == Shape{1, 3, 2});
  CHECK(x.squeeze(1).shape() == x.shape());  // size 3: unchanged
  CHECK(equal(x.squeeze().view({6}), x.view({6})));
  CHECK_THROWS_AS(x.squeeze(4), IndexError);
  Tensor y = input({3, 2}, kF32);
  CHECK(y.unsqueeze(0).shape() == Shape{1, 3, 2});
  CHECK(y.unsqueeze(1).shape() == Shape{3, 1, 2});
  CHECK(y.unsqueeze(-1).shape() == Shape{3, 2, 1});
  CHECK(y.unsqueeze(2).shape() == Shape{3, 2, 1});
  CHECK(y.t().unsqueeze(1).squeeze(1).strides() == y.t().strides());
  CHECK(equal(y.t().unsqueeze(0)[0], y.t()));
  CHECK_THROWS_AS(y.unsqueeze(3), IndexError);
  CHECK(scalar_tensor(2.0).unsqueeze(0).shape() == Shape{1});
  CHECK(scalar_tensor(2.0).squeeze().dim() == 0);
}

TEST_CASE("expand and broadcast_to") {
  Tensor x = input({3, 1}, kI64);
  Tensor e = x.expand({2, 3, 4});
  CHECK(e.shape() == Shape{2, 3, 4});
  CHECK(e.strides() == Shape{0, 1, 0});
  CHECK(shares_storage(e, x));
  Ref rx(x), re(e.contiguous());
  bool ok = true;
  for_each_index(e.shape(), [&](const Shape& i) { ok &= re[i] == rx[{i[1], 0}]; });
  CHECK(ok);
  CHECK(x.expand({-1, 5}).shape() == Shape{3, 5});
  CHECK(broadcast_to(x, {3, 0}).shape() == Shape{3, 0});
  CHECK_THROWS_AS(x.expand({4, 4}), ShapeError);
  CHECK_THROWS_AS(x.expand({4}), ShapeError);
  CHECK_THROWS_AS(x.expand({-1, 3, 4}), ShapeError);  // -1 in a new leading dim
  auto b = broadcast_tensors({x, input({4}, kF32), scalar_tensor(1.0)});
  CHECK(b.size() == 3);
  for (const Tensor& t : b) CHECK(t.shape() == Shape{3, 4});
  CHECK_THROWS_AS(broadcast_tensors({x, input({2, 4}, kF32)}), ShapeError);
}

TEST_CASE("narrow, slice with step and select") {
  Tensor x = input({4, 6}, kF32);
  Ref rx(x);
  Tensor n = x.narrow(1, 2, 3);
  CHECK(n.shape() == Shape{4, 3});
  CHECK(shares_storage(n, x));
  CHECK(n.storage_offset() == 2);
  CHECK(Ref(n)[{3, 2}] == rx[{3, 4}]);
  CHECK(equal(x.narrow(1, -2, 2), x.narrow(1, 4, 2)));
  CHECK_THROWS_AS(x.narrow(1, 4, 3), IndexError);
  CHECK_THROWS_AS(x.narrow(0, 0, -1), IndexError);
  CHECK_THROWS_AS(scalar_tensor(1.0).narrow(0, 0, 1), ShapeError);
  CHECK(x.narrow(0, 4, 0).shape() == Shape{0, 6});

  Tensor s = x.slice(1, 1, {}, 2);  // columns 1, 3, 5
  CHECK(s.shape() == Shape{4, 3});
  CHECK(s.strides() == Shape{6, 2});
  Ref rs(s);
  bool ok = true;
  for_each_index(s.shape(), [&](const Shape& i) { ok &= rs[i] == rx[{i[0], 1 + 2 * i[1]}]; });
  CHECK(ok);
  CHECK(x.slice(1, 0, 5, 2).shape() == Shape{4, 3});    // 0, 2, 4
  CHECK(x.slice(1, -3, {}, 1).shape() == Shape{4, 3});  // negative start
  CHECK(x.slice(1, 2, 100).shape() == Shape{4, 4});     // end clamps
  CHECK(x.slice(1, 5, 2).shape() == Shape{4, 0});       // empty
  CHECK(x.slice(0, {}, {}, 3).shape() == Shape{2, 6});  // rows 0, 3
  CHECK(equal(x.slice(0, {}, {}, 3)[1], x[3]));
  CHECK(equal(x.slice(1, 1, {}, 2).slice(1, 1, {}, 2), x.narrow(1, 3, 1)));  // slice of a slice
  CHECK_THROWS_AS(x.slice(1, 0, 4, 0), ValueError);
  CHECK_THROWS_AS(x.slice(1, 0, 4, -1), ValueError);

  Tensor row = x.select(0, -1);
  CHECK(row.shape() == Shape{6});
  CHECK(Ref(row)[{2}] == rx[{3, 2}]);
  CHECK(Ref(x.select(1, 5))[{1}] == rx[{1, 5}]);
  CHECK_THROWS_AS(x.select(0, 4), IndexError);
  CHECK_THROWS_AS(x.select(1, -7), IndexError);
  CHECK_THROWS_AS(scalar_tensor(1.0).select(0, 0), IndexError);
  // writes through a view reach the base
  Tensor y = x.clone();
  y.slice(1, 0, {}, 2).fill_(-1);
  Ref ry(y);
  CHECK(ry[{2, 4}] == -1);
  CHECK(ry[{2, 5}] == rx[{2, 5}]);
}

TEST_CASE("flatten and unflatten") {
  Tensor x = input({2, 3, 4, 5}, kF32);
  CHECK(x.flatten().shape() == Shape{120});
  CHECK(x.flatten(1).shape() == Shape{2, 60});
  CHECK(x.flatten(1, 2).shape() == Shape{2, 12, 5});
  CHECK(x.flatten(-2).shape() == Shape{2, 3, 20});
  CHECK(shares_storage(x.flatten(1, 2), x));
  CHECK(!shares_storage(x.transpose(0, 3).flatten(), x));  // needs a copy
  CHECK(Ref(x.transpose(0, 3).flatten()).v == Ref(x.transpose(0, 3).contiguous()).v);
  CHECK_THROWS_AS(x.flatten(2, 1), ShapeError);
  CHECK(scalar_tensor(5.0).flatten().shape() == Shape{1});
  Tensor u = x.flatten(1, 2).unflatten(1, {3, -1});
  CHECK(u.shape() == x.shape());
  CHECK(equal(u, x));
  CHECK(x.unflatten(-1, {5, 1}).shape() == Shape{2, 3, 4, 5, 1});
  CHECK_THROWS_AS(x.unflatten(1, {2, 2}), ShapeError);
  CHECK_THROWS_AS(x.unflatten(1, {-1, -1}), ShapeError);
}

TEST_CASE("as_strided checks the storage bounds") {
  Tensor base = arange(12);
  Tensor w = base.as_strided({3, 4}, {2, 1});  // overlapping sliding windows
  Ref rw(w);
  bool ok = true;
  for_each_index(w.shape(), [&](const Shape& i) { ok &= rw[i] == static_cast<double>(2 * i[0] + i[1]); });
  CHECK(ok);
  CHECK(base.as_strided({2, 2}, {1, 4}, 6).to_vector<int64_t>() == std::vector<int64_t>{6, 10, 7, 11});
  CHECK_THROWS_AS(base.as_strided({2, 2}, {1, 4}, 7), IndexError);  // would reach element 12
  CHECK(base.as_strided({0, 5}, {100, 100}, 11).numel() == 0);      // empty reaches no element
  CHECK_THROWS_AS(base.as_strided({3, 4}, {4, 1}, 1), IndexError);  // reaches element 12
  CHECK_THROWS_AS(base.as_strided({1}, {1}, 12), IndexError);
  CHECK_THROWS_AS(base.as_strided({2}, {1}, -1), IndexError);
  CHECK_THROWS_AS(base.as_strided({2, 2}, {1}), ShapeError);
  CHECK_THROWS_AS(base.as_strided({2}, {-1}), ShapeError);
  Tensor sub = base.narrow(0, 6, 6);
  CHECK(sub.as_strided({2}, {1}).to_vector<int64_t>() == std::vector<int64_t>{6, 7});  // keeps the offset
}

// ---------------------------------------------------------------- copies

TEST_CASE_TEMPLATE("cat along each dim matches a loop", T, EMBER_SHAPE_DTYPES) {
  const DType dt = dtype_of<T>();
  Tensor a = input({2, 3, 4}, dt), b = input({2, 3, 4}, dt, 5);
  for (int64_t dim = 0; dim < 3; ++dim) {
    CAPTURE(dim);
    Shape bs = a.shape();
    bs[dim] = 1;
    Tensor bb = input(bs, dt, 9);
    Tensor out = cat({a, bb, b}, dim);
    Shape os = a.shape();
    os[dim] = 2 * a.shape()[dim] + 1;
    CHECK(out.shape() == os);
    CHECK(out.dtype() == dt);
    Ref ra(a), rb(bb), rc(b), expect(os, 0);
    for_each_index(os, [&](const Shape& i) {
      Shape j = i;
      const int64_t k = i[dim], n = a.shape()[dim];
      if (k < n) {
        expect[i] = ra[j];
      } else if (k == n) {
        j[dim] = 0;
        expect[i] = rb[j];
      } else {
        j[dim] = k - n - 1;
        expect[i] = rc[j];
      }
    });
    CHECK(equal(out, expect.to(dt)));
    CHECK(equal(cat({a, bb, b}, dim - 3), out));
  }
  // non-contiguous inputs and a single input
  Tensor at = input({4, 3, 2}, dt).permute({2, 1, 0});
  CHECK(equal(cat({at, at}, 1).narrow(1, 3, 3), at));
  CHECK(equal(cat({at}, 0), at));
  CHECK(!shares_storage(cat({at}, 0), at));
}

TEST_CASE("cat promotes dtypes and skips legacy empty tensors") {
  Tensor f = ones({2, 2}), d = ones({1, 2}, {kF64}), i = ones({1, 2}, {kI32});
  CHECK(cat({f, d}).dtype() == kF64);
  CHECK(cat({i, f}).dtype() == kF32);
  CHECK(cat({i, ones({1, 2}, {kF16})}).dtype() == kF16);
  CHECK(cat({ones({1, 2}, {kBool}), ones({1, 2}, {kU8})}).dtype() == kU8);
  CHECK(cat({ones({1, 2}, {kF16}), ones({1, 2}, {kBF16})}).dtype() == kF32);
  CHECK(equal(cat({i, i * 3}), tensor({{1, 1}, {3, 3}}).to(kI32)));
  // 1-d empty tensors are skipped (but still promote), whatever the others' shapes
  Tensor e = zeros({0}, {kF64});
  Tensor r = cat({e, f, e}, 1);
  CHECK(r.shape() == Shape{2, 2});
  CHECK(r.dtype() == kF64);
  CHECK(cat({e, e}, 0).shape() == Shape{0});
  CHECK(cat({f, zeros({0, 2})}).shape() == Shape{2, 2});  // 2-d empty takes part normally
  CHECK(cat({zeros({0, 3}), zeros({0, 3})}, 0).shape() == Shape{0, 3});
  CHECK(cat({zeros({2, 0}), f}, 1).shape() == Shape{2, 2});
  CHECK_THROWS_AS(cat({zeros({2, 0}), f}, 0), ShapeError);
}

TEST_CASE("cat and stack reject bad arguments") {
  CHECK_THROWS_AS(cat({}), ValueError);
  CHECK_THROWS_AS(cat({scalar_tensor(1.0), ones({2})}), ShapeError);
  CHECK_THROWS_AS(cat({ones({2, 3}), ones({2})}), ShapeError);
  CHECK_THROWS_AS(cat({ones({2, 3}), ones({2, 4})}), ShapeError);
  CHECK_THROWS_AS(cat({ones({2, 3}), ones({2, 3})}, 2), IndexError);
  try {
    cat({ones({2, 3}), ones({2, 4})}, 0);
    FAIL("no exception");
  } catch (const ShapeError& e) {
    std::string msg = e.what();
    CHECK(msg.find("[cat]") == 0);
    CHECK(msg.find("[2, 4]") != std::string::npos);
  }
  CHECK_THROWS_AS(stack({}), ValueError);
  CHECK_THROWS_AS(stack({ones({2}), ones({3})}), ShapeError);
  CHECK_THROWS_AS(stack({ones({2}), ones({2})}, 2), IndexError);
}

TEST_CASE_TEMPLATE("stack inserts a new dim", T, EMBER_SHAPE_DTYPES) {
  const DType dt = dtype_of<T>();
  Tensor a = input({2, 3}, dt), b = input({2, 3}, dt, 3).t().contiguous().t();  // b column-major
  for (int64_t dim = 0; dim <= 2; ++dim) {
    Tensor s = stack({a, b}, dim);
    Shape os = a.shape();
    os.insert(static_cast<size_t>(dim), 2);
    CHECK(s.shape() == os);
    CHECK(equal(s.select(dim, 0), a));
    CHECK(equal(s.select(dim, 1), b));
  }
  CHECK(stack({a, b}, -1).shape() == Shape{2, 3, 2});
  CHECK(stack({scalar_tensor(1, {dt}), scalar_tensor(0, {dt})}).shape() == Shape{2});
  CHECK(stack({zeros({0}, {dt}), zeros({0}, {dt})}).shape() == Shape{2, 0});
  CHECK(stack({ones({2}), ones({2}, {kF64})}).dtype() == kF64);
}

TEST_CASE("split and chunk return views") {
  Tensor x = input({7, 4}, kF32);
  auto parts = x.split(3);
  REQUIRE(parts.size() == 3);
  CHECK(parts[0].shape() == Shape{3, 4});
  CHECK(parts[2].shape() == Shape{1, 4});
  CHECK(shares_storage(parts[1], x));
  CHECK(equal(parts[1], x.narrow(0, 3, 3)));
  CHECK(equal(cat(parts), x));
  auto cols = split(x, 2, -1);
  REQUIRE(cols.size() == 2);
  CHECK(equal(cols[1], x.narrow(1, 2, 2)));
  CHECK(x.split(10).size() == 1);
  auto sized = x.split(std::vector<int64_t>{2, 0, 5});
  REQUIRE(sized.size() == 3);
  CHECK(sized[1].shape() == Shape{0, 4});
  CHECK(equal(sized[2], x.narrow(0, 2, 5)));
  CHECK_THROWS_AS(x.split(0), ValueError);
  CHECK_THROWS_AS(x.split(-1), ValueError);
  CHECK_THROWS_AS(x.split(std::vector<int64_t>{3, 3}), ShapeError);
  CHECK_THROWS_AS(x.split(std::vector<int64_t>{8, -1}), ValueError);
  CHECK_THROWS_AS(split(scalar_tensor(1.0), 1), ShapeError);
  CHECK(zeros({0}).split(0).size() == 1);
  CHECK(zeros({0}).split(2).size() == 1);

  auto ch = x.chunk(3);  // ceil(7 / 3) = 3 rows each: 3, 3, 1
  REQUIRE(ch.size() == 3);
  CHECK(ch[2].shape() == Shape{1, 4});
  CHECK(input({6}, kF32).chunk(4).size() == 3);  // sizes 2, 2, 2 as PyTorch
  CHECK(input({5}, kF32).chunk(3)[2].numel() == 1);
  CHECK(zeros({0, 2}).chunk(3).size() == 3);
  CHECK(x.chunk(2, 1)[0].shape() == Shape{7, 2});
  CHECK_THROWS_AS(x.chunk(0), ValueError);
}

TEST_CASE_TEMPLATE("flip reverses the listed dims", T, EMBER_SHAPE_DTYPES) {
  const DType dt = dtype_of<T>();
  Tensor x = input({2, 3, 4}, dt);
  Ref rx(x);
  const Shape dim_sets[] = {{0}, {2}, {0, 2}, {-1, 1}, {0, 1, 2}, {}};
  for (const Shape& dims : dim_sets) {
    CAPTURE(dims);
    std::vector<bool> rev(3, false);
    for (int64_t d : dims) rev[static_cast<size_t>(d < 0 ? d + 3 : d)] = true;
    Ref expect(x.shape(), 0);
    for_each_index(x.shape(), [&](const Shape& i) {
      Shape j = i;
      for (size_t d = 0; d < 3; ++d)
        if (rev[d]) j[d] = x.shape()[d] - 1 - i[d];
      expect[i] = rx[j];
    });
    Tensor out = x.flip(dims);
    CHECK(out.is_contiguous());
    CHECK(!shares_storage(out, x));
    CHECK(equal(out, expect.to(dt)));
  }
  // non-contiguous input: flipping twice is the identity
  Tensor xt = x.transpose(0, 2).slice(0, 0, {}, 2);
  CHECK(equal(xt.flip({0, 1}).flip({1, 0}), xt));
  CHECK(equal(xt.flip({0}), cat({xt[1].unsqueeze(0), xt[0].unsqueeze(0)})));
  CHECK(flip(zeros({0, 3}, {dt}), {0, 1}).shape() == Shape{0, 3});
  CHECK(flip(scalar_tensor(2, {dt}), {0}).item<double>() == (dt == kBool ? 1.0 : 2.0));
  CHECK_THROWS_AS(x.flip({0, 0}), ShapeError);
  CHECK_THROWS_AS(x.flip({0, -3}), ShapeError);  // same dim twice
  CHECK_THROWS_AS(x.flip({3}), IndexError);
}

TEST_CASE_TEMPLATE("repeat tiles the tensor", T, EMBER_SHAPE_DTYPES) {
  const DType dt = dtype_of<T>();
  Tensor x = input({2, 3}, dt);
  Ref rx(x);
  const Shape reps[] = {{1, 1}, {2, 3}, {3, 1, 2}, {2, 1, 1, 1}};
  for (const Shape& r : reps) {
    CAPTURE(r);
    Tensor out = x.repeat(r);
    Shape os(r.size(), 0);
    size_t lead = r.size() - 2;
    for (size_t d = 0; d < r.size(); ++d) os[d] = r[d] * (d < lead ? 1 : x.shape()[d - lead]);
    CHECK(out.shape() == os);
    Ref expect(os, 0);
    for_each_index(os, [&](const Shape& i) { expect[i] = rx[{i[lead] % 2, i[lead + 1] % 3}]; });
    CHECK(equal(out, expect.to(dt)));
  }
  CHECK(!shares_storage(x.repeat({1, 1}), x));
  Tensor xt = input({3, 2}, dt).t();  // non-contiguous
  CHECK(equal(xt.repeat({1, 2}), cat({xt, xt}, 1)));
  CHECK(x.repeat({2, 0, 1}).shape() == Shape{2, 0, 3});
  CHECK(equal(scalar_tensor(4, {dt}).repeat({2, 3}), full({2, 3}, 4, {dt})));
  CHECK(scalar_tensor(4, {dt}).repeat({}).dim() == 0);
  CHECK_THROWS_AS(x.repeat({2}), ShapeError);
  CHECK_THROWS_AS(x.repeat({2, -1}), ValueError);
}

TEST_CASE_TEMPLATE("pad grows, crops and fills with the value", T, float, double, half, bfloat16, int32_t, int64_t,
                   uint8_t, bool) {
  const DType dt = dtype_of<T>();
  Tensor x = input({2, 3, 4}, dt);
  Ref rx(x);
  const double value = dt == kBool ? 1.0 : 7.0;
  const std::vector<int64_t> pads[] = {{}, {1, 2}, {0, 0, 2, 1}, {-1, 1, 1, -2}, {2, -3, 0, 0, 1, 1}, {-2, -2}};
  for (const auto& p : pads) {
    CAPTURE(Shape(p));
    Shape os = x.shape();
    int64_t before[3] = {0, 0, 0};
    for (size_t i = 0; i < p.size() / 2; ++i) {
      size_t d = 2 - i;
      before[d] = p[2 * i];
      os[d] += p[2 * i] + p[2 * i + 1];
    }
    Ref expect(os, value);
    for_each_index(os, [&](const Shape& i) {
      Shape j = i;
      for (size_t d = 0; d < 3; ++d) j[d] = i[d] - before[d];
      bool inside = true;
      for (size_t d = 0; d < 3; ++d) inside &= j[d] >= 0 && j[d] < x.shape()[d];
      if (inside) expect[i] = rx[j];
    });
    Tensor out = pad(x, p, value);
    CHECK(out.dtype() == dt);
    CHECK(equal(out, expect.to(dt)));
  }
  CHECK(equal(pad(x.transpose(0, 2), {1, 1}), pad(x.transpose(0, 2).contiguous(), {1, 1})));  // non-contiguous
}

TEST_CASE("pad edge cases and errors") {
  CHECK(equal(pad(tensor({1, 2}), {1, 0}, 2.5), tensor({2, 1, 2})));  // value converted to int64
  CHECK(pad(zeros({0, 2}), {1, 1}).shape() == Shape{0, 4});
  CHECK(equal(pad(zeros({2, 0}), {1, 0}, 3), full({2, 1}, 3)));
  CHECK(pad(ones({2, 3}), {-2, -1}).shape() == Shape{2, 0});
  CHECK(pad(scalar_tensor(5.0), {}).item<double>() == 5.0);
  CHECK_THROWS_AS(pad(ones({2, 3}), {1}), ValueError);
  CHECK_THROWS_AS(pad(ones({2, 3}), {1, 1, 1, 1, 1, 1}), ValueError);  // too many pad entries
  CHECK_THROWS_AS(pad(ones({2, 3}), {-2, -2}), ShapeError);
  CHECK_THROWS_AS(pad(ones({2, 3}), {-4, 2}), ShapeError);  // crops more than the dim holds
}

TEST_CASE("copying shape ops match PyTorch fixtures") {
  TensorMap f = ember::testing::fixtures("index");
  const Tensor& x = f.at("x3");
  const std::pair<const char*, std::vector<int64_t>> pads[] = {
      {"a", {1, 2}}, {"b", {1, 0, 2, 1}}, {"c", {-1, 1, 0, -1}}, {"d", {2, -3, 1, 1, 0, 1}}};
  for (const auto& [name_, p] : pads) {
    // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
    const auto& name = name_;
    CAPTURE(name);
    CHECK(equal(pad(x, p, 1.5), f.at(std::string("pad.") + name)));
  }
  const Tensor &a = f.at("cat.a"), &b = f.at("cat.b"), &c = f.at("cat.c");
  Tensor c0 = cat({a, b, c}, 0);
  CHECK(c0.dtype() == f.at("cat.0").dtype());
  CHECK(equal(c0, f.at("cat.0")));
  Tensor c1 = cat({a, a.to(kF16), a.narrow(1, 0, 1)}, 1);
  CHECK(c1.dtype() == kF32);
  CHECK(equal(c1, f.at("cat.1")));
  CHECK(equal(stack({a, a * 2, a * 3}, 1), f.at("stack.1")));
  CHECK(equal(a.repeat({2, 1, 3}), f.at("repeat")));
  CHECK(equal(x.flip({0, 2}), f.at("flip.02")));
  CHECK(equal(x.flip({1}), f.at("flip.1")));
}
