// Training GPT-2 with the Trainer on byte-level Austen text: AdamW (fused; weight decay on matrices),
// linear warmup then cosine decay per optimizer step (shrunk to fit a time budget), gradient clipping,
// bf16-mixed, gradient accumulation, validation every few steps, and the training throughput in tokens
// per second. Header-only so the integration test runs the same code as examples/gpt2/main.cpp.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "../common/schedule.hpp"
#include "gpt2.hpp"

namespace gpt2 {

struct TrainConfig {
  Config model = Config::small();
  int64_t batch_size = 16;
  double lr = 2e-3, min_lr = 2e-4, weight_decay = 0.1;
  int64_t max_steps = 2000, warmup_steps = 50;
  double max_seconds = 5 * 60;                  // stop training after this long (the schedule shrinks to fit)
  int64_t eval_every = 100, eval_batches = 20;  // validate every eval_every training batches
  int64_t accumulate_grad_batches = 1;
  // bf16-mixed everywhere by default (issue 18); "32" may be faster on a CPU without bf16 GEMMs.
  std::string precision = "bf16-mixed";
  // "auto": the six Austen novels at /work/shared/data (or ../shared/data) when present, else the bundled
  // Pride and Prejudice; "bundled": always the latter; else a text file (plain or gzip).
  std::string data = "auto";
  uint64_t seed = 0;
  bool verbose = true;  // progress bar, model summary, CSV logs and checkpoints under root_dir
  std::string root_dir = "runs/gpt2";
  std::string accelerator = "auto";  // "cpu", "cuda" or "auto"
  std::string init_hf, save_hf;      // HF GPT-2 weights to start from / to write at the end (load_hf, save_hf)

  // GPT-2 small on batches of 8 x 1024 tokens (the benchmark step): nanoGPT's learning rates.
  static TrainConfig gpt2_124m() {
    TrainConfig c;
    c.model = Config::gpt2_124m();
    c.batch_size = 8;
    c.lr = 6e-4;
    c.min_lr = 6e-5;
    c.max_steps = 5000;
    c.warmup_steps = 100;
    c.eval_every = 100;
    c.eval_batches = 10;
    return c;
  }
  static TrainConfig small() { return {}; }
};

struct Result {
  std::vector<std::pair<int64_t, double>> val_losses;  // (step, loss)
  double first_train_loss = 0, final_val_loss = 0, seconds = 0;
  double tokens_per_second = 0;  // training steps only (no validation), after the first two batches
  int64_t steps = 0, parameters = 0, peak_memory_bytes = 0, corpus_bytes = 0;
  std::string corpus, log_dir;
};

// The training text: see TrainConfig::data. `name` says which it was.
inline std::string load_text(const std::string& data, std::string* name = nullptr) {
  std::string path = data;
  if (data == "auto") {
    path.clear();
    for (const char* p : {"/work/shared/data/austen_six_novels.txt.gz", "../shared/data/austen_six_novels.txt.gz"})
      if (std::filesystem::exists(p)) path = p;
  }
  if (path.empty() || path == "bundled") {
    if (name) *name = "Pride and Prejudice (bundled)";
    return data::pride_and_prejudice();
  }
  if (name) *name = path;
  return data::read_text(path);
}

// Byte-level tokens: each byte of the UTF-8 text is one id in [0, 256).
inline Tensor byte_tokens(const std::string& text) {
  std::vector<int64_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
  return tensor(ids, Shape{static_cast<int64_t>(ids.size())});
}

// GPT2LMHeadModel as a TrainModule: its state_dict names are HF's LM-head layout ("transformer.h.0...",
// the tied lm_head left out). The time budget is the module's (it shortens the schedule, then stops).
struct GPT2 : train::TrainModule {
  GPT2Model transformer{nullptr};
  TrainConfig cfg;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  ember_examples::BudgetedCosine schedule;  // warmup then cosine to min_lr; may shrink to the time budget
  double first_train_loss = 0;

  explicit GPT2(const TrainConfig& c)
      : cfg(c),
        schedule({.lr = c.lr,
                  .min_lr = c.min_lr,
                  .warmup_steps = c.warmup_steps,
                  .max_steps = c.max_steps,
                  .max_seconds = c.max_seconds}) {
    transformer = register_module("transformer", GPT2Model(c.model));
    save_hyperparameters({{"vocab_size", c.model.vocab_size},
                          {"context", c.model.context},
                          {"n_layer", c.model.n_layer},
                          {"n_head", c.model.n_head},
                          {"n_embd", c.model.n_embd},
                          {"dropout", c.model.dropout},
                          {"activation_checkpointing", c.model.activation_checkpointing},
                          {"batch_size", c.batch_size},
                          {"lr", c.lr},
                          {"min_lr", c.min_lr},
                          {"weight_decay", c.weight_decay},
                          {"max_steps", c.max_steps},
                          {"warmup_steps", c.warmup_steps},
                          {"max_seconds", c.max_seconds},
                          {"seed", c.seed}});
  }

