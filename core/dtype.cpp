// DType names, sizes and the promotion lattice.
#include "core/dtype.hpp"

#include <ostream>

namespace ember {

size_t itemsize(DType dt) {
  static constexpr size_t kSizes[] = {4, 8, 2, 2, 4, 8, 1, 1};
  return kSizes[static_cast<int>(dt)];
}

const char* dtype_name(DType dt) {
  static constexpr const char* kNames[] = {"float32", "float64", "float16", "bfloat16",
                                           "int32",   "int64",   "uint8",   "bool"};
  return kNames[static_cast<int>(dt)];
}

std::ostream& operator<<(std::ostream& os, DType dt) { return os << dtype_name(dt); }

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  if ((a == kF16 && b == kBF16) || (a == kBF16 && b == kF16)) return kF32;
  // Rank along the lattice, indexed by DType; equal ranks only occur for f16/bf16, handled above.
  static constexpr int kRank[] = {5, 6, 4, 4, 2, 3, 1, 0};
  auto rank = [](DType d) { return kRank[static_cast<int>(d)]; };
  return rank(a) >= rank(b) ? a : b;
}

void throw_unsupported_dtype(DType dt, const char* op) {
  throw DTypeError(detail::cat_str(op, " dtype ", dtype_name(dt), " is not supported"));
}

}  // namespace ember
