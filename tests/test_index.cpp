// Indexing ops: gather, scatter(_add), index_add, index_select, masked_fill/select, take_along_dim,
// one_hot, embedding. Expected values come from plain loops over row-major copies and from PyTorch.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ember.hpp"
#include "test_util.hpp"

using namespace ember;
using ember::testing::allclose;
using ember::testing::equal;
using ember::testing::error_message;
using ember::testing::for_each_index;
using ember::testing::Ref;

namespace {

// Small values exact in every dtype; bool gets a mix of true and false.
Tensor input(const Shape& s, DType dt, int64_t salt = 0) {
  std::vector<double> v(static_cast<size_t>(shape_numel(s)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>((static_cast<int64_t>(i) * 7 + salt) % 11 - 5);
  for (double& x : v) {
    if (dt == kBool) x = x > 0 ? 1 : 0;
    if (dt == kU8) x += 5;  // unsigned: keep it non-negative
  }
  return tensor(v, s, TensorOptions{kF64}).to(dt);
}

// Deterministic pseudo-random indices in [0, high).
Tensor random_index(const Shape& s, int64_t high, DType dt = kI64, uint64_t seed = 1) {
  std::vector<double> v(static_cast<size_t>(shape_numel(s)));
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 12345;
  for (double& e : v) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    e = static_cast<double>((x >> 33) % static_cast<uint64_t>(high));
  }
  return tensor(v, s, TensorOptions{kF64}).to(dt);
}

Tensor idx(std::vector<int64_t> v, DType dt = kI64) { return tensor(v).to(dt); }

Shape with(Shape s, int64_t d, int64_t v) {
  s[d] = v;
  return s;
}

Ref gather_ref(const Tensor& x, int64_t dim, const Tensor& index) {
  Ref rx(x), ri(index), out(index.shape(), 0);
  for_each_index(index.shape(), [&](const Shape& p) { out[p] = rx[with(p, dim, static_cast<int64_t>(ri[p]))]; });
  return out;
}

Ref scatter_ref(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src, bool add, double alpha = 1) {
  Ref out(x), ri(index), rs(src);
  for_each_index(index.shape(), [&](const Shape& p) {
    double& o = out[with(p, dim, static_cast<int64_t>(ri[p]))];
    o = add ? o + alpha * rs[p] : rs[p];
  });
  if (x.dtype() == kBool)
    for (double& e : out.v) e = e != 0;
  return out;
}

#define EMBER_INDEX_DTYPES float, double, half, bfloat16, int32_t, int64_t, uint8_t, bool

}  // namespace

TEST_CASE_TEMPLATE("gather matches a loop on every dim, dtype and index dtype", T, EMBER_INDEX_DTYPES) {
  const DType dt = dtype_of<T>();
  Tensor x = input({3, 4, 5}, dt);
  const Shape shapes[] = {{5, 2, 3}, {3, 6, 5}, {2, 4, 7}};
  for (int64_t dim = 0; dim < 3; ++dim)
    for (DType it : {kI64, kI32}) {
      CAPTURE(dim);
      Tensor index = random_index(shapes[dim], x.size(dim), it, static_cast<uint64_t>(dim + 1));
      Tensor out = gather(x, dim, index);
      CHECK(out.dtype() == dt);
      CHECK(equal(out, gather_ref(x, dim, index).to(dt)));
      CHECK(equal(x.gather(dim - 3, index), out));  // negative dim, method form
    }
}

TEST_CASE("gather with non-contiguous, broadcast, zero-size and 0-dim operands") {
  Tensor base = input({5, 4, 3}, kF32);
  Tensor x = base.transpose(0, 2);                                        // [3, 4, 5], non-contiguous
  Tensor index = random_index({5, 4, 2}, 5, kI64, 7).permute({2, 1, 0});  // [2, 4, 5]
  CHECK(!index.is_contiguous());
  CHECK(equal(gather(x, 2, index), gather_ref(x.contiguous(), 2, index.contiguous()).to(kF32)));
  Tensor strided = input({3, 10}, kF64).slice(1, 1, {}, 3);  // [3, 3] with stride 3
  Tensor i2 = random_index({3, 3}, 3, kI32, 3);
  CHECK(equal(gather(strided, 1, i2), gather_ref(strided.contiguous(), 1, i2).to(kF64)));
  // an index broadcast along a dim (stride 0)
  Tensor ib = random_index({1, 4}, 4, kI64, 9).expand({3, 4});
  CHECK(equal(gather(input({3, 4}, kI32), 1, ib), gather_ref(input({3, 4}, kI32), 1, ib.contiguous()).to(kI32)));
  // zero-size index and zero-size input off the gathered dim
  CHECK(gather(x, 1, idx({}).reshape({0, 4, 5})).shape() == Shape{0, 4, 5});
  CHECK(gather(zeros({0, 3}), 1, zeros({0, 2}, {kI64})).shape() == Shape{0, 2});
  // 0-dim input and index act as 1-element 1-d tensors
  Tensor s = scalar_tensor(2.5);
  CHECK(gather(s, 0, scalar_tensor(0, {kI64})).dim() == 0);
  CHECK(gather(s, 0, scalar_tensor(0, {kI64})).item<float>() == 2.5f);
  CHECK(equal(gather(s, 0, idx({0, 0})), tensor({2.5f, 2.5f})));
}

TEST_CASE("gather and take_along_dim reject bad arguments") {
  Tensor x = input({3, 4}, kF32);
  CHECK_THROWS_AS(gather(x, 1, idx({0, 4}).reshape({1, 2})), IndexError);
  CHECK_THROWS_AS(gather(x, 1, idx({0, -1}).reshape({1, 2})), IndexError);
  CHECK_THROWS_AS(gather(x, 2, idx({0}).reshape({1, 1})), IndexError);       // dim out of range
  CHECK_THROWS_AS(gather(x, 1, idx({0})), ShapeError);                       // ndim mismatch
  CHECK_THROWS_AS(gather(x, 0, zeros({1, 5}, {kI64})), ShapeError);          // larger off dim
  CHECK_THROWS_AS(gather(x, 1, zeros({1, 2}, {kF32})), DTypeError);          // float index
  CHECK_THROWS_AS(gather(x, 1, zeros({1, 2}, {kI64}).to(kU8)), DTypeError);  // u8 index
  std::string msg = error_message<IndexError>([&] { gather(x, 1, idx({2, 7}).reshape({1, 2})); });
  CHECK(msg.find("[gather]") != std::string::npos);
  CHECK(msg.find("7") != std::string::npos);
  CHECK(msg.find("size 4") != std::string::npos);
  msg = error_message<IndexError>([&] { take_along_dim(x, idx({-3}).reshape({1, 1}), 0); });
  CHECK(msg.find("[take_along_dim] index -3") != std::string::npos);
  CHECK_THROWS_AS(take_along_dim(x, idx({0}), 0), ShapeError);
  CHECK_THROWS_AS(take_along_dim(x, zeros({2, 2}, {kI64}), 0), ShapeError);  // 2 vs 4 cannot broadcast
}

TEST_CASE_TEMPLATE("scatter and scatter_add match a loop", T, EMBER_INDEX_DTYPES) {
  const DType dt = dtype_of<T>();
  Tensor x = input({4, 5}, dt);
  for (int64_t dim = 0; dim < 2; ++dim) {
    CAPTURE(dim);
    Shape is = dim == 0 ? Shape{7, 5} : Shape{4, 8};  // many duplicates along dim
    Tensor index = random_index(is, x.size(dim), kI64, static_cast<uint64_t>(dim + 3));
    Tensor src = input({8, 9}, dt, 3).slice(0, 0, is[0]).slice(1, 0, is[1]);  // larger, sliced src
    Tensor out = scatter_add(x, dim, index, src);
    CHECK(out.dtype() == dt);
    CHECK(equal(out, scatter_ref(x, dim, index, src.contiguous(), true).to(dt)));
    CHECK(equal(x, input({4, 5}, dt)));  // out of place
    // scatter: unique indices per row/column, so the result does not depend on write order
    Tensor uniq = dim == 0 ? idx({3, 0, 2, 1, 3, 1, 0, 2, 3, 0}).reshape({2, 5})
                           : idx({4, 0, 2, 3, 1, 2, 0, 4, 1, 3, 0, 2}).reshape({4, 3});
    Tensor s2 = input(uniq.shape(), dt, 5);
    CHECK(equal(scatter(x, dim, uniq, s2), scatter_ref(x, dim, uniq, s2, false).to(dt)));
    CHECK(equal(scatter(x, dim, uniq.to(kI32), s2), scatter_ref(x, dim, uniq, s2, false).to(dt)));
    Ref with_value = scatter_ref(x, dim, uniq, full(uniq.shape(), 1, {kF64}), false);
    CHECK(equal(scatter(x, dim, uniq, Scalar(1)), with_value.to(dt)));
  }
}

TEST_CASE("scatter_add is deterministic under duplicates and large inputs run in parallel") {
  // 200 x 300 f64 adding into 50 rows: every thread owns whole columns, so sums are exact and repeatable.
  Tensor x = zeros({50, 300}, {kF64});
  Tensor index = random_index({200, 300}, 50, kI64, 11);
  Tensor src = input({200, 300}, kF64, 1);
  Tensor out = scatter_add(x, 0, index, src);
  CHECK(equal(out, scatter_ref(x, 0, index, src, true).to(kF64)));
  CHECK(equal(out, scatter_add(x, 0, index, src)));
  Tensor g = gather(src, 1, random_index({200, 400}, 300, kI32, 12));
  CHECK(g.shape() == Shape{200, 400});
}

TEST_CASE("scatter rejects bad arguments") {
  Tensor x = zeros({3, 4});
  Tensor src = ones({3, 4});
  CHECK_THROWS_AS(scatter(x, 1, idx({4}).reshape({1, 1}), src), IndexError);
  CHECK_THROWS_AS(scatter_add(x, 0, idx({-1}).reshape({1, 1}), src), IndexError);
  CHECK_THROWS_AS(scatter(x, 1, idx({0, 1}).reshape({1, 2}), ones({1, 1})), ShapeError);    // src smaller
  CHECK_THROWS_AS(scatter(x, 0, zeros({1, 5}, {kI64}), ones({1, 5})), ShapeError);          // larger than self
  CHECK_THROWS_AS(scatter(x, 1, idx({0}), src), ShapeError);                                // ndim mismatch
  CHECK_THROWS_AS(scatter(x, 1, zeros({1, 1}, {kI64}), ones({1, 1}, {kF64})), DTypeError);  // dtype mismatch
  CHECK_THROWS_AS(scatter_add(x, 1, zeros({1, 1}, {kF32}), src), DTypeError);
  std::string msg = error_message<IndexError>([&] { scatter_add(x, 1, idx({1, 9}).reshape({1, 2}), src); });
  CHECK(msg.find("[scatter_add] index 9 is out of bounds for dim 1 with size 4") != std::string::npos);
  // scatter along a dim longer in the index than in self is allowed (only the indices must be in range)
  CHECK(equal(scatter(x, 1, zeros({1, 6}, {kI64}), ones({1, 6})),
              x.index_add(1, idx({0}), tensor({{1.0f}, {0.0f}, {0.0f}}))));
}

TEST_CASE_TEMPLATE("index_add with alpha and duplicates matches a loop", T, float, double, half, bfloat16, int32_t,
                   int64_t, uint8_t) {
  const DType dt = dtype_of<T>();
  const double alpha = is_floating(dt) ? 2.5 : 2;
  Tensor x = input({4, 5}, dt);
  for (int64_t dim = 0; dim < 2; ++dim)
    for (DType it : {kI64, kI32}) {
      CAPTURE(dim);
      Tensor index = idx({1, 3, 1, 0, 1, 2}, it);
      Tensor src = input(with(x.shape(), dim, 6), dt, 2);
      Ref expect(x);
      Ref rs(src);
      std::vector<int64_t> iv = {1, 3, 1, 0, 1, 2};
      for_each_index(src.shape(), [&](const Shape& p) { expect[with(p, dim, iv[p[dim]])] += alpha * rs[p]; });
      CHECK(equal(index_add(x, dim, index, src, alpha), expect.to(dt)));
    }
  // alpha defaults to 1; a non-contiguous source
  Tensor src_t = input({5, 3}, dt, 4).t();  // [3, 5]
  Ref expect(x), rs(src_t.contiguous());
  for_each_index(src_t.shape(), [&](const Shape& p) { expect[{p[0] + 1, p[1]}] += rs[p]; });
  CHECK(equal(x.index_add(0, idx({1, 2, 3}), src_t), expect.to(dt)));
}

TEST_CASE("index_add rejects bad arguments") {
  Tensor x = zeros({3, 4});
  CHECK_THROWS_AS(index_add(x, 0, idx({3}), ones({1, 4})), IndexError);
  CHECK_THROWS_AS(index_add(x, 0, idx({-1}), ones({1, 4})), IndexError);
  CHECK_THROWS_AS(index_add(x, 0, idx({0, 1}), ones({3, 4})), ShapeError);            // count vs src size
  CHECK_THROWS_AS(index_add(x, 0, idx({0}), ones({1, 5})), ShapeError);               // off-dim size
  CHECK_THROWS_AS(index_add(x, 0, idx({0}), ones({1, 4, 1})), ShapeError);            // ndim
  CHECK_THROWS_AS(index_add(x, 0, zeros({1, 1}, {kI64}), ones({1, 4})), ShapeError);  // 2-d index
  CHECK_THROWS_AS(index_add(x, 0, idx({0}), ones({1, 4}, {kF64})), DTypeError);
  CHECK(equal(index_add(x, 0, idx({}), zeros({0, 4})), x));  // empty index: unchanged copy
}

TEST_CASE_TEMPLATE("index_select matches a loop", T, EMBER_INDEX_DTYPES) {
  const DType dt = dtype_of<T>();
  Tensor x = input({3, 4, 5}, dt);
  Tensor xt = input({5, 4, 3}, dt).permute({2, 1, 0});  // non-contiguous [3, 4, 5]
  for (int64_t dim = 0; dim < 3; ++dim)
    for (DType it : {kI64, kI32}) {
      CAPTURE(dim);
      std::vector<int64_t> iv = {2, 0, 2, 1, 0};
      for (Tensor src : {x, xt}) {
        Ref rx(src.contiguous());
        Shape os = with(src.shape(), dim, 5);
        Ref expect(os, 0);
        for_each_index(os, [&](const Shape& p) { expect[p] = rx[with(p, dim, iv[p[dim]])]; });
        CHECK(equal(index_select(src, dim, idx(iv, it)), expect.to(dt)));
      }
    }
  // a strided index, a 0-dim index (keeps the dim, size 1), an empty index
  Tensor strided = idx({2, 9, 0, 9, 1}).slice(0, 0, {}, 2);
  CHECK(equal(x.index_select(0, strided), cat({x[2].unsqueeze(0), x[0].unsqueeze(0), x[1].unsqueeze(0)})));
  CHECK(x.index_select(1, scalar_tensor(3, {kI64})).shape() == Shape{3, 1, 5});
  CHECK(equal(x.index_select(1, scalar_tensor(3, {kI64})).squeeze(1), x.select(1, 3)));
  CHECK(x.index_select(2, idx({})).shape() == Shape{3, 4, 0});
  CHECK(index_select(scalar_tensor(4.0), 0, idx({0})).dim() == 0);
}

TEST_CASE("index_select rejects bad arguments") {
  Tensor x = zeros({3, 4});
  CHECK_THROWS_AS(index_select(x, 0, idx({3})), IndexError);
  CHECK_THROWS_AS(index_select(x, 1, idx({0, -1})), IndexError);
  CHECK_THROWS_AS(index_select(x, 0, zeros({1, 1}, {kI64})), ShapeError);
  CHECK_THROWS_AS(index_select(x, 0, zeros({1}, {kF32})), DTypeError);
  CHECK_THROWS_AS(index_select(x, 2, idx({0})), IndexError);
  CHECK_THROWS_AS(index_select(scalar_tensor(1.0), 0, idx({0, 0})), ShapeError);
  std::string msg = error_message<IndexError>([&] { index_select(x, 1, idx({0, 12})); });
  CHECK(msg.find("[index_select] index 12 is out of bounds for dim 1 with size 4") != std::string::npos);
}

TEST_CASE_TEMPLATE("masked_fill keeps the tensor's dtype and broadcasts the mask", T, EMBER_INDEX_DTYPES) {
  const DType dt = dtype_of<T>();
  Tensor x = input({3, 4}, dt);
  Tensor mask = input({4}, kBool, 2);  // broadcast over rows
  Ref rx(x), rm(mask), expect(x);
  const double value = dt == kBool ? 1.0 : 3.0;
  for_each_index(x.shape(), [&](const Shape& p) {
    if (rm[{p[1]}] != 0) expect[p] = value;
  });
  Tensor out = masked_fill(x, mask, value == 1.0 ? Scalar(true) : Scalar(3));
  CHECK(out.dtype() == dt);
  CHECK(equal(out, expect.to(dt)));
  // non-contiguous tensor and mask
  Tensor xt = input({4, 3}, dt).t();
  Tensor mt = input({4, 3}, kBool, 1).t();
  Ref rxt(xt.contiguous()), rmt(mt.contiguous()), e2(xt.contiguous());
  for (size_t i = 0; i < e2.v.size(); ++i)
    if (rmt.v[i] != 0) e2.v[i] = 0;
  CHECK(equal(masked_fill(xt, mt, 0), e2.to(dt)));
  // in place through the method
  Tensor y = x.clone();
  y.masked_fill_(mask, value == 1.0 ? Scalar(true) : Scalar(3));
  CHECK(equal(y, expect.to(dt)));
}

TEST_CASE("masked_fill converts the value and rejects bad masks") {
  Tensor i = tensor({1, 2, 3});
  CHECK(equal(masked_fill(i, tensor({true, false, true}), 2.7), tensor({2, 2, 2})));  // value truncated to int64
  CHECK(masked_fill(i, tensor({true, false, true}), 2.7).dtype() == kI64);
  CHECK(masked_fill(tensor({1.5f}), tensor({true}), 0.1).item<float>() == 0.1f);  // rounded to float
  CHECK_THROWS_AS(masked_fill(i, tensor({1, 0, 1}), 0), DTypeError);
  CHECK_THROWS_AS(masked_fill(i, tensor({true, false}), 0), ShapeError);
  CHECK_THROWS_AS(masked_fill(i, zeros({2, 3}, {kBool}), 0), ShapeError);  // would grow the tensor
  CHECK(masked_fill(zeros({0, 3}), zeros({3}, {kBool}), 1).shape() == Shape{0, 3});
}

TEST_CASE_TEMPLATE("masked_select broadcasts mask and tensor together", T, EMBER_INDEX_DTYPES) {
  const DType dt = dtype_of<T>();
  Tensor x = input({4, 1}, dt);
  Tensor mask = input({2, 1, 5}, kBool, 3);
  Shape b{2, 4, 5};
  Ref rx(x), rm(mask);
  std::vector<double> expect;
  for_each_index(b, [&](const Shape& p) {
    if (rm[{p[0], 0, p[2]}] != 0) expect.push_back(rx[{p[1], 0}]);
  });
  Tensor out = masked_select(x, mask);
  CHECK(out.dim() == 1);
  CHECK(out.dtype() == dt);
  CHECK(equal(out, tensor(expect, {static_cast<int64_t>(expect.size())}, TensorOptions{kF64}).to(dt)));
  CHECK(masked_select(x, zeros({4, 1}, {kBool})).shape() == Shape{0});
  CHECK(masked_select(zeros({0, 3}, {dt}), ones({3}, {kBool})).shape() == Shape{0});
}

TEST_CASE("masked_select over many blocks keeps row-major order") {
  // 3 x 50000 elements cross several 32K-element blocks; mask is non-contiguous.
  Tensor x = arange(150000, std::optional<DType>(kI64)).reshape({3, 50000});
  Tensor mask = input({50000, 3}, kBool, 1).t();
  Tensor out = x.masked_select(mask);
  std::vector<int64_t> expect;
  auto mv = mask.to_vector<bool>();
  for (int64_t i = 0; i < 150000; ++i)
    if (mv[static_cast<size_t>(i)]) expect.push_back(i);
  CHECK(out.numel() == static_cast<int64_t>(expect.size()));
  CHECK(out.to_vector<int64_t>() == expect);
  CHECK_THROWS_AS(masked_select(x, x), DTypeError);
  CHECK_THROWS_AS(masked_select(x, zeros({2}, {kBool})), ShapeError);
}

TEST_CASE("nonzero gives one row of coordinates per nonzero element, as PyTorch's (0-dim and empty included)") {
  Tensor x = tensor<float>({0, 2, 0, -1, NAN, 0}).view({2, 3});  // NaN is not zero
  Tensor nz = nonzero(x);
  CHECK(nz.dtype() == kI64);
  CHECK(nz.shape() == Shape{3, 2});
  CHECK(nz.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 1, 0, 1, 1});
  CHECK(nonzero(scalar_tensor(5.0)).shape() == Shape{1, 0});
  CHECK(nonzero(scalar_tensor(0.0)).shape() == Shape{0, 0});
  CHECK(nonzero(zeros({0, 4})).shape() == Shape{0, 2});
  CHECK(nonzero(tensor<bool>({false, true, true})).to_vector<int64_t>() == std::vector<int64_t>{1, 2});
}

