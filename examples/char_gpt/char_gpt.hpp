// A small character-level GPT on Pride and Prejudice: token and position embeddings, pre-norm causal
// transformer blocks, AdamW with linear warmup then cosine decay; validation loss in nats per character
// and sampling. Header-only so the integration test runs the same code.
#pragma once
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

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
  bool verbose = true;
};

struct Result {
  std::vector<std::pair<int64_t, double>> val_losses;  // (step, loss)
  double first_train_loss = 0, final_val_loss = 0, seconds = 0;
  int64_t steps = 0;
  std::string sample;
};

struct GPT : nn::Module {
  nn::Embedding tok{nullptr}, pos{nullptr};
  nn::ModuleList blocks;                                // registers the blocks as blocks.0, blocks.1, ...
  std::vector<nn::TransformerEncoderLayer> block_list;  // the same blocks, typed
  nn::LayerNorm ln_f{nullptr};
  nn::Linear head{nullptr};
  int64_t context;

  GPT(int64_t vocab, const Config& c) : context(c.context) {
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
  }

  // idx [B, T] of token ids (T <= context) -> logits [B, T, vocab].
  Tensor forward(const Tensor& idx) {
    int64_t t = idx.size(1);
    Tensor x = tok(idx) + pos(arange(t, kI64));
    for (auto& block : block_list) x = block(x, Tensor{}, Tensor{}, true);  // causal self-attention
    return head(ln_f(x));
  }
};

inline Tensor lm_loss(GPT& model, const data::Batch& b) {
  Tensor logits = model.forward(b.input);
  return nn::functional::cross_entropy(logits.flatten(0, 1), b.target.flatten());
}

inline double evaluate(GPT& model, data::DataLoader& loader, int64_t max_batches) {
  autograd::NoGradGuard no_grad;
  model.eval();
  double sum = 0;
  int64_t n = 0;
  for (const data::Batch& b : loader) {
    sum += lm_loss(model, b).item<float>();
    if (++n == max_batches) break;
  }
  model.train();
  return sum / static_cast<double>(n);
}

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
    Tensor logits = model.forward(tensor(window, Shape{1, static_cast<int64_t>(window.size())}));
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

inline Result train(const Config& cfg, const std::string& text) {
  auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  manual_seed(cfg.seed);
  data::CharLmData lm = data::char_lm_data(text, cfg.context, 0.1);
  data::DataLoader train_loader(
      lm.train, {.batch_size = cfg.batch_size, .shuffle = true, .drop_last = true, .seed = cfg.seed, .num_workers = 1});
  data::DataLoader val_loader(lm.val, {.batch_size = cfg.batch_size, .shuffle = true, .seed = cfg.seed + 1});

  GPT model(lm.vocab.size(), cfg);
  // Weight decay on matrices only (GPT-2 practice): biases, norms and embeddings are left alone.
  std::vector<Tensor> decay, no_decay;
  for (auto& [name, p] : model.named_parameters())
    (p.dim() >= 2 && name.find("tok") != 0 && name.find("pos") != 0 ? decay : no_decay).push_back(p);
  optim::AdamW opt({optim::ParamGroup{decay}, optim::ParamGroup{no_decay, {{"weight_decay", 0.0}}}},
                   optim::AdamWOptions{.lr = cfg.lr, .betas = {0.9, 0.99}, .weight_decay = cfg.weight_decay});
  // Warmup, then cosine decay to min_lr at step `total`: max_steps, or fewer once the first steps show
  // that the time budget ends sooner (the schedule is stretched to the run that will really happen).
  int64_t warm = cfg.warmup_steps, total = cfg.max_steps;
  double lr_ratio = cfg.min_lr / cfg.lr;
  optim::LambdaLR sched(opt, [=, &total](int64_t step) {
    if (step < warm) return static_cast<double>(step + 1) / static_cast<double>(warm);
    double t =
        std::min(1.0, static_cast<double>(step - warm) / static_cast<double>(std::max<int64_t>(1, total - warm)));
    return lr_ratio + (1 - lr_ratio) * 0.5 * (1 + std::cos(M_PI * t));
  });

  Result r;
  int64_t step = 0;
  bool done = false;
  while (!done) {
    for (const data::Batch& b : train_loader) {
      Tensor loss = lm_loss(model, b);
      opt.zero_grad();
      loss.backward();
      nn::clip_grad_norm_(model.parameters(), 1.0);
      opt.step();
      sched.step();
      if (step == 0) r.first_train_loss = loss.item<float>();
      ++step;
      if (step == 20) {
        double per_step = elapsed() / 20 * 1.05;  // evaluation and sampling take a little extra
        total = std::min(cfg.max_steps, std::max<int64_t>(warm + 1, static_cast<int64_t>(cfg.max_seconds / per_step)));
      }
      bool last = step >= total || elapsed() > cfg.max_seconds;
      if (step % cfg.eval_every == 0 || last) {
        double v = evaluate(model, val_loader, cfg.eval_batches);
        r.val_losses.emplace_back(step, v);
        if (cfg.verbose)
          std::printf("step %5lld  train loss %.4f  val loss %.4f  lr %.2e  (%.0f s)\n", static_cast<long long>(step),
                      loss.item<float>(), v, opt.lr(0), elapsed());
        if (cfg.target_val_loss > 0 && v < cfg.target_val_loss) last = true;
      }
      if (last) {
        done = true;
        break;
      }
    }
  }
  r.steps = step;
  r.final_val_loss = r.val_losses.back().second;
  r.seconds = elapsed();
  r.sample = sample(model, lm.vocab, "Elizabeth ", cfg.verbose ? 400 : 20, 0.8, cfg.seed);
  return r;
}

}  // namespace char_gpt
