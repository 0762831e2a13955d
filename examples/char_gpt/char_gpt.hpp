// A small character-level GPT on Pride and Prejudice: token and position embeddings, pre-norm causal
// transformer blocks, trained by the Trainer with AdamW and linear warmup then cosine decay (stepped per
// optimizer step, shrunk to fit a time budget); validation loss in nats per character every few hundred
// steps, and sampling at the end. Header-only so the integration test runs the same code.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "../common/schedule.hpp"
#include "ember.hpp"

namespace char_gpt {

using namespace ember;

struct Config {
  int64_t layers = 4, d_model = 128, heads = 4, context = 64, batch_size = 32;
  double dropout = 0.1;
  double lr = 2e-3, min_lr = 1e-4, weight_decay = 0.1;
  int64_t max_steps = 5000, warmup_steps = 100;
  double max_seconds = 14 * 60;  // stop training after this long (the schedule shrinks to fit)
  double target_val_loss = 0;    // stop once the validation loss is below this (0: never)
  int64_t eval_every = 250, eval_batches = 40;
  uint64_t seed = 0;
  bool verbose = true;  // progress bar, model summary, CSV/SVG logs and checkpoints under root_dir
  std::string root_dir = "runs/char_gpt";
  std::string accelerator = "auto";  // "cpu", "cuda" or "auto" (CUDA when a device is present)
};

struct Result {
  std::vector<std::pair<int64_t, double>> val_losses;  // (step, loss)
  double first_train_loss = 0, final_val_loss = 0, seconds = 0;
  int64_t steps = 0;
  std::string sample;
  std::string log_dir;  // where the logs and checkpoints went (verbose runs)
};

// The model and how it trains: a TrainModule, so the Trainer runs the loop, validation, logging and
// checkpoints; the time budget is the module's (it shortens the schedule, then stops the run).
struct GPT : train::TrainModule {
  nn::Embedding tok{nullptr}, pos{nullptr};
  nn::ModuleList blocks;                                // registers the blocks as blocks.0, blocks.1, ...
  std::vector<nn::TransformerEncoderLayer> block_list;  // the same blocks, typed
  nn::LayerNorm ln_f{nullptr};
  nn::Linear head{nullptr};
  int64_t context;
  Config cfg;
  // The budget counts from here (train() sets it to its own start, so data preparation counts too).
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  // Warmup then cosine to min_lr, ending (and stopping training) at max_steps or sooner once the first
  // steps show that the time budget ends sooner (the schedule is stretched to the run that will happen).
  ember_examples::BudgetedCosine schedule;
  double first_train_loss = 0;

  GPT(int64_t vocab, const Config& c)
      : context(c.context),
        cfg(c),
        schedule({.lr = c.lr,
                  .min_lr = c.min_lr,
                  .warmup_steps = c.warmup_steps,
                  .max_steps = c.max_steps,
                  .max_seconds = c.max_seconds}) {
    tok = register_module("tok", nn::Embedding(vocab, c.d_model));
    pos = register_module("pos", nn::Embedding(c.context, c.d_model));
    for (int64_t i = 0; i < c.layers; ++i) {
      block_list.emplace_back(c.d_model, c.heads,
                              nn::TransformerEncoderLayerOptions{.dim_feedforward = 4 * c.d_model,
                                                                 .dropout = c.dropout,
                                                                 .activation = "gelu",
                                                                 .batch_first = true,
                                                                 .norm_first = true});
      blocks->push_back(block_list.back());
    }
    register_module("blocks", blocks);
    ln_f = register_module("ln_f", nn::LayerNorm(Shape{c.d_model}));
    head = register_module("head", nn::Linear(c.d_model, vocab, {.bias = false}));
    // GPT-2's initialisation: N(0, 0.02) for embeddings and linear weights.
    apply([](nn::Module& m) {
      if (auto* l = dynamic_cast<nn::LinearImpl*>(&m)) nn::init::normal_(l->weight, 0.0, 0.02);
      if (auto* e = dynamic_cast<nn::EmbeddingImpl*>(&m)) nn::init::normal_(e->weight, 0.0, 0.02);
    });
    save_hyperparameters({{"vocab", vocab},
                          {"layers", c.layers},
                          {"d_model", c.d_model},
                          {"heads", c.heads},
                          {"context", c.context},
                          {"batch_size", c.batch_size},
                          {"dropout", c.dropout},
                          {"lr", c.lr},
                          {"min_lr", c.min_lr},
                          {"weight_decay", c.weight_decay},
                          {"max_steps", c.max_steps},
                          {"warmup_steps", c.warmup_steps},
                          {"max_seconds", c.max_seconds},
                          {"seed", c.seed}});
  }

