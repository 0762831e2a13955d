// Trains GPT-2 on byte-level Austen text and prints the validation loss and the training throughput.
// Usage: gpt2 [--model.size 124M|small|auto] [--device cpu|cuda|auto] [--model.* / --data.* / --trainer.* ...]
//             [--config FILE] (train::Cli: --help lists the options, --print_config the resolved config)
// size auto (the default): GPT-2 small (124M) on CUDA, the small configuration on the CPU. Each size has
// its own defaults (batch, learning rates, precision); options change them. --model.init_hf FILE starts
// from Hugging Face GPT-2 weights (model.safetensors), --model.save_hf FILE writes the trained weights in
// that layout. Logs and checkpoints go under runs/gpt2/.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "settings.hpp"

using namespace ember;

int main(int argc, char** argv) {
  try {
    gpt2::Settings s = gpt2::defaults_for_args(std::vector<std::string>(argv + 1, argv + argc));
    train::Cli cli = gpt2::make_cli(s);
    if (cli.parse(argc, argv) == train::Cli::Action::kExit) return 0;
    gpt2::TrainConfig& cfg = s.cfg;
    const nlohmann::json& m = s.model;
    cfg.model.vocab_size = m.at("vocab_size").get<int64_t>();
    cfg.model.context = m.at("context").get<int64_t>();
    cfg.model.n_layer = m.at("n_layer").get<int64_t>();
    cfg.model.n_head = m.at("n_head").get<int64_t>();
    cfg.model.n_embd = m.at("n_embd").get<int64_t>();
    cfg.model.dropout = m.at("dropout").get<double>();
    cfg.model.activation_checkpointing = m.at("activation_checkpointing").get<bool>();
    cfg.lr = m.at("lr").get<double>();
    cfg.min_lr = m.at("min_lr").get<double>();
    cfg.weight_decay = m.at("weight_decay").get<double>();
    cfg.warmup_steps = m.at("warmup_steps").get<int64_t>();
    cfg.max_seconds = 60 * m.at("max_minutes").get<double>();
    cfg.init_hf = m.at("init_hf").get<std::string>();
    cfg.save_hf = m.at("save_hf").get<std::string>();
    cfg.max_steps = s.options.max_steps;  // the schedule's length
    cfg.accelerator = s.options.accelerator;
    cfg.precision = s.options.precision;
    cfg.accumulate_grad_batches = s.options.accumulate_grad_batches;
    s.options.callbacks.push_back(cli.save_config_callback());

    std::string corpus;
    const std::string text = gpt2::load_text(cfg.data, &corpus);
    std::printf("GPT-2: %lld layers, %lld heads, d %lld, context %lld, vocab %lld; batch %lld x %lld, precision %s%s\n",
                static_cast<long long>(cfg.model.n_layer), static_cast<long long>(cfg.model.n_head),
                static_cast<long long>(cfg.model.n_embd), static_cast<long long>(cfg.model.context),
                static_cast<long long>(cfg.model.vocab_size), static_cast<long long>(cfg.batch_size),
                static_cast<long long>(cfg.accumulate_grad_batches), cfg.precision.c_str(),
                cfg.model.activation_checkpointing ? ", activation checkpointing" : "");
    std::printf("data: %s, %zu bytes (byte-level tokens, last 10%% held out)\n", corpus.c_str(), text.size());
    const gpt2::Result r = gpt2::train(cfg, s.options, text);
    for (const auto& [step, loss] : r.val_losses)
      std::printf("step %5lld  val loss %.4f\n", static_cast<long long>(step), loss);
    std::printf("%.1fM parameters; %lld steps in %.0f s; first train loss %.3f, final val loss %.4f nats/byte\n",
                static_cast<double>(r.parameters) / 1e6, static_cast<long long>(r.steps), r.seconds, r.first_train_loss,
                r.final_val_loss);
    std::printf("training throughput %.0f tokens/s, peak memory %.1f MiB\n", r.tokens_per_second,
                static_cast<double>(r.peak_memory_bytes) / (1 << 20));
    if (fused_attention_calls() > 0)  // which CUDA attention ran (cuDNN's unless it refused, see stderr)
      std::printf("fused attention forwards: %lld, of which cuDNN's %lld\n",
                  static_cast<long long>(fused_attention_calls()), static_cast<long long>(cudnn_attention_calls()));
    if (!cfg.save_hf.empty()) std::printf("weights (Hugging Face GPT2Model layout): %s\n", cfg.save_hf.c_str());
    if (!r.log_dir.empty()) std::printf("logs and checkpoints: %s\n", r.log_dir.c_str());
    return r.final_val_loss < r.first_train_loss ? 0 : 1;  // the validation loss fell
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpt2: %s\n", e.what());
    return 2;
  }
}
