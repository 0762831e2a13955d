// Gradient checks for the shape, index and view ops: gradcheck on contiguous, non-contiguous, broadcast
// and 0-dim inputs, gradgradcheck, in-place writes through views, hand-computed accumulation with
// duplicate indices, and PyTorch reference gradients.
#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "test_util.hpp"

using namespace ember;
using ember::testing::allclose;
using ember::testing::gradcheck;
using ember::testing::GradFn;
using ember::testing::gradgradcheck;
using ember::testing::noncontiguous;

namespace {
using Inputs = std::vector<Tensor>;

Tensor rn(const Shape& s, uint64_t seed) {
  manual_seed(seed);
  return randn(s, {.dtype = kF64, .requires_grad = true});
}
Tensor f64(std::vector<double> v, const Shape& s) { return tensor(v, s, {.dtype = kF64}); }
Tensor ix(std::vector<int64_t> v, std::optional<Shape> s = {}) {
  Tensor t = tensor(v);
  return s ? t.reshape(*s) : t;
}
Tensor mask(std::vector<int64_t> v, const Shape& s) { return ix(std::move(v), s).to(kBool); }
// t on the device of a checked function's inputs (gradcheck runs them on EMBER_TEST_DEVICE).
Tensor on(const Inputs& a, const Tensor& t) { return t.to(a[0].device()); }

// gradcheck of f on the inputs as given and on non-contiguous copies of them.
bool check_both(const GradFn& f, const Inputs& in) {
  Inputs nc;
  for (const Tensor& t : in) nc.push_back(noncontiguous(t));
  return gradcheck(f, in) && gradcheck(f, nc);
}
// f(x)^2 elementwise: its second derivative runs through f's backward formula.
GradFn squared(GradFn f) {
  return [f](const Inputs& a) {
    Tensor y = f(a);
    return y * y;
  };
}
// The node that produced t and the nodes its edges lead to (to see that scaffolding is not recorded).
std::string node_name(const Tensor& t) { return t.grad_fn() ? t.grad_fn()->name() : "leaf"; }
std::string child_name(const Tensor& t, size_t i) {
  const auto& e = t.grad_fn()->inputs.at(i).edge;
  return e.fn ? e.fn->name() : "none";
}
}  // namespace

// ---------------------------------------------------------------- views (core/ops/view.cpp)

TEST_CASE("grad views: view, reshape (both paths), permute, transpose, t, squeeze, unsqueeze, flatten, unflatten") {
  Tensor x = rn({2, 3, 4}, 1);
  std::vector<GradFn> fns = {
      [](const Inputs& a) {
        return a[0].reshape({4, 6});
      },
      [](const Inputs& a) { return a[0].reshape({-1}); },
      [](const Inputs& a) {
        return a[0].permute({2, 0, -2});
      },
      [](const Inputs& a) { return a[0].transpose(0, -1); },
      [](const Inputs& a) { return a[0].flatten(1, -1); },
      [](const Inputs& a) { return a[0].flatten(); },
      [](const Inputs& a) {
        return a[0].unflatten(-1, {2, -1});
      },
      [](const Inputs& a) { return a[0].unsqueeze(-1).unsqueeze(0); },
      [](const Inputs& a) {
        return a[0].transpose(0, 1).reshape({3, 8});
      },  // copies: no view fits
      [](const Inputs& a) { return a[0].select(1, 0).t(); },
  };
  for (const GradFn& f : fns) CHECK(check_both(f, {x}));
  CHECK(gradcheck([](const Inputs& a) { return a[0].view({6, 4}); }, {x}));
  CHECK(gradcheck([](const Inputs& a) { return a[0].view({-1, 2}); }, {x}));
  Tensor y = rn({2, 1, 3, 1}, 2);
  CHECK(check_both([](const Inputs& a) { return a[0].squeeze(); }, {y}));
  CHECK(check_both([](const Inputs& a) { return a[0].squeeze(1); }, {y}));
  CHECK(check_both([](const Inputs& a) { return a[0].squeeze(-1); }, {y}));
  // 0-dim inputs.
  Tensor s = rn({}, 3);
  CHECK(gradcheck([](const Inputs& a) { return a[0].reshape({1, 1}); }, {s}));
  CHECK(gradcheck([](const Inputs& a) { return a[0].unsqueeze(0); }, {s}));
  CHECK(gradcheck([](const Inputs& a) { return a[0].flatten(); }, {s}));
  CHECK(gradcheck([](const Inputs& a) { return a[0].view({1}).squeeze(); }, {s}));
  for (const GradFn& f : fns) CHECK(gradgradcheck(squared(f), {x}));
  CHECK(gradgradcheck(squared([](const Inputs& a) { return a[0].view({6, 4}); }), {x}));
  CHECK(
      gradgradcheck(squared([](const Inputs& a) { return a[0].squeeze(1).squeeze(-1).unsqueeze(1).squeeze(); }), {y}));
}

