// Integration tests: short runs of the examples (the same code as examples/*) on real data, asserting
// that the loss falls and the accuracy reached.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "examples/char_gpt/char_gpt.hpp"
#include "examples/common/schedule.hpp"
#include "examples/digits_mlp/digits_mlp.hpp"
#include "examples/extending/epoch_stats_callback.hpp"
#include "examples/extending/jsonl_logger.hpp"
#include "examples/extending/memory_checkpoint_io.hpp"
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

TEST_CASE("examples/common: the budgeted cosine warms up, decays to min_lr and shrinks to the time budget") {
  ember_examples::BudgetedCosine s(
      {.lr = 2e-3, .min_lr = 1e-4, .warmup_steps = 10, .max_steps = 1000, .max_seconds = 100});
  const double ratio = 1e-4 / 2e-3;
  // Linear warmup: (step + 1) / warmup, reaching 1 at the last warmup step and the first cosine step.
  CHECK(s.factor(0) == doctest::Approx(0.1));
  CHECK(s.factor(4) == doctest::Approx(0.5));
  CHECK(s.factor(9) == doctest::Approx(1.0));
  CHECK(s.factor(10) == doctest::Approx(1.0));
  // Cosine: halfway between 1 and min_lr / lr midway, min_lr / lr at total_steps and after.
  CHECK(s.factor(505) == doctest::Approx((1 + ratio) / 2));
  CHECK(s.factor(1000) == doctest::Approx(ratio));
  CHECK(s.factor(5000) == doctest::Approx(ratio));

  // The scheduler reads the schedule at each step, so it follows total_steps when it shrinks later.
  auto opt = std::make_shared<ember::optim::SGD>(std::vector<ember::Tensor>{ember::zeros({2}).requires_grad_()},
                                                 ember::optim::SGDOptions{.lr = 2e-3});
  auto sched = s.scheduler(*opt);
  CHECK(opt->lr(0) == doctest::Approx(2e-4));  // step 0 of the warmup
  for (int i = 0; i < 4; ++i) sched->step();
  CHECK(opt->lr(0) == doctest::Approx(1e-3));

  // Steps 10 to 20 took 2 s (the first 10 also paid 7 s of start-up): 0.21 s a step with the 5% overhead,
  // so 90 s left at step 20 fit 428 more. The fit happens once (accumulated batches end at the same step),
  // and training stops at the new end or the budget.
  CHECK_FALSE(s.after_step(9, 7.9));
  CHECK_FALSE(s.after_step(10, 8.0));
  CHECK(s.total_steps() == 1000);
  CHECK_FALSE(s.after_step(20, 10.0));
  CHECK(s.total_steps() == 448);
  CHECK_FALSE(s.after_step(20, 50.0));
  CHECK(s.total_steps() == 448);
  CHECK(s.factor(448) == doctest::Approx(ratio));
  CHECK(s.factor(229) == doctest::Approx((1 + ratio) / 2));
  CHECK_FALSE(s.after_step(447, 99.0));
  CHECK(s.after_step(448, 99.0));
  CHECK(s.after_step(150, 100.5));
  for (int i = 0; i < 444; ++i) sched->step();  // to step 448, the shrunk schedule's end
  CHECK(opt->lr(0) == doctest::Approx(1e-4));
  // Without a step timed after fit_step / 2 the whole run so far sizes it: 0.525 s a step, so the 90 s
  // left fit 171 more.
  ember_examples::BudgetedCosine whole({.lr = 1, .warmup_steps = 10, .max_steps = 1000, .max_seconds = 100});
  whole.after_step(20, 10.0);
  CHECK(whole.total_steps() == 191);

  // The fitted length is clamped to [warmup + 1, max_steps] and travels with checkpoints.
  ember_examples::BudgetedCosine slow({.lr = 1, .warmup_steps = 10, .max_steps = 1000, .max_seconds = 100});
  slow.after_step(10, 2000.0);
  slow.after_step(20, 5000.0);
  CHECK(slow.total_steps() == 11);
  ember_examples::BudgetedCosine fast({.lr = 1, .warmup_steps = 10, .max_steps = 1000, .max_seconds = 100});
  fast.after_step(20, 0.01);
  CHECK(fast.total_steps() == 1000);
  ember::train::Checkpoint ck;
  s.save(ck, "total");
  fast.load(ck, "total");
  CHECK(fast.total_steps() == 448);
  fast.load(ck, "absent");
  CHECK(fast.total_steps() == 448);
}

TEST_CASE("examples/extending: the custom callback times every epoch and stops at the accuracy goal") {
  const auto records = extending::train_with_epoch_stats(30, 0.9);
  REQUIRE(!records.empty());
  CHECK(records.size() < 30);  // stopped early
  CHECK(records.back().val_acc >= 0.9);
  for (size_t i = 0; i < records.size(); ++i) {
    CAPTURE(i);
    CHECK(records[i].epoch == int64_t(i));
    CHECK(records[i].seconds > 0);
    CHECK(records[i].samples == 1438);  // 80% of the 1797 digits, every epoch
    CHECK(records[i].samples_per_s == doctest::Approx(records[i].samples / records[i].seconds));
    if (i + 1 < records.size()) CHECK(records[i].val_acc < 0.9);  // the first epoch to reach it is the last
  }
}

TEST_CASE("examples/extending: a run resumed from the in-memory CheckpointIO equals the uninterrupted run") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("ember_test_extending_memory_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const auto r = extending::train_resumed_from_memory(4, dir.string());
  CHECK(r.first_step > 0);
  CHECK(r.resumed_step == 2 * r.first_step);
  CHECK(r.resumed_step == r.full_step);
  REQUIRE(!r.full_weights.empty());
  CHECK(r.resumed_weights == r.full_weights);    // bitwise: the resume restored weights, Adam state and data order
  CHECK(!fs::exists(dir / "last.safetensors"));  // nothing went to disk
  fs::remove_all(dir);
}

TEST_CASE("examples/extending: the JSON Lines logger writes hyperparameters, metrics and the status") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("ember_test_extending_jsonl_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  std::ifstream in(extending::train_with_jsonl_logger(2, dir.string()));
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  REQUIRE(lines.size() >= 4);
  CHECK(lines.front().at("hparams").at("lr") == 3e-3);
  CHECK(lines.back() == nlohmann::json{{"status", "success"}});
  int64_t last_step = -1, epochs = 0, steps = 0;
  for (size_t i = 1; i + 1 < lines.size(); ++i) {
    const auto& m = lines[i].at("metrics");
    CHECK(lines[i].at("step").get<int64_t>() >= last_step);
    last_step = lines[i].at("step").get<int64_t>();
    if (m.contains("val_acc")) {
      ++epochs;
      CHECK(m.at("val_acc").get<double>() > 0.5);
    }
    steps += m.contains("train_loss_step");
  }
  CHECK(epochs == 2);
  CHECK(steps == 9);  // 45 batches per epoch, every 10th step logged
  fs::remove_all(dir);
}
