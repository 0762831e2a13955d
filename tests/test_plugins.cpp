// The Trainer's plugin seams: a user's own Strategy and Precision objects run in place of the built-ins,
// and the Trainer reaches them at every point their interfaces name.
#include <doctest/doctest.h>

#include "tests/trainer_fixtures.hpp"

using namespace ember;
using namespace trainer_test;

namespace {

// The single-device strategy with a count of each call the Trainer makes.
struct CountingStrategy : train::SingleDeviceStrategy {
  int setups = 0, teardowns = 0, before_steps = 0, steps = 0, clips = 0, saves = 0, blocked = 0, state_reads = 0;
  std::string name() const override { return "counting"; }
  void setup_training(nn::Module&, const std::vector<std::shared_ptr<optim::Optimizer>>&, train::Precision&) override {
    ++setups;
  }
  void teardown_training() override { ++teardowns; }
  void before_training_step() override { ++before_steps; }
  std::shared_ptr<void> block_backward_sync() override {
    ++blocked;
    return nullptr;
  }
  Tensor clip_grad_norm(const std::vector<Tensor>& params, double max_norm) override {
    ++clips;
    return Strategy::clip_grad_norm(params, max_norm);
  }
  bool optimizer_step(optim::Optimizer& opt, train::Precision& precision) override {
    ++steps;
    return Strategy::optimizer_step(opt, precision);
  }
  optim::StateDict optimizer_state(const optim::Optimizer& opt) override {
    ++state_reads;
    return Strategy::optimizer_state(opt);
  }
  void save_checkpoint(const train::Checkpoint& ck, const std::string& path, const CheckpointWriter& write) override {
    ++saves;
    Strategy::save_checkpoint(ck, path, write);
  }
};

// A static loss scale of 1024 (a power of two: scaling and unscaling are exact), with its state in
// checkpoints: training must equal plain float32 step for step.
struct StaticScale : train::Precision {
  int unscales = 0;
  std::string name() const override { return "static-scale"; }
  Tensor pre_backward(const Tensor& loss) override { return loss * 1024.0; }
  void unscale_gradients(optim::Optimizer& opt) override {
    ++unscales;
    autograd::NoGradGuard no_grad;
    for (const Tensor& p : opt.parameters())
      if (p.grad().defined()) p.grad().mul_(1.0 / 1024.0);
  }
  nlohmann::json state_dict() const override { return {{"scale", 1024.0}}; }
};

}  // namespace

TEST_SUITE("plugins") {
  TEST_CASE("Trainer: a user's Strategy runs in place of the built-in, at every point of its interface") {
    TempDir dir("plugins_strategy");
    auto strategy = std::make_shared<CountingStrategy>();
    manual_seed(3);
    Tiny m;
    train::TrainerOptions o = quiet({.max_epochs = 2,
                                     .strategy_instance = strategy,
                                     .accumulate_grad_batches = 2,
                                     .gradient_clip_val = 1.0,
                                     .num_sanity_val_steps = 0,
                                     .default_root_dir = dir.str()});
    o.enable_checkpointing = true;
    train::Trainer t(o);
    t.fit(m, loader(24, 4, true));  // 6 batches per epoch, 3 steps
    CHECK(&t.strategy() == strategy.get());
    CHECK(t.strategy().name() == "counting");
    CHECK(strategy->setups == 1);
    CHECK(strategy->teardowns == 1);
    CHECK(strategy->before_steps == 12);
    CHECK(strategy->blocked == 6);  // the first batch of each accumulation window
    CHECK(strategy->steps == 6);
    CHECK(strategy->clips == 6);
    CHECK(strategy->saves == 2);  // the default ModelCheckpoint, once per epoch
    CHECK(strategy->state_reads == 2);
    CHECK(t.global_step() == 6);

    // The same run with the built-in strategy ends with the same weights.
    manual_seed(3);
    Tiny plain;
    train::Trainer tp(quiet({.max_epochs = 2,
                             .accumulate_grad_batches = 2,
                             .gradient_clip_val = 1.0,
                             .num_sanity_val_steps = 0,
                             .default_root_dir = dir.str()}));
    tp.fit(plain, loader(24, 4, true));
    CHECK(tp.strategy().name() == "single_device");
    CHECK(flat_params(plain) == flat_params(m));
  }

  TEST_CASE("Trainer: a user's Precision plugin scales the loss, unscales before clipping, saves its state") {
    TempDir dir("plugins_precision");
    auto precision = std::make_shared<StaticScale>();
    std::vector<double> grad_norms;
    auto watch = std::make_shared<train::LambdaCallback>(
        train::LambdaHooks{.on_before_optimizer_step = [&](train::Trainer&, train::TrainModule& m, optim::Optimizer&) {
          double sq = 0;
          for (const Tensor& p : m.parameters()) sq += (p.grad().to(kF64) * p.grad().to(kF64)).sum().item<double>();
          grad_norms.push_back(std::sqrt(sq));
        }});
    manual_seed(8);
    Tiny scaled;
    train::Trainer t(quiet({.max_epochs = 2,
                            .precision_plugin = precision,
                            .gradient_clip_val = 0.05,
                            .num_sanity_val_steps = 0,
                            .callbacks = {watch},
                            .default_root_dir = dir.str()}));
    t.fit(scaled, loader(24, 4, true));
    CHECK(&t.precision_plugin() == precision.get());
    CHECK(precision->unscales == 12);
    for (double n : grad_norms) CHECK(n < 10.0);  // the hooks saw true gradients, not 1024x ones
    t.save_checkpoint(dir.str() + "/p.safetensors");
    CHECK(train::Checkpoint::load(dir.str() + "/p.safetensors").state.at("precision").at("scale") == 1024.0);

    manual_seed(8);
    Tiny plain;
    train::Trainer tp(
        quiet({.max_epochs = 2, .gradient_clip_val = 0.05, .num_sanity_val_steps = 0, .default_root_dir = dir.str()}));
    tp.fit(plain, loader(24, 4, true));
    CHECK(flat_params(plain) == flat_params(scaled));
  }
}