TEST_CASE("grad views: expand, narrow, slice with steps, select, as_strided (overlapping too)") {
  Tensor x = rn({3, 4}, 4);
  std::vector<GradFn> fns = {
      [](const Inputs& a) { return a[0].narrow(1, 1, 2); },
      [](const Inputs& a) { return a[0].narrow(0, -2, 2); },
      [](const Inputs& a) { return a[0].slice(1, 0, std::nullopt, 2); },
      [](const Inputs& a) { return a[0].slice(-1, 1, 4, 2).slice(0, -2, std::nullopt); },
      [](const Inputs& a) { return a[0].select(0, 1); },
      [](const Inputs& a) { return a[0].select(-1, -1); },
      [](const Inputs& a) { return a[0].select(0, 2).select(0, 3); },  // 0-dim result
      [](const Inputs& a) {
        return a[0].unsqueeze(0).expand({2, 3, 4});
      },
  };
  for (const GradFn& f : fns) CHECK(check_both(f, {x}));
  Tensor c = rn({3, 1}, 5);
  CHECK(check_both([](const Inputs& a) { return a[0].expand({2, 3, 4}); }, {c}));
  CHECK(check_both([](const Inputs& a) { return a[0].expand({-1, 5}); }, {c}));
  CHECK(gradcheck([](const Inputs& a) { return a[0].expand({2, 3}); }, {rn({}, 6)}));
  // as_strided addresses storage: a sub-block, a sliding window that reads elements several times, a
  // stride-0 broadcast, and (on the non-contiguous copy) a geometry over a wider buffer.
  std::vector<GradFn> strided = {
      [](const Inputs& a) {
        return a[0].as_strided({2, 2}, {4, 1}, 1);
      },
      [](const Inputs& a) {
        return a[0].as_strided({3, 3}, {1, 1});
      },
      [](const Inputs& a) {
        return a[0].as_strided({2, 3}, {0, 1}, 2);
      },
  };
  for (const GradFn& f : strided) CHECK(gradcheck(f, {x}));
  Tensor wide = noncontiguous(x);  // x's elements at even positions of a [3, 8] buffer
  CHECK(gradcheck([](const Inputs& a) { return a[0].as_strided({3, 2}, {8, 2}); }, {wide}));
  CHECK(gradcheck([](const Inputs& a) { return a[0].as_strided({2, 3}, {2, 2}); }, {wide}));
  // Overlap: element k of the window [k, k+1, k+2] is read min(k+1, 3, ...) times; the grad counts reads.
  Tensor v = rn({5}, 7);
  v.as_strided({3, 3}, {1, 1}).sum().backward();
  CHECK(allclose(v.grad(), f64({1, 2, 3, 2, 1}, {5})));
  for (const GradFn& f : fns) CHECK(gradgradcheck(squared(f), {x}));
  for (const GradFn& f : strided) CHECK(gradgradcheck(squared(f), {x}));
  CHECK(gradgradcheck(squared([](const Inputs& a) { return a[0].as_strided({2, 3}, {2, 2}); }), {wide}));
}

TEST_CASE("grad views: in-place writes through views, including views made before the write") {
  Tensor x = rn({3, 4}, 8), w = rn({3, 2}, 9);
  GradFn writes = [](const Inputs& a) {
    Tensor y = a[0] * 1.0;
    y.narrow(1, 1, 2).mul_(a[1]);                        // a block
    y.slice(1, 0, std::nullopt, 3).add_(2.0);            // a stepped slice (columns 0 and 3)
    y.t().select(0, 2).copy_(a[1].select(1, 0) * 0.5);   // a column through a transpose
    y.t().narrow(0, 0, 1).copy_(y.t().narrow(0, 3, 1));  // source and destination share storage
    y.as_strided({2, 2}, {4, 1}, 5).mul_(-1.5);          // as_strided (rows 1-2, columns 1-2)
    return y * y;
  };
  CHECK(check_both(writes, {x, w}));
  CHECK(gradgradcheck(writes, {x, w}));
  GradFn stale = [](const Inputs& a) {
    Tensor y = a[0] * 1.0;
    Tensor rows = y.slice(0, 0, std::nullopt, 2);  // rows 0 and 2, viewed before the write
    y.select(0, 0).mul_(a[0].select(0, 2));
    y.narrow(1, 3, 1).zero_();
    return rows * 2.0;
  };
  CHECK(check_both(stale, {x}));
  CHECK(gradgradcheck(squared(stale), {x}));
  // Hand check: the written view's old values get no gradient, the source gets it.
  Tensor a = rn({2, 3}, 10), b = rn({3}, 11);
  Tensor y = a * 2.0;
  y.select(0, 1).copy_(b);
  y.sum().backward();
  CHECK(allclose(a.grad(), f64({2, 2, 2, 0, 0, 0}, {2, 3})));
  CHECK(allclose(b.grad(), f64({1, 1, 1}, {3})));
}