  Tensor forward(const Tensor& idx) { return lm_logits(*transformer, idx); }
  // Mean next-token cross-entropy in nats (the fused kernel).
  Tensor lm_loss(const data::Batch& b) {
    return nn::functional::cross_entropy(forward(b.input).flatten(0, 1), b.target.flatten());
  }
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); }

  Tensor training_step(const data::Batch& b, int64_t batch_idx) override {
    Tensor loss = lm_loss(b);
    if (global_step() == 0 && batch_idx == 0) first_train_loss = loss.item<float>();
    log("train_loss", loss, {.prog_bar = true});
    return loss;
  }
  void validation_step(const data::Batch& b, int64_t) override { log("val_loss", lm_loss(b), {.prog_bar = true}); }

  // At optimizer step 20, fit the schedule to the time budget; stop at its end.
  void on_train_batch_end(const Tensor&, const data::Batch&, int64_t) override {
    if (schedule.after_step(global_step(), seconds())) trainer().should_stop = true;
  }
  void on_save_checkpoint(train::Checkpoint& ck) override { schedule.save(ck, "gpt2_total_steps"); }
  void on_load_checkpoint(const train::Checkpoint& ck) override { schedule.load(ck, "gpt2_total_steps"); }

  train::OptimizerConfig configure_optimizers() override {
    // Weight decay on matrices (Conv1D weights and the embeddings, as nanoGPT and llm.c); biases and
    // norms are left alone. Fused AdamW: all parameters in a few launches.
    std::vector<Tensor> decay, no_decay;
    for (auto& [name, p] : named_parameters()) (p.dim() >= 2 ? decay : no_decay).push_back(p);
    auto opt = std::make_shared<optim::AdamW>(
        std::vector<optim::ParamGroup>{optim::ParamGroup{decay}, optim::ParamGroup{no_decay, {{"weight_decay", 0.0}}}},
        optim::AdamWOptions{.lr = cfg.lr, .betas = {0.9, 0.95}, .weight_decay = cfg.weight_decay, .fused = true});
    return {opt, {.scheduler = schedule.scheduler(*opt), .interval = "step"}};
  }
};

// The Trainer's options for cfg (what main.cpp's command line starts from): steps, not epochs; validation
// every eval_every optimizer steps on eval_batches batches; no sanity check.
inline train::TrainerOptions trainer_options(const TrainConfig& cfg) {
  std::vector<train::CallbackPtr> callbacks;
  if (cfg.verbose)  // the checkpoint at the end of training (the run may stop between validations)
    callbacks.push_back(
        std::make_shared<train::ModelCheckpoint>(train::ModelCheckpointOptions{.save_on_train_epoch_end = true}));
  return {.max_steps = cfg.max_steps,
          .accelerator = cfg.accelerator,
          .precision = cfg.precision,
          .accumulate_grad_batches = cfg.accumulate_grad_batches,
          .gradient_clip_val = 1.0,
          .val_check_interval = cfg.eval_every,
          .check_val_every_n_epoch = std::nullopt,
          .limit_val_batches = cfg.eval_batches,
          .num_sanity_val_steps = 0,
          .enable_checkpointing = cfg.verbose,
          .enable_progress_bar = cfg.verbose,
          .enable_model_summary = cfg.verbose,
          .callbacks = callbacks,
          .logger = cfg.verbose,
          .default_root_dir = cfg.root_dir};
}

