// The cuDNN convolution planning (kernels/conv_plan.hpp), on the CPU: descriptor parameters from Ember's
// shapes and strides, the output-shape arithmetic against the CPU builders, conv1d and conv_transpose
// mappings, the gradient zero padding, the 32-bit batch split, the algorithm filter and the cache key.
#include <set>

#include "core/backend.hpp"
#include "core/determinism.hpp"
#include "kernels/conv_plan.hpp"
#include "test_util.hpp"

using namespace ember;
using namespace ember::kernels;
namespace cp = ember::kernels::conv_plan;

namespace {

Conv2dParams params(std::array<int64_t, 2> s, std::array<int64_t, 2> pad, std::array<int64_t, 2> d, int64_t g) {
  return Conv2dParams{{s[0], s[1]}, {pad[0], pad[1]}, {d[0], d[1]}, g};
}

cp::Plan forward(const Tensor& x, const Tensor& w, const Tensor& y, const Conv2dParams& p, DType dt = kF32,
                 bool tf32 = false) {
  return cp::make_plan(cp::Kind::Forward, dt, x.shape(), x.strides(), w.shape(), y.shape(), y.strides(), p, tf32,
                       "test");
}

std::array<int, 4> ints(const Shape& s) { return {int(s[0]), int(s[1]), int(s[2]), int(s[3])}; }

// The highest element one chunk of `n` samples touches, +1.
int64_t extent(const cp::TensorDesc& d, int64_t n, int64_t batch_stride) {
  int64_t e = (n - 1) * batch_stride + 1;
  for (int i = 1; i < 4; ++i) e += (d.dims[i] - 1) * int64_t(d.strides[i]);
  return e;
}

}  // namespace

TEST_CASE("conv plan: output shape matches the CPU conv2d and conv1d builders") {
  int checked = 0;
  for (int64_t h : {5, 8})
    for (int64_t k : {1, 3})
      for (int64_t s : {1, 2, 3})
        for (int64_t pad : {0, 1, 2})
          for (int64_t d : {1, 2})
            for (int64_t g : {1, 2}) {
              if (h + 2 * pad < d * (k - 1) + 1) continue;
              const Conv2dParams p = params({s, 1}, {pad, 1}, {d, 1}, g);
              Tensor x = zeros({2, 4, h, 7}), w = zeros({6, 4 / g, k, 2});
              Tensor y = conv2d(x, w, {}, {s, 1}, {pad, 1}, {d, 1}, g);
              CHECK(cp::output_shape(x.shape(), w.shape(), p) == y.shape());
              const cp::Plan plan = forward(x, w, y, p);
              CHECK(plan.y.dims == ints(y.shape()));
              CHECK_FALSE(plan.pad_y);
              // conv1d is conv2d with H = 1: [N, C, 1, L] with stride/padding/dilation (1, s), (0, p), (1, d).
              Tensor x1 = zeros({2, 4, h}), w1 = zeros({6, 4 / g, k});
              Tensor y1 = conv1d(x1, w1, {}, s, pad, d, g);
              const Shape o = cp::output_shape({2, 4, 1, h}, {6, 4 / g, 1, k}, params({1, s}, {0, pad}, {1, d}, g));
              CHECK(o == Shape{y1.size(0), y1.size(1), 1, y1.size(2)});
              ++checked;
            }
  CHECK(checked > 100);
  CHECK_THROWS_AS(cp::output_shape({1, 1, 2, 2}, {1, 1, 5, 1}, {}), ShapeError);
}

