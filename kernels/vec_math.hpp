// Math the compiler can vectorise: branch-free float approximations used by the CPU loops where
// libm would stay scalar (std::exp in a loop is not vectorised without -ffast-math).
#pragma once
#include <algorithm>
#include <bit>
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

}  // namespace ember::kernels
