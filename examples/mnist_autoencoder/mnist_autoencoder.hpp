// Lightning's LitAutoEncoder on MNIST, written as a Lightning user would: an encoder 784-64-3 and a
// decoder 3-64-784 (ReLU between), MSE reconstruction loss, Adam; hyperparameters saved with
// save_hyperparameters, a MeanSquaredError metric object, EarlyStopping and ModelCheckpoint on val_loss.
// After fit the best checkpoint is tested, then rebuilt with load_from_checkpoint<LitAutoEncoder> and
// tested again: the two test MSEs agree. Header-only so the integration test runs the same code.
#pragma once
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../common/common.hpp"
#include "ember.hpp"

namespace mnist_autoencoder {

using namespace ember;

// What the checkpoint records (save_hyperparameters) and load_from_checkpoint rebuilds the model from.
struct Hparams {
  int64_t hidden = 64;  // the encoder's and decoder's hidden width
  int64_t latent = 3;   // the code's size
  double lr = 1e-3;     // Adam's learning rate
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Hparams, hidden, latent, lr)

struct Config {
  std::string root;      // folder with the four MNIST IDX files
  int64_t epochs = 100;  // a ceiling: EarlyStopping ends the run when val_loss stops improving
  int64_t batch_size = 64;
  int64_t val_size = 5000;  // training images held out for validation (the other 55000 train)
  int64_t limit_train = 0;  // use only the first N training images, val_size of them held out (0: all)
  int64_t limit_test = 0;   // use only the first N test images (0: all)
  int64_t patience = 3;     // EarlyStopping: validations without a better val_loss before stopping
  uint64_t seed = 0;        // the split, the shuffling and the initial weights
  Hparams model;
  bool verbose = true;  // progress bar, model summary, CSV/SVG logs under root_dir
  std::string root_dir = "runs/mnist_autoencoder";
  std::string accelerator = "auto";  // "cpu", "cuda" or "auto" (CUDA when a device is present)
};

struct Result {
  double first_loss = 0;             // the first training batch's loss (the untrained model's)
  std::vector<double> epoch_losses;  // mean training loss per epoch
  std::vector<double> val_losses;    // validation loss after each epoch
  bool stopped_early = false;
  std::string best_checkpoint;   // ModelCheckpoint's best on val_loss
  double test_mse = 0;           // the trained model at its best checkpoint, on the test set
  double reloaded_test_mse = 0;  // the model load_from_checkpoint rebuilt from that checkpoint
  nlohmann::json hparams, reloaded_hparams;
  double seconds = 0;
  std::string log_dir;
};

// The model and how it trains: a TrainModule, so the Trainer runs the loops, logging and checkpoints.
struct LitAutoEncoder : train::TrainModule {
  using Hparams = mnist_autoencoder::Hparams;  // load_from_checkpoint builds LitAutoEncoder(Hparams)
  Hparams h;
  nn::Sequential encoder, decoder;
  // torchmetrics' way: one metric object per stage, updated in the steps and logged as an object (the
  // Trainer computes it over the whole epoch and resets it).
  metrics::MeanSquaredError val_mse, test_mse;

  explicit LitAutoEncoder(Hparams hp = {})
      : h(hp),
        encoder{nn::Linear(28 * 28, hp.hidden), nn::ReLU(), nn::Linear(hp.hidden, hp.latent)},
        decoder{nn::Linear(hp.latent, hp.hidden), nn::ReLU(), nn::Linear(hp.hidden, 28 * 28)} {
    register_module("encoder", encoder);
    register_module("decoder", decoder);
    save_hyperparameters(h);
  }
  // As Lightning's: forward is inference, the code of each image.
  Tensor forward(const Tensor& x) override { return encoder(x.flatten(1)); }
  Tensor reconstruct(const Tensor& x) { return decoder(encoder(x.flatten(1))).view_as(x); }

