// Trains a small character-level GPT on Pride and Prejudice (bundled) and samples from it.
// Usage: char_gpt [max_minutes] [--device cpu|cuda|auto] [--trainer.* / --data.* / --model.* ...] [--config FILE]
// (default 14 minutes; train::Cli: --help lists the options, --print_config the resolved config, also written
// as config.yaml beside the logs). Trains for 5000 steps or until the time
// is up, whichever comes first. Goal: validation loss under 1.7 nats per character within 15 minutes on 2 cores; exits
// non-zero when the final validation loss is not under 1.7. Logs, the chart and checkpoints go under
// runs/char_gpt/.
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "char_gpt.hpp"

int main(int argc, char** argv) {
  try {
    using namespace ember;
    using char_gpt::Config;
    Config cfg;
    train::TrainerOptions options = char_gpt::trainer_options(cfg);
    nlohmann::json hparams = {{"layers", cfg.layers},
                              {"d_model", cfg.d_model},
                              {"heads", cfg.heads},
                              {"dropout", cfg.dropout},
                              {"lr", cfg.lr},
                              {"min_lr", cfg.min_lr},
                              {"weight_decay", cfg.weight_decay},
                              {"warmup_steps", cfg.warmup_steps},
                              {"max_minutes", cfg.max_seconds / 60}};
    train::Cli cli("char_gpt",
                   "Trains a small character-level GPT on Pride and Prejudice and samples from it.\n[max_minutes] is "
                   "--model.max_minutes.");
    cli.trainer(options)
        .add_options("data", cfg,
                     {train::cli_field("context", &Config::context, "characters per training sequence"),
                      train::cli_field("batch_size", &Config::batch_size, "sequences per batch"),
                      train::cli_field("seed", &Config::seed, "the shuffling, the initial weights and the sample")})
        .add_hparams("model", hparams)
        .alias("--device", "trainer.accelerator")
        .positional("[max_minutes]");
    if (cli.parse(argc, argv) == train::Cli::Action::kExit) return 0;
    if (argc > 1) hparams["max_minutes"] = std::atof(argv[1]);
    cfg.max_steps = options.max_steps;  // the schedule's length
    cfg.layers = hparams.at("layers").get<int64_t>();
    cfg.d_model = hparams.at("d_model").get<int64_t>();
    cfg.heads = hparams.at("heads").get<int64_t>();
    cfg.dropout = hparams.at("dropout").get<double>();
    cfg.lr = hparams.at("lr").get<double>();
    cfg.min_lr = hparams.at("min_lr").get<double>();
    cfg.weight_decay = hparams.at("weight_decay").get<double>();
    cfg.warmup_steps = hparams.at("warmup_steps").get<int64_t>();
    cfg.max_seconds = 60 * hparams.at("max_minutes").get<double>();
    options.callbacks.push_back(cli.save_config_callback());
    std::printf("char GPT: %lld layers, d %lld, %lld heads, context %lld, batch %lld on Pride and Prejudice\n",
                static_cast<long long>(cfg.layers), static_cast<long long>(cfg.d_model),
                static_cast<long long>(cfg.heads), static_cast<long long>(cfg.context),
                static_cast<long long>(cfg.batch_size));
    auto r = char_gpt::train(cfg, options, ember::data::pride_and_prejudice());
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
