// CUDA convolutions through cuDNN 9's legacy convolution API (libcudnn_cnn): conv2d is
// cudnnConvolutionForward, conv_transpose2d is cudnnConvolutionBackwardData (the adjoint), the weight
// gradient is cudnnConvolutionBackwardFilter. Host code only, so g++ compiles it; every descriptor
// parameter comes from kernels/conv_plan.hpp, which CPU tests cover. A cuDNN handle per device (pooled,
// bound to the current stream at each call); workspaces are Ember tensors from the caching allocator;
// the algorithm list is cached per plan key. Bias adds go through the elementwise add kernel.
// Without cuDNN (EMBER_CUDNN unset) the entries raise DeviceError.
#include "kernels/conv.hpp"

#include "core/error.hpp"

#ifdef EMBER_CUDNN
#include <cudnn.h>

#include <algorithm>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/backend.hpp"
#include "core/determinism.hpp"
#include "core/graph_capture.hpp"
#include "kernels/conv_plan.hpp"
#include "kernels/cuda/cudnn_handle.hpp"
#include "kernels/cuda/runtime.hpp"
#include "kernels/elementwise.hpp"

namespace ember::kernels::cuda {
namespace {

namespace cp = conv_plan;
using cp::Kind;

cudnnDataType_t data_type(cp::DataType t) {
  switch (t) {
    case cp::DataType::Float:
      return CUDNN_DATA_FLOAT;
    case cp::DataType::Double:
      return CUDNN_DATA_DOUBLE;
    case cp::DataType::Half:
      return CUDNN_DATA_HALF;
    case cp::DataType::BFloat16:
      return CUDNN_DATA_BFLOAT16;
  }
  return CUDNN_DATA_FLOAT;
}

cudnnMathType_t math_type(cp::MathType m) {
  switch (m) {
    case cp::MathType::Default:
      return CUDNN_DEFAULT_MATH;
    case cp::MathType::TensorOp:
      return CUDNN_TENSOR_OP_MATH;
    case cp::MathType::TensorOpAllowConversion:
      return CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
    case cp::MathType::Fma:
      return CUDNN_FMA_MATH;
  }
  return CUDNN_DEFAULT_MATH;
}

cp::MathType from_cudnn(cudnnMathType_t m) {
  switch (m) {
    case CUDNN_TENSOR_OP_MATH:
      return cp::MathType::TensorOp;
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION:
      return cp::MathType::TensorOpAllowConversion;
    case CUDNN_FMA_MATH:
      return cp::MathType::Fma;
    default:
      return cp::MathType::Default;
  }
}

// ---------------------------------------------------------------- descriptors
struct Descriptors {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;

  explicit Descriptors(const cp::Plan& p) {
    try {
      EMBER_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
      EMBER_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
      EMBER_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
      EMBER_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
      const cudnnDataType_t dt = data_type(p.data);
      EMBER_CUDNN_CHECK(cudnnSetTensorNdDescriptor(x, dt, 4, p.x.dims.data(), p.x.strides.data()));
      EMBER_CUDNN_CHECK(cudnnSetTensorNdDescriptor(y, dt, 4, p.y.dims.data(), p.y.strides.data()));
      EMBER_CUDNN_CHECK(cudnnSetFilterNdDescriptor(w, dt, CUDNN_TENSOR_NCHW, 4, p.w.data()));
      EMBER_CUDNN_CHECK(cudnnSetConvolutionNdDescriptor(conv, 2, p.pad.data(), p.stride.data(), p.dilation.data(),
                                                        CUDNN_CROSS_CORRELATION, data_type(p.compute)));
      EMBER_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv, p.groups));
      EMBER_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, math_type(p.math)));
    } catch (...) {
      destroy();
      throw;
    }
  }
  ~Descriptors() { destroy(); }
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;

 private:
  void destroy() {
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (x) cudnnDestroyTensorDescriptor(x);
  }
};

// The device buffers of one call: x, w, y in the conv's roles (the written one depends on the kind).
struct Buffers {
  void* x;
  void* w;
  void* y;
};

template <class Perf>
std::vector<cp::AlgoPerf> to_perf(const std::vector<Perf>& r, int n) {
  std::vector<cp::AlgoPerf> out;
  for (int i = 0; i < n; ++i)
    out.push_back({static_cast<int>(r[i].algo), r[i].status == CUDNN_STATUS_SUCCESS, r[i].memory,
                   r[i].determinism == CUDNN_DETERMINISTIC, from_cudnn(r[i].mathType)});
  return out;
}

