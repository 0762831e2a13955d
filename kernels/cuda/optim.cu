// CUDA fused optimizer steps and the gradient-norm reduction as multi-tensor launches: the host plans
// (kernels/optim_plan.hpp, CPU-tested) which block takes which chunk of which tensor and passes that
// table by value (under 4 KiB), so a step over hundreds of parameters costs a few launches, not one per
// parameter. Each element's update is kernels/optim_math.hpp's, the same code the CPU loops run; the
// flags are runtime values here (uniform branches), so each optimizer has one kernel per dtype. The norm
// writes one partial per block and one more block reduces them in a fixed order (deterministic).
#include <algorithm>
#include <array>
#include <cmath>
#include <map>

#include "core/dtype.hpp"
#include "core/graph_capture.hpp"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/runtime.hpp"
#include "kernels/optim.hpp"
#include "kernels/optim_math.hpp"
#include "kernels/optim_plan.hpp"

namespace ember::kernels::cuda {
namespace {
namespace om = optim_math;

// Block b updates chunk args.block_chunk[b] of tensor slot args.block_tensor[b]; op(ptrs, i) updates
// element i of that chunk, ptrs[k] pointing at the chunk's start in operand k (null when unused).
template <class T, int Depth, class Op>
__global__ void __launch_bounds__(kThreads) multi_tensor_kernel(const __grid_constant__ MtaArgs<Depth> args, Op op) {
  const int slot = args.block_tensor[blockIdx.x];
  const int64_t begin = static_cast<int64_t>(args.block_chunk[blockIdx.x]) * kMtaChunk;
  const int64_t left = args.numel[slot] - begin;
  const int64_t n = left < kMtaChunk ? left : kMtaChunk;
  const Op o = op.resolved();  // a graph's step reads its scalars from the slot, once per thread
  T* ptrs[Depth];
#pragma unroll
  for (int k = 0; k < Depth; ++k) {
    T* base = static_cast<T*>(args.ptrs[k][slot]);
    ptrs[k] = base ? base + begin : nullptr;
  }
  for (int64_t i = threadIdx.x; i < n; i += kThreads) o(ptrs, i);
}

template <class T>
struct SgdOp {
  using Params = om::StepParams<om::SgdScalars<acc_t<T>>, om::SgdFlags>;
  Params p;
  const Params* slot = nullptr;  // set while a graph captures
  __device__ __forceinline__ SgdOp resolved() const { return {om::resolve_params(p, slot), nullptr}; }
  __device__ __forceinline__ void operator()(T* const (&q)[3], int64_t i) const {
    om::sgd_update<T>(q[0], q[1], q[2], i, p.s, p.f);
  }
};
template <class T>
struct AdamOp {
  using Params = om::StepParams<om::AdamScalars<acc_t<T>>, om::AdamFlags>;
  Params p;
  const Params* slot = nullptr;  // set while a graph captures
  __device__ __forceinline__ AdamOp resolved() const { return {om::resolve_params(p, slot), nullptr}; }
  __device__ __forceinline__ void operator()(T* const (&q)[5], int64_t i) const {
    om::adam_update<T>(q[0], q[1], q[2], q[3], q[4], i, p.s, p.f);
  }
};
template <class T>
struct RmspropOp {
  using Params = om::StepParams<om::RmspropScalars<acc_t<T>>, om::RmspropFlags>;
  Params p;
  const Params* slot = nullptr;  // set while a graph captures
  __device__ __forceinline__ RmspropOp resolved() const { return {om::resolve_params(p, slot), nullptr}; }
  __device__ __forceinline__ void operator()(T* const (&q)[5], int64_t i) const {
    om::rmsprop_update<T>(q[0], q[1], q[2], q[3], q[4], i, p.s, p.f);
  }
};
template <class T>
struct AdagradOp {
  using Params = om::StepParams<om::AdagradScalars<acc_t<T>>, om::AdagradFlags>;
  Params p;
  const Params* slot = nullptr;  // set while a graph captures
  __device__ __forceinline__ AdagradOp resolved() const { return {om::resolve_params(p, slot), nullptr}; }
  __device__ __forceinline__ void operator()(T* const (&q)[3], int64_t i) const {
    om::adagrad_update<T>(q[0], q[1], q[2], i, p.s, p.f);
  }
};

// One partial per block: sum of |x|^p (or max |x| when kInf), in the accumulation type.
template <class T, bool kInf>
__global__ void __launch_bounds__(kThreads)
    norm_partial_kernel(const __grid_constant__ MtaArgs<1> args, double p, double* __restrict partials) {
  // Sums of powers in double, as the CPU's (a float square of a 2e19 gradient overflows); the max is exact
  // in the element's own accumulation type.
  using S = std::conditional_t<kInf, acc_t<T>, double>;
  __shared__ S sh[kWarp];
  const int slot = args.block_tensor[blockIdx.x];
  const int64_t begin = static_cast<int64_t>(args.block_chunk[blockIdx.x]) * kMtaChunk;
  const int64_t left = args.numel[slot] - begin;
  const int64_t n = left < kMtaChunk ? left : kMtaChunk;
  const T* x = static_cast<const T*>(args.ptrs[0][slot]) + begin;
  S acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) {
    const S a = std::abs(static_cast<S>(static_cast<acc_t<T>>(x[i])));
    if constexpr (kInf)
      acc = om::nan_max(a, acc);
    else
      acc += p == 2 ? a * a : std::pow(a, p);
  }
  if constexpr (kInf)
    acc = block_reduce(acc, MaxOp{}, S(0), sh);
  else
    acc = block_reduce(acc, SumOp{}, S(0), sh);
  if (threadIdx.x == 0) partials[blockIdx.x] = static_cast<double>(acc);
}

// The partials in a fixed order, then the root: out = (sum)^(1/p), or the max.
__global__ void __launch_bounds__(1024)
    norm_final_kernel(const double* __restrict partials, int64_t count, double p, bool inf, double* __restrict out) {
  __shared__ double sh[kWarp];
  double acc = 0;
  for (int64_t b = threadIdx.x; b < count; b += blockDim.x)
    acc = inf ? om::nan_max(partials[b], acc) : acc + partials[b];
  acc = inf ? block_reduce(acc, MaxOp{}, 0.0, sh) : block_reduce(acc, SumOp{}, 0.0, sh);
  if (threadIdx.x == 0) *out = inf ? acc : p == 2 ? std::sqrt(acc) : std::pow(acc, 1 / p);
}

// The raw pointers of one operand list (empty when the list is).
std::vector<void*> pointers(const TensorList& l) {
  std::vector<void*> out;
  out.reserve(l.size());
  for (const Tensor& t : l) out.push_back(dptr<void>(t));
  return out;
}

// Plans and launches op over the lists (params first); every list of one dtype, on one device.
// While a graph captures, the step's scalars go to a slot of the graph (rewritten before each replay) and
// the kernel reads them there; while the graph's host code re-runs, they are written and nothing launches.
template <class T, int Depth, class Op>
void launch_multi(const std::array<const TensorList*, Depth>& lists, Op op) {
  const TensorList& params = *lists[0];
  const int dev = device_index(params[0].device(), "optimizer step");
  const graph::ScalarRoute route = graph::route_scalars(dev, &op.p, sizeof op.p, static_cast<int64_t>(params.size()));
  if (route.kind == graph::ScalarRoute::Kind::kSkip) return;
  if (route.kind == graph::ScalarRoute::Kind::kSlot)
    op.slot = static_cast<const typename Op::Params*>(route.device_ptr);
  DeviceGuard guard(dev);
  cudaStream_t stream = current_stream(dev);
  std::vector<int64_t> numels;
  numels.reserve(params.size());
  for (const Tensor& p : params) numels.push_back(p.numel());
  std::vector<void*> ptrs[Depth];
  for (int k = 0; k < Depth; ++k) ptrs[k] = pointers(*lists[k]);
  for (const MtaLaunch& l : plan_multi_tensor(numels, mta_max_tensors(Depth))) {
    const MtaArgs<Depth> args = mta_args<Depth>(l, numels, ptrs);
    multi_tensor_kernel<T, Depth, Op><<<static_cast<unsigned>(l.blocks.size()), kThreads, 0, stream>>>(args, op);
    EMBER_CUDA_CHECK(cudaGetLastError());
  }
}

TensorList one(const Tensor& t) { return t.defined() ? TensorList{t} : TensorList{}; }

}  // namespace

