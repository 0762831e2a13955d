// Trains the LeNet-5-style CNN on MNIST and reports test accuracy (goal: at least 99.0%).
// Usage: mnist_cnn [MNIST_DIR] [epochs] [--device cpu|cuda|auto] [--trainer.* / --data.* / --model.* ...]
// [--config FILE] (train::Cli; --help lists the options, --print_config the resolved config, also written as
// config.yaml beside the logs). The folder holds the four IDX files
// (tools/fetch_mnist.sh downloads them); by default the shared copy beside the repository (../shared/data/mnist). Logs,
// the chart and the last checkpoint go under runs/mnist_cnn/. SIGTERM or SIGUSR1 stops the run after its current step
// with a checkpoint; running the same command again resumes it. Under `mpirun -np N` it trains with DDP over N
// processes (rank 0 prints and writes).
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "mnist_cnn.hpp"

int main(int argc, char** argv) {
  try {
    using namespace ember;
    using mnist_cnn::Config;
    Config cfg;
    cfg.root = EMBER_DEFAULT_MNIST_DIR;
    train::TrainerOptions options = mnist_cnn::trainer_options(cfg);
    nlohmann::json hparams = {{"max_lr", cfg.max_lr}};
    train::Cli cli("mnist_cnn",
                   "Trains a LeNet-5-style CNN on MNIST (Adam, one-cycle schedule).\n[MNIST_DIR] is --data.root, "
                   "[epochs] --trainer.max_epochs.");
    cli.trainer(options)
        .add_options("data", cfg,
                     {train::cli_field("root", &Config::root, "folder with the four MNIST IDX files"),
                      train::cli_field("batch_size", &Config::batch_size, "training samples per batch"),
                      train::cli_field("limit_train", &Config::limit_train, "use the first N training images (0: all)"),
                      train::cli_field("limit_test", &Config::limit_test, "use the first N test images (0: all)"),
                      train::cli_field("seed", &Config::seed, "the shuffling and the initial weights")})
        .add_hparams("model", hparams)
        .alias("--device", "trainer.accelerator")
        .positional("[MNIST_DIR] [epochs]");
    if (cli.parse(argc, argv) == train::Cli::Action::kExit) return 0;
    if (argc > 1) cfg.root = argv[1];
    if (argc > 2) options.max_epochs = std::atoll(argv[2]);
    cfg.epochs = options.max_epochs.value_or(cfg.epochs);
    cfg.max_lr = hparams.at("max_lr").get<double>();
    options.callbacks.push_back(cli.save_config_callback());
    if (ember::dist::rank() != 0) {  // under DDP rank 0 speaks for the group
      auto r = mnist_cnn::train(cfg, options);
      return r.interrupted || r.test_accuracy >= 0.99 ? 0 : 1;
    }
    std::printf("LeNet-5-style CNN on MNIST (%s), Adam + one-cycle, %lld epochs\n", cfg.root.c_str(),
                static_cast<long long>(cfg.epochs));
    auto r = mnist_cnn::train(cfg, options);
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
