// Host-side planning of the cuDNN convolutions (see conv_plan.hpp); no CUDA needed, tested on the CPU
// in tests/test_plan_conv.cpp.
#include "kernels/conv_plan.hpp"

#include <algorithm>
#include <limits>

#include "core/error.hpp"

namespace ember::kernels::conv_plan {
namespace {

int to_int(int64_t v, const char* op, const char* what) {
  EMBER_CHECK(v >= 0 && v <= std::numeric_limits<int>::max(), ShapeError, "[", op, "] ", what, " ", v,
              " does not fit cuDNN's 32-bit descriptors");
  return static_cast<int>(v);
}

// Size-1 dims may carry any stride in Ember; cuDNN gets the packed one (the next dim's extent), which
// keeps the NCHW order that cudnn_layout_ok demands.
std::array<int64_t, 4> normalized_strides(const Shape& shape, const Shape& strides) {
  std::array<int64_t, 4> r{};
  for (int i = 3; i >= 0; --i) {
    const int64_t packed = i == 3 ? 1 : r[i + 1] * std::max<int64_t>(shape[i + 1], 1);
    r[i] = shape[i] == 1 ? packed : strides[i];
  }
  return r;
}

// Elements one sample spans in memory (0 for an empty one).
int64_t sample_span(const Shape& shape, const std::array<int64_t, 4>& strides) {
  int64_t span = 1;
  for (int i = 1; i < 4; ++i) {
    if (shape[i] == 0) return 0;
    span += (shape[i] - 1) * strides[i];
  }
  return span;
}

// The most samples one call may take so that (chunk - 1) * batch_stride + span stays under the limit.
int64_t max_chunk(int64_t batch, int64_t batch_stride, int64_t span) {
  if (span > kMaxElements) return 0;
  if (batch <= 1 || batch_stride == 0) return batch;
  return std::min(batch, (kMaxElements - span) / batch_stride + 1);
}

TensorDesc describe_tensor(const Shape& shape, const std::array<int64_t, 4>& strides, int64_t chunk, const char* op) {
  TensorDesc d;
  for (int i = 0; i < 4; ++i) {
    d.dims[i] = to_int(i == 0 ? chunk : shape[i], op, "size");
    d.strides[i] = to_int(strides[i], op, "stride");
  }
  return d;
}

}  // namespace

Shape output_shape(const Shape& x, const Shape& w, const Conv2dParams& p) {
  Shape r{x[0], w[0], 0, 0};
  for (int i = 0; i < 2; ++i) {
    const int64_t padded = x[2 + i] + 2 * p.padding[i], span = p.dilation[i] * (w[2 + i] - 1) + 1;
    EMBER_CHECK(padded >= span, ShapeError, "[conv] input ", x, " padded to ", padded,
                " is smaller than the dilated kernel size ", span);
    r[2 + i] = (padded - span) / p.stride[i] + 1;
  }
  return r;
}

bool cudnn_layout_ok(const Shape& shape, const Shape& strides) {
  if (shape.size() != 4 || strides.size() != 4) return false;
  const std::array<int64_t, 4> s = normalized_strides(shape, strides);
  for (int i = 0; i < 4; ++i) {
    if (s[i] < 1) return false;
    if (i < 3 && shape[i + 1] > 0 && s[i] < s[i + 1] * shape[i + 1]) return false;  // overlaps the next dim
  }
  return true;
}

Plan make_plan(Kind kind, DType dt, const Shape& x, const Shape& x_strides, const Shape& w, const Shape& y,
               const Shape& y_strides, const Conv2dParams& p, bool allow_tf32, const char* op) {
  Plan plan;
  plan.kind = kind;
  if (dt == kF32) {
    plan.data = plan.compute = DataType::Float;
    // CUDNN_DEFAULT_MATH lets Ampere and later use TF32 for f32; FMA keeps f32 exact unless allowed.
    plan.math = allow_tf32 ? MathType::TensorOp : MathType::Fma;
  } else if (dt == kF64) {
    plan.data = plan.compute = DataType::Double;
    plan.math = MathType::Default;
    plan.double_scaling = true;
  } else if (dt == kF16 || dt == kBF16) {
    // PSEUDO_HALF / PSEUDO_BFLOAT16: 2-byte data, f32 accumulation, tensor cores.
    plan.data = dt == kF16 ? DataType::Half : DataType::BFloat16;
    plan.compute = DataType::Float;
    plan.math = MathType::TensorOp;
  } else {
    throw DTypeError(detail::cat_str("[", op, "] cuDNN convolutions take float32, float64, float16 and bfloat16, got ",
                                     dtype_name(dt)));
  }
  EMBER_CHECK(x.size() == 4 && w.size() == 4 && y.size() == 4 && x_strides.size() == 4 && y_strides.size() == 4,
              ShapeError, "[", op, "] expected 4-d tensors, got x ", x, ", w ", w, ", y ", y);
  EMBER_CHECK(p.groups >= 1 && w[0] % p.groups == 0 && w[1] * p.groups == x[1] && y[1] == w[0] && y[0] == x[0],
              ShapeError, "[", op, "] x ", x, ", weight ", w, ", y ", y, " do not fit groups=", p.groups);
  for (int i = 0; i < 2; ++i) {
    plan.pad[i] = to_int(p.padding[i], op, "padding");
    plan.stride[i] = to_int(p.stride[i], op, "stride");
    plan.dilation[i] = to_int(p.dilation[i], op, "dilation");
  }
  plan.groups = to_int(p.groups, op, "groups");
  for (int i = 0; i < 4; ++i) plan.w[i] = to_int(w[i], op, "weight size");
  EMBER_CHECK(shape_numel(w) <= kMaxElements, ShapeError, "[", op, "] weight ", w,
              " has more elements than cuDNN's 32-bit limit");

  plan.full_y = output_shape(x, w, p);
  if (kind == Kind::Forward) {
    EMBER_CHECK(y == plan.full_y, ShapeError, "[", op, "] output ", y, " is not the conv's output ", plan.full_y);
  } else {
    EMBER_CHECK(y[2] <= plan.full_y[2] && y[3] <= plan.full_y[3], ShapeError, "[", op, "] gradient ", y,
                " is larger than the conv's output ", plan.full_y);
    plan.pad_y = y != plan.full_y;
  }
  plan.batch = x[0];
  plan.empty = shape_numel(x) == 0 || shape_numel(w) == 0 || shape_numel(y) == 0;

  const Shape& yd = plan.pad_y ? plan.full_y : y;
  const std::array<int64_t, 4> xs = normalized_strides(x, x_strides);
  const std::array<int64_t, 4> ys = normalized_strides(yd, plan.pad_y ? contiguous_strides(yd) : y_strides);
  plan.x_batch_stride = xs[0];
  plan.y_batch_stride = ys[0];
  const int64_t chunk =
      std::min(max_chunk(x[0], xs[0], sample_span(x, xs)), max_chunk(yd[0], ys[0], sample_span(yd, ys)));
  EMBER_CHECK(x[0] == 0 || chunk >= 1, ShapeError, "[", op, "] one sample of x ", x, " or y ", yd,
              " spans more elements than cuDNN's 32-bit limit");
  plan.chunk = std::max<int64_t>(chunk, 1);
  plan.x = describe_tensor(x, xs, plan.chunk, op);
  plan.y = describe_tensor(yd, ys, plan.chunk, op);
  return plan;
}

Plan for_chunk(const Plan& plan, int64_t n) {
  Plan r = plan;
  r.x.dims[0] = r.y.dims[0] = static_cast<int>(n);
  return r;
}

std::vector<std::array<int64_t, 2>> batch_chunks(int64_t batch, int64_t chunk) {
  std::vector<std::array<int64_t, 2>> r;
  for (int64_t start = 0; start < batch; start += chunk) r.push_back({start, std::min(chunk, batch - start)});
  return r;
}

std::vector<AlgoPerf> usable_algos(const std::vector<AlgoPerf>& perf, const Plan& plan, bool deterministic) {
  std::vector<AlgoPerf> r;
  const bool exact_f32 = plan.data == DataType::Float && plan.math == MathType::Fma;
  for (const AlgoPerf& a : perf) {
    if (!a.ok || (deterministic && !a.deterministic)) continue;
    if (exact_f32 && a.math != MathType::Fma && a.math != MathType::Default) continue;
    r.push_back(a);
  }
  return r;
}

MathType math_to_run(const AlgoPerf& a, const Plan& plan) {
  return plan.data == DataType::Float && plan.math == MathType::Fma ? MathType::Fma : a.math;
}

size_t find_workspace_bytes(const std::vector<AlgoPerf>& usable, size_t cap) {
  size_t m = 0;
  for (const AlgoPerf& a : usable) m = std::max(m, a.memory);
  return std::min(m, cap);
}

Key make_key(const Plan& plan, int device, bool deterministic, bool benchmark) {
  Key k;
  size_t i = 0;
  auto put = [&](int64_t v) { k.v[i++] = v; };
  put(static_cast<int64_t>(plan.kind));
  put(static_cast<int64_t>(plan.data));
  put(static_cast<int64_t>(plan.compute));
  put(static_cast<int64_t>(plan.math));
  put(device);
  put(deterministic);
  put(benchmark);
  for (int d = 0; d < 4; ++d) put(plan.x.dims[d]);
  for (int d = 0; d < 4; ++d) put(plan.x.strides[d]);
  for (int d = 0; d < 4; ++d) put(plan.w[d]);
  for (int d = 0; d < 4; ++d) put(plan.y.dims[d]);
  for (int d = 0; d < 4; ++d) put(plan.y.strides[d]);
  for (int d = 0; d < 2; ++d) put(plan.pad[d]);
  for (int d = 0; d < 2; ++d) put(plan.stride[d]);
  for (int d = 0; d < 2; ++d) put(plan.dilation[d]);
  put(plan.groups);
  return k;
}

size_t KeyHash::operator()(const Key& k) const {
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the fields
  for (int64_t v : k.v) {
    h ^= static_cast<uint64_t>(v);
    h *= 1099511628211ull;
  }
  return static_cast<size_t>(h);
}

}  // namespace ember::kernels::conv_plan
