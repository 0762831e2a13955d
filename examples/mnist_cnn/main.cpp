// Trains the LeNet-5-style CNN on MNIST and reports test accuracy (goal: at least 99.0%).
// Usage: mnist_cnn [MNIST_DIR] [epochs] [--device cpu|cuda|auto]. The folder holds the four IDX files
// (tools/fetch_mnist.sh downloads them); by default the shared copy beside the repository (../shared/data/mnist). Logs,
// the chart and the last checkpoint go under runs/mnist_cnn/. SIGTERM or SIGUSR1 stops the run after its current step
// with a checkpoint; running the same command again resumes it. Under `mpirun -np N` it trains with DDP over N
// processes (rank 0 prints and writes).
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "examples/device_flag.hpp"
#include "mnist_cnn.hpp"

int main(int argc, char** argv) {
  try {
    mnist_cnn::Config cfg;
    cfg.accelerator = examples::take_device_flag(argc, argv);
    cfg.root = argc > 1 ? argv[1] : EMBER_DEFAULT_MNIST_DIR;
    if (argc > 2) cfg.epochs = std::atoll(argv[2]);
    if (ember::dist::rank() != 0) {  // under DDP rank 0 speaks for the group
      auto r = mnist_cnn::train(cfg);
      return r.interrupted || r.test_accuracy >= 0.99 ? 0 : 1;
    }
    std::printf("LeNet-5-style CNN on MNIST (%s), Adam + one-cycle, %lld epochs\n", cfg.root.c_str(),
                static_cast<long long>(cfg.epochs));
    auto r = mnist_cnn::train(cfg);
    if (r.interrupted) {
      std::printf("stopped by a signal; run the same command again to resume\n");
      return 0;
    }
    if (r.resumed) std::printf("(resumed an interrupted run: the epochs below are the resumed part)\n");
    for (size_t e = 0; e < r.epoch_losses.size(); ++e)
      std::printf("epoch %zu  train loss %.4f  test accuracy %.4f\n", e + 1, r.epoch_losses[e], r.epoch_accuracies[e]);
    std::printf("test accuracy %.2f%% in %.0f s (goal: at least 99.0%%)\n", 100 * r.test_accuracy, r.seconds);
    std::printf("logs, chart and checkpoint: %s\n", r.log_dir.c_str());
    return r.test_accuracy >= 0.99 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mnist_cnn: %s\n", e.what());
    return 2;
  }
}
