// Integers from untrusted JSON (checkpoint states): nlohmann's get<int64_t>() converts a float with a
// cast (undefined behaviour out of range) and accepts 1e30; these take integers only and raise
// ValueError naming `what` and the value otherwise.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace ember {

inline int64_t json_int64(const nlohmann::json& j, const char* what) {
  EMBER_CHECK(j.is_number_integer() && !(j.is_number_unsigned() && j.get<uint64_t>() > uint64_t(INT64_MAX)), ValueError,
              what, " must be a 64-bit integer, got ", j.dump());
  return j.get<int64_t>();
}

inline uint64_t json_uint64(const nlohmann::json& j, const char* what) {
  EMBER_CHECK(j.is_number_unsigned() || (j.is_number_integer() && j.get<int64_t>() >= 0), ValueError, what,
              " must be a non-negative 64-bit integer, got ", j.dump());
  return j.get<uint64_t>();
}

}  // namespace ember
