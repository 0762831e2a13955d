// doctest's main for the unit and integration suites; it ends by saying how many test cases skipped
// their CUDA part for want of a device (CUDA_OR_SKIP and the parity sweep count them).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "test_util.hpp"

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  const int rc = context.run();
  if (context.shouldExit()) return rc;
  if (const int skipped = ember::testing::cuda_skips().load())
    std::printf("[cuda] %d test cases skipped their CUDA part: %s\n", skipped,
                ember::testing::cuda_skip_reason().c_str());
  return rc;
}
