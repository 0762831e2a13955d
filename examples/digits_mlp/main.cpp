// The README's main job: trains an MLP on the bundled 8x8 digits and reports held-out accuracy.
// Usage: digits_mlp [epochs] [--device cpu|cuda|auto] [--trainer.* ...] [--data.* ...] [--model.* ...]
// [--config FILE] (train::Cli: `digits_mlp --help` lists every option, `--print_config` the resolved
// config, which is also written as config.yaml beside the logs). Exits non-zero when the test accuracy
// is below 97%. Under `mpirun -np N digits_mlp` it trains with DDP over N processes (rank 0 prints and
// writes the logs).
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "digits_mlp.hpp"

int main(int argc, char** argv) {
  using namespace ember;
  using digits_mlp::Config;
  try {
    Config cfg;
    train::TrainerOptions options = digits_mlp::trainer_options(cfg);
    nlohmann::json hparams = {{"lr", cfg.lr}};
    train::Cli cli("digits_mlp",
                   "Trains a 64-128-64-10 MLP on the bundled 8x8 digits (AdamW, cosine schedule).\n[epochs] is "
                   "--trainer.max_epochs.");
    cli.trainer(options)
        .add_options("data", cfg,
                     {train::cli_field("batch_size", &Config::batch_size, "samples per batch"),
                      train::cli_field("seed", &Config::seed, "the split, the shuffling and the initial weights")})
        .add_hparams("model", hparams)
        .alias("--device", "trainer.accelerator")
        .positional("[epochs]");
    if (cli.parse(argc, argv) == train::Cli::Action::kExit) return 0;
    if (argc > 1) options.max_epochs = std::atoll(argv[1]);
    cfg.epochs = options.max_epochs.value_or(cfg.epochs);  // the cosine schedule's length
    cfg.lr = hparams.at("lr").get<double>();
    options.callbacks.push_back(cli.save_config_callback());

    const bool chief = ember::dist::rank() == 0;
    if (chief)
      std::printf("digits MLP: 1797 8x8 images, 80%% train / 20%% test, AdamW, %lld epochs\n",
                  static_cast<long long>(cfg.epochs));
    auto r = digits_mlp::train(cfg, options);
    if (chief) {
      std::printf("test accuracy %.2f%% in %.1f s on %d process%s (goal: at least 97%%)\n", 100 * r.test_accuracy,
                  r.seconds, ember::dist::world_size(), ember::dist::world_size() == 1 ? "" : "es");
      std::printf("logs, config, chart and checkpoint: %s\n", r.log_dir.c_str());
    }
    return r.test_accuracy >= 0.97 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "digits_mlp: %s\n", e.what());
    return 2;
  }
}