// ---------------------------------------------------------------- shape ops

TEST_CASE("grad cat: per-input slices, negative dims, non-contiguous, zero-size and mixed-dtype inputs") {
  Tensor a = rn({2, 3}, 12), b = rn({2, 1}, 13), c = rn({2, 2}, 14);
  CHECK(check_both([](const Inputs& x) { return cat(x, 1); }, {a, b, c}));
  CHECK(check_both([](const Inputs& x) { return cat(x, -1); }, {a, b, c}));
  CHECK(check_both([](const Inputs& x) { return cat({x[0].t(), x[1].t()}, 0); }, {a, b}));
  CHECK(check_both([](const Inputs& x) { return cat(x, 0); }, {rn({1, 3}, 15), a}));
  CHECK(gradcheck([](const Inputs& x) { return cat({x[0], x[0].t().t(), x[0]}, 0); }, {a}));  // one input, thrice
  CHECK(gradgradcheck(squared([](const Inputs& x) { return cat(x, 1); }), {a, b}));
  // Zero-size inputs: [2, 0] along dim 1, and PyTorch's legacy 1-d empty tensor next to anything.
  Tensor e = rn({2, 0}, 16), e1 = rn({0}, 17);
  CHECK(gradcheck([](const Inputs& x) { return cat(x, 1); }, {a, e, b}));
  CHECK(gradcheck([](const Inputs& x) { return cat(x, 0); }, {e1, a, e1}));
  Tensor w = rn({2, 4}, 18).detach();
  (cat({a, e, e1, b}, -1) * w).sum().backward();
  CHECK(allclose(a.grad(), w.narrow(1, 0, 3)));
  CHECK(allclose(b.grad(), w.narrow(1, 3, 1)));
  CHECK(e.grad().shape() == Shape{2, 0});
  CHECK(e1.grad().shape() == Shape{0});
  Tensor only = cat({e1, e1}, 0);  // every input skipped: still differentiable
  CHECK(only.requires_grad());
  // A constant input takes no gradient; an f32 input gets its gradient in f32.
  Tensor k = ones({2, 2}, {.dtype = kF64});
  Tensor h = rn({2, 1}, 19).detach().to(kF32).requires_grad_();
  Tensor a2 = a.detach().requires_grad_();
  (cat({a2, k, h}, 1) * 3.0).sum().backward();
  CHECK(!k.grad().defined());
  CHECK(h.grad().dtype() == kF32);
  CHECK(allclose(h.grad(), full({2, 1}, 3.0, {.dtype = kF32})));
}

TEST_CASE("grad stack: every dim, non-contiguous and 0-dim inputs, one node over the inputs") {
  Tensor a = rn({2, 3}, 20), b = rn({2, 3}, 21), c = rn({2, 3}, 22);
  for (int64_t d : {0, 1, 2, -1, -3}) CHECK(check_both([d](const Inputs& x) { return stack(x, d); }, {a, b, c}));
  CHECK(gradcheck([](const Inputs& x) { return stack(x); }, {rn({}, 23), rn({}, 24)}));
  CHECK(gradcheck([](const Inputs& x) { return stack({x[0], x[0]}, 1); }, {a}));
  CHECK(gradgradcheck(squared([](const Inputs& x) { return stack(x, 1); }), {a, b}));
  Tensor s = stack({a, b}, 1);
  CHECK(node_name(s) == "stack");
  CHECK(child_name(s, 0) == "accumulate_grad");  // the unsqueezes are not recorded
}