// cuDNN's heuristic ranking (cudnnGet*_v7): runs nothing.
std::vector<cp::AlgoPerf> heuristics(Kind kind, cudnnHandle_t h, const Descriptors& d) {
  int max = 0, n = 0;
  switch (kind) {
    case Kind::Forward: {
      EMBER_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max));
      std::vector<cudnnConvolutionFwdAlgoPerf_t> r(max);
      EMBER_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y, max, &n, r.data()));
      return to_perf(r, n);
    }
    case Kind::BackwardData: {
      EMBER_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max));
      std::vector<cudnnConvolutionBwdDataAlgoPerf_t> r(max);
      EMBER_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w, d.y, d.conv, d.x, max, &n, r.data()));
      return to_perf(r, n);
    }
    case Kind::BackwardFilter: {
      EMBER_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max));
      std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> r(max);
      EMBER_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x, d.y, d.conv, d.w, max, &n, r.data()));
      return to_perf(r, n);
    }
  }
  return {};
}

// A workspace tensor of at least `bytes` (none for 0).
Tensor workspace(int device, size_t bytes) {
  if (bytes == 0) return {};
  return make_tensor({static_cast<int64_t>(bytes)}, kU8, Device(Device::Kind::CUDA, device));
}

// cudnnFind*Ex: times the algorithms on the real buffers (writing the output one, before any real
// work), with as much workspace as the heuristics' usable choices want (halved while it does not fit).
std::vector<cp::AlgoPerf> measure(Kind kind, cudnnHandle_t h, const Descriptors& d, const Buffers& b, int device,
                                  const std::vector<cp::AlgoPerf>& usable) {
  size_t bytes = cp::find_workspace_bytes(usable, size_t{1} << 30);
  Tensor ws;
  for (;;) {
    try {
      ws = workspace(device, bytes);
      break;
    } catch (const OutOfMemoryError&) {
      if (bytes == 0) throw;
      bytes /= 2;
    }
  }
  void* wsp = dptr<void>(ws);
  int max = 0, n = 0;
  switch (kind) {
    case Kind::Forward: {
      EMBER_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max));
      std::vector<cudnnConvolutionFwdAlgoPerf_t> r(max);
      EMBER_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, d.x, b.x, d.w, b.w, d.conv, d.y, b.y, max, &n,
                                                               r.data(), wsp, bytes));
      return to_perf(r, n);
    }
    case Kind::BackwardData: {
      EMBER_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max));
      std::vector<cudnnConvolutionBwdDataAlgoPerf_t> r(max);
      EMBER_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(h, d.w, b.w, d.y, b.y, d.conv, d.x, b.x, max, &n,
                                                                    r.data(), wsp, bytes));
      return to_perf(r, n);
    }
    case Kind::BackwardFilter: {
      EMBER_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max));
      std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> r(max);
      EMBER_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, d.x, b.x, d.y, b.y, d.conv, d.w, b.w, max, &n,
                                                                      r.data(), wsp, bytes));
      return to_perf(r, n);
    }
  }
  return {};
}

// ---------------------------------------------------------------- the algorithm cache
struct AlgoCache {
  std::mutex mu;
  std::unordered_map<cp::Key, std::vector<cp::AlgoPerf>, cp::KeyHash> map;
};
AlgoCache& algo_cache() {
  static auto* cache = new AlgoCache;
  return *cache;
}

const char* kind_op(Kind kind) {
  return kind == Kind::Forward ? "conv2d" : kind == Kind::BackwardData ? "conv_transpose2d" : "conv2d_backward";
}

std::string describe_plan(const cp::Plan& p) {
  auto dims = [](const std::array<int, 4>& a) {
    return detail::cat_str("[", a[0], ", ", a[1], ", ", a[2], ", ", a[3], "]");
  };
  return detail::cat_str("x ", dims(p.x.dims), " strides ", dims(p.x.strides), ", weight ", dims(p.w), ", y ",
                         dims(p.y.dims), ", stride (", p.stride[0], ", ", p.stride[1], "), padding (", p.pad[0], ", ",
                         p.pad[1], "), dilation (", p.dilation[0], ", ", p.dilation[1], "), groups ", p.groups);
}

// The usable algorithms of one call's plan, best first: cached, or asked of cuDNN once per key.
std::vector<cp::AlgoPerf> algorithms(const cp::Plan& plan, cudnnHandle_t h, const Buffers& b, int device) {
  // cudnnFind* times the algorithms with device syncs, which a CUDA-graph capture cannot hold: a capture
  // takes the heuristics' order (cached under the no-benchmark key).
  const bool det = ember::deterministic(), bench = cudnn_benchmark() && !graph::is_capturing(device);
  const cp::Key key = cp::make_key(plan, device, det, bench);
  AlgoCache& cache = algo_cache();
  {
    std::lock_guard<std::mutex> lock(cache.mu);
    auto it = cache.map.find(key);
    if (it != cache.map.end()) return it->second;
  }
  Descriptors d(plan);
  std::vector<cp::AlgoPerf> usable = cp::usable_algos(heuristics(plan.kind, h, d), plan, det);
  if (bench && !usable.empty()) {
    std::vector<cp::AlgoPerf> measured = cp::usable_algos(measure(plan.kind, h, d, b, device, usable), plan, det);
    if (!measured.empty()) usable = measured;
  }
  EMBER_CHECK(!usable.empty(), Error, "[", kind_op(plan.kind), "] cuDNN offers no ", det ? "deterministic " : "",
              "algorithm for ", describe_plan(plan));
  std::lock_guard<std::mutex> lock(cache.mu);
  cache.map.emplace(key, usable);
  return usable;
}