TEST_CASE("take_along_dim broadcasts off the chosen dim") {
  Tensor x = input({3, 4}, kF32);
  Tensor order = idx({3, 2, 1, 0}).reshape({1, 4});  // broadcast over rows
  CHECK(equal(take_along_dim(x, order, 1), x.flip({1})));
  Tensor col = idx({1, 0, 2}).reshape({3, 1});  // picks one element per row
  Ref rx(x);
  CHECK(equal(
      x.take_along_dim(col, 1),
      tensor(std::vector<double>{rx[{0, 1}], rx[{1, 0}], rx[{2, 2}]}, Shape{3, 1}, TensorOptions{kF64}).to(kF32)));
  // input broadcast along a dim where the indices are larger
  Tensor one_row = input({1, 4}, kI32);
  Tensor many = random_index({5, 2}, 4, kI64, 2);
  Tensor out = take_along_dim(one_row, many, 1);
  CHECK(out.shape() == Shape{5, 2});
  CHECK(equal(out, gather(one_row.expand({5, 4}), 1, many)));
  CHECK(take_along_dim(scalar_tensor(3.0), scalar_tensor(0, {kI64}), 0).item<float>() == 3.0f);
}

TEST_CASE("one_hot and embedding") {
  Tensor labels = idx({2, 0, 3, 0, 1, 2}).reshape({2, 3});
  Tensor oh = one_hot(labels, 5);
  CHECK(oh.dtype() == kI64);
  CHECK(oh.shape() == Shape{2, 3, 5});
  Ref roh(oh), rl(labels);
  bool ok = true;
  for_each_index(oh.shape(), [&](const Shape& p) { ok &= roh[p] == (rl[{p[0], p[1]}] == p[2] ? 1 : 0); });
  CHECK(ok);
  CHECK(one_hot(labels).shape() == Shape{2, 3, 4});  // max + 1
  CHECK(equal(one_hot(labels.to(kI32), 4), one_hot(labels)));
  CHECK(equal(one_hot(scalar_tensor(1, {kI64}), 3), tensor({0, 1, 0})));
  CHECK(one_hot(idx({}), 3).shape() == Shape{0, 3});
  CHECK_THROWS_AS(one_hot(idx({}), -1), ValueError);
  CHECK_THROWS_AS(one_hot(idx({1, -1}), 3), IndexError);
  CHECK_THROWS_AS(one_hot(idx({1, 3}), 3), IndexError);
  CHECK_THROWS_AS(one_hot(tensor({1.0f}), 3), DTypeError);

  Tensor w = input({6, 3}, kF32);
  Tensor ids = idx({5, 0, 2, 2, 1, 4, 0, 3}).reshape({2, 4});
  Tensor e = embedding(ids, w);
  CHECK(e.shape() == Shape{2, 4, 3});
  Ref rw(w), ri(ids), re(e);
  ok = true;
  for_each_index(e.shape(), [&](const Shape& p) { ok &= re[p] == rw[{static_cast<int64_t>(ri[{p[0], p[1]}]), p[2]}]; });
  CHECK(ok);
  CHECK(equal(embedding(ids.to(kI32), w.to(kBF16), 0), e.to(kBF16)));
  CHECK(embedding(scalar_tensor(2, {kI64}), w).shape() == Shape{3});
  CHECK(embedding(idx({}).reshape({0, 5}), w).shape() == Shape{0, 5, 3});
  CHECK(equal(embedding(ids, w.t().contiguous().t()), e));  // column-major weight
  std::string msg = error_message<IndexError>([&] { embedding(idx({1, 6}), w); });
  CHECK(msg.find("[embedding] index 6 is out of bounds for dim 0 with size 6") != std::string::npos);
  CHECK_THROWS_AS(embedding(idx({-1}), w), IndexError);
  CHECK_THROWS_AS(embedding(idx({1}), w.reshape({18})), ShapeError);
  CHECK_THROWS_AS(embedding(idx({1}), w, 6), ValueError);
  CHECK_THROWS_AS(embedding(tensor({1.0f}), w), DTypeError);
}

