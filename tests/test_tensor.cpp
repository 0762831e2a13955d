// Tensor basics: metadata, views, conversion, printing, type promotion.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "ember.hpp"

using namespace ember;

TEST_CASE("tensor from nested lists and metadata") {
  Tensor t = tensor({{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}});
  CHECK(t.shape() == Shape{2, 3});
  CHECK(t.dtype() == kF32);
  CHECK(t.numel() == 6);
  CHECK(t.is_contiguous());
  CHECK(t.strides() == Shape{3, 1});
  CHECK_THROWS_AS(t.item<float>(), ShapeError);
}

TEST_CASE("dtype conversions round and saturate as PyTorch") {
  Tensor x = tensor({1.5, -2.5, 3.7, 65519.0, 65520.0, 1e-8});
  auto h = x.to(kF16).to_vector<float>();
  CHECK(h[0] == 1.5f);
  CHECK(h[3] == 65504.0f);                             // below the rounding midpoint
  CHECK(std::isinf(h[4]));                             // rounds to infinity
  CHECK(h[5] == doctest::Approx(1e-8).epsilon(0.05));  // subnormal half
  auto b = tensor({1.0f + 1.0f / 256.0f, 1.0f + 3.0f / 256.0f}).to(kBF16).to_vector<float>();
  CHECK(b[0] == 1.0f);  // tie rounds to even
  CHECK(b[1] == 1.0f + 4.0f / 256.0f);
  auto i = tensor({1.9, -1.9, 0.0}).to(kI32).to_vector<int32_t>();
  CHECK(i == std::vector<int32_t>{1, -1, 0});  // truncation toward zero
  CHECK(tensor({0.0, 2.0}).to(kBool).to_vector<bool>() == std::vector<bool>{false, true});
  CHECK(tensor({true, false}).to(kF32).to_vector<float>() == std::vector<float>{1, 0});
  CHECK(std::isnan(tensor({std::nan("")}).to(kBF16).to_vector<float>()[0]));
  // every half bit pattern round-trips through float
  bool all_ok = true;
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    half h16 = half::from_bits(static_cast<uint16_t>(bits));
    float f = h16;
    if (f == f) all_ok &= half(f).bits == bits;
  }
  CHECK(all_ok);
}

TEST_CASE("views share storage; contiguous and clone copy") {
  Tensor a = arange(0, 6, 1, kF32).reshape({2, 3});
  Tensor t = a.t();
  CHECK(!t.is_contiguous());
  CHECK(t.impl().storage == a.impl().storage);
  Tensor c = t.contiguous();
  CHECK(c.is_contiguous());
  CHECK(c.impl().storage != a.impl().storage);
  CHECK(c.to_vector<float>() == std::vector<float>{0, 3, 1, 4, 2, 5});
  Tensor d = a.detach();
  d.fill_(7);
  CHECK(a.to_vector<float>()[0] == 7);
  Tensor e = a.clone();
  e.fill_(1);
  CHECK(a.to_vector<float>()[0] == 7);
  CHECK_THROWS_AS(a.data_ptr<double>(), DTypeError);
}

TEST_CASE("printing matches PyTorch's format") {
  CHECK(tensor({1.0, 2.0, 3.0}).str() == "tensor([1., 2., 3.])");
  CHECK(tensor({0.1, 2.5}).str() == "tensor([0.1000, 2.5000])");
  CHECK(tensor({{1, 2}, {3, 4}}).str() == "tensor([[1, 2],\n        [3, 4]])");
  CHECK(tensor({1, 2}, {.dtype = kI32}).str() == "tensor([1, 2], dtype=torch.int32)");
  CHECK(tensor({true, false}).str() == "tensor([ True, False])");
  CHECK(scalar_tensor(3.0).str() == "tensor(3.)");
  CHECK(tensor({1e-5, 1.0}).str() == "tensor([1.0000e-05, 1.0000e+00])");
  CHECK(zeros({0, 3}).str() == "tensor([], size=(0, 3))");
  CHECK(tensor({1.5}, {.dtype = kF64}).str() == "tensor([1.5000], dtype=torch.float64)");
}

TEST_CASE("memory: the caching allocator reuses blocks in steady state") {
  auto step = [] {
    Tensor x = ones({1 << 20});
    Tensor y = x * 2.0 + 1.0;
    return y.numel();
  };
  step();  // the first step fills the cache
  MemoryStats before = memory_stats();
  for (int i = 0; i < 20; ++i) CHECK(step() == (1 << 20));
  MemoryStats after = memory_stats();
  CHECK(after.system_allocations == before.system_allocations);
  CHECK(after.current_bytes == before.current_bytes);
  CHECK(after.peak_bytes >= after.current_bytes);
}

TEST_CASE("errors name the op and operands") {
  CHECK_THROWS_AS(ones({2, 3}).view({4}), ShapeError);
  CHECK_THROWS_AS(ones({2, 3}).select(0, 2), IndexError);
  if (!cuda_is_available()) CHECK_THROWS_AS(ones({2}).to(Device("cuda")), DeviceError);
  CHECK_THROWS_AS(Device("tpu"), ValueError);
  CHECK_THROWS_AS(zeros({-1}), ShapeError);
  CHECK_THROWS_AS(zeros({int64_t{1} << 40, int64_t{1} << 40}), ShapeError);
  CHECK_THROWS_AS(tensor({{1, 2}, {3}}), ShapeError);
  CHECK_THROWS_AS(ones({2}, {.dtype = kI32, .requires_grad = true}), DTypeError);
  try {
    ones({2, 3}).item<float>();
  } catch (const ShapeError& e) {
    CHECK(std::string(e.what()) == "[item] needs a tensor with one element, got [2, 3] float32 cpu");
  }
}

