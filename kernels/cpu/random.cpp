// CPU random fills, parallel over elements (each element's draw is independent).
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <cmath>
#include <limits>

#include "kernels/cpu/loops.hpp"
#include "kernels/philox.hpp"
#include "kernels/random.hpp"

namespace ember::kernels {

void random_fill(const Tensor& out, const RandomParams& p, uint64_t seed, uint64_t base) {
  if (out.device().is_cuda()) return cuda::random_fill(out, p, seed, base);
  EMBER_CHECK(out.device().is_cpu(), DeviceError, "[random] device ", out.device(), " is not supported in this build");
  cpu::random_fill(out, p, seed, base);
}

namespace cpu {

void random_fill(const Tensor& out, const RandomParams& p, uint64_t seed, uint64_t base) {
  visit_dtype<AllTypes>(out.dtype(), "[random]", [&]<class T>() {
    T* o = static_cast<T*>(out.raw_data());
    const double* probs = p.probs ? static_cast<const double*>(p.probs->raw_data()) : nullptr;
    auto body = [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        DrawAt d(seed, base, i);
        double v = 0;
        switch (p.dist) {
          case Distribution::Uniform: v = std::fma(p.b - p.a, d.uniform(), p.a); break;  // fma: as CUDA
          case Distribution::Normal: v = std::fma(p.b, d.normal(), p.a); break;
          case Distribution::Bernoulli: v = d.uniform() < (probs ? probs[i] : p.a) ? 1.0 : 0.0; break;
          case Distribution::RandInt: {
            auto range = static_cast<uint64_t>(p.b - p.a);
            v = p.a + static_cast<double>(d.bits64() % range);
            break;
          }
        }
        o[i] = convert<T>(v);
        if (p.dist == Distribution::Uniform && p.b > p.a && static_cast<double>(load(o[i])) >= p.b)
          o[i] = largest_below<T>(p.b);
      }
    };
    int64_t n = out.numel();
    if (n <= kGrain) body(0, n);
    else
      tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, kGrain / 4),
                        [&](const tbb::blocked_range<int64_t>& r) { body(r.begin(), r.end()); });
  });
}

}  // namespace cpu
}  // namespace ember::kernels
