// CPU scaled_dot_product_attention (issue 18): the blocked (flash-style) kernel against the composed
// matmul/softmax path, forward + backward time (best of --reps after one warm-up) and peak CPU memory
// above the inputs, per shape [batch, heads, L, E] with L = S; bench/reference/attention_cpu.py times
// torch's CPU sdpa on the same shapes. Prints one JSON line per (shape, path).
// Usage: attention_cpu [--lens 512,2048] [--heads 8] [--dim 64] [--batch 1] [--reps 5] [--causal 0|1]
//                      [--dtype f32|f64] [--fwd-only 0|1]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "ember.hpp"

using namespace ember;
namespace F = ember::nn::functional;

namespace {

double seconds_of(auto&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(std::atoll(item.c_str()));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> lens{512, 2048};
  int64_t heads = 8, dim = 64, batch = 1, reps = 5;
  bool causal = false, fwd_only = false;
  DType dt = kF32;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--lens") lens = parse_list(v);
    if (a == "--heads") heads = std::atoll(v.c_str());
    if (a == "--dim") dim = std::atoll(v.c_str());
    if (a == "--batch") batch = std::atoll(v.c_str());
    if (a == "--reps") reps = std::atoll(v.c_str());
    if (a == "--causal") causal = v == "1";
    if (a == "--fwd-only") fwd_only = v == "1";
    if (a == "--dtype") dt = v == "f64" ? kF64 : kF32;
  }
  manual_seed(0);
  for (int64_t len : lens) {
    Tensor q = randn({batch, heads, len, dim}, {.dtype = dt}).requires_grad_();
    Tensor k = randn({batch, heads, len, dim}, {.dtype = dt}).requires_grad_();
    Tensor v = randn({batch, heads, len, dim}, {.dtype = dt}).requires_grad_();
    Tensor g = randn({batch, heads, len, dim}, {.dtype = dt});
    for (const char* path : {"composed", "blocked"}) {
      SdpaBackendGuard guard(std::string(path) == "blocked" ? SdpaBackend::Blocked : SdpaBackend::Math);
      auto step = [&] {
        q.set_grad({}), k.set_grad({}), v.set_grad({});
        if (fwd_only) {
          autograd::NoGradGuard no_grad;
          (void)F::scaled_dot_product_attention(q, k, v, {}, 0.0, causal);
          return;
        }
        Tensor out = F::scaled_dot_product_attention(q, k, v, {}, 0.0, causal);
        out.backward(g);
      };
      step();                                          // warm-up
      q.set_grad({}), k.set_grad({}), v.set_grad({});  // the gradients count in the peak
      const int64_t base = memory_stats(kCPU).current_bytes;
      reset_peak_memory_stats(kCPU);
      double best = 1e30;
      for (int64_t r = 0; r < reps; ++r) best = std::min(best, seconds_of(step));
      const int64_t peak = memory_stats(kCPU).peak_bytes - base;
      nlohmann::json row{{"workload", "attention_cpu"},
                         {"path", path},
                         {"batch", batch},
                         {"heads", heads},
                         {"len", len},
                         {"dim", dim},
                         {"causal", causal},
                         {"dtype", dtype_name(dt)},
                         {"fwd_only", fwd_only},
                         {"seconds", best},
                         {"peak_mib", double(peak) / (1 << 20)}};
      std::printf("%s\n", row.dump().c_str());
      std::fflush(stdout);
    }
  }
  return 0;
}
