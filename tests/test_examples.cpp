// Integration tests: short runs of the examples (the same code as examples/*) on real data, asserting
// that the loss falls and the accuracy reached.
#include <filesystem>

#include "examples/char_gpt/char_gpt.hpp"
#include "examples/digits_mlp/digits_mlp.hpp"
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
