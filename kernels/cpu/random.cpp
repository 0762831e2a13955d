// CPU random fills, parallel over elements (each element's draw is independent).
#include "kernels/random.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <cmath>
#include <limits>

#include "kernels/cpu/loops.hpp"
#include "kernels/philox.hpp"

namespace ember::kernels {

void random_fill(const Tensor& out, const RandomParams& p, uint64_t seed, uint64_t base) {
  if (out.device().is_cuda()) return cuda::random_fill(out, p, seed, base);
  EMBER_CHECK(out.device().is_cpu(), DeviceError, "[random] device ", out.device(), " is not supported in this build");
  cpu::random_fill(out, p, seed, base);
}

namespace cpu {

namespace {

constexpr int kLanes = 16;

// Philox4x32-10 for the kLanes blocks counter0, counter0 + 1, ...: the same rounds as Philox in
// kernels/philox.hpp, laid out lane-major so the compiler vectorises the 32x32->64 multiplies.
void philox_lanes(uint64_t seed, uint64_t counter0, uint32_t (&c)[4][kLanes]) {
  for (int k = 0; k < kLanes; ++k) {
    uint64_t ctr = counter0 + static_cast<uint64_t>(k);
    c[0][k] = static_cast<uint32_t>(ctr);
    c[1][k] = static_cast<uint32_t>(ctr >> 32);
    c[2][k] = 0;
    c[3][k] = 0;
  }
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    for (int k = 0; k < kLanes; ++k) {
      uint64_t p0 = uint64_t{0xD2511F53u} * c[0][k];
      uint64_t p1 = uint64_t{0xCD9E8D57u} * c[2][k];
      uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c[1][k] ^ k0;
      uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c[3][k] ^ k1;
      c[0][k] = n0;
      c[1][k] = static_cast<uint32_t>(p1);
      c[2][k] = n2;
      c[3][k] = static_cast<uint32_t>(p0);
    }
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

// Element i's value from its two Philox words (x, y), exactly as DrawAt computes it.
template <Distribution D, class T>
inline T draw_value(uint32_t x, uint32_t y, const RandomParams& p, double prob) {
  double v = 0;
  if constexpr (D == Distribution::Uniform) {
    v = std::fma(p.b - p.a, u01_53(x, y), p.a);  // fma: as CUDA
  } else if constexpr (D == Distribution::Normal) {
    double u1 = 1.0 - static_cast<double>(u01(x)), u2 = static_cast<double>(u01(y));
    v = std::fma(p.b, std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2), p.a);
  } else if constexpr (D == Distribution::Bernoulli) {
    v = u01_53(x, y) < prob ? p.b : 0.0;
  } else {
    v = p.a + static_cast<double>(((static_cast<uint64_t>(x) << 32) | y) % static_cast<uint64_t>(p.b - p.a));
  }
  T o = convert<T>(v);
  if constexpr (D == Distribution::Uniform)
    if (p.b > p.a && static_cast<double>(load(o)) >= p.b) o = largest_below<T>(p.b);
  return o;
}

// Elements [begin, end): element i takes lanes 0-1 (even i) or 2-3 (odd i) of block base + i / 2.
template <Distribution D, class T>
void fill_range(T* o, const double* probs, const RandomParams& p, uint64_t seed, uint64_t base, int64_t begin,
                int64_t end) {
  uint32_t c[4][kLanes];
  for (int64_t b0 = begin >> 1; 2 * b0 < end; b0 += kLanes) {
    philox_lanes(seed, base + static_cast<uint64_t>(b0), c);
    for (int k = 0; k < kLanes; ++k)
      for (int h = 0; h < 2; ++h) {
        int64_t i = 2 * (b0 + k) + h;
        if (i < begin || i >= end) continue;
        o[i] = draw_value<D, T>(c[2 * h][k], c[2 * h + 1][k], p, probs ? probs[i] : p.a);
      }
  }
}

}  // namespace

void random_fill(const Tensor& out, const RandomParams& p, uint64_t seed, uint64_t base) {
  visit_dtype<AllTypes>(out.dtype(), "[random]", [&]<class T>() {
    T* o = static_cast<T*>(out.raw_data());
    const double* probs = p.probs ? static_cast<const double*>(p.probs->raw_data()) : nullptr;
    auto body = [&](int64_t begin, int64_t end) {
      switch (p.dist) {
        case Distribution::Uniform:
          return fill_range<Distribution::Uniform>(o, probs, p, seed, base, begin, end);
        case Distribution::Normal:
          return fill_range<Distribution::Normal>(o, probs, p, seed, base, begin, end);
        case Distribution::Bernoulli:
          return fill_range<Distribution::Bernoulli>(o, probs, p, seed, base, begin, end);
        case Distribution::RandInt:
          return fill_range<Distribution::RandInt>(o, probs, p, seed, base, begin, end);
      }
    };
    int64_t n = out.numel();
    if (n <= kGrain)
      body(0, n);
    else
      tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, kGrain / 4),
                        [&](const tbb::blocked_range<int64_t>& r) { body(r.begin(), r.end()); });
  });
}

}  // namespace cpu
}  // namespace ember::kernels