TEST_CASE("grad split and chunk: narrow views, with only some pieces used") {
  Tensor x = rn({4, 5}, 25);
  std::vector<GradFn> fns = {
      [](const Inputs& a) { return split(a[0], 2, 1)[1]; },
      [](const Inputs& a) { return split(a[0], 2, -1).back(); },
      [](const Inputs& a) {
        auto p = split(a[0], std::vector<int64_t>{1, 3}, 0);
        return p[1] * p[0];
      },
      [](const Inputs& a) {
        auto p = chunk(a[0], 2, 0);
        return p[0] + p[1] * 2.0;
      },
      [](const Inputs& a) { return chunk(a[0], 3, -1)[2]; },
  };
  for (const GradFn& f : fns) CHECK(check_both(f, {x}));
  for (const GradFn& f : {fns[2], squared(fns[3]), squared(fns[4])}) CHECK(gradgradcheck(f, {x}));
  // Only the first piece is used: the other columns get zeros.
  (split(x, 2, 1)[0].sum() * 2.0).backward();
  Tensor expect = zeros({4, 5}, {.dtype = kF64});
  expect.narrow(1, 0, 2).fill_(2.0);
  CHECK(allclose(x.grad(), expect));
}

TEST_CASE("grad flip: single, several, negative and no dims; non-contiguous; 0-dim") {
  Tensor x = rn({2, 3, 4}, 26);
  for (Shape dims : {Shape{0}, Shape{-1}, Shape{0, 2}, Shape{}})
    CHECK(check_both([dims](const Inputs& a) { return flip(a[0], dims); }, {x}));
  CHECK(gradcheck([](const Inputs& a) { return flip(a[0], {}); }, {rn({}, 27)}));
  CHECK(gradgradcheck(squared([](const Inputs& a) { return flip(a[0], {1, -1}); }), {x}));
}

TEST_CASE("grad repeat: tiles sum back, with new leading dims, zero repeats and 0-dim inputs") {
  Tensor x = rn({2, 3}, 28);
  for (Shape r : {Shape{2, 1, 3}, Shape{1, 1}, Shape{3, 2}, Shape{0, 2}})
    CHECK(check_both([r](const Inputs& a) { return repeat(a[0], r); }, {x}));
  CHECK(gradcheck([](const Inputs& a) { return repeat(a[0], {3, 2}); }, {rn({}, 29)}));
  CHECK(gradcheck([](const Inputs& a) { return repeat(a[0], {}); }, {rn({}, 30)}));
  CHECK(gradgradcheck(squared([](const Inputs& a) { return repeat(a[0], {2, 1, 2}); }), {x}));
  Tensor v = rn({2}, 31);
  repeat(v, {2, 3}).sum().backward();
  CHECK(allclose(v.grad(), f64({6, 6}, {2})));
}

TEST_CASE("grad pad: growing, cropping, mixed, with a fill value; pad records one node") {
  Tensor x = rn({2, 3, 4}, 32);
  for (std::vector<int64_t> p : {std::vector<int64_t>{1, 2}, {1, -1, -1, 2}, {-1, -2}, {0, 0, 1, 1, 2, 0}, {-4, 1}})
    CHECK(check_both([p](const Inputs& a) { return pad(a[0], p, 0.5); }, {x}));
  CHECK(gradgradcheck(squared([](const Inputs& a) { return pad(a[0], {2, -1, 0, 1}); }), {x}));
  Tensor y = pad(x, {1, -1});
  CHECK(node_name(y) == "pad");
  CHECK(child_name(y, 0) == "accumulate_grad");  // the cropping narrow is not recorded
  Tensor v = rn({3}, 33);
  pad(v, {-1, 2}, 9.0).sum().backward();
  CHECK(allclose(v.grad(), f64({0, 1, 1}, {3})));
}

TEST_CASE("grad broadcast_to and broadcast_tensors (expand views)") {
  Tensor a = rn({3, 1}, 34), b = rn({1, 4}, 35), s = rn({}, 36);
  CHECK(check_both([](const Inputs& x) { return broadcast_to(x[0], {2, 3, 4}); }, {a}));
  GradFn f = [](const Inputs& x) {
    auto r = broadcast_tensors(x);
    return r[0] * r[1] + r[2];
  };
  CHECK(check_both(f, {a, b, s}));
  CHECK(gradgradcheck(f, {a, b, s}));
  broadcast_to(a, {2, 3, 4}).sum().backward();
  CHECK(allclose(a.grad(), full({3, 1}, 8.0, {.dtype = kF64})));
}

// ---------------------------------------------------------------- index ops

TEST_CASE("grad index_select: duplicates accumulate; negative dims; 0-d and empty indices; 0-dim input") {
  Tensor x = rn({3, 4}, 40);
  Tensor dup = ix({2, 0, 2, 2});
  CHECK(check_both([dup](const Inputs& a) { return index_select(a[0], 0, on(a, dup)); }, {x}));
  CHECK(check_both([](const Inputs& a) { return index_select(a[0], -1, on(a, ix({3, 1}))); }, {x}));
  CHECK(check_both([](const Inputs& a) { return index_select(a[0], 1, on(a, ix({2}, Shape{}).to(kI32))); }, {x}));
  CHECK(gradcheck([](const Inputs& a) { return index_select(a[0], 0, on(a, ix({}))); }, {x}));
  CHECK(gradcheck([](const Inputs& a) { return index_select(a[0], 0, on(a, ix({0}))); }, {rn({}, 41)}));
  CHECK(gradgradcheck(squared([dup](const Inputs& a) { return index_select(a[0], 0, on(a, dup)); }), {x}));
  index_select(x, 0, dup).sum().backward();
  CHECK(allclose(x.grad(), f64({1, 1, 1, 1, 0, 0, 0, 0, 3, 3, 3, 3}, {3, 4})));
}

