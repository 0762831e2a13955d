// Math the compiler can vectorise: branch-free float approximations used by the CPU loops where
// libm would stay scalar (std::exp in a loop is not vectorised without -ffast-math).
#pragma once
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace ember::kernels {

// exp for float that the compiler vectorises (Cephes polynomial, ~1 ulp); 2^n is applied in two
// halves so that results from about -104 to 88.7 underflow and overflow as std::exp does.
inline float exp_fast(float x) {
  x = std::min(std::max(x, -104.0f), 88.8f);               // NaN passes through both
  const float t = x * 1.44269504088896341f + 12582912.0f;  // round(x / ln2) in the low mantissa bits
  const float n = t - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float q = 1.9875691500e-4f;
  q = q * r + 1.3981999507e-3f;
  q = q * r + 8.3334519073e-3f;
  q = q * r + 4.1665795894e-2f;
  q = q * r + 1.6666665459e-1f;
  q = q * r + 5.0000001201e-1f;
  float y = q * r * r + r + 1.0f;
  const int32_t ni = static_cast<int32_t>(std::bit_cast<uint32_t>(t) - 0x4B400000u);
  const int32_t n1 = ni >> 1, n2 = ni - n1;
  y *= std::bit_cast<float>(static_cast<uint32_t>(n1 + 127) << 23);
  return y * std::bit_cast<float>(static_cast<uint32_t>(n2 + 127) << 23);
}

// erfc(z) for z >= 0 as t * exp(-z^2 + P(t)), t = 1 / (1 + z / 2): the Chebyshev fit of Numerical
// Recipes (relative error below 1.2e-7 in exact arithmetic, a few float ulp here), branch-free.
inline float erfc_nonneg_fast(float z) {
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  return t * exp_fast(p - z * z);
}

// erf for float: the odd Taylor series near 0 (where 1 - erfc would cancel), 1 - erfc elsewhere.
inline float erf_fast(float x) {
  const float a = std::abs(x), x2 = x * x;
  float s = -1.0f / 1320.0f;  // x (1 - x^2/3 + x^4/10 - x^6/42 + x^8/216 - x^10/1320) * 2/sqrt(pi)
  s = s * x2 + 1.0f / 216.0f;
  s = s * x2 - 1.0f / 42.0f;
  s = s * x2 + 1.0f / 10.0f;
  s = s * x2 - 1.0f / 3.0f;
  s = s * x2 + 1.0f;
  const float near = 1.12837916709551257f * x * s;
  const float far = std::copysign(1.0f - erfc_nonneg_fast(a), x);
  return a < 0.5f ? near : far;
}

// The standard normal CDF Phi(x) = erfc(-x / sqrt 2) / 2, accurate in both tails.
inline float normal_cdf_fast(float x) {
  const float e = 0.5f * erfc_nonneg_fast(std::abs(x) * 0.70710678118654752f);
  return x >= 0.0f ? 1.0f - e : e;
}

}  // namespace ember::kernels