TEST_CASE("conv plan: descriptors of a contiguous conv2d per dtype") {
  Tensor x = zeros({3, 6, 9, 11}), w = zeros({8, 3, 3, 2});
  const Conv2dParams p = params({2, 1}, {1, 0}, {1, 2}, 2);
  Tensor y = conv2d(x, w, {}, {2, 1}, {1, 0}, {1, 2}, 2);
  const cp::Plan f32 = forward(x, w, y, p);
  CHECK(f32.kind == cp::Kind::Forward);
  CHECK(f32.x.dims == std::array<int, 4>{3, 6, 9, 11});
  CHECK(f32.x.strides == std::array<int, 4>{6 * 99, 99, 11, 1});
  CHECK(f32.w == std::array<int, 4>{8, 3, 3, 2});
  CHECK(f32.y.dims == ints(y.shape()));
  CHECK(f32.y.strides == ints(contiguous_strides(y.shape())));
  CHECK(f32.pad == std::array<int, 2>{1, 0});
  CHECK(f32.stride == std::array<int, 2>{2, 1});
  CHECK(f32.dilation == std::array<int, 2>{1, 2});
  CHECK(f32.groups == 2);
  CHECK(f32.chunk == 3);
  CHECK(f32.batch == 3);
  CHECK_FALSE(f32.empty);
  // f32 stays exact (FMA, no TF32) unless TF32 is allowed.
  CHECK(f32.data == cp::DataType::Float);
  CHECK(f32.compute == cp::DataType::Float);
  CHECK(f32.math == cp::MathType::Fma);
  CHECK_FALSE(f32.double_scaling);
  CHECK(forward(x, w, y, p, kF32, true).math == cp::MathType::TensorOp);
  const cp::Plan f64 = forward(x, w, y, p, kF64);
  CHECK(f64.data == cp::DataType::Double);
  CHECK(f64.compute == cp::DataType::Double);
  CHECK(f64.double_scaling);
  for (DType dt : {kF16, kBF16}) {
    const cp::Plan h = forward(x, w, y, p, dt);
    CHECK(h.data == (dt == kF16 ? cp::DataType::Half : cp::DataType::BFloat16));
    CHECK(h.compute == cp::DataType::Float);  // f32 accumulation
    CHECK(h.math == cp::MathType::TensorOp);
    CHECK_FALSE(h.double_scaling);
  }
  CHECK_THROWS_AS(forward(x, w, y, p, kI32), DTypeError);
  // A y that is not the conv's output, or a weight that does not fit the groups, is refused.
  CHECK_THROWS_AS(forward(x, w, zeros({3, 8, 5, 8}), p), ShapeError);
  CHECK_THROWS_AS(forward(x, zeros({8, 2, 3, 2}), y, p), ShapeError);
}

TEST_CASE("conv plan: strided inputs keep their strides; layouts cuDNN cannot read are flagged") {
  Tensor base = zeros({2, 3, 5, 14});
  Tensor sliced = base.slice(3, 0, std::nullopt, 2);  // [2, 3, 5, 7], W stride 2
  REQUIRE_FALSE(sliced.is_contiguous());
  CHECK(cp::cudnn_layout_ok(sliced.shape(), sliced.strides()));
  Tensor w = zeros({4, 3, 3, 3});
  Tensor y = conv2d(sliced, w);
  const cp::Plan plan = forward(sliced, w, y, {});
  CHECK(plan.x.dims == std::array<int, 4>{2, 3, 5, 7});
  CHECK(plan.x.strides == std::array<int, 4>{3 * 5 * 14, 5 * 14, 14, 2});
  CHECK(plan.x_batch_stride == 3 * 5 * 14);
  Tensor transposed = zeros({2, 3, 7, 5}).transpose(2, 3);
  CHECK_FALSE(cp::cudnn_layout_ok(transposed.shape(), transposed.strides()));
  Tensor expanded = zeros({1, 3, 5, 7}).expand({2, 3, 5, 7});
  CHECK_FALSE(cp::cudnn_layout_ok(expanded.shape(), expanded.strides()));
  CHECK(cp::cudnn_layout_ok(Shape{2, 3, 5, 7}, contiguous_strides({2, 3, 5, 7})));
  // Size-1 dims (conv1d's H, a batch of one) get the packed stride, whatever Ember stored.
  Tensor one = zeros({1, 3, 7}).unsqueeze(2);
  const Shape odd{99, 7, 1000, 1};
  CHECK(cp::cudnn_layout_ok(one.shape(), odd));
  const cp::Plan p1 = cp::make_plan(cp::Kind::Forward, kF32, one.shape(), odd, {4, 3, 1, 3}, {1, 4, 1, 5},
                                    contiguous_strides({1, 4, 1, 5}), {}, false, "test");
  CHECK(p1.x.strides == std::array<int, 4>{21, 7, 7, 1});
}

