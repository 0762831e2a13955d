// Trains the digits MLP with a custom Callback (epoch_stats_callback.hpp) that prints each epoch's time,
// throughput and accuracy, and stops at 95% held-out accuracy.
// Usage: epoch_stats_callback [max_epochs] [goal_acc]
#include "epoch_stats_callback.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>

int main(int argc, char** argv) {
  try {
    const int64_t max_epochs = argc > 1 ? std::atoll(argv[1]) : 30;
    const double goal = argc > 2 ? std::atof(argv[2]) : 0.95;
    const auto records = extending::train_with_epoch_stats(max_epochs, goal);
    for (const auto& r : records)
      std::printf("epoch %2lld  %6.3f s  %5lld samples  %8.0f samples/s  val_acc %.4f\n",
                  static_cast<long long>(r.epoch), r.seconds, static_cast<long long>(r.samples), r.samples_per_s,
                  r.val_acc);
    const bool reached = !records.empty() && records.back().val_acc >= goal;
    std::printf("%s %.0f%% after %zu epoch(s)\n", reached ? "reached" : "did not reach", 100 * goal, records.size());
    return reached ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "epoch_stats_callback: %s\n", e.what());
    return 2;
  }
}