void sgd_step_multi(const TensorList& params, const TensorList& grads, const TensorList& bufs, const SgdStepArgs& h) {
  visit_dtype<FloatTypes>(params[0].dtype(), "[sgd_step_]", [&]<class T>() {
    const SgdOp<T> op{{om::sgd_scalars<acc_t<T>>(h), om::sgd_flags(h)}, nullptr};
    launch_multi<T, 3>({&params, &grads, &bufs}, op);
  });
}
void adam_step_multi(const TensorList& params, const TensorList& grads, const TensorList& exp_avgs,
                     const TensorList& exp_avg_sqs, const TensorList& max_exp_avg_sqs, const AdamStepArgs& h) {
  visit_dtype<FloatTypes>(params[0].dtype(), "[adam_step_]", [&]<class T>() {
    const AdamOp<T> op{{om::adam_scalars<acc_t<T>>(h), om::adam_flags<acc_t<T>>(h)}, nullptr};
    launch_multi<T, 5>({&params, &grads, &exp_avgs, &exp_avg_sqs, &max_exp_avg_sqs}, op);
  });
}
void rmsprop_step_multi(const TensorList& params, const TensorList& grads, const TensorList& square_avgs,
                        const TensorList& grad_avgs, const TensorList& bufs, const RmspropStepArgs& h) {
  visit_dtype<FloatTypes>(params[0].dtype(), "[rmsprop_step_]", [&]<class T>() {
    const RmspropOp<T> op{{om::rmsprop_scalars<acc_t<T>>(h), om::rmsprop_flags<acc_t<T>>(h)}, nullptr};
    launch_multi<T, 5>({&params, &grads, &square_avgs, &grad_avgs, &bufs}, op);
  });
}
void adagrad_step_multi(const TensorList& params, const TensorList& grads, const TensorList& sums,
                        const AdagradStepArgs& h) {
  visit_dtype<FloatTypes>(params[0].dtype(), "[adagrad_step_]", [&]<class T>() {
    const AdagradOp<T> op{{om::adagrad_scalars<acc_t<T>>(h), om::adagrad_flags(h)}, nullptr};
    launch_multi<T, 3>({&params, &grads, &sums}, op);
  });
}