TEST_CASE("conv plan: conv_transpose2d is backward data; output padding past the stride pads dy") {
  // Output padding below the stride: the conv of the transpose's output has exactly the input's size.
  for (int64_t s : {1, 2, 3})
    for (int64_t op = 0; op < s; ++op) {
      Tensor in = zeros({2, 4, 5, 6}), w = zeros({4, 3, 3, 3});
      Tensor out = conv_transpose2d(in, w, {}, {s, s}, {1, 1}, {op, op}, 1);
      const cp::Plan plan = cp::make_plan(cp::Kind::BackwardData, kF32, out.shape(), out.strides(), w.shape(),
                                          in.shape(), in.strides(), params({s, s}, {1, 1}, {1, 1}, 1), false, "test");
      CHECK(plan.x.dims == ints(out.shape()));
      CHECK(plan.w == std::array<int, 4>{4, 3, 3, 3});  // the transpose's weight is the conv's filter
      CHECK(plan.y.dims == ints(in.shape()));
      CHECK_FALSE(plan.pad_y);
    }
  // Stride 1, dilation 2, output padding 1: the conv of the output is one row and column larger than
  // the input, which cuDNN's dy must match: dy is zero-padded to full_y.
  Tensor in = zeros({2, 4, 5, 6}), w = zeros({4, 6, 3, 3});
  Tensor out = conv_transpose2d(in, w, {}, {1, 1}, {0, 0}, {1, 1}, 2, {2, 2});
  const cp::Plan plan = cp::make_plan(cp::Kind::BackwardData, kF16, out.shape(), out.strides(), w.shape(), in.shape(),
                                      in.strides(), params({1, 1}, {0, 0}, {2, 2}, 2), false, "test");
  CHECK(plan.pad_y);
  CHECK(out.shape() == Shape{2, 12, 10, 11});
  CHECK(plan.full_y == Shape{2, 4, 6, 7});
  CHECK(plan.x.dims == ints(out.shape()));
  CHECK(plan.y.dims == std::array<int, 4>{2, 4, 6, 7});
  CHECK(plan.y.strides == ints(contiguous_strides(plan.full_y)));
  CHECK(plan.y_batch_stride == 4 * 6 * 7);
  CHECK(plan.groups == 2);
  // The weight gradient of that conv sees the same short output gradient.
  const cp::Plan wplan = cp::make_plan(cp::Kind::BackwardFilter, kF32, out.shape(), out.strides(), w.shape(),
                                       in.shape(), in.strides(), params({1, 1}, {0, 0}, {2, 2}, 2), false, "test");
  CHECK(wplan.pad_y);
  CHECK(wplan.kind == cp::Kind::BackwardFilter);
  // A gradient larger than the conv's output is an error, not silently cropped.
  CHECK_THROWS_AS(cp::make_plan(cp::Kind::BackwardFilter, kF32, {2, 4, 5, 5}, contiguous_strides({2, 4, 5, 5}),
                                {3, 4, 3, 3}, {2, 3, 4, 3}, contiguous_strides({2, 3, 4, 3}), {}, false, "test"),
                  ShapeError);
}