TEST_CASE("grad gather: duplicates accumulate; every dim; smaller index; 0-dim; the index is saved") {
  Tensor x = rn({3, 4}, 42);
  Tensor i1 = ix({0, 3, 3, 1, 1, 1}, Shape{2, 3}), i0 = ix({2, 0, 2, 1, 2, 2, 0, 0}, Shape{2, 4});
  CHECK(check_both([i1](const Inputs& a) { return gather(a[0], 1, on(a, i1)); }, {x}));
  CHECK(check_both([i1](const Inputs& a) { return gather(a[0], -1, on(a, i1)); }, {x}));
  CHECK(check_both([i0](const Inputs& a) { return gather(a[0], 0, on(a, i0)); }, {x}));
  CHECK(gradcheck([](const Inputs& a) { return gather(a[0], 0, on(a, ix({0}, Shape{}))); }, {rn({}, 43)}));
  CHECK(gradgradcheck(squared([i0](const Inputs& a) { return gather(a[0], 0, on(a, i0)); }), {x}));
  gather(x, 1, i1).sum().backward();
  CHECK(allclose(x.grad(), f64({1, 0, 0, 2, 0, 3, 0, 0, 0, 0, 0, 0}, {3, 4})));
  // Writing into the saved index before backward is an error, not a wrong gradient.
  Tensor idx = i1.clone();
  Tensor y = gather(x, 1, idx);
  idx.fill_(0);
  CHECK_THROWS_AS(y.sum().backward(), AutogradError);
}

TEST_CASE("grad scatter: self loses the written positions, src gathers them; scalar value; src larger than index") {
  Tensor self = rn({3, 5}, 44), src = rn({3, 4}, 45);
  Tensor i1 = ix({0, 4, 2, 1, 3, 0}, Shape{3, 2});  // distinct per row: the result does not depend on order
  CHECK(check_both([i1](const Inputs& a) { return scatter(a[0], 1, on(a, i1), a[1]); }, {self, src}));
  CHECK(check_both([i1](const Inputs& a) { return scatter(a[0], -1, on(a, i1), a[1]); }, {self, src.narrow(1, 0, 2)}));
  Tensor i0 = ix({0, 1, 2, 0, 2, 0, 1, 1}, Shape{2, 4});
  CHECK(check_both([i0](const Inputs& a) { return scatter(a[0], 0, on(a, i0), a[1]); },
                   {rn({3, 4}, 46), rn({2, 4}, 47)}));
  CHECK(check_both([i1](const Inputs& a) { return scatter(a[0], 1, on(a, i1), 1.5); }, {self}));
  Tensor z = ix({0}, Shape{});
  CHECK(gradcheck([z](const Inputs& a) { return scatter(a[0], 0, on(a, z), a[1]); }, {rn({}, 48), rn({}, 49)}));
  CHECK(gradgradcheck(squared([i1](const Inputs& a) { return scatter(a[0], 1, on(a, i1), a[1]); }), {self, src}));
  CHECK(gradgradcheck(squared([i1](const Inputs& a) { return scatter(a[0], 1, on(a, i1), -2.0); }), {self}));
  scatter(self, 1, i1, src).sum().backward();
  CHECK(allclose(self.grad(), f64({0, 1, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0, 1}, {3, 5})));
  CHECK(allclose(src.grad(), f64({1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0}, {3, 4})));
}