  // idx [B, T] of token ids (T <= context) -> logits [B, T, vocab].
  Tensor forward(const Tensor& idx) {
    int64_t t = idx.size(1);
    Tensor x = tok(idx) + pos(arange(t, kI64, idx.device()));
    for (auto& block : block_list) x = block(x, Tensor{}, Tensor{}, true);  // causal self-attention
    return head(ln_f(x));
  }
  // Mean cross-entropy of the next character, in nats.
  Tensor lm_loss(const data::Batch& b) {
    return nn::functional::cross_entropy(forward(b.input).flatten(0, 1), b.target.flatten());
  }
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); }

  Tensor training_step(const data::Batch& b, int64_t batch_idx) override {
    Tensor loss = lm_loss(b);
    if (global_step() == 0 && batch_idx == 0) first_train_loss = loss.item<float>();  // one read, the first batch
    log("train_loss", loss, {.prog_bar = true});
    return loss;
  }
  // The lr this step uses (before the training step, which a CUDA graph may capture: a number logged
  // there would keep the capture step's value).
  bool on_train_batch_start(const data::Batch&, int64_t) override {
    log("lr", optimizers().front()->lr(0), {.prog_bar = true});
    return true;
  }
  void validation_step(const data::Batch& b, int64_t) override { log("val_loss", lm_loss(b), {.prog_bar = true}); }

  // After each optimizer step: at step 20, fit the schedule to the time budget; stop at its end.
  void on_train_batch_end(const Tensor&, const data::Batch&, int64_t) override {
    if (schedule.after_step(global_step(), seconds())) trainer().should_stop = true;
  }
  // The fitted schedule length travels with checkpoints, so a resumed run decays on the same curve.
  void on_save_checkpoint(train::Checkpoint& ck) override { schedule.save(ck, "char_gpt_total_steps"); }
  void on_load_checkpoint(const train::Checkpoint& ck) override { schedule.load(ck, "char_gpt_total_steps"); }

  train::OptimizerConfig configure_optimizers() override {
    // Weight decay on matrices only (GPT-2 practice): biases, norms and embeddings are left alone.
    std::vector<Tensor> decay, no_decay;
    for (auto& [name, p] : named_parameters())
      (p.dim() >= 2 && name.find("tok") != 0 && name.find("pos") != 0 ? decay : no_decay).push_back(p);
    auto opt = std::make_shared<optim::AdamW>(
        std::vector<optim::ParamGroup>{optim::ParamGroup{decay}, optim::ParamGroup{no_decay, {{"weight_decay", 0.0}}}},
        optim::AdamWOptions{.lr = cfg.lr, .betas = {0.9, 0.99}, .weight_decay = cfg.weight_decay});
    // Linear warmup, then cosine decay to min_lr at the schedule's end (read at each step: it may shrink).
    return {opt, {.scheduler = schedule.scheduler(*opt), .interval = "step"}};
  }
};

