// Issue 16's tensor-API traps: single-int dims for every reduction (x.var(1) reduces dim 1), max/min/
// sort/topk results with .values and .indices, std beside namespace std, functional conv and pool
// with plain ints, embedding's argument order, and MultiheadAttention's is_causal hint beside
// attn_mask. Reference values come from tests/reference/fixtures_api16.py.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "ember.hpp"
#include "test_util.hpp"

using namespace ember;  // on purpose: ember::std must stay usable beside namespace std
namespace F = ember::nn::functional;
using ember::testing::allclose;
using ember::testing::equal;
using ember::testing::error_message;

namespace {

const TensorMap& fx() {
  static const TensorMap m = ember::testing::fixtures("api16");
  return m;
}
Tensor get(const std::string& k) { return fx().at(k); }

}  // namespace

TEST_CASE("api: a single int dim reduces that dim, as PyTorch (x.var(1) is not correction 1)") {
  Tensor r = get("r");
  // The old overload read x.var(1) as correction 1 over all dims: a 0-dim result.
  CHECK(r.var(1).shape() == Shape{3, 5});
  CHECK(equal(r.var(1), r.var({1})));
  CHECK(equal(r.std(1), r.std({1})));
  CHECK(allclose(r.var(1), get("r.var1"), 1e-12, 1e-12));
  CHECK(allclose(r.std(1), get("r.std1"), 1e-12, 1e-12));
  CHECK(allclose(r.var(1, 0, true), get("r.var1_c0_keep"), 1e-12, 1e-12));
  CHECK(allclose(var(r, 1), get("r.var1"), 1e-12, 1e-12));
  CHECK(allclose(ember::std(r, 1), get("r.std1"), 1e-12, 1e-12));
  CHECK(allclose(r.sum(1), get("r.sum1"), 1e-12, 1e-12));
  CHECK(allclose(sum(r, 1), get("r.sum1"), 1e-12, 1e-12));
  CHECK(allclose(r.mean(1), get("r.mean1"), 1e-12, 1e-12));
  CHECK(allclose(mean(r, 1), get("r.mean1"), 1e-12, 1e-12));
  CHECK(equal(r.amax(1), get("r.amax1")));
  CHECK(equal(r.amin(1), get("r.amin1")));
  CHECK(equal(amax(r, 1), get("r.amax1")));
  CHECK(allclose(r.prod(1), get("r.prod1"), 1e-12, 1e-12));
  CHECK(allclose(prod(r, 1), get("r.prod1"), 1e-12, 1e-12));
  CHECK(allclose(r.logsumexp(1), get("r.logsumexp1"), 1e-12, 1e-12));
  CHECK(allclose(r.norm(2, 1), get("r.norm1"), 1e-12, 1e-12));
  CHECK(r.sum(-1).shape() == Shape{3, 4});
  CHECK(r.mean(1, true).shape() == Shape{3, 1, 5});
  // {} still means every dim, never dim 0; a correction over all dims is written var({}, 0).
  CHECK(r.var().dim() == 0);
  CHECK(r.var({}, 0).item<double>() == doctest::Approx(r.var({0, 1, 2}, 0).item<double>()));
  CHECK(r.var({}, 0).item<double>() < r.var().item<double>());
  CHECK(r.sum({}, true).shape() == Shape{1, 1, 1});
  CHECK_THROWS_AS(r.var(3), IndexError);
}

TEST_CASE("api: view and reshape take sizes as separate ints") {
  Tensor r = get("r");
  CHECK(r.view(-1).shape() == Shape{60});
  CHECK(r.reshape(-1).shape() == Shape{60});
  CHECK(r.view(3, -1).shape() == Shape{3, 20});
  CHECK(r.reshape(2, 6, 5).shape() == Shape{2, 6, 5});
  CHECK(r.view({4, 15}).shape() == Shape{4, 15});
  CHECK(equal(r.view(-1), r.flatten()));
  CHECK_THROWS_AS(r.view(7, -1), ShapeError);
}

TEST_CASE("api: max/min along a dim, sort and topk give .values and .indices") {
  Tensor x = tensor({3.0f, 1.0f, 2.0f, 0.0f, 5.0f, 4.0f}).view(2, 3);
  auto [v, i] = max(x, 1);  // structured bindings, as before
  CHECK(v.to_vector<float>() == std::vector<float>{3, 5});
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{0, 1});
  ValuesIndices m = x.min(1);
  CHECK(m.values.to_vector<float>() == std::vector<float>{1, 0});
  CHECK(m.indices.to_vector<int64_t>() == std::vector<int64_t>{1, 0});
  CHECK(x.sort(1).values.to_vector<float>() == std::vector<float>{1, 2, 3, 0, 4, 5});
  CHECK(sort(x, 1, true).indices.to_vector<int64_t>() == std::vector<int64_t>{0, 2, 1, 1, 2, 0});
  CHECK(topk(x, 2, 1).values.to_vector<float>() == std::vector<float>{3, 2, 5, 4});
  CHECK(x.topk(1, 0).indices.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 1});
  // Code written against the old std::tuple keeps compiling.
  Tensor tv, ti;
  std::tie(tv, ti) = max(x, 0);
  CHECK(tv.to_vector<float>() == std::vector<float>{3, 5, 4});
  std::tuple<Tensor, Tensor> pair = x.max(0);
  CHECK(equal(std::get<1>(pair), ti));
  auto [var_, mean_] = var_mean(x, 1);
  CHECK(allclose(var_, x.var(1)));
  auto [sd, mu] = std_mean(x, 1);
  CHECK(allclose(sd, x.std(1)));
  CHECK(allclose(mu, x.mean(1)));
}

