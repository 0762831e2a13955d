// CPU random fills, parallel over elements (each element's draw is independent).
#include "kernels/random.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <cmath>
#include <limits>
#include <type_traits>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

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
// kernels/philox.hpp, laid out lane-major (c[word][block]) so that 8 blocks share one AVX2 register.
void philox_lanes(uint64_t seed, uint64_t counter0, uint32_t (&c)[4][kLanes]) {
  for (int k = 0; k < kLanes; ++k) {
    uint64_t ctr = counter0 + static_cast<uint64_t>(k);
    c[0][k] = static_cast<uint32_t>(ctr);
    c[1][k] = static_cast<uint32_t>(ctr >> 32);
    c[2][k] = 0;
    c[3][k] = 0;
  }
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
#if defined(__AVX2__)
  // The 32x32->64 multiplies by hand: vpmuludq takes the even 32-bit lanes, so the odd ones are
  // shifted down for a second multiply, and the high and low halves are blended back into place.
  const __m256i m0 = _mm256_set1_epi32(static_cast<int>(0xD2511F53u));
  const __m256i m1 = _mm256_set1_epi32(static_cast<int>(0xCD9E8D57u));
  auto mul = [](__m256i a, __m256i m, __m256i& lo) {
    __m256i even = _mm256_mul_epu32(a, m), odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
    lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
    return _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
  };
  for (int half = 0; half < kLanes; half += 8) {
    __m256i x[4];
    for (int w = 0; w < 4; ++w) x[w] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(&c[w][half]));
    uint32_t r0 = k0, r1 = k1;
    for (int r = 0; r < 10; ++r) {
      __m256i lo0, lo1;
      __m256i hi0 = mul(x[0], m0, lo0), hi1 = mul(x[2], m1, lo1);
      x[0] = _mm256_xor_si256(_mm256_xor_si256(hi1, x[1]), _mm256_set1_epi32(static_cast<int>(r0)));
      x[2] = _mm256_xor_si256(_mm256_xor_si256(hi0, x[3]), _mm256_set1_epi32(static_cast<int>(r1)));
      x[1] = lo1;
      x[3] = lo0;
      r0 += 0x9E3779B9u;
      r1 += 0xBB67AE85u;
    }
    for (int w = 0; w < 4; ++w) _mm256_storeu_si256(reinterpret_cast<__m256i*>(&c[w][half]), x[w]);
  }
#else
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
#endif
}

// u01_53(x, y) < prob as an integer test: the 53-bit value u01_53 scales is below ceil(prob * 2^53)
// (the scaling is exact), so this keeps exactly the elements the double comparison keeps.
inline uint64_t bernoulli_threshold(double prob) { return static_cast<uint64_t>(std::ceil(std::ldexp(prob, 53))); }

// A whole group of kLanes blocks (2 * kLanes floats) of a Bernoulli draw with one probability.
void bernoulli_group(float* o, const uint32_t (&c)[4][kLanes], uint64_t threshold, float value) {
#if defined(__AVX2__)
  // Four blocks per step: element 2k takes words (0, 1) of block k, element 2k + 1 words (2, 3). The
  // 64-bit compare masks of the two are interleaved into 32-bit lanes by one blend.
  const __m256i thr = _mm256_set1_epi64x(static_cast<int64_t>(threshold));
  const __m256 v = _mm256_set1_ps(value);
  auto keep = [&](int w, int k) {
    __m256i x = _mm256_cvtepu32_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(&c[w][k])));
    __m256i y = _mm256_cvtepu32_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(&c[w + 1][k])));
    return _mm256_cmpgt_epi64(thr, _mm256_xor_si256(_mm256_slli_epi64(x, 21), _mm256_srli_epi64(y, 11)));
  };
  for (int k = 0; k < kLanes; k += 4) {
    __m256i mask = _mm256_blend_epi32(keep(0, k), keep(2, k), 0xAA);
    _mm256_storeu_ps(o + 2 * k, _mm256_and_ps(_mm256_castsi256_ps(mask), v));
  }
#else
  for (int k = 0; k < kLanes; ++k)
    for (int h = 0; h < 2; ++h) {
      const uint64_t bits = (static_cast<uint64_t>(c[2 * h][k]) << 21) ^ (c[2 * h + 1][k] >> 11);
      o[2 * k + h] = bits < threshold ? value : 0.0f;
    }
#endif
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
  // Dropout's mask: one probability into floats, whole groups at a time.
  constexpr bool kFastBernoulli = D == Distribution::Bernoulli && std::is_same_v<T, float>;
  const uint64_t threshold = kFastBernoulli ? bernoulli_threshold(p.a) : 0;
  for (int64_t b0 = begin >> 1; 2 * b0 < end; b0 += kLanes) {
    philox_lanes(seed, base + static_cast<uint64_t>(b0), c);
    if constexpr (kFastBernoulli) {
      if (probs == nullptr && 2 * b0 >= begin && 2 * (b0 + kLanes) <= end) {
        bernoulli_group(o + 2 * b0, c, threshold, static_cast<float>(p.b));
        continue;
      }
    }
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