TEST_CASE("grad scatter_add: duplicates, src larger than index, every dim, 0-dim") {
  Tensor self = rn({3, 4}, 50), src = rn({3, 4}, 51);
  Tensor i0 = ix({0, 0, 2, 1, 0, 2, 2, 2}, Shape{2, 4}), i1 = ix({1, 1, 1, 0, 3, 3}, Shape{3, 2});
  CHECK(check_both([i0](const Inputs& a) { return scatter_add(a[0], 0, on(a, i0), a[1]); }, {self, src}));
  CHECK(check_both([i1](const Inputs& a) { return scatter_add(a[0], -1, on(a, i1), a[1]); }, {self, src}));
  Tensor z = ix({0}, Shape{});
  CHECK(gradcheck([z](const Inputs& a) { return scatter_add(a[0], 0, on(a, z), a[1]); }, {rn({}, 52), rn({}, 53)}));
  CHECK(gradgradcheck(squared([i0](const Inputs& a) { return scatter_add(a[0], 0, on(a, i0), a[1]); }), {self, src}));
  Tensor w = rn({3, 4}, 54).detach();
  (scatter_add(self, 0, i0, src) * w).sum().backward();
  CHECK(allclose(self.grad(), w));
  testing::Ref rw(w), ri(i0), expect({3, 4}, 0.0);  // src[r][c] went to row i0[r][c]
  testing::for_each_index({2, 4}, [&](const Shape& k) { expect[k] = rw[{static_cast<int64_t>(ri[k]), k[1]}]; });
  CHECK(allclose(src.grad(), expect.to(kF64)));
}

TEST_CASE("grad index_add: duplicates, alpha, negative dim, 0-d index, 0-dim tensors") {
  Tensor self = rn({4, 3}, 55), src = rn({5, 3}, 56);
  Tensor dup = ix({3, 0, 3, 3, 1});
  CHECK(check_both([dup](const Inputs& a) { return index_add(a[0], 0, on(a, dup), a[1], 2.5); }, {self, src}));
  CHECK(check_both(
      [](const Inputs& a) {
        return index_add(a[0], -1, on(a, ix({1, 1, 3})), a[1], -1.0);
      },
      {rn({2, 4}, 57), rn({2, 3}, 58)}));
  CHECK(check_both([](const Inputs& a) { return index_add(a[0], 0, on(a, ix({2}, Shape{})), a[1]); },
                   {rn({3, 2}, 59), rn({1, 2}, 60)}));
  CHECK(gradcheck([](const Inputs& a) { return index_add(a[0], 0, on(a, ix({0})), a[1]); }, {rn({}, 61), rn({}, 62)}));
  CHECK(gradgradcheck(squared([dup](const Inputs& a) { return index_add(a[0], 0, on(a, dup), a[1], 2.5); }),
                      {self, src}));
  Tensor w = rn({4, 3}, 63).detach();
  (index_add(self, 0, dup, src, 2.5) * w).sum().backward();
  CHECK(allclose(self.grad(), w));
  CHECK(allclose(src.grad(), index_select(w, 0, dup) * 2.5));
}

TEST_CASE("grad masked_fill: same-shape, broadcast and 0-dim masks") {
  Tensor x = rn({2, 3}, 64);
  Tensor m = mask({1, 0, 0, 1, 1, 0}, {2, 3}), row = mask({0, 1, 1}, {3}), yes = mask({1}, {});
  for (const Tensor& k : {m, row, yes})
    CHECK(check_both([k](const Inputs& a) { return masked_fill(a[0], on(a, k), -1.0); }, {x}));
  CHECK(gradcheck([yes](const Inputs& a) { return masked_fill(a[0], on(a, yes), 2.0); }, {rn({}, 65)}));
  CHECK(gradcheck([](const Inputs& a) { return masked_fill(a[0], on(a, mask({0}, {})), 2.0); }, {rn({}, 66)}));
  CHECK(gradgradcheck(squared([row](const Inputs& a) { return masked_fill(a[0], on(a, row), 0.5); }), {x}));
  masked_fill(x, row, 7.0).sum().backward();
  CHECK(allclose(x.grad(), f64({1, 0, 0, 1, 0, 0}, {2, 3})));
}

TEST_CASE("grad masked_select: the gradient returns to the selected positions; broadcasting either way") {
  Tensor x = rn({2, 3}, 67), v = rn({3}, 68);
  Tensor m = mask({1, 0, 1, 1, 1, 0}, {2, 3}), row = mask({0, 1, 1}, {3});
  CHECK(check_both([m](const Inputs& a) { return masked_select(a[0], on(a, m)); }, {x}));
  CHECK(check_both([row](const Inputs& a) { return masked_select(a[0], on(a, row)); }, {x}));
  CHECK(check_both([m](const Inputs& a) { return masked_select(a[0], on(a, m)); }, {v}));  // the tensor broadcasts
  CHECK(gradcheck([](const Inputs& a) { return masked_select(a[0], on(a, zeros({2, 3}, {.dtype = kBool}))); }, {x}));
  CHECK(gradcheck([](const Inputs& a) { return masked_select(a[0], on(a, mask({1}, {}))); }, {rn({}, 69)}));
  CHECK(gradgradcheck(squared([m](const Inputs& a) { return masked_select(a[0], on(a, m)); }), {x}));
  masked_select(v, m).sum().backward();
  CHECK(allclose(v.grad(), f64({2, 1, 1}, {3})));
  Tensor w = f64({1, 2, 3, 4}, {4});
  (masked_select(x, m) * w).sum().backward();
  CHECK(allclose(x.grad(), f64({1, 0, 2, 3, 4, 0}, {2, 3})));
}

