// Host-side planning of the cuDNN convolutions, plain C++ compiled in every build so CPU tests cover it:
// the descriptor parameters derived from Ember's shapes and strides (NCHW tensors, packed filters,
// pad/stride/dilation, cross-correlation, compute and math type per dtype, groups), which cuDNN call
// each Ember entry is, the zero padding an output gradient needs, the batch split that keeps every
// tensor under cuDNN's 32-bit element limit, the algorithm filter and the algorithm cache key.
// kernels/cuda/conv.cpp turns a Plan into cuDNN descriptors one field at a time.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/dtype.hpp"
#include "core/shape.hpp"
#include "kernels/conv.hpp"

namespace ember::kernels::conv_plan {

// Which cuDNN call: conv2d is Forward; conv_transpose2d is BackwardData (its output is the image
// "x" of the conv2d it is the adjoint of, its input that conv's "dy"); the weight gradient is
// BackwardFilter.
enum class Kind : uint8_t { Forward, BackwardData, BackwardFilter };
// Mirrors of cudnnDataType_t and cudnnMathType_t (this header needs no cuDNN).
enum class DataType : uint8_t { Float, Double, Half, BFloat16 };
enum class MathType : uint8_t { Default, TensorOp, TensorOpAllowConversion, Fma };

// A 4-d tensor descriptor (cudnnSetTensorNdDescriptor): [N, C, H, W] sizes and element strides.
struct TensorDesc {
  std::array<int, 4> dims{};
  std::array<int, 4> strides{};
};

// cuDNN's legacy API indexes with int: no tensor of one call may reach 2^31 elements.
inline constexpr int64_t kMaxElements = (int64_t{1} << 31) - 1;

struct Plan {
  Kind kind = Kind::Forward;
  DataType data = DataType::Float;     // x, w and y
  DataType compute = DataType::Float;  // the convolution descriptor's type (f32 for f16/bf16)
  MathType math = MathType::Default;
  bool double_scaling = false;  // alpha/beta are double (f64 data) or float (the rest)
  // Descriptors for one call over `chunk` samples: x [chunk, C, H, W], y [chunk, K, OH, OW], and the
  // packed filter [K, C / groups, kH, kW]. The convolution is always CUDNN_CROSS_CORRELATION.
  TensorDesc x, y;
  std::array<int, 4> w{};
  std::array<int, 2> pad{}, stride{}, dilation{};
  int groups = 1;
  // y given smaller than the conv's full output (a conv_transpose2d output padding of at least the
  // stride, or a weight gradient for such an output): the missing rows and columns count as zero, so
  // y goes to cuDNN zero-padded into a contiguous buffer of shape full_y.
  bool pad_y = false;
  Shape full_y;
  int64_t batch = 0;           // N of the whole op
  int64_t chunk = 0;           // samples per cuDNN call (batch when it fits, at least 1)
  int64_t x_batch_stride = 0;  // elements between samples, to offset a chunk's pointer
  int64_t y_batch_stride = 0;  // likewise for y (of the padded buffer when pad_y)
  bool empty = false;          // some operand has no elements: no cuDNN call (see make_plan)
};

// The conv2d output [N, K, OH, OW] of x [N, C, H, W] with weight [K, C / g, kH, kW] (the arithmetic of
// cudnnGetConvolution2dForwardOutputDim and of core/ops/conv.cpp's builder). ShapeError when the
// dilated kernel does not fit the padded input.
Shape output_shape(const Shape& x, const Shape& w, const Conv2dParams& p);

// Strides cuDNN can take for a tensor as it is: positive and in NCHW order without overlap (size-1
// dims aside). Others are made contiguous first.
bool cudnn_layout_ok(const Shape& shape, const Shape& strides);

// The plan for one op. x is the conv's input image (conv2d's input, conv_transpose2d's output, the
// weight gradient's input), w its weight ([K, C / groups, kH, kW]; for conv_transpose2d the transpose's
// own [C_in, C_out / groups, kH, kW], which is that), y the conv's output (conv2d's output,
// conv_transpose2d's input, the output gradient). allow_tf32 lets f32 use TF32 tensor cores.
// ShapeError/DTypeError on what cuDNN cannot do (a dtype other than f32/f64/f16/bf16, one sample over
// the 32-bit limit, y larger than the conv's output).
Plan make_plan(Kind kind, DType dt, const Shape& x, const Shape& x_strides, const Shape& w, const Shape& y,
               const Shape& y_strides, const Conv2dParams& p, bool allow_tf32, const char* op);

// The plan of one call over n <= plan.chunk samples (the last chunk may be shorter).
Plan for_chunk(const Plan& plan, int64_t n);
// The batch split into [start, start + size) calls of at most `chunk` samples, in order.
std::vector<std::array<int64_t, 2>> batch_chunks(int64_t batch, int64_t chunk);

// One entry of cudnnGet*_v7 / cudnnFind* results, in their order (heuristics: expected speed; find:
// measured time).
struct AlgoPerf {
  int algo = 0;
  bool ok = false;  // status == CUDNN_STATUS_SUCCESS
  size_t memory = 0;
  bool deterministic = false;
  MathType math = MathType::Default;
};

// The results an op may run, best first: successful ones, deterministic ones only when asked, and for
// f32 without TF32 only FMA/default math (run as FMA, see math_to_run).
std::vector<AlgoPerf> usable_algos(const std::vector<AlgoPerf>& perf, const Plan& plan, bool deterministic);
// The math type to set on the descriptor before running `a` (cuDNN wants the algorithm's own).
MathType math_to_run(const AlgoPerf& a, const Plan& plan);
// The workspace cudnnFind*Ex gets: the most any usable heuristic result asks for, at most cap bytes.
size_t find_workspace_bytes(const std::vector<AlgoPerf>& usable, size_t cap);

// The algorithm cache key: every parameter that changes the choice (shapes and strides of one call,
// dtype, compute and math type, geometry, groups, device, and the benchmark/deterministic switches).
struct Key {
  std::array<int64_t, 34> v{};
  bool operator==(const Key&) const = default;
};
struct KeyHash {
  size_t operator()(const Key& k) const;
};
Key make_key(const Plan& plan, int device, bool deterministic, bool benchmark);

}  // namespace ember::kernels::conv_plan
