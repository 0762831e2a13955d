// F::interpolate, F::conv3d / nn::Conv3d, the 1-D pools and F::conv_transpose1d: values and input
// gradients against PyTorch (tests/reference/fixtures_ops16.py), gradchecks and bad input.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "test_util.hpp"

using namespace ember;
namespace F = ember::nn::functional;
using ember::testing::allclose;
using ember::testing::check_with_grads;
using ember::testing::gradcheck;
using ember::testing::throws_with;

TEST_CASE("interpolate matches F.interpolate, values and gradients") {
  TensorMap f = ember::testing::fixtures("ops16");
  auto run = [&](const std::string& key, const char* input, F::InterpolateOptions o) {
    check_with_grads(f, "interp." + key, [o](const std::vector<Tensor>& a) { return F::interpolate(a[0], o); },
                     {f.at(input)});
  };
  run("nearest_size", "x4", {.size = {8, 11}});
  run("nearest_scale2", "x4", {.scale_factor = {2.0}});
  run("nearest_scale_odd", "x4", {.scale_factor = {1.7, 0.6}});
  run("nearest_exact", "x4", {.size = {3, 9}, .mode = "nearest-exact"});
  run("bilinear", "x4", {.size = {8, 11}, .mode = "bilinear", .align_corners = false});
  run("bilinear_ac", "x4", {.size = {8, 11}, .mode = "bilinear", .align_corners = true});
  run("bilinear_scale", "x4", {.scale_factor = {1.5}, .mode = "bilinear"});
  run("bilinear_down", "x4", {.size = {3, 4}, .mode = "bilinear"});
  run("bilinear_scale_ac", "x4", {.scale_factor = {2.3, 0.7}, .mode = "bilinear", .align_corners = true});
  run("linear", "x3", {.size = {12}, .mode = "linear"});
  run("linear_ac", "x3", {.size = {12}, .mode = "linear", .align_corners = true});
  run("nearest3", "x3", {.scale_factor = {2.5}});
  run("trilinear", "x5", {.size = {5, 6, 4}, .mode = "trilinear"});
  // float32: source positions in float arithmetic, as PyTorch's kernels.
  const Tensor x4f = f.at("x4f");
  CHECK(allclose(F::interpolate(x4f, {.scale_factor = {1.7, 0.6}}), f.at("interp.f32_nearest.out"), 0, 0));
  CHECK(allclose(F::interpolate(x4f, {.scale_factor = {1.3}, .mode = "bilinear"}), f.at("interp.f32_bilinear.out"),
                 1e-5, 1e-6));
  // nn::Upsample is the same op.
  nn::Upsample up({.scale_factor = {2.0}, .mode = "bilinear", .align_corners = true});
  CHECK(
      allclose(up(x4f), F::interpolate(x4f, {.scale_factor = {2.0}, .mode = "bilinear", .align_corners = true}), 0, 0));
}

TEST_CASE("interpolate gradcheck and errors") {
  manual_seed(7);
  Tensor x = randn({1, 2, 3, 4}, {.dtype = kF64, .requires_grad = true});
  CHECK(gradcheck(
      [](const std::vector<Tensor>& a) {
        return F::interpolate(a[0], {.size = {5, 3}, .mode = "bilinear"});
      },
      {x}));
  CHECK(gradcheck(
      [](const std::vector<Tensor>& a) {
        return F::interpolate(a[0], {.scale_factor = {1.5}, .mode = "bilinear", .align_corners = true});
      },
      {x}));
  CHECK(gradcheck([](const std::vector<Tensor>& a) { return F::interpolate(a[0], {.size = {7, 2}}); }, {x}));
  Tensor y = zeros({1, 2, 3, 4});
  CHECK(throws_with<ValueError>([&] { F::interpolate(y, {.size = {4, 4}, .mode = "bicubic"}); }, "[interpolate] mode"));
  CHECK(throws_with<ShapeError>([&] { F::interpolate(y, {.size = {4}, .mode = "linear"}); }, "needs a 3-D input"));
  CHECK(throws_with<ValueError>([&] { F::interpolate(y, {.size = {4, 4}, .align_corners = true}); }, "align_corners"));
  CHECK(throws_with<ValueError>([&] { F::interpolate(y, {}); }, "exactly one of size and scale_factor"));
  CHECK(throws_with<ShapeError>([&] { F::interpolate(y, {.size = {4, 4, 4}}); }, "3 sizes or scale factors"));
  CHECK(throws_with<ShapeError>([&] { F::interpolate(zeros({4, 4}), {.size = {4}}); }, "[interpolate] input must be"));
}