// The workspace algorithm a needs with the conv descriptor's current math type.
size_t workspace_bytes(const cp::Plan& plan, const Descriptors& d, cudnnHandle_t h, const cp::AlgoPerf& a) {
  size_t bytes = 0;
  switch (plan.kind) {
    case Kind::Forward:
      EMBER_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(
          h, d.x, d.w, d.conv, d.y, static_cast<cudnnConvolutionFwdAlgo_t>(a.algo), &bytes));
      break;
    case Kind::BackwardData:
      EMBER_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(
          h, d.w, d.y, d.conv, d.x, static_cast<cudnnConvolutionBwdDataAlgo_t>(a.algo), &bytes));
      break;
    case Kind::BackwardFilter:
      EMBER_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(
          h, d.x, d.y, d.conv, d.w, static_cast<cudnnConvolutionBwdFilterAlgo_t>(a.algo), &bytes));
      break;
  }
  return bytes;
}

// One cuDNN call over one chunk with algorithm a (the descriptor's math type already set); beta 1
// accumulates into the output (weight gradient). Returns cuDNN's status.
cudnnStatus_t launch(const cp::Plan& plan, const Descriptors& d, cudnnHandle_t h, const cp::AlgoPerf& a,
                     const Buffers& b, void* ws, size_t ws_bytes, bool accumulate) {
  const float f1 = 1.0f, f0 = 0.0f, fb = accumulate ? 1.0f : 0.0f;
  const double d1 = 1.0, d0 = 0.0, db = accumulate ? 1.0 : 0.0;
  const void* alpha = plan.double_scaling ? static_cast<const void*>(&d1) : static_cast<const void*>(&f1);
  const void* beta = plan.double_scaling ? static_cast<const void*>(accumulate ? &db : &d0)
                                         : static_cast<const void*>(accumulate ? &fb : &f0);
  switch (plan.kind) {
    case Kind::Forward:
      return cudnnConvolutionForward(h, alpha, d.x, b.x, d.w, b.w, d.conv,
                                     static_cast<cudnnConvolutionFwdAlgo_t>(a.algo), ws, ws_bytes, beta, d.y, b.y);
    case Kind::BackwardData:
      return cudnnConvolutionBackwardData(h, alpha, d.w, b.w, d.y, b.y, d.conv,
                                          static_cast<cudnnConvolutionBwdDataAlgo_t>(a.algo), ws, ws_bytes, beta, d.x,
                                          b.x);
    case Kind::BackwardFilter:
      return cudnnConvolutionBackwardFilter(h, alpha, d.x, b.x, d.y, b.y, d.conv,
                                            static_cast<cudnnConvolutionBwdFilterAlgo_t>(a.algo), ws, ws_bytes, beta,
                                            d.w, b.w);
  }
  return CUDNN_STATUS_BAD_PARAM;
}

// Runs the plan over the batch in chunks. The algorithms of every chunk size are settled first, since
// benchmarking writes the output buffer and the weight gradient accumulates across chunks.
void run(const cp::Plan& plan, int device, const Tensor& x, const Tensor& w, const Tensor& y) {
  CudnnHandle handle(device, "conv");
  const size_t es = itemsize(x.dtype());
  char* xp = dptr<char>(x);
  char* yp = dptr<char>(y);
  const auto chunks = cp::batch_chunks(plan.batch, plan.chunk);
  std::vector<cp::Plan> plans;
  std::vector<std::vector<cp::AlgoPerf>> algos;
  for (const auto& c : chunks) {
    plans.push_back(cp::for_chunk(plan, c[1]));
    const Buffers b{xp + c[0] * plan.x_batch_stride * es, dptr<void>(w), yp + c[0] * plan.y_batch_stride * es};
    algos.push_back(algorithms(plans.back(), handle.get(), b, device));
  }
  for (size_t i = 0; i < chunks.size(); ++i) {
    const Buffers b{xp + chunks[i][0] * plan.x_batch_stride * es, dptr<void>(w),
                    yp + chunks[i][0] * plan.y_batch_stride * es};
    Descriptors d(plans[i]);
    // The fastest algorithm that runs: one whose workspace does not fit, or that cuDNN turns down at the
    // call (NOT_SUPPORTED, BAD_PARAM: e.g. a tensor-core kernel and a pointer on fewer than 16 bytes),
    // falls through to the next.
    const std::vector<cp::AlgoPerf>& list = algos[i];
    for (size_t k = 0; k < list.size(); ++k) {
      const bool last = k + 1 == list.size();
      EMBER_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, math_type(cp::math_to_run(list[k], plans[i]))));
      // The heuristics' size is for their math type; exact f32 may run another.
      const size_t bytes = std::max(list[k].memory, workspace_bytes(plans[i], d, handle.get(), list[k]));
      Tensor ws;
      try {
        ws = workspace(device, bytes);
      } catch (const OutOfMemoryError&) {
        if (last) throw;
        continue;
      }
      const cudnnStatus_t st = launch(plans[i], d, handle.get(), list[k], b, dptr<void>(ws), bytes,
                                      plan.kind == Kind::BackwardFilter && i > 0);
      const int category = CUDNN_STATUS_CATEGORY(st);
      if (!last && (category == CUDNN_STATUS_NOT_SUPPORTED || category == CUDNN_STATUS_BAD_PARAM)) continue;
      EMBER_CUDNN_CHECK(st);
      break;
    }
  }
}