TEST_CASE("conv plan: the batch splits so that no call passes 2^31 elements") {
  const Shape x{1000, 64, 256, 256}, w{64, 64, 3, 3};
  const Conv2dParams p = params({1, 1}, {1, 1}, {1, 1}, 1);
  const Shape y = cp::output_shape(x, w, p);
  const cp::Plan plan =
      cp::make_plan(cp::Kind::Forward, kF16, x, contiguous_strides(x), w, y, contiguous_strides(y), p, false, "test");
  const int64_t per_sample = 64 * 256 * 256;
  CHECK(plan.chunk == cp::kMaxElements / per_sample);
  CHECK(extent(plan.x, plan.chunk, plan.x_batch_stride) <= cp::kMaxElements);
  CHECK(extent(plan.x, plan.chunk + 1, plan.x_batch_stride) > cp::kMaxElements);
  const auto chunks = cp::batch_chunks(plan.batch, plan.chunk);
  int64_t next = 0;
  for (const auto& c : chunks) {
    CHECK(c[0] == next);
    CHECK(c[1] >= 1);
    CHECK(c[1] <= plan.chunk);
    const cp::Plan part = cp::for_chunk(plan, c[1]);
    CHECK(part.x.dims[0] == c[1]);
    CHECK(part.y.dims[0] == c[1]);
    CHECK(extent(part.y, c[1], plan.y_batch_stride) <= cp::kMaxElements);
    next += c[1];
  }
  CHECK(next == 1000);
  CHECK(chunks.size() == size_t((1000 + plan.chunk - 1) / plan.chunk));
  // A sliced input spans more memory than its elements: the split counts the span.
  const Shape xs{400, 64, 256, 512}, ss = contiguous_strides(xs);
  const Shape sliced_strides{ss[0], ss[1], ss[2], 2};
  const Shape xv{400, 64, 256, 256};
  const cp::Plan sp = cp::make_plan(cp::Kind::Forward, kF32, xv, sliced_strides, w, cp::output_shape(xv, w, p),
                                    contiguous_strides(cp::output_shape(xv, w, p)), p, false, "test");
  CHECK(sp.chunk < 400);  // the contiguous input would fit in one call
  CHECK(extent(sp.x, sp.chunk, sp.x_batch_stride) <= cp::kMaxElements);
  // One sample, or the weight, over the limit cannot be split.
  const Shape huge{2, 1, 50000, 50000}, k{1, 1, 1, 1};
  CHECK_THROWS_AS(cp::make_plan(cp::Kind::Forward, kF32, huge, contiguous_strides(huge), k, huge,
                                contiguous_strides(huge), {}, false, "test"),
                  ShapeError);
  const Shape big_w{50000, 1, 200, 300};
  CHECK_THROWS_AS(cp::make_plan(cp::Kind::Forward, kF32, {1, 1, 200, 300}, contiguous_strides({1, 1, 200, 300}), big_w,
                                {1, 50000, 1, 1}, contiguous_strides({1, 50000, 1, 1}), {}, false, "test"),
                  ShapeError);
  CHECK(cp::batch_chunks(0, 1).empty());
  CHECK(cp::batch_chunks(5, 5).size() == 1);
}

TEST_CASE("conv plan: empty operands need no cuDNN call") {
  const Shape x{2, 0, 5, 5}, w{3, 0, 3, 3}, y{2, 3, 3, 3};
  CHECK(cp::make_plan(cp::Kind::Forward, kF32, x, contiguous_strides(x), w, y, contiguous_strides(y), {}, false, "t")
            .empty);
  const Shape x0{0, 2, 5, 5}, w0{3, 2, 3, 3}, y0{0, 3, 3, 3};
  const cp::Plan p0 = cp::make_plan(cp::Kind::Forward, kF32, x0, contiguous_strides(x0), w0, y0, contiguous_strides(y0),
                                    {}, false, "t");
  CHECK(p0.empty);
  CHECK(p0.chunk >= 1);
  const Shape x1{2, 2, 5, 5}, y1{2, 3, 3, 3};
  CHECK_FALSE(
      cp::make_plan(cp::Kind::Forward, kF32, x1, contiguous_strides(x1), w0, y1, contiguous_strides(y1), {}, false, "t")
          .empty);
}