TEST_CASE("api: std is reachable beside namespace std under using namespace ember") {
  Tensor x = tensor({1.0, 2.0, 4.0});
  double a = x.std().item<double>();
  double b = ember::std(x).item<double>();
  std::vector<double> v{std::sqrt(7.0 / 3.0)};  // namespace std itself is untouched
  CHECK(a == doctest::Approx(v[0]));
  CHECK(b == a);
}

TEST_CASE("api: functional conv and pool take plain ints as well as pairs") {
  Tensor img = get("img"), w = get("img.w");
  CHECK(allclose(F::conv2d(img, w, {}, 2, 1), get("img.conv2d"), 1e-12, 1e-12));
  CHECK(equal(F::conv2d(img, w, {}, 2, 1), F::conv2d(img, w, {}, {2, 2}, {1, 1})));
  CHECK(equal(F::conv2d(img, w, {}, 2, 1, 2), F::conv2d(img, w, {}, {2, 2}, {1, 1}, {2, 2})));
  CHECK(equal(F::max_pool2d(img, 3, 2, 1), get("img.max_pool2d")));
  CHECK(equal(F::max_pool2d(img, 3, 2, 1), F::max_pool2d(img, {3, 3}, F::Pair{2, 2}, {1, 1})));
  CHECK(allclose(F::avg_pool2d(img, 2), get("img.avg_pool2d"), 1e-12, 1e-12));
  CHECK(F::avg_pool2d(img, {2, 3}).shape() == Shape{1, 2, 3, 2});
}

TEST_CASE("api: ember::embedding and F::embedding take (input, weight) as F.embedding") {
  Tensor w = arange(12, kF32).view(4, 3);
  Tensor ids = tensor({3, 0, 3}, {.dtype = kI64});
  Tensor e = ember::embedding(ids, w);
  CHECK(equal(e, F::embedding(ids, w)));
  CHECK(e.to_vector<float>() == std::vector<float>{9, 10, 11, 0, 1, 2, 9, 10, 11});
  // The old (weight, indices) order fails loudly instead of compiling into a wrong result.
  std::string msg = error_message<DTypeError>([&] { ember::embedding(w, ids); });
  CHECK(msg.find("[embedding] takes (input, weight)") != std::string::npos);
  CHECK_THROWS_AS(F::embedding(w, ids), DTypeError);
}

TEST_CASE("api: MultiheadAttention takes is_causal beside attn_mask, as torch 2.x") {
  nn::MultiheadAttention mha(8, 2);
  nn::StateDict state;
  for (const char* k : {"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"})
    state[k] = get(std::string("mha.") + k).to(kF32);
  mha->load_state_dict(state);
  mha->to(kF64);
  mha->eval();
  Tensor x = get("mha.x"), causal = get("mha.causal"), wrong = get("mha.wrong"), kpm = get("mha.kpm");
  auto run = [&](const nn::AttentionMasks& m) { return std::get<0>(mha(x, x, x, m)); };
  const double tol = 1e-9;
  // A true hint, with and without weights.
  CHECK(allclose(run({.attn_mask = causal, .need_weights = false, .is_causal = true}), get("mha.hint.out"), tol, tol));
  auto [o, w] = mha(x, x, x, {.attn_mask = causal, .is_causal = true});
  CHECK(allclose(o, get("mha.hint_w.out"), tol, tol));
  CHECK(allclose(w, get("mha.hint_w.weights"), tol, tol));
  // A false hint: PyTorch uses the causal rule alone without weights and key_padding_mask, else the mask.
  Tensor hinted = run({.attn_mask = wrong, .need_weights = false, .is_causal = true});
  CHECK(allclose(hinted, get("mha.wrong.out"), tol, tol));
  CHECK(allclose(hinted, run({.need_weights = false, .is_causal = true}), tol, tol));
  CHECK(allclose(run({.attn_mask = wrong, .is_causal = true}), get("mha.wrong_w.out"), tol, tol));
  CHECK(allclose(run({.key_padding_mask = kpm, .attn_mask = wrong, .need_weights = false, .is_causal = true}),
                 get("mha.wrong_kpm.out"), tol, tol));
  // scaled_dot_product_attention itself refuses both, as torch's does.
  Tensor q = x.view(4, 2, 2, 4).permute({1, 2, 0, 3});
  CHECK_THROWS_AS(F::scaled_dot_product_attention(q, q, q, causal.logical_not(), 0.0, true), ValueError);
}