// y zero-padded to the conv's full output (plan.pad_y): the missing positions count as zero.
Tensor padded_y(const Tensor& y, const cp::Plan& plan) {
  if (!plan.pad_y) return y;
  Tensor full = make_tensor(plan.full_y, y.dtype(), y.device());
  cuda::fill(full, Scalar(0));
  cuda::copy(make_view(full, y.shape(), full.strides(), 0), y);
  return full;
}

// out [N, O, H, W] += bias [O] broadcast, by the elementwise add kernel.
void add_bias(const Tensor& out, const Tensor& bias) {
  if (!bias.defined() || out.numel() == 0) return;
  const Shape strides{0, bias.strides()[0], 0, 0};
  cuda::binary(index_of_v<Add, BinaryFunctors>, out, out, make_view(bias, out.shape(), strides, bias.storage_offset()),
               OpParams{.a = 1});  // Add's alpha
}

bool allow_tf32() { return float32_matmul_allows_tf32(); }

}  // namespace

void conv2d(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias, const Conv2dParams& p) {
  const int dev = device_index(out.device(), "conv2d");
  DeviceGuard guard(dev);
  const cp::Plan plan = cp::make_plan(Kind::Forward, out.dtype(), in.shape(), in.strides(), weight.shape(), out.shape(),
                                      out.strides(), p, allow_tf32(), "conv2d");
  if (out.numel() == 0) return;
  if (plan.empty)
    cuda::fill(out, Scalar(0));  // no input channels or an all-padding input: every product is zero
  else
    run(plan, dev, in, weight, out);
  add_bias(out, bias);
}

void conv_transpose2d(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias,
                      const Conv2dParams& p) {
  const int dev = device_index(out.device(), "conv_transpose2d");
  DeviceGuard guard(dev);
  const cp::Plan plan = cp::make_plan(Kind::BackwardData, out.dtype(), out.shape(), out.strides(), weight.shape(),
                                      in.shape(), in.strides(), p, allow_tf32(), "conv_transpose2d");
  if (out.numel() == 0) return;
  if (plan.empty)
    cuda::fill(out, Scalar(0));
  else
    run(plan, dev, out, weight, padded_y(in, plan));
  add_bias(out, bias);
}

void conv2d_weight_backward(const Tensor& grad_weight, const Tensor& grad_out, const Tensor& in,
                            const Conv2dParams& p) {
  const int dev = device_index(grad_weight.device(), "conv2d_backward");
  DeviceGuard guard(dev);
  const cp::Plan plan =
      cp::make_plan(Kind::BackwardFilter, grad_weight.dtype(), in.shape(), in.strides(), grad_weight.shape(),
                    grad_out.shape(), grad_out.strides(), p, allow_tf32(), "conv2d_backward");
  if (grad_weight.numel() == 0) return;
  if (plan.empty)
    cuda::fill(grad_weight, Scalar(0));
  else
    run(plan, dev, in, grad_weight, padded_y(grad_out, plan));
}

}  // namespace ember::kernels::cuda

#else  // built with CUDA but without cuDNN

namespace ember::kernels::cuda {
namespace {
[[noreturn]] void no_cudnn(const char* op) {
  throw DeviceError(detail::cat_str("[", op, "] CUDA convolutions need cuDNN 9, which this build did not find"));
}
}  // namespace
void conv2d(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Conv2dParams&) { no_cudnn("conv2d"); }
void conv_transpose2d(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Conv2dParams&) {
  no_cudnn("conv_transpose2d");
}
void conv2d_weight_backward(const Tensor&, const Tensor&, const Tensor&, const Conv2dParams&) {
  no_cudnn("conv2d_backward");
}
}  // namespace ember::kernels::cuda

#endif