TEST_CASE("conv plan: the cache key tells apart every parameter that matters") {
  const Shape x{2, 4, 9, 9}, w{6, 2, 3, 3};
  auto plan = [&](cp::Kind kind, DType dt, const Shape& xs, const Shape& ws, const Conv2dParams& p, bool tf32,
                  const Shape& x_strides = {}) {
    const Shape y = cp::output_shape(xs, ws, p);
    return cp::make_plan(kind, dt, xs, x_strides.empty() ? contiguous_strides(xs) : x_strides, ws, y,
                         contiguous_strides(y), p, tf32, "test");
  };
  const Conv2dParams base = params({1, 1}, {1, 1}, {1, 1}, 2);
  const cp::Plan b = plan(cp::Kind::Forward, kF32, x, w, base, false);
  std::vector<cp::Key> keys = {
      cp::make_key(b, 0, false, false),
      cp::make_key(b, 1, false, false),  // device
      cp::make_key(b, 0, true, false),   // deterministic
      cp::make_key(b, 0, false, true),   // benchmark
      cp::make_key(plan(cp::Kind::BackwardData, kF32, x, w, base, false), 0, false, false),
      cp::make_key(plan(cp::Kind::BackwardFilter, kF32, x, w, base, false), 0, false, false),
      cp::make_key(plan(cp::Kind::Forward, kF16, x, w, base, false), 0, false, false),
      cp::make_key(plan(cp::Kind::Forward, kBF16, x, w, base, false), 0, false, false),
      cp::make_key(plan(cp::Kind::Forward, kF64, x, w, base, false), 0, false, false),
      cp::make_key(plan(cp::Kind::Forward, kF32, x, w, base, true), 0, false, false),  // TF32
      cp::make_key(plan(cp::Kind::Forward, kF32, {3, 4, 9, 9}, w, base, false), 0, false, false),
      cp::make_key(plan(cp::Kind::Forward, kF32, {2, 4, 10, 9}, w, base, false), 0, false, false),
      cp::make_key(plan(cp::Kind::Forward, kF32, {2, 4, 9, 10}, w, base, false), 0, false, false),
      cp::make_key(plan(cp::Kind::Forward, kF32, x, {8, 2, 3, 3}, base, false), 0, false, false),
      cp::make_key(plan(cp::Kind::Forward, kF32, x, {6, 2, 3, 1}, base, false), 0, false, false),
      cp::make_key(plan(cp::Kind::Forward, kF32, x, {6, 4, 3, 3}, params({1, 1}, {1, 1}, {1, 1}, 1), false), 0, false,
                   false),
      cp::make_key(plan(cp::Kind::Forward, kF32, x, w, params({2, 1}, {1, 1}, {1, 1}, 2), false), 0, false, false),
      cp::make_key(plan(cp::Kind::Forward, kF32, x, w, params({1, 2}, {1, 1}, {1, 1}, 2), false), 0, false, false),
      cp::make_key(plan(cp::Kind::Forward, kF32, x, w, params({1, 1}, {0, 1}, {1, 1}, 2), false), 0, false, false),
      cp::make_key(plan(cp::Kind::Forward, kF32, x, w, params({1, 1}, {1, 2}, {1, 1}, 2), false), 0, false, false),
      cp::make_key(plan(cp::Kind::Forward, kF32, x, w, params({1, 1}, {1, 1}, {2, 1}, 2), false), 0, false, false),
      cp::make_key(plan(cp::Kind::Forward, kF32, x, w, params({1, 1}, {1, 1}, {1, 2}, 2), false), 0, false, false),
      cp::make_key(plan(cp::Kind::Forward, kF32, x, w, base, false, {4 * 81 + 5, 81, 9, 1}), 0, false, false),
      cp::make_key(plan(cp::Kind::Forward, kF32, x, w, base, false, {4 * 162, 162, 18, 2}), 0, false, false),
  };
  std::set<std::vector<int64_t>> distinct;
  for (const cp::Key& k : keys) distinct.insert(std::vector<int64_t>(k.v.begin(), k.v.end()));
  CHECK(distinct.size() == keys.size());
  for (size_t i = 0; i < keys.size(); ++i)
    for (size_t j = i + 1; j < keys.size(); ++j) CHECK_FALSE(keys[i] == keys[j]);
  // The same op planned twice gives one key and one hash.
  const cp::Key again = cp::make_key(plan(cp::Kind::Forward, kF32, x, w, base, false), 0, false, false);
  CHECK(again == keys[0]);
  CHECK(cp::KeyHash{}(again) == cp::KeyHash{}(keys[0]));
  // A chunk of a different size is a different call.
  CHECK_FALSE(cp::make_key(cp::for_chunk(b, 1), 0, false, false) == keys[0]);
}

