// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"): a counter-based
// generator, so element i of a draw depends only on (seed, offset, i) on any device and thread.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/half.hpp"

namespace ember::kernels {

struct Philox {
  uint32_t v[4];
  EMBER_HD Philox(uint64_t seed, uint64_t counter) {
    uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
    uint32_t c[4] = {static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0, 0};
    for (int r = 0; r < 10; ++r) {
      uint64_t p0 = uint64_t{0xD2511F53u} * c[0];
      uint64_t p1 = uint64_t{0xCD9E8D57u} * c[2];
      uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
      uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
      c[0] = hi1 ^ c[1] ^ k0;
      c[1] = lo1;
      c[2] = hi0 ^ c[3] ^ k1;
      c[3] = lo0;
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    for (int i = 0; i < 4; ++i) v[i] = c[i];
  }
};

// Uniform in [0, 1) with 24 bits, and in (0, 1] for logs.
EMBER_HD float u01(uint32_t x) { return static_cast<float>(x >> 8) * 5.9604644775390625e-08f; }
EMBER_HD double u01_53(uint32_t hi, uint32_t lo) {
  return static_cast<double>((static_cast<uint64_t>(hi) << 21) ^ (lo >> 11)) * 1.1102230246251565e-16;
}

// Element i of a draw that started at Philox block `base`: each element uses half a block (two lanes).
struct DrawAt {
  uint32_t a, b;
  EMBER_HD DrawAt(uint64_t seed, uint64_t base, int64_t i) {
    Philox p(seed, base + static_cast<uint64_t>(i >> 1));
    a = p.v[(i & 1) * 2];
    b = p.v[(i & 1) * 2 + 1];
  }
  EMBER_HD double uniform() const { return u01_53(a, b); }
  EMBER_HD double normal() const {
    double u1 = 1.0 - static_cast<double>(u01(a));  // (0, 1]
    double u2 = static_cast<double>(u01(b));
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  EMBER_HD uint64_t bits64() const { return (static_cast<uint64_t>(a) << 32) | b; }
};

// The largest T below b: where rounding a uniform draw to a narrow type reaches the open bound b,
// both backends use this value instead, so draws stay in [a, b) and agree bit for bit.
template <class T>
EMBER_HD T largest_below(double b) {
  if constexpr (std::is_same_v<T, half> || std::is_same_v<T, bfloat16>) {
    T t(static_cast<float>(b));
    float f = static_cast<float>(t);
    if (f < b) return t;
    if (f == 0.0f) return T::from_bits(0x8001);  // the negative value closest to zero
    return T::from_bits(static_cast<uint16_t>(f > 0 ? t.bits - 1 : t.bits + 1));
  } else if constexpr (std::is_same_v<T, float>) {
    float f = static_cast<float>(b);
    return f < b ? f : ::nextafterf(f, -INFINITY);
  } else if constexpr (std::is_same_v<T, double>) {
    return ::nextafter(b, -INFINITY);
  } else {
    return static_cast<T>(b);
  }
}

// Blocks a draw of n elements consumes.
inline uint64_t philox_blocks(int64_t n) { return static_cast<uint64_t>((n + 1) / 2); }

}  // namespace ember::kernels