// Samples `length` characters after `prompt` (temperature-scaled softmax, seeded).
inline std::string sample(GPT& model, const data::CharVocab& vocab, const std::string& prompt, int64_t length,
                          double temperature, uint64_t seed) {
  autograd::NoGradGuard no_grad;
  model.eval();
  Generator gen(seed);
  std::vector<int64_t> ids = vocab.encode_ids(prompt);
  for (int64_t i = 0; i < length; ++i) {
    int64_t start = std::max<int64_t>(0, static_cast<int64_t>(ids.size()) - model.context);
    std::vector<int64_t> window(ids.begin() + start, ids.end());
    Tensor logits =
        model.forward(tensor(window, Shape{1, static_cast<int64_t>(window.size())}).to(model.head->weight.device()));
    std::vector<float> p = (logits[0][-1] * (1.0 / temperature)).softmax(0).to_vector<float>();
    double u = rand({}, {.dtype = kF64}, &gen).item<double>(), acc = 0;
    size_t k = 0;
    for (; k + 1 < p.size(); ++k)
      if ((acc += p[k]) > u) break;
    ids.push_back(static_cast<int64_t>(k));
  }
  model.train();
  return vocab.decode(ids);
}

// The Trainer's options for cfg: what the command line (main.cpp) starts from. Steps, not epochs:
// max_steps bounds the run (the module stops it sooner when time runs short); validation every eval_every
// optimizer steps counted across epochs, on eval_batches batches. No sanity check: it would take a pass of
// the validation loader and shift the batches every later validation reads.
inline train::TrainerOptions trainer_options(const Config& cfg) {
  std::vector<train::CallbackPtr> callbacks;
  // The checkpoint at the end of training (the run is one epoch or less, and may stop between
  // validations, after which the default checkpoint would not be written).
  if (cfg.verbose)
    callbacks.push_back(
        std::make_shared<train::ModelCheckpoint>(train::ModelCheckpointOptions{.save_on_train_epoch_end = true}));
  return {.max_steps = cfg.max_steps,
          .accelerator = cfg.accelerator,
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

inline Result train(const Config& cfg, train::TrainerOptions options, const std::string& text) {
  auto start = std::chrono::steady_clock::now();
  manual_seed(cfg.seed);
  data::CharLmData lm = data::char_lm_data(text, cfg.context, 0.1);
  auto train_loader = std::make_shared<data::DataLoader>(lm.train, data::DataLoaderOptions{.batch_size = cfg.batch_size,
                                                                                           .shuffle = true,
                                                                                           .drop_last = true,
                                                                                           .seed = cfg.seed,
                                                                                           .num_workers = 1,
                                                                                           .pin_memory = true});
  // Each validation reads the next epoch of this shuffled loader: eval_batches random batches each time.
  auto val_loader = std::make_shared<data::DataLoader>(
      lm.val,
      data::DataLoaderOptions{.batch_size = cfg.batch_size, .shuffle = true, .seed = cfg.seed + 1, .pin_memory = true});

  GPT model(lm.vocab.size(), cfg);
  model.start = start;
  Result r;
  auto record = std::make_shared<train::LambdaCallback>(
      train::LambdaHooks{.on_validation_end = [&](train::Trainer& t, train::TrainModule&) {
        if (t.sanity_checking()) return;
        const double v = t.callback_metrics().at("val_loss");
        r.val_losses.emplace_back(t.global_step(), v);
        if (cfg.target_val_loss > 0 && v < cfg.target_val_loss) t.should_stop = true;
      }});
  options.callbacks.insert(options.callbacks.begin(), record);
  train::Trainer trainer(std::move(options));
  trainer.fit(model, train_loader, val_loader);
  // The final validation loss is measured at the last step (the run may have stopped between checks).
  if (r.val_losses.empty() || r.val_losses.back().first != trainer.global_step()) trainer.validate(model, val_loader);
  r.steps = trainer.global_step();
  r.first_train_loss = model.first_train_loss;
  r.final_val_loss = r.val_losses.back().second;
  r.seconds = model.seconds();
  r.sample = sample(model, lm.vocab, "Elizabeth ", cfg.verbose ? 400 : 20, 0.8, cfg.seed);
  r.log_dir = trainer.log_dir();
  return r;
}

inline Result train(const Config& cfg, const std::string& text) { return train(cfg, trainer_options(cfg), text); }

}  // namespace char_gpt
