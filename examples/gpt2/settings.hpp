// The gpt2 example's command line: each size's defaults (124M on CUDA, a small configuration on the
// CPU) and the options that change them. The size and the device the command line asks for are found
// first (a silent pass), since they choose the defaults of the real pass.
#pragma once
#include <sstream>
#include <string>
#include <vector>

#include "gpt2_train.hpp"

namespace gpt2 {

// Everything the command line sets, with the defaults of one size.
struct Settings {
  TrainConfig cfg;
  ember::train::TrainerOptions options;
  nlohmann::json model;
  std::string size;
};

inline Settings defaults_for(const std::string& size, const std::string& accelerator) {
  const bool cuda = accelerator == "cuda" || (accelerator == "auto" && ember::cuda_is_available());
  const std::string resolved = size == "auto" ? (cuda ? "124M" : "small") : size;
  EMBER_CHECK(resolved == "124M" || resolved == "small", ember::ValueError,
              "[gpt2] --model.size must be 124M, small or auto, got '", size, "'");
  Settings s;
  s.size = size;
  s.cfg = resolved == "124M" ? TrainConfig::gpt2_124m() : TrainConfig::small();
  s.cfg.accelerator = accelerator;
  // On 2 CPU cores bf16 matmuls run through a conversion (no bf16 GEMM in OpenBLAS): f32 is faster there.
  if (!cuda) s.cfg.precision = "32";
  s.options = trainer_options(s.cfg);
  const Config& m = s.cfg.model;
  s.model = {{"size", size},
             {"vocab_size", m.vocab_size},
             {"context", m.context},
             {"n_layer", m.n_layer},
             {"n_head", m.n_head},
             {"n_embd", m.n_embd},
             {"dropout", m.dropout},
             {"activation_checkpointing", m.activation_checkpointing},
             {"lr", s.cfg.lr},
             {"min_lr", s.cfg.min_lr},
             {"weight_decay", s.cfg.weight_decay},
             {"warmup_steps", s.cfg.warmup_steps},
             {"max_minutes", s.cfg.max_seconds / 60},
             {"init_hf", ""},
             {"save_hf", ""}};
  return s;
}

inline ember::train::Cli make_cli(Settings& s) {
  ember::train::Cli cli("gpt2",
                        "Trains GPT-2 (124M on CUDA, a small configuration on the CPU) on byte-level Austen text.");
  cli.trainer(s.options)
      .add_options("data", s.cfg,
                   {ember::train::cli_field("batch_size", &TrainConfig::batch_size, "sequences per batch"),
                    ember::train::cli_field("data", &TrainConfig::data,
                                            "auto (the six Austen novels when present, else the bundled Pride and "
                                            "Prejudice), bundled, or a text file"),
                    ember::train::cli_field("seed", &TrainConfig::seed, "the shuffling and the initial weights")})
      .add_hparams("model", s.model)
      .alias("--device", "trainer.accelerator");
  return cli;
}

// The defaults for the size and device that args ask for (size auto: 124M on CUDA, else small).
inline Settings defaults_for_args(const std::vector<std::string>& args) {
  std::string size = "auto", accelerator = "auto";
  Settings probe = defaults_for("auto", "auto");
  ember::train::Cli cli = make_cli(probe);
  std::ostringstream sink;
  cli.output(sink);
  try {
    cli.parse(args);
    size = probe.model.at("size").get<std::string>();
    accelerator = probe.options.accelerator;
  } catch (const std::exception&) {  // reported by the real pass
  }
  return defaults_for(size, accelerator);
}

}  // namespace gpt2
