// Integration tests: short runs of the examples (the same code as examples/*) on real data, asserting
// that the loss falls and the accuracy reached.
#include <unistd.h>

#include <filesystem>

#include "examples/char_gpt/char_gpt.hpp"
#include "examples/digits_mlp/digits_mlp.hpp"
#include "examples/mnist_autoencoder/mnist_autoencoder.hpp"
#include "examples/mnist_cnn/mnist_cnn.hpp"
#include "test_util.hpp"

TEST_CASE("examples: the digits MLP reaches 97% held-out accuracy") {
  auto r = digits_mlp::train({.epochs = 30, .verbose = false});
  CHECK(r.epoch_losses.back() < 0.25 * r.epoch_losses.front());
  CHECK(r.test_accuracy >= 0.97);
}

TEST_CASE("examples: the digits MLP reaches 97% when trained on the GPU") {
  CUDA_OR_SKIP();
  auto r = digits_mlp::train({.epochs = 30, .verbose = false, .accelerator = "cuda"});
  CHECK(r.epoch_losses.back() < 0.25 * r.epoch_losses.front());
  CHECK(r.test_accuracy >= 0.97);
}

TEST_CASE("examples: the MNIST CNN reaches 95% after two epochs over 6000 images") {
  std::string root = std::string(EMBER_TEST_DIR) + "/../../shared/data/mnist";
  if (!std::filesystem::exists(root + "/train-images-idx3-ubyte.gz")) {
    MESSAGE("skipped: no MNIST files in " << root);
    return;
  }
  auto r = mnist_cnn::train({.root = root, .epochs = 2, .limit_train = 6000, .limit_test = 2000, .verbose = false});
  CHECK(r.epoch_losses.back() < 0.5 * r.epoch_losses.front());
  CHECK(r.test_accuracy >= 0.95);
}

TEST_CASE("examples: the MNIST autoencoder's loss falls and load_from_checkpoint rebuilds its best model") {
  std::string root = std::string(EMBER_TEST_DIR) + "/../../shared/data/mnist";
  if (!std::filesystem::exists(root + "/train-images-idx3-ubyte.gz")) {
    MESSAGE("skipped: no MNIST files in " << root);
    return;
  }
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("ember_test_autoencoder_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  mnist_autoencoder::Config c{.root = root,
                              .epochs = 2,
                              .val_size = 1000,
                              .limit_train = 6000,
                              .limit_test = 2000,
                              .model = {.hidden = 48, .latent = 3, .lr = 3e-3},
                              .verbose = false,
                              .root_dir = dir.string()};
  auto r = mnist_autoencoder::train(c);
  // Measured (seeds 0-3): first batch 0.134-0.152, val loss 0.056 then 0.049-0.051, test MSE 0.049-0.050; the
  // mean image scores 0.067, a 3-component PCA 0.052.
  CHECK(r.first_loss > 0.1);
  REQUIRE(r.val_losses.size() == 2);
  CHECK(r.val_losses[1] < r.val_losses[0]);
  CHECK(r.test_mse < 0.058);
  CHECK(r.test_mse < 0.5 * r.first_loss);
  CHECK(fs::exists(r.best_checkpoint));
  CHECK(r.reloaded_hparams == nlohmann::json{{"hidden", 48}, {"latent", 3}, {"lr", 3e-3}});
  CHECK(r.reloaded_hparams == r.hparams);
  CHECK(r.reloaded_test_mse == doctest::Approx(r.test_mse).epsilon(1e-6));
  c.val_size = c.limit_train;  // nothing left to train on
  CHECK_THROWS_WITH_AS(mnist_autoencoder::train(c), doctest::Contains("[mnist_autoencoder] val_size 6000"),
                       ember::ValueError);
  fs::remove_all(dir);
}

TEST_CASE("examples: the char GPT's validation loss falls on Pride and Prejudice") {
  char_gpt::Config c;
  c.layers = 2;
  c.d_model = 64;
  c.context = 32;
  c.batch_size = 16;
  c.max_steps = 60;
  c.warmup_steps = 10;
  c.eval_every = 30;
  c.eval_batches = 4;
  c.verbose = false;
  auto r = char_gpt::train(c, ember::data::pride_and_prejudice().substr(0, 200000));
  REQUIRE(r.val_losses.size() == 2);
  CHECK(r.first_train_loss > 3.5);  // about ln(vocab) at the start
  CHECK(r.final_val_loss < 3.0);
  CHECK(r.sample.size() > 10);
}
