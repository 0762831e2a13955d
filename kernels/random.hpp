// Kernel entries of the random family: fill a contiguous tensor with element i drawn from Philox
// block `base + i/2` (kernels/philox.hpp), so results do not depend on threads or device.
#pragma once
#include "core/tensor.hpp"

namespace ember::kernels {

enum class Distribution { Uniform, Normal, Bernoulli, RandInt };
struct RandomParams {
  Distribution dist;
  // uniform [a, b); normal mean a, std b; bernoulli: b with probability a, else 0; randint [a, b)
  double a = 0, b = 1;
  const Tensor* probs = nullptr;  // per-element bernoulli probabilities (contiguous f64), if given
  // CUDA, while a graph captures: device memory holding {seed, base}, read when the kernel runs instead of
  // the seed and base passed by value (the host rewrites it before each replay).
  const uint64_t* philox_slot = nullptr;
};

void random_fill(const Tensor& out, const RandomParams& p, uint64_t seed, uint64_t base);

namespace cpu {
void random_fill(const Tensor& out, const RandomParams& p, uint64_t seed, uint64_t base);
}
namespace cuda {  // same draws as cpu:: for the same seed and base (kernels/cuda/random.cu)
void random_fill(const Tensor& out, const RandomParams& p, uint64_t seed, uint64_t base);
}

}  // namespace ember::kernels