TEST_CASE("in-place copies and random fills refuse an expanded destination; fill_ accepts it") {
  Tensor base = zeros({1, 3});
  CHECK_THROWS_WITH_AS(base.expand({4, 3}).copy_(arange(0, 12, 1, kF32).reshape({4, 3})),
                       doctest::Contains("[copy_] the destination [4, 3] float32 cpu with strides [0, 1]"), ValueError);
  CHECK(base.to_vector<float>() == std::vector<float>{0, 0, 0});  // was the last row, [9, 10, 11]
  Tensor mask = tensor({true, false, true});
  CHECK_THROWS_AS(base.expand({2, 3}).masked_fill_(mask, 7), ValueError);
  CHECK_THROWS_WITH_AS(base.expand({2, 3}).uniform_(), doctest::Contains("[uniform_]"), ValueError);
  CHECK_THROWS_WITH_AS(base.expand({2, 3}).normal_(), doctest::Contains("[normal_]"), ValueError);
  CHECK_THROWS_WITH_AS(base.expand({2, 3}).bernoulli_(), doctest::Contains("[bernoulli_]"), ValueError);
  CHECK(base.to_vector<float>() == std::vector<float>{0, 0, 0});
  // Non-overlapping views still take copies and draws.
  Tensor a = zeros({3, 4});
  a.t().copy_(ones({4, 3}));
  a.slice(1, 0, 4, 2).uniform_(2, 3);
  a.select(0, 1).masked_fill_(tensor({true, false, false, true}), 9);
  std::vector<float> v = a.to_vector<float>();
  CHECK(v[0] >= 2);
  CHECK(v[1] == 1);
  CHECK(v[4] == 9);
  CHECK(v[5] == 1);
  base.expand({4, 3}).fill_(2);  // one value for every alias: allowed, as in PyTorch
  CHECK(base.to_vector<float>() == std::vector<float>{2, 2, 2});
}

TEST_CASE("creation ops name a range too long for a tensor instead of a negative size") {
  try {
    arange(0, 1e30, 1e-30);
    FAIL("no error");
  } catch (const ValueError& e) {
    std::string msg = e.what();
    INFO(msg);
    CHECK(msg.rfind("[arange] (end - start) / step = 1e+60 elements is more than a tensor can hold", 0) == 0);
  }
  constexpr int64_t lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max();
  CHECK_THROWS_WITH_AS(arange(lo, hi), doctest::Contains("more elements than a tensor can hold"), ValueError);
  CHECK_THROWS_WITH_AS(arange(hi, lo, -1), doctest::Contains("more elements than a tensor can hold"), ValueError);
  CHECK_THROWS_WITH_AS(arange(-1e308, 1e308, 1.0), doctest::Contains("= inf elements"), ValueError);  // end - start
  CHECK_THROWS_AS(arange(0.0, 1.0, std::nan("")), ValueError);
  CHECK(arange(hi - 2, hi).to_vector<int64_t>() == std::vector<int64_t>{hi - 2, hi - 1});  // no overflow near the edge
  CHECK(arange(lo + 2, lo, -1).to_vector<int64_t>() == std::vector<int64_t>{lo + 2, lo + 1});
  // linspace between far-apart ends: end - start overflows to inf, the points do not.
  CHECK(linspace(-1e308, 1e308, 3, {.dtype = kF64}).to_vector<double>() == std::vector<double>{-1e308, 0, 1e308});
  CHECK_THROWS_AS(randperm(hi), ShapeError);  // was a std::length_error from std::vector
  CHECK(randperm(4).sort().values.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3});
}

TEST_CASE("creation ops") {
  CHECK(arange(5).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4});
  CHECK(arange(5).dtype() == kI64);
  CHECK(arange(0.0, 1.0, 0.25).to_vector<float>() == std::vector<float>{0, 0.25, 0.5, 0.75});
  CHECK(arange(10, 0, -3).to_vector<int64_t>() == std::vector<int64_t>{10, 7, 4, 1});
  CHECK_THROWS_AS(arange(0, 10, -1), ValueError);
  CHECK(linspace(0, 1, 5).to_vector<float>() == std::vector<float>{0, 0.25, 0.5, 0.75, 1});
  CHECK(eye(2, 3).to_vector<float>() == std::vector<float>{1, 0, 0, 0, 1, 0});
  CHECK(full({2}, 7, {.dtype = kI32}).to_vector<int32_t>() == std::vector<int32_t>{7, 7});
  Tensor t = tensor({{{1.0, 2.0}}, {{3.0, 4.0}}});
  CHECK(t.shape() == Shape{2, 1, 2});
  CHECK(zeros_like(t).shape() == t.shape());
  CHECK(ones_like(t, {.dtype = kI64}).dtype() == kI64);
  Tensor r = randn({2, 2}, {.requires_grad = true});
  CHECK(r.requires_grad());
  CHECK(tensor(std::vector<double>{1, 2, 3, 4, 5, 6}, Shape{2, 3}).shape() == Shape{2, 3});
}