TEST_CASE("conv plan: the algorithm filter keeps cuDNN's order and the switches") {
  using M = cp::MathType;
  const std::vector<cp::AlgoPerf> perf = {
      {1, true, 100, false, M::TensorOp},
      {2, false, 0, true, M::Fma},
      {3, true, 4000, true, M::Default},
      {4, true, 50, false, M::Fma},
      {5, true, 10, true, M::TensorOpAllowConversion},
      {6, true, 700, true, M::Fma},
  };
  auto algos = [](const std::vector<cp::AlgoPerf>& v) {
    std::vector<int> r;
    for (const auto& a : v) r.push_back(a.algo);
    return r;
  };
  const Shape x{1, 2, 5, 5}, w{2, 2, 3, 3}, y{1, 2, 3, 3};
  auto plan = [&](DType dt, bool tf32) {
    return cp::make_plan(cp::Kind::Forward, dt, x, contiguous_strides(x), w, y, contiguous_strides(y), {}, tf32, "t");
  };
  const cp::Plan exact = plan(kF32, false), fast = plan(kF32, true), half16 = plan(kF16, false);
  CHECK(algos(cp::usable_algos(perf, exact, false)) == std::vector<int>{3, 4, 6});  // no TF32, no failures
  CHECK(algos(cp::usable_algos(perf, exact, true)) == std::vector<int>{3, 6});      // and deterministic
  CHECK(algos(cp::usable_algos(perf, fast, false)) == std::vector<int>{1, 3, 4, 5, 6});
  CHECK(algos(cp::usable_algos(perf, half16, true)) == std::vector<int>{3, 5, 6});
  // Exact f32 runs with FMA math even where cuDNN reported the default; others run their own math.
  CHECK(cp::math_to_run(perf[2], exact) == M::Fma);
  CHECK(cp::math_to_run(perf[0], fast) == M::TensorOp);
  CHECK(cp::math_to_run(perf[4], half16) == M::TensorOpAllowConversion);
  CHECK(cp::find_workspace_bytes(cp::usable_algos(perf, exact, false), 1 << 20) == 4000);
  CHECK(cp::find_workspace_bytes(cp::usable_algos(perf, exact, false), 1000) == 1000);
  CHECK(cp::find_workspace_bytes({}, 1000) == 0);
}

TEST_CASE("conv plan: the benchmark switch is off by default and reaches the key") {
  CHECK_FALSE(cudnn_benchmark());
  set_cudnn_benchmark(true);
  CHECK(cudnn_benchmark());
  set_cudnn_benchmark(false);
  CHECK_FALSE(cudnn_benchmark());
  const Shape x{1, 2, 5, 5}, w{2, 2, 3, 3}, y{1, 2, 3, 3};
  const cp::Plan p =
      cp::make_plan(cp::Kind::Forward, kF32, x, contiguous_strides(x), w, y, contiguous_strides(y), {}, false, "t");
  CHECK_FALSE(cp::make_key(p, 0, deterministic(), true) == cp::make_key(p, 0, deterministic(), false));
}
