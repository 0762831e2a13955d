// 2-byte floating types: IEEE half and bfloat16, with exact round-to-nearest-even conversion from
// float, usable on host and device (EMBER_HD). Arithmetic goes through float.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define EMBER_HD __host__ __device__ __forceinline__
#else
#define EMBER_HD inline
#endif

namespace ember {

namespace detail {
EMBER_HD uint32_t f32_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}
EMBER_HD float bits_f32(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}
}  // namespace detail

struct half {
  uint16_t bits = 0;
  half() = default;
  EMBER_HD half(float f) : bits(from_float(f)) {}
  EMBER_HD operator float() const { return to_float(bits); }
  static EMBER_HD half from_bits(uint16_t b) { half h; h.bits = b; return h; }

  static EMBER_HD uint16_t from_float(float f) {
    uint32_t x = detail::f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return static_cast<uint16_t>(sign | (ax > 0x7f800000u ? 0x7e00u : 0x7c00u));
    if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
    if (ax < 0x38800000u) {                                               // subnormal or zero in half
      // Scale into the subnormal range with a float add: the FPU rounds to nearest even for us.
      float v = detail::bits_f32(ax) + 0.5f;
      return static_cast<uint16_t>(sign | (detail::f32_bits(v) - 0x3f000000u));
    }
    uint32_t mant_odd = (ax >> 13) & 1u;
    ax += 0xc8000fffu + mant_odd;  // rebias exponent (-112 << 23) and round half to even
    return static_cast<uint16_t>(sign | (ax >> 13));
  }
  static EMBER_HD float to_float(uint16_t h) {
    uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t em = h & 0x7fffu;
    if (em >= 0x7c00u) return detail::bits_f32(sign | 0x7f800000u | (em & 0x3ffu) << 13);
    if (em < 0x0400u) {  // subnormal: value = mant * 2^-24
      float v = static_cast<float>(em) * 5.9604644775390625e-08f;
      return detail::bits_f32(sign | detail::f32_bits(v));
    }
    return detail::bits_f32(sign | ((em << 13) + 0x38000000u));
  }
};

struct bfloat16 {
  uint16_t bits = 0;
  bfloat16() = default;
  EMBER_HD bfloat16(float f) : bits(from_float(f)) {}
  EMBER_HD operator float() const { return detail::bits_f32(static_cast<uint32_t>(bits) << 16); }
  static EMBER_HD bfloat16 from_bits(uint16_t b) { bfloat16 h; h.bits = b; return h; }
  static EMBER_HD uint16_t from_float(float f) {
    uint32_t x = detail::f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
    x += 0x7fffu + ((x >> 16) & 1u);
    return static_cast<uint16_t>(x >> 16);
  }
};

}  // namespace ember