TEST_CASE("grad take_along_dim: duplicates, broadcasting of input and indices, 0-dim") {
  Tensor x = rn({3, 4}, 70);
  Tensor i1 = ix({0, 3, 2, 2, 1, 0}, Shape{3, 2}), i0 = ix({2, 0, 2, 1, 0, 0, 1, 2}, Shape{2, 4});
  CHECK(check_both([i1](const Inputs& a) { return take_along_dim(a[0], on(a, i1), 1); }, {x}));
  CHECK(check_both([i1](const Inputs& a) { return take_along_dim(a[0], on(a, i1), -1); }, {x}));
  CHECK(check_both([i0](const Inputs& a) { return take_along_dim(a[0], on(a, i0), 0); }, {x}));
  CHECK(check_both([i1](const Inputs& a) { return take_along_dim(a[0], on(a, i1), 1); }, {rn({1, 4}, 71)}));
  CHECK(check_both([](const Inputs& a) { return take_along_dim(a[0], on(a, ix({3, 3}, Shape{1, 2})), 1); }, {x}));
  CHECK(gradcheck([](const Inputs& a) { return take_along_dim(a[0], on(a, ix({0}, Shape{})), 0); }, {rn({}, 72)}));
  CHECK(gradgradcheck(squared([i1](const Inputs& a) { return take_along_dim(a[0], on(a, i1), 1); }), {rn({1, 4}, 73)}));
  Tensor b = rn({1, 4}, 74);
  Tensor y = take_along_dim(b, i1, 1);
  CHECK(node_name(y) == "take_along_dim");
  CHECK(child_name(y, 0) == "accumulate_grad");  // the expand is folded into the node
  y.sum().backward();
  CHECK(allclose(b.grad(), f64({2, 1, 2, 1}, {1, 4})));
}

TEST_CASE("grad embedding: repeated rows accumulate; padding_idx rows get nothing; 0-d indices") {
  Tensor w = rn({5, 3}, 75);
  Tensor idx = ix({1, 3, 1, 4, 1, 0}, Shape{2, 3});
  CHECK(check_both([idx](const Inputs& a) { return embedding(on(a, idx), a[0]); }, {w}));
  // The padding row still feeds the forward but gets no gradient (as in PyTorch), so gradcheck sees
  // the output with the padding positions zeroed, where both agree; the hand checks below see the rest.
  for (int64_t p : {1, 4, -1}) {
    Tensor keep = (idx != (p < 0 ? p + 5 : p)).unsqueeze(-1).to(kF64);
    CHECK(check_both([idx, p, keep](const Inputs& a) { return embedding(on(a, idx), a[0], p) * on(a, keep); }, {w}));
  }
  CHECK(check_both([](const Inputs& a) { return embedding(on(a, ix({2}, Shape{}).to(kI32)), a[0]); }, {w}));
  CHECK(gradgradcheck(squared([idx](const Inputs& a) { return embedding(on(a, idx), a[0], 1); }), {w}));
  Tensor y = embedding(idx, w, 1);
  CHECK(child_name(y, 0) == "accumulate_grad");
  y.sum().backward();
  CHECK(allclose(w.grad(), f64({1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1}, {5, 3})));
  Tensor v = rn({5, 3}, 76);
  embedding(idx, v, -1).sum().backward();  // padding row 4
  CHECK(allclose(v.grad(), f64({1, 1, 1, 3, 3, 3, 0, 0, 0, 1, 1, 1, 0, 0, 0}, {5, 3})));
  // f16/bf16 weights: a row picked n times gets n (exact in the dtype), not a sum stuck where one more
  // 1 rounds away (256 in bf16, 2048 in f16).
  struct Case {
    DType dt;
    int64_t n;
  };
  for (const Case& c : {Case{kBF16, 1000}, Case{kF16, 5000}}) {
    CAPTURE(c.dt);
    Tensor h = zeros({3, 2}, {.dtype = c.dt, .requires_grad = true});
    embedding(zeros({c.n}, {.dtype = kI64}), h).sum().backward();
    CHECK(h.grad().dtype() == c.dt);
    const double n = static_cast<double>(c.n);
    CHECK(allclose(h.grad().to(kF64), f64({n, n, 0, 0, 0, 0}, {3, 2})));
  }
}