void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& buf, const SgdStepArgs& h) {
  cuda::sgd_step_multi({param}, {grad}, one(buf), h);
}
void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const Tensor& max_exp_avg_sq, const AdamStepArgs& h) {
  cuda::adam_step_multi({param}, {grad}, {exp_avg}, {exp_avg_sq}, one(max_exp_avg_sq), h);
}
void rmsprop_step(const Tensor& param, const Tensor& grad, const Tensor& square_avg, const Tensor& grad_avg,
                  const Tensor& buf, const RmspropStepArgs& h) {
  cuda::rmsprop_step_multi({param}, {grad}, {square_avg}, one(grad_avg), one(buf), h);
}
void adagrad_step(const Tensor& param, const Tensor& grad, const Tensor& sum, const AdagradStepArgs& h) {
  cuda::adagrad_step_multi({param}, {grad}, {sum}, h);
}

Tensor multi_tensor_norm(const TensorList& tensors, double p, DType out_dtype) {
  const Device device = tensors[0].device();
  const int dev = device_index(device, "clip_grad_norm_");
  DeviceGuard guard(dev);
  cudaStream_t stream = current_stream(dev);
  const bool inf = std::isinf(p);
  // One plan per dtype; every block of every launch writes its own partial.
  std::map<DType, std::vector<size_t>> by_dtype;
  for (size_t j = 0; j < tensors.size(); ++j) by_dtype[tensors[j].dtype()].push_back(j);
  struct Group {
    DType dt;
    std::vector<int64_t> numels;
    std::vector<void*> ptrs[1];
    std::vector<MtaLaunch> launches;
  };
  std::vector<Group> groups;
  int64_t partial_count = 0;
  for (const auto& [dt, idx] : by_dtype) {
    Group g{.dt = dt, .numels = {}, .ptrs = {}, .launches = {}};
    for (size_t j : idx) {
      g.numels.push_back(tensors[j].numel());
      g.ptrs[0].push_back(dptr<void>(tensors[j]));
    }
    g.launches = plan_multi_tensor(g.numels, mta_max_tensors(1));
    for (const MtaLaunch& l : g.launches) partial_count += static_cast<int64_t>(l.blocks.size());
    groups.push_back(std::move(g));
  }
  Tensor partials = make_tensor({std::max<int64_t>(partial_count, 1)}, kF64, device);
  Tensor out = make_tensor({}, kF64, device);
  auto* part = dptr<double>(partials);
  int64_t offset = 0;
  for (const Group& g : groups) {
    visit_dtype<FloatTypes>(g.dt, "[clip_grad_norm_]", [&]<class T>() {
      for (const MtaLaunch& l : g.launches) {
        const MtaArgs<1> args = mta_args<1>(l, g.numels, g.ptrs);
        const auto blocks = static_cast<unsigned>(l.blocks.size());
        if (inf)
          norm_partial_kernel<T, true><<<blocks, kThreads, 0, stream>>>(args, p, part + offset);
        else
          norm_partial_kernel<T, false><<<blocks, kThreads, 0, stream>>>(args, p, part + offset);
        EMBER_CUDA_CHECK(cudaGetLastError());
        offset += blocks;
      }
    });
  }
  norm_final_kernel<<<1, 1024, 0, stream>>>(part, offset, p, inf, dptr<double>(out));
  EMBER_CUDA_CHECK(cudaGetLastError());
  return out_dtype == kF64 ? out : out.to(out_dtype);
}

}  // namespace ember::kernels::cuda
