// Trains a small character-level GPT on Pride and Prejudice (bundled) and samples from it.
// Usage: char_gpt [max_minutes] [--device cpu|cuda|auto] (default 14 minutes). Trains for 5000 steps or until the time
// is up, whichever comes first. Goal: validation loss under 1.7 nats per character within 15 minutes on 2 cores; exits
// non-zero when the final validation loss is not under 1.7. Logs, the chart and checkpoints go under
// runs/char_gpt/.
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "char_gpt.hpp"
#include "examples/device_flag.hpp"

int main(int argc, char** argv) {
  try {
    char_gpt::Config cfg;
    cfg.accelerator = examples::take_device_flag(argc, argv);
    if (argc > 1) cfg.max_seconds = 60 * std::atof(argv[1]);
    std::printf("char GPT: %lld layers, d %lld, %lld heads, context %lld, batch %lld on Pride and Prejudice\n",
                static_cast<long long>(cfg.layers), static_cast<long long>(cfg.d_model),
                static_cast<long long>(cfg.heads), static_cast<long long>(cfg.context),
                static_cast<long long>(cfg.batch_size));
    auto r = char_gpt::train(cfg, ember::data::pride_and_prejudice());
    for (const auto& [step, loss] : r.val_losses)
      std::printf("step %5lld  val loss %.4f\n", static_cast<long long>(step), loss);
    std::printf("\n%s\n\nvalidation loss %.3f nats/char after %lld steps in %.0f s (goal: under 1.7)\n",
                r.sample.c_str(), r.final_val_loss, static_cast<long long>(r.steps), r.seconds);
    std::printf("logs, chart and checkpoints: %s\n", r.log_dir.c_str());
    return r.final_val_loss < 1.7 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "char_gpt: %s\n", e.what());
    return 2;
  }
}