TEST_CASE("grad index ops: in-place writes into their results keep the results' history") {
  Tensor x = rn({3, 4}, 77);
  Tensor y = gather(x, 1, ix({0, 3, 3, 1, 1, 1}, Shape{2, 3}));  // reshaped internally: not a view
  y.mul_(2.0);
  y.sum().backward();
  CHECK(allclose(x.grad(), f64({2, 0, 0, 4, 0, 6, 0, 0, 0, 0, 0, 0}, {3, 4})));
  Tensor w = rn({4, 2}, 78);
  Tensor e = embedding(ix({1, 1, 3}, Shape{3}), w);
  e.narrow(0, 0, 1).mul_(3.0);
  e.sum().backward();
  CHECK(allclose(w.grad(), f64({0, 0, 4, 4, 0, 0, 1, 1}, {4, 2})));
  Tensor s = rn({2, 3}, 79), src = rn({2, 1}, 80);
  Tensor z = scatter(s, 1, ix({2, 0}, Shape{2, 1}), src);
  z.add_(1.0);
  z.sum().backward();
  CHECK(allclose(s.grad(), f64({1, 1, 0, 0, 1, 1}, {2, 3})));
  CHECK(allclose(src.grad(), f64({1, 1}, {2, 1})));
}

TEST_CASE("grad of integer ops: one_hot takes no gradient") {
  Tensor h = one_hot(ix({0, 2}), 3);
  CHECK(h.dtype() == kI64);
  CHECK(!h.requires_grad());
}

// ---------------------------------------------------------------- PyTorch reference gradients

TEST_CASE("grad shape and index ops match PyTorch's gradients of sum(op(x) * w)") {
  TensorMap fx = testing::fixtures("grad_shape");
  auto run = [&](const std::string& name, const GradFn& f, size_t n) {
    CAPTURE(name);
    Inputs xs;
    for (size_t i = 0; i < n; ++i) xs.push_back(fx.at(name + ".x" + std::to_string(i)).clone().requires_grad_());
    auto grads = autograd::grad({(f(xs) * fx.at(name + ".w")).sum()}, xs);
    for (size_t i = 0; i < n; ++i) CHECK(allclose(grads[i], fx.at(name + ".g" + std::to_string(i)), 1e-10, 1e-12));
  };
  run(
      "cat_flip_repeat",
      [](const Inputs& x) {
        return repeat(cat({flip(x[0], {0}), x[1]}, 1), {2, 1});
      },
      2);
  run(
      "pad",
      [](const Inputs& x) {
        return pad(x[0], {1, -1, -1, 2}, 0.5);
      },
      1);
  run(
      "stack", [](const Inputs& x) { return stack(x, -1); }, 2);
  run(
      "gather",
      [](const Inputs& x) {
        return gather(x[0], 1, on(x, ix({0, 3, 3, 1, 1, 1, 2, 0, 2}, Shape{3, 3})));
      },
      1);
  run(
      "scatter",
      [](const Inputs& x) {
        return scatter(x[0], 1, on(x, ix({0, 4, 2, 1, 3, 0}, Shape{3, 2})), x[1]);
      },
      2);
  run(
      "scatter_add",
      [](const Inputs& x) {
        return scatter_add(x[0], 0, on(x, ix({0, 0, 2, 1, 0, 2, 2, 2}, Shape{2, 4})), x[1]);
      },
      2);
  run(
      "index_add",
      [](const Inputs& x) {
        return index_add(x[0], 0, on(x, ix({3, 0, 3, 3, 1})), x[1], 2.5);
      },
      2);
  run(
      "index_select",
      [](const Inputs& x) {
        return index_select(x[0], 0, on(x, ix({2, 0, 2, 2})));
      },
      1);
  run(
      "masked_fill",
      [](const Inputs& x) {
        return masked_fill(x[0], on(x, mask({1, 0, 1}, {3})), -1.0);
      },
      1);
  run(
      "masked_select",
      [](const Inputs& x) {
        return masked_select(x[0], on(x, mask({1, 0, 1, 1, 1, 0}, {2, 3})));
      },
      1);
  run(
      "take_along_dim",
      [](const Inputs& x) {
        return take_along_dim(x[0], on(x, ix({0, 3, 2, 2, 1, 0}, Shape{3, 2})), 1);
      },
      1);
  run(
      "embedding",
      [](const Inputs& x) {
        return embedding(on(x, ix({1, 3, 1, 4, 1, 0}, Shape{2, 3})), x[0], 1);
      },
      1);
  run(
      "as_strided",
      [](const Inputs& x) {
        return x[0].as_strided({3, 3}, {1, 1});
      },
      1);
}