TEST_CASE("indexing ops match PyTorch fixtures") {
  TensorMap f = ember::testing::fixtures("index");
  const Tensor& x = f.at("x3");
  for (int64_t d = 0; d < 3; ++d) {
    std::string k = "gather." + std::to_string(d);
    CHECK(equal(gather(x, d, f.at(k + ".index")), f.at(k + ".out")));
  }
  const Tensor& base = f.at("base");
  for (int64_t d = 0; d < 2; ++d) {
    std::string k = "scatter_add." + std::to_string(d);
    CHECK(allclose(scatter_add(base, d, f.at(k + ".index"), f.at(k + ".src")), f.at(k + ".out"), 1e-6, 1e-6));
  }
  CHECK(equal(scatter(base, 1, f.at("scatter.index"), f.at("scatter.src")), f.at("scatter.out")));
  CHECK(allclose(index_add(base, 0, f.at("index_add.0.index"), f.at("index_add.0.src"), 2.5), f.at("index_add.0.out"),
                 1e-6, 1e-6));
  CHECK(allclose(index_add(base, 1, f.at("index_add.1.index"), f.at("index_add.1.src"), -1.0), f.at("index_add.1.out"),
                 1e-6, 1e-6));
  CHECK(equal(index_select(x, 1, f.at("index_select.1.index")), f.at("index_select.1.out")));
  CHECK(equal(masked_select(f.at("masked.y"), f.at("masked.mask")), f.at("masked_select.out")));
  CHECK(equal(masked_fill(f.at("masked.y"), f.at("masked.mask2"), -3.5), f.at("masked_fill.out")));
  CHECK(equal(take_along_dim(f.at("masked.y"), f.at("take_along_dim.argsort"), 1), f.at("take_along_dim.sorted")));
  CHECK(equal(one_hot(f.at("one_hot.index"), 7), f.at("one_hot.out")));
  CHECK(equal(embedding(f.at("embedding.index"), f.at("embedding.weight")), f.at("embedding.out")));
}
