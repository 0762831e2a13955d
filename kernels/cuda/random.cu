// CUDA random fills over Philox (kernels/philox.hpp): element i draws from block base + i/2 exactly as
// kernels/cpu/random.cpp does, so a seed and offset give the same numbers on CPU and GPU. The affine
// maps are explicit fmas on both sides (compilers fuse or not at will; an explicit fma is one rounding).
#include "kernels/cuda/loops.cuh"
#include "kernels/philox.hpp"
#include "kernels/random.hpp"

namespace ember::kernels::cuda {
namespace {

template <class T>
__global__ void __launch_bounds__(kThreads)
    random_kernel(T* out, int64_t n, Distribution dist, double a, double b, const double* probs, uint64_t seed,
                  uint64_t base, const uint64_t* __restrict slot) {
  if (slot != nullptr) {  // a graph replay: this step's seed and offset, written by the host before launch
    seed = slot[0];
    base = slot[1];
  }
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    DrawAt d(seed, base, i);
    double v = 0;
    switch (dist) {
      case Distribution::Uniform:
        v = fma(b - a, d.uniform(), a);
        break;
      case Distribution::Normal:
        v = fma(b, d.normal(), a);
        break;
      case Distribution::Bernoulli:
        v = d.uniform() < (probs ? probs[i] : a) ? b : 0.0;
        break;
      case Distribution::RandInt: {
        auto range = static_cast<uint64_t>(b - a);
        v = a + static_cast<double>(d.bits64() % range);
        break;
      }
    }
    T o = convert_from<T>(v);
    if (dist == Distribution::Uniform && b > a && static_cast<double>(load(o)) >= b) o = largest_below<T>(b);
    out[i] = o;
  }
}

}  // namespace

void random_fill(const Tensor& out, const RandomParams& p, uint64_t seed, uint64_t base) {
  const int dev = device_index(out.device(), "random");
  EMBER_CHECK(out.is_contiguous(), ValueError, "[random] expects a contiguous output, got ", describe(out));
  const double* probs = nullptr;
  if (p.probs) {
    EMBER_CHECK(p.probs->device() == out.device() && p.probs->dtype() == kF64 && p.probs->is_contiguous() &&
                    p.probs->numel() == out.numel(),
                ValueError, "[bernoulli] probabilities ", describe(*p.probs),
                " must be contiguous float64 on the output's device ", describe(out));
    probs = dptr<const double>(*p.probs);
  }
  const int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard guard(dev);
  visit_dtype<AllTypes>(out.dtype(), "[random]", [&]<class T>() {
    random_kernel<T><<<blocks_for(n, kThreads), kThreads, 0, current_stream(dev)>>>(dptr<T>(out), n, p.dist, p.a, p.b,
                                                                                    probs, seed, base, p.philox_slot);
    EMBER_CUDA_CHECK(cudaGetLastError());
  });
}

}  // namespace ember::kernels::cuda
