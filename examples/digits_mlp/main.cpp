// The README's main job: trains an MLP on the bundled 8x8 digits and reports held-out accuracy.
// Usage: digits_mlp [epochs] [--device cpu|cuda|auto]. Exits non-zero when the test accuracy is below 97%. Under
// `mpirun -np N digits_mlp` it trains with DDP over N processes (rank 0 prints and writes the logs).
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "digits_mlp.hpp"
#include "examples/device_flag.hpp"

int main(int argc, char** argv) {
  try {
    digits_mlp::Config cfg;
    cfg.accelerator = examples::take_device_flag(argc, argv);
    if (argc > 1) cfg.epochs = std::atoll(argv[1]);
    const bool chief = ember::dist::rank() == 0;
    if (chief)
      std::printf("digits MLP: 1797 8x8 images, 80%% train / 20%% test, AdamW, %lld epochs\n",
                  static_cast<long long>(cfg.epochs));
    auto r = digits_mlp::train(cfg);
    if (chief) {
      std::printf("test accuracy %.2f%% in %.1f s on %d process%s (goal: at least 97%%)\n", 100 * r.test_accuracy,
                  r.seconds, ember::dist::world_size(), ember::dist::world_size() == 1 ? "" : "es");
      std::printf("logs, chart and checkpoint: %s\n", r.log_dir.c_str());
    }
    return r.test_accuracy >= 0.97 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "digits_mlp: %s\n", e.what());
    return 2;
  }
}
