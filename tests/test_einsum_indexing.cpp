// einsum and advanced indexing (x.index / x.index_put_): values and input gradients against
// torch.einsum and PyTorch's x[...] (tests/reference/fixtures_ops16.py), gradchecks, views, errors.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "test_util.hpp"

using namespace ember;
using namespace ember::indexing;
using ember::testing::allclose;
using ember::testing::check_with_grads;
using ember::testing::gradcheck;
using ember::testing::throws_with;

namespace {

// Same order as EINSUM in fixtures_ops16.py.
const std::vector<std::pair<std::string, int>> kEquations = {
    {"ij,jk->ik", 2},       {"bij,bjk->bik", 2}, {"ii->i", 1},        {"ii", 1},
    {"ij->ji", 1},          {"...ij,...jk", 2},  {"i,i->", 2},        {"i,j->ij", 2},
    {"bhqd,bhkd->bhqk", 2}, {"ijk->", 1},        {"ij,jk,kl->il", 3}, {"bn,anm,bm->ba", 3},
    {"iij->j", 1},          {"ij,ij->ij", 2},    {"i...->...", 1},    {"ji", 1},
    {"Ab,bc->Ac", 2},       {"bij,jk->bik", 2},  {"ij,kj->", 2}};

Tensor i64(std::vector<int64_t> v) { return tensor(v); }

}  // namespace

TEST_CASE("einsum matches torch.einsum, values and gradients") {
  TensorMap f = ember::testing::fixtures("ops16");
  for (size_t i = 0; i < kEquations.size(); ++i) {
    const auto& [eq_, n] = kEquations[i];
    // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
    const auto& eq = eq_;
    CAPTURE(eq);
    const std::string key = "einsum." + std::to_string(i);
    std::vector<Tensor> ins;
    for (int k = 0; k < n; ++k) ins.push_back(f.at(key + ".in" + std::to_string(k)));
    check_with_grads(
        f, key, [&, eq = eq](const std::vector<Tensor>& a) { return einsum(eq, a); }, ins);
  }
}

TEST_CASE("einsum gradcheck and layouts") {
  manual_seed(3);
  auto opts = TensorOptions{.dtype = kF64, .requires_grad = true};
  for (const char* eq : {"ij,jk->ik", "ii->i", "...ij,...jk", "bn,anm,bm->ba", "iij->j", "i,j->ij"}) {
    CAPTURE(eq);
    std::vector<Tensor> ins;
    std::string e = eq;
    if (e == "ij,jk->ik") ins = {randn({3, 4}, opts), randn({4, 2}, opts)};
    if (e == "ii->i") ins = {randn({3, 3}, opts)};
    if (e == "...ij,...jk") ins = {randn({2, 1, 2, 3}, opts), randn({3, 3, 2}, opts)};
    if (e == "bn,anm,bm->ba") ins = {randn({2, 3}, opts), randn({2, 3, 4}, opts), randn({2, 4}, opts)};
    if (e == "iij->j") ins = {randn({3, 3, 2}, opts)};
    if (e == "i,j->ij") ins = {randn({3}, opts), randn({2}, opts)};
    CHECK(gradcheck([e](const std::vector<Tensor>& a) { return einsum(e, a); }, ins));
  }
  // A transposed operand and a diagonal of a non-contiguous view.
  Tensor a = randn({4, 3}, {.dtype = kF64}), b = randn({4, 5}, {.dtype = kF64});
  CHECK(allclose(einsum("ji,jk->ik", {a, b}), matmul(a.t(), b), 1e-12, 1e-12));
  Tensor sq = randn({5, 5}, {.dtype = kF64}).t();
  Tensor diag = einsum("ii->i", {sq});
  for (int64_t k = 0; k < 5; ++k) CHECK(diag[k].item<double>() == sq[k][k].item<double>());
  CHECK(einsum("  i j , j k -> i k ", {a.t(), b.t().t().t().t()}).shape() == Shape{3, 5});
}

TEST_CASE("einsum errors name the op and the operands") {
  Tensor a = ones({2, 3}), b = ones({4, 5});
  CHECK(throws_with<ShapeError>([&] { einsum("ij,jk->ik", {a, b}); }, "[einsum] subscript 'j'"));
  CHECK(throws_with<ValueError>([&] { einsum("ij,jk->ik", {a}); }, "[einsum] equation"));
  CHECK(throws_with<ShapeError>([&] { einsum("ijk->i", {a}); }, "[einsum] operand 0"));
  CHECK(throws_with<ValueError>([&] { einsum("ij->iz", {a}); }, "output subscript 'z'"));
  CHECK(throws_with<ValueError>([&] { einsum("i1->i", {a}); }, "invalid character '1'"));
  CHECK(throws_with<ShapeError>([&] { einsum("ii->i", {a}); }, "repeats in operand 0"));
}