namespace detail {
// Training throughput: wall time from the third training batch to the end of training, less the time
// spent validating and between epochs (the end-of-epoch checkpoint: this callback runs first), with the
// device drained at each mark (the step queues work asynchronously).
struct Throughput {
  int64_t batches = 0, timed_batches = 0;
  std::chrono::steady_clock::time_point t0, val_t0;
  double seconds = 0, val_seconds = 0;
  bool timing = false;
  static constexpr int64_t kSkip = 2;
  static double since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  }
  train::CallbackPtr callback(Device device) {
    auto stop = [this, device](train::Trainer&, train::TrainModule&) {
      if (!timing) return;
      synchronize(device);
      seconds += since(t0) - val_seconds;
      val_seconds = 0;
      timing = false;
    };
    return std::make_shared<train::LambdaCallback>(train::LambdaHooks{
        .on_train_end = stop,
        .on_train_epoch_end = stop,
        .on_train_batch_start =
            [this, device](train::Trainer&, train::TrainModule&, const data::Batch&, int64_t) {
              if (batches >= kSkip && !timing) {
                synchronize(device);
                t0 = std::chrono::steady_clock::now();
                timing = true;
              }
            },
        .on_train_batch_end =
            [this](train::Trainer&, train::TrainModule&, const Tensor&, const data::Batch&, int64_t) {
              if (timing) ++timed_batches;
              ++batches;
            },
        .on_validation_start =
            [this, device](train::Trainer& t, train::TrainModule&) {
              if (!timing || !t.training()) return;
              synchronize(device);
              val_t0 = std::chrono::steady_clock::now();
            },
        .on_validation_end =
            [this](train::Trainer& t, train::TrainModule&) {
              if (timing && t.training()) val_seconds += since(val_t0);
            }});
  }
};
}  // namespace detail

// Trains on `text` (byte tokens, the last 10% held out) with `options` (trainer_options(cfg) plus the
// command line's changes). The final validation loss is measured at the last step.
inline Result train(const TrainConfig& cfg, train::TrainerOptions options, const std::string& text) {
  auto start = std::chrono::steady_clock::now();
  EMBER_CHECK(cfg.model.vocab_size >= 256, ValueError, "[gpt2] byte-level training needs vocab_size >= 256, got ",
              cfg.model.vocab_size);
  manual_seed(cfg.seed);
  auto [train_tokens, val_tokens] = data::split_tokens(byte_tokens(text), 0.1);
  const int64_t t = cfg.model.context;
  auto train_set = std::make_shared<data::NextTokenDataset>(train_tokens, t);
  auto val_set = std::make_shared<data::NextTokenDataset>(val_tokens, t);
  auto train_loader =
      std::make_shared<data::DataLoader>(train_set, data::DataLoaderOptions{.batch_size = cfg.batch_size,
                                                                            .shuffle = true,
                                                                            .drop_last = true,
                                                                            .seed = cfg.seed,
                                                                            .num_workers = 1,
                                                                            .pin_memory = true});
  // Each validation reads the next eval_batches batches of this shuffled loader.
  auto val_loader = std::make_shared<data::DataLoader>(
      val_set,
      data::DataLoaderOptions{.batch_size = cfg.batch_size, .shuffle = true, .seed = cfg.seed + 1, .pin_memory = true});

  GPT2 model(cfg);
  model.start = start;
  if (!cfg.init_hf.empty()) load_hf(*model.transformer, cfg.init_hf);
  Result r;
  r.corpus_bytes = static_cast<int64_t>(text.size());
  r.parameters = model.num_parameters();
  auto record = std::make_shared<train::LambdaCallback>(
      train::LambdaHooks{.on_validation_end = [&](train::Trainer& tr, train::TrainModule&) {
        if (tr.sanity_checking()) return;
        r.val_losses.emplace_back(tr.global_step(), tr.callback_metrics().at("val_loss"));
      }});
  options.callbacks.insert(options.callbacks.begin(), record);
  const std::string acc = options.accelerator;
  const Device device = acc == "cuda" || (acc == "auto" && cuda_is_available()) ? Device(Device::Kind::CUDA, 0) : kCPU;
  detail::Throughput throughput;
  options.callbacks.insert(options.callbacks.begin(), throughput.callback(device));
  reset_peak_memory_stats(device);
  train::Trainer trainer(std::move(options));
  trainer.fit(model, train_loader, val_loader);
  r.peak_memory_bytes = memory_stats(device).peak_bytes;
  if (r.val_losses.empty() || r.val_losses.back().first != trainer.global_step())
    trainer.validate(model, val_loader, {.verbose = false});
  r.steps = trainer.global_step();
  r.first_train_loss = model.first_train_loss;
  r.final_val_loss = r.val_losses.back().second;
  r.seconds = model.seconds();
  const int64_t tokens_per_batch = cfg.batch_size * t;
  if (throughput.seconds > 0)
    r.tokens_per_second = static_cast<double>(throughput.timed_batches * tokens_per_batch) / throughput.seconds;
  r.log_dir = trainer.log_dir();
  if (!cfg.save_hf.empty()) save_hf(*model.transformer, cfg.save_hf);
  return r;
}

inline Result train(const TrainConfig& cfg, const std::string& text) { return train(cfg, trainer_options(cfg), text); }

}  // namespace gpt2