  Tensor training_step(const data::Batch& b, int64_t) override {
    Tensor loss = nn::functional::mse_loss(reconstruct(b.input), b.input);
    log("train_loss", loss, {.prog_bar = true, .on_epoch = true});
    return loss;
  }
  void validation_step(const data::Batch& b, int64_t) override {
    Tensor x_hat = reconstruct(b.input);
    log("val_loss", nn::functional::mse_loss(x_hat, b.input), {.prog_bar = true, .sync_dist = true});
    val_mse.update(x_hat, b.input);
    log("val_mse", val_mse);
  }
  void test_step(const data::Batch& b, int64_t) override {
    Tensor x_hat = reconstruct(b.input);
    log("test_loss", nn::functional::mse_loss(x_hat, b.input), {.sync_dist = true});
    test_mse.update(x_hat, b.input);
    log("test_mse", test_mse);
  }
  train::OptimizerConfig configure_optimizers() override {
    return {std::make_shared<optim::Adam>(parameters(), optim::AdamOptions{.lr = h.lr})};
  }
};

// The Trainer's options for cfg: what the command line (main.cpp) starts from.
inline train::TrainerOptions trainer_options(const Config& cfg) {
  return ember_examples::trainer_defaults(cfg.epochs, cfg.accelerator, cfg.verbose, cfg.root_dir);
}

inline Result train(const Config& cfg, train::TrainerOptions options) {
  auto start = std::chrono::steady_clock::now();
  manual_seed(cfg.seed);
  auto images = ember_examples::first_n(data::mnist(cfg.root, true), cfg.limit_train);
  EMBER_CHECK(cfg.val_size > 0 && cfg.val_size < images->size(), ValueError, "[mnist_autoencoder] val_size ",
              cfg.val_size, " must be at least 1 and less than the ", images->size(), " training images");
  auto split = data::random_split(images, {images->size() - cfg.val_size, cfg.val_size}, cfg.seed);
  auto train_loader = std::make_shared<data::DataLoader>(
      split[0],
      data::DataLoaderOptions{
          .batch_size = cfg.batch_size, .shuffle = true, .seed = cfg.seed, .num_workers = 1, .pin_memory = true});
  auto val_loader =
      std::make_shared<data::DataLoader>(split[1], data::DataLoaderOptions{.batch_size = 1000, .pin_memory = true});
  auto test_loader =
      std::make_shared<data::DataLoader>(ember_examples::first_n(data::mnist(cfg.root, false), cfg.limit_test),
                                         data::DataLoaderOptions{.batch_size = 1000, .pin_memory = true});

  LitAutoEncoder model(cfg.model);
  Result r;
  r.hparams = model.hparams();
  auto checkpoint = std::make_shared<train::ModelCheckpoint>(train::ModelCheckpointOptions{
      .filename = "{epoch}-{val_loss:.4f}", .monitor = "val_loss", .save_top_k = 1, .mode = "min"});
  auto early_stopping = std::make_shared<train::EarlyStopping>(
      train::EarlyStoppingOptions{.monitor = "val_loss", .patience = cfg.patience, .mode = "min"});
  auto record = std::make_shared<train::LambdaCallback>(train::LambdaHooks{
      .on_train_epoch_end =
          [&](train::Trainer& t, train::TrainModule&) {
            r.epoch_losses.push_back(t.callback_metrics().at("train_loss_epoch"));
            r.val_losses.push_back(t.callback_metrics().at("val_loss"));  // validated just before
          },
      .on_train_batch_end =
          [&](train::Trainer&, train::TrainModule&, const Tensor& loss, const data::Batch&, int64_t i) {
            if (i == 0 && r.epoch_losses.empty()) r.first_loss = loss.item<float>();
          }});
  options.callbacks.insert(options.callbacks.begin(), {record, checkpoint, early_stopping});
  train::Trainer trainer(std::move(options));
  trainer.fit(model, train_loader, val_loader);
  r.log_dir = trainer.log_dir();
  r.stopped_early = early_stopping->stopped_epoch() > 0;

  // Lightning's trainer.test(ckpt_path="best"), then the same checkpoint rebuilt from its hyperparameters.
  r.best_checkpoint = checkpoint->best_model_path();
  r.test_mse = trainer.test(model, test_loader, {.ckpt_path = "best", .verbose = cfg.verbose}).at(0).at("test_mse");
  auto reloaded = train::load_from_checkpoint<LitAutoEncoder>(r.best_checkpoint);
  r.reloaded_hparams = reloaded->hparams();
  r.reloaded_test_mse = trainer.test(*reloaded, test_loader, {.verbose = false}).at(0).at("test_mse");
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

inline Result train(const Config& cfg) { return train(cfg, trainer_options(cfg)); }

}  // namespace mnist_autoencoder
