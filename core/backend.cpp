// The global backend switches (see backend.hpp): one atomic each, read by the kernels on every call.
#include "core/backend.hpp"

#include <atomic>

#include "core/error.hpp"

namespace ember {
namespace {
enum Precision : int { kHighest, kHigh, kMedium };
std::atomic<int> g_f32_matmul_precision{kHighest};
}  // namespace

void set_float32_matmul_precision(const std::string& precision) {
  int p = precision == "highest" ? kHighest : precision == "high" ? kHigh : precision == "medium" ? kMedium : -1;
  EMBER_CHECK(p >= 0, ValueError, "[set_float32_matmul_precision] expected 'highest', 'high' or 'medium', got '",
              precision, "'");
  g_f32_matmul_precision.store(p, std::memory_order_relaxed);
}

std::string get_float32_matmul_precision() {
  switch (g_f32_matmul_precision.load(std::memory_order_relaxed)) {
    case kHigh:
      return "high";
    case kMedium:
      return "medium";
    default:
      return "highest";
  }
}

bool float32_matmul_allows_tf32() { return g_f32_matmul_precision.load(std::memory_order_relaxed) != kHighest; }

namespace {
std::atomic<bool> g_cudnn_benchmark{false};
}  // namespace
void set_cudnn_benchmark(bool on) { g_cudnn_benchmark.store(on, std::memory_order_relaxed); }
bool cudnn_benchmark() { return g_cudnn_benchmark.load(std::memory_order_relaxed); }

}  // namespace ember
