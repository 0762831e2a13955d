// Trains Lightning's LitAutoEncoder (784-64-3-64-784, MSE, Adam) on MNIST with EarlyStopping and
// ModelCheckpoint on val_loss, then rebuilds the best checkpoint with load_from_checkpoint and reports the
// reloaded model's test reconstruction MSE (which must equal the trained model's). Exits non-zero unless it
// does and the MSE beats a 3-component PCA's (0.0516).
// Usage: mnist_autoencoder [MNIST_DIR] [epochs] [--device cpu|cuda|auto] [--trainer.* / --data.* /
// --model.* / --early_stopping.* ...] [--config FILE] (train::Cli; --help lists the options, --print_config the
// resolved config, also written as config.yaml beside the logs). MNIST_DIR holds the four IDX files
// (tools/fetch_mnist.sh downloads them); by default the shared copy beside the repository (../shared/data/mnist).
// Logs, the chart and the best checkpoint go under runs/mnist_autoencoder/.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "mnist_autoencoder.hpp"

int main(int argc, char** argv) {
  try {
    using namespace ember;
    using mnist_autoencoder::Config;
    Config cfg;
    cfg.root = EMBER_DEFAULT_MNIST_DIR;
    train::TrainerOptions options = mnist_autoencoder::trainer_options(cfg);
    nlohmann::json hparams = cfg.model;  // hidden, latent, lr: what save_hyperparameters records
    train::Cli cli("mnist_autoencoder",
                   "Trains Lightning's LitAutoEncoder on MNIST (784-64-3-64-784, MSE, Adam) and reloads its best "
                   "checkpoint.\n[MNIST_DIR] is --data.root, [epochs] --trainer.max_epochs.");
    cli.trainer(options)
        .add_options("data", cfg,
                     {train::cli_field("root", &Config::root, "folder with the four MNIST IDX files"),
                      train::cli_field("batch_size", &Config::batch_size, "training samples per batch"),
                      train::cli_field("val_size", &Config::val_size, "training images held out for validation"),
                      train::cli_field("limit_train", &Config::limit_train, "use the first N training images (0: all)"),
                      train::cli_field("limit_test", &Config::limit_test, "use the first N test images (0: all)"),
                      train::cli_field("seed", &Config::seed, "the split, the shuffling and the initial weights")})
        .add_options("early_stopping", cfg,
                     {train::cli_field("patience", &Config::patience, "validations without a better val_loss")})
        .add_hparams("model", hparams)
        .alias("--device", "trainer.accelerator")
        .positional("[MNIST_DIR] [epochs]");
    if (cli.parse(argc, argv) == train::Cli::Action::kExit) return 0;
    if (argc > 1) cfg.root = argv[1];
    if (argc > 2) options.max_epochs = std::atoll(argv[2]);
    cfg.model = hparams.get<mnist_autoencoder::Hparams>();
    options.callbacks.push_back(cli.save_config_callback());

    const bool chief = ember::dist::rank() == 0;  // under DDP rank 0 speaks for the group
    if (chief)
      std::printf("LitAutoEncoder on MNIST (%s): 784-%lld-%lld-%lld-784, Adam lr %g, up to %lld epochs\n",
                  cfg.root.c_str(), static_cast<long long>(cfg.model.hidden), static_cast<long long>(cfg.model.latent),
                  static_cast<long long>(cfg.model.hidden), cfg.model.lr,
                  static_cast<long long>(options.max_epochs.value_or(cfg.epochs)));
    auto r = mnist_autoencoder::train(cfg, options);
    // The same weights on the same data: equal up to the order of a parallel sum at most.
    const bool same =
        std::abs(r.reloaded_test_mse - r.test_mse) <= 1e-6 * r.test_mse && r.reloaded_hparams == r.hparams;
    const double pca3 = 0.0516;  // the test MSE of the best 3-component linear code (PCA), for scale
    if (chief) {
      for (size_t e = 0; e < r.epoch_losses.size(); ++e)
        std::printf("epoch %zu  train loss %.5f  val loss %.5f\n", e + 1, r.epoch_losses[e], r.val_losses[e]);
      if (r.stopped_early) std::printf("stopped early: val_loss stopped improving\n");
      std::printf("best checkpoint: %s\n", r.best_checkpoint.c_str());
      std::printf("test reconstruction MSE %.5f (first batch %.5f); reloaded with load_from_checkpoint: %.5f, %s\n",
                  r.test_mse, r.first_loss, r.reloaded_test_mse,
                  same ? "the same model" : "DIFFERENT from the trained model");
      std::printf("goal: below %.4f, the test MSE of a 3-component PCA\n", pca3);
      std::printf("%.0f s; logs, config and chart: %s\n", r.seconds, r.log_dir.c_str());
    }
    return same && r.test_mse < pca3 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mnist_autoencoder: %s\n", e.what());
    return 2;
  }
}