TEST_CASE("advanced indexing matches PyTorch x[...], values and gradients") {
  TensorMap f = ember::testing::fixtures("ops16");
  const Tensor x = f.at("x");
  const Tensor idx = f.at("idx"), idx1 = f.at("idx1"), ia = f.at("ia"), ib = f.at("ib"), mask = f.at("mask"),
               mask6 = f.at("mask6");
  auto get = [&](std::string key, std::vector<TensorIndex> i) {
    check_with_grads(f, "get." + key, [i](const std::vector<Tensor>& a) { return a[0].index(i); }, {x});
  };
  get("idx", {idx});
  get("slice_idx1", {Slice(), idx1});
  get("ia_ib", {ia, ib});
  get("slice_ia_ib", {Slice(), ia, ib});
  get("ia_slice_ib", {ia, Slice(), ib});
  get("mask", {mask});
  get("ellipsis_mask6", {Ellipsis, mask6});
  get("slice_none_idx1", {Slice(1, 3), None, idx1});
  get("int_slice_idx1", {0, Slice(), idx1});
  get("step_idx", {Slice(None, None, 2), idx1, Slice(1, 5, 2)});

  // Writes: a scalar through a mask, a broadcast value through two index tensors, accumulation with
  // duplicate indices (all as PyTorch's y[key] = v and index_put(accumulate=True)).
  check_with_grads(
      f, "put.mask_scalar",
      [&](const std::vector<Tensor>& a) { return index_put(a[0], {mask}, scalar_tensor(0.5, {.dtype = kF64})); }, {x});
  check_with_grads(f, "put.slice_ia_ib",
                   [&](const std::vector<Tensor>& a) {
                     Tensor y = a[0].clone();
                     y.index_put_({Slice(), ia, ib}, a[1]);
                     return y;
                   },
                   {x, f.at("put.v")});
  check_with_grads(f, "put.idxd_accumulate",
                   [&](const std::vector<Tensor>& a) { return index_put(a[0], {f.at("idxd")}, a[1], true); },
                   {x, f.at("put.u")});
}

TEST_CASE("advanced indexing: views, in-place writes, gradcheck") {
  Tensor x = arange(24, kF64).reshape({2, 3, 4});
  // Basic entries give views that share storage, as x[:, 1] does.
  Tensor v = x.index({Slice(), 1});
  CHECK(v.shape() == Shape{2, 4});
  x.index_put_({Slice(), 1}, 100.0);
  CHECK(v[1][2].item<double>() == 100.0);
  CHECK(x.index({Ellipsis, -1}).shape() == Shape{2, 3});
  CHECK(x.index({None, 0, Slice(1, None)}).shape() == Shape{1, 2, 4});
  // Masked write in place, and accumulate through a tensor index.
  Tensor y = zeros({5});
  y.index_put_({tensor<bool>({true, false, true, false, false})}, 2.0);
  y.index_put_({i64({4, 4, 0})}, 1.0, true);
  CHECK(y.to_vector<float>() == std::vector<float>{3, 0, 2, 0, 2});
  // Negative and int32 indices.
  Tensor r = x.index({tensor<int32_t>({-1, 0})});
  CHECK(r[0][0][0].item<double>() == x[1][0][0].item<double>());

  manual_seed(5);
  Tensor a = randn({4, 3, 5}, {.dtype = kF64, .requires_grad = true});
  Tensor m = testing::dev(rand({4, 3}) > 0.4);
  CHECK(gradcheck([&](const std::vector<Tensor>& in) { return in[0].index({m}); }, {a}));
  CHECK(gradcheck(
      [&](const std::vector<Tensor>& in) {
        return in[0].index({i64({0, 3, 3}).to(in[0].device()), Slice(), i64({1, 4, 1}).to(in[0].device())});
      },
      {a}));
  Tensor src = randn({4, 2}, {.dtype = kF64, .requires_grad = true});
  CHECK(gradcheck(
      [&](const std::vector<Tensor>& in) {
        return index_put(in[0], {Slice(), 1, i64({2, 2}).to(in[0].device())}, in[1], true);
      },
      {a, src}));
  // In-place through autograd: the gradient reaches both the written tensor's source and the values.
  Tensor base = randn({4, 3}, {.dtype = kF64, .requires_grad = true});
  Tensor val = randn({2, 3}, {.dtype = kF64, .requires_grad = true});
  Tensor w = base * 2.0;
  w.index_put_({i64({0, 2})}, val);
  w.sum().backward();
  CHECK(base.grad().to_vector<double>() == std::vector<double>{0, 0, 0, 2, 2, 2, 0, 0, 0, 2, 2, 2});
  CHECK(val.grad().to_vector<double>() == std::vector<double>(6, 1.0));
}

TEST_CASE("advanced indexing errors") {
  Tensor x = zeros({2, 3});
  CHECK(throws_with<IndexError>([&] { x.index({i64({0, 2})}); }, "[index] index 2 is out of bounds for dim 0"));
  CHECK(throws_with<IndexError>([&] { x.index({Slice(), i64({-4})}); }, "out of bounds for dim 1"));
  CHECK(throws_with<DTypeError>([&] { x.index({ones({2})}); }, "[index] index tensors must be int64, int32 or bool"));
  CHECK(throws_with<IndexError>([&] { x.index({0, 0, 0}); }, "[index] too many indices"));
  CHECK(throws_with<IndexError>([&] { x.index({zeros({3}, {.dtype = kBool})}); }, "does not match"));
  CHECK(throws_with<ShapeError>([&] { x.index_put_({i64({0})}, ones({2})); }, "[index_put] values"));
  CHECK(throws_with<IndexError>([&] { x.index({Ellipsis, 0, Ellipsis}); }, "one Ellipsis"));
}
