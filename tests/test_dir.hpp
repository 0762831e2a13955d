// Where the test sources and reference fixtures live: $EMBER_TEST_DIR when set (tools/gpu_check.sh runs a
// test binary built on another machine), else the source folder the build was configured from.
#pragma once
#include <cstdlib>

namespace ember::testing {
inline const char* test_dir() {
  const char* env = std::getenv("EMBER_TEST_DIR");
  return env != nullptr && *env != '\0' ? env : EMBER_TEST_SOURCE_DIR;
}
}  // namespace ember::testing

#define EMBER_TEST_DIR (::ember::testing::test_dir())