TEST_CASE("conv3d matches F.conv3d, values and gradients") {
  TensorMap f = ember::testing::fixtures("ops16");
  check_with_grads(f, "conv3d.a",
                   [](const std::vector<Tensor>& a) {
                     return F::conv3d(a[0], a[1], a[2], {2, 1, 2}, {1, 0, 1}, {1, 2, 1}, 2);
                   },
                   {f.at("conv3d.x"), f.at("conv3d.w"), f.at("conv3d.b")});
  check_with_grads(f, "conv3d.b", [](const std::vector<Tensor>& a) { return F::conv3d(a[0], a[1]); },
                   {f.at("conv3d.sx"), f.at("conv3d.sw")});
  // Unbatched input, and the layer (PyTorch's state_dict names and shapes).
  Tensor sx = f.at("conv3d.sx"), sw = f.at("conv3d.sw");
  CHECK(allclose(F::conv3d(sx[0], sw), f.at("conv3d.b.out")[0], 1e-10, 1e-10));
  nn::Conv3d conv(
      4, 6, {3, 2, 3},
      {.stride = {2, 1, 2}, .padding = {1, 0, 1}, .dilation = {1, 2, 1}, .groups = 2, .placement = {.dtype = kF64}});
  auto sd = conv->state_dict();
  CHECK(sd.at("weight").shape() == Shape{6, 2, 3, 2, 3});
  CHECK(sd.at("bias").shape() == Shape{6});
  conv->weight.detach().copy_(f.at("conv3d.w"));
  conv->bias.detach().copy_(f.at("conv3d.b"));
  CHECK(allclose(conv(f.at("conv3d.x")), f.at("conv3d.a.out"), 1e-10, 1e-10));

  manual_seed(11);
  auto o = TensorOptions{.dtype = kF64, .requires_grad = true};
  CHECK(gradcheck(
      [](const std::vector<Tensor>& a) {
        return F::conv3d(a[0], a[1], a[2], {1, 2, 1}, {1, 1, 0}, 1, 1);
      },
      {randn({1, 2, 3, 4, 3}, o), randn({2, 2, 2, 2, 2}, o), randn({2}, o)}));
  CHECK(throws_with<ShapeError>([] { F::conv3d(zeros({1, 3, 4, 4, 4}), zeros({2, 2, 1, 1, 1})); }, "[conv3d] input"));
  CHECK(throws_with<ShapeError>([] { F::conv3d(zeros({1, 2, 4, 4}), zeros({2, 2, 1, 1, 1})); }, "has 1 channels"));
  CHECK(throws_with<ShapeError>([] { F::conv3d(zeros({1, 2, 2, 4, 4}), zeros({2, 2, 3, 1, 1})); }, "smaller than"));
}

TEST_CASE("1-D pools and conv_transpose1d match PyTorch") {
  TensorMap f = ember::testing::fixtures("ops16");
  const Tensor x = f.at("pool.x");
  check_with_grads(f, "pool.max", [](const std::vector<Tensor>& a) { return F::max_pool1d(a[0], 3, 2, 1); }, {x});
  check_with_grads(f, "pool.max_dil_ceil",
                   [](const std::vector<Tensor>& a) { return F::max_pool1d(a[0], 3, 2, 1, 2, true); }, {x});
  check_with_grads(f, "pool.avg",
                   [](const std::vector<Tensor>& a) { return F::avg_pool1d(a[0], 4, 3, 2, false, false); }, {x});
  check_with_grads(f, "pool.avg_default", [](const std::vector<Tensor>& a) { return F::avg_pool1d(a[0], 2); }, {x});
  check_with_grads(f, "pool.adaptive", [](const std::vector<Tensor>& a) { return F::adaptive_avg_pool1d(a[0], 4); },
                   {x});
  check_with_grads(f, "convt1d",
                   [](const std::vector<Tensor>& a) { return F::conv_transpose1d(a[0], a[1], a[2], 2, 1, 1, 2); },
                   {f.at("convt1d.in.x"), f.at("convt1d.in.w"), f.at("convt1d.in.b")});
  // Layers and unbatched input.
  nn::MaxPool1d mp(3, {.stride = 2, .padding = 1});
  CHECK(allclose(mp(x), f.at("pool.max.out"), 0, 0));
  nn::AvgPool1d ap(2);
  CHECK(allclose(ap(x[0]), f.at("pool.avg_default.out")[0], 1e-12, 1e-12));

  manual_seed(13);
  Tensor a = randn({2, 2, 9}, {.dtype = kF64, .requires_grad = true});
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return F::avg_pool1d(in[0], 3, 2, 1); }, {a}));
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return F::max_pool1d(in[0], 2, 1); }, {a}));
  CHECK(throws_with<ShapeError>([] { F::max_pool1d(zeros({1, 2, 3, 4}), 2); }, "[max_pool1d] input must be"));
}
