// Tensor basics: metadata, views, conversion, printing, type promotion.
#include <doctest/doctest.h>

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
