// Trainer overhead (issue 5): LeNet-5 on in-memory MNIST-shaped data, trained for the same steps by a plain
// loop and by the Trainer (progress bar on but not a terminal, CSVLogger, ModelCheckpoint at epoch end),
// alternating runs. Prints JSON (last line): time per step and per epoch boundary, checkpoint writes apart.
// Usage: trainer_overhead [--epochs 3] [--batches 100] [--reps 3] [--model lenet|linear] [--dir DIR]
// Twin: bench/reference/trainer_overhead.py.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "bench/workloads/models.hpp"
#include "ember.hpp"

using namespace ember;
namespace F = ember::nn::functional;

namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Batch start/end times per epoch; the same bookkeeping for both loops.
struct Clock {
  std::vector<std::vector<double>> starts, ends;
  void epoch() { starts.emplace_back(), ends.emplace_back(); }
  // Mean time from one batch start to the next within an epoch (everything a step costs).
  double step_ms() const {
    double total = 0;
    int64_t n = 0;
    for (const auto& s : starts)
      if (s.size() > 1) total += s.back() - s.front(), n += static_cast<int64_t>(s.size()) - 1;
    return total / static_cast<double>(n);
  }
  // Mean time from an epoch's last batch end to the next epoch's first batch start.
  double boundary_ms() const {
    double total = 0;
    for (size_t e = 0; e + 1 < starts.size(); ++e) total += starts[e + 1].front() - ends[e].back();
    return total / static_cast<double>(starts.size() - 1);
  }
};

struct ClockCallback : train::Callback {
  Clock clock;
  void on_train_epoch_start(train::Trainer&, train::TrainModule&) override { clock.epoch(); }
  void on_train_batch_start(train::Trainer&, train::TrainModule&, const data::Batch&, int64_t) override {
    clock.starts.back().push_back(now_ms());
  }
  void on_train_batch_end(train::Trainer&, train::TrainModule&, const Tensor&, const data::Batch&, int64_t) override {
    clock.ends.back().push_back(now_ms());
  }
};

// ModelCheckpoint that times its epoch-end save, so the boundary can be reported without it.
struct TimedCheckpoint : train::ModelCheckpoint {
  using ModelCheckpoint::ModelCheckpoint;
  double total_ms = 0;
  void on_train_epoch_end(train::Trainer& t, train::TrainModule& m) override {
    const double t0 = now_ms();
    ModelCheckpoint::on_train_epoch_end(t, m);
    total_ms += now_ms() - t0;
  }
};

// LeNet-5, or with --model linear a single Linear(784, 10), where the step is so cheap that the Trainer's
// own cost per step shows in microseconds.
nn::Sequential make_net(bool linear) {
  return linear ? nn::Sequential(nn::Flatten(), nn::Linear(784, 10)) : bench::LeNet{}.net;
}

struct NetModule : train::TrainModule {
  nn::Sequential net;
  explicit NetModule(bool linear) : net(make_net(linear)) { register_module("net", net); }
  Tensor training_step(const data::Batch& b, int64_t) override {
    Tensor loss = F::cross_entropy(net(b.input), b.target);
    log("train_loss", loss, {.prog_bar = true});
    return loss;
  }
  train::OptimizerConfig configure_optimizers() override {
    return std::make_shared<optim::Adam>(parameters(), optim::AdamOptions{.lr = 1e-3});
  }
};

std::shared_ptr<data::DataLoader> make_loader(int64_t batches) {
  manual_seed(1);
  data::TensorDataset ds(rand({batches * 64, 1, 28, 28}), randint(0, 10, {batches * 64}));
  return std::make_shared<data::DataLoader>(ds, data::DataLoaderOptions{.batch_size = 64, .shuffle = true, .seed = 0});
}

Clock plain_run(int64_t epochs, data::DataLoader& loader, bool linear) {
  manual_seed(0);
  nn::Sequential m = make_net(linear);
  optim::Adam opt(m->parameters(), {.lr = 1e-3});
  Clock c;
  for (int64_t e = 0; e < epochs; ++e) {
    c.epoch();
    for (const data::Batch& b : loader) {
      c.starts.back().push_back(now_ms());
      Tensor loss = F::cross_entropy(m(b.input), b.target);
      opt.zero_grad();
      loss.backward();
      opt.step();
      c.ends.back().push_back(now_ms());
    }
  }
  return c;
}

struct TrainerResult {
  Clock clock;
  double checkpoint_ms = 0;  // mean per epoch
};

TrainerResult trainer_run(int64_t epochs, const std::shared_ptr<data::DataLoader>& loader, const std::string& dir,
                          bool linear) {
  manual_seed(0);
  NetModule model(linear);
  auto clock = std::make_shared<ClockCallback>();
  auto ckpt = std::make_shared<TimedCheckpoint>(train::ModelCheckpointOptions{.dirpath = dir + "/checkpoints"});
  auto csv = std::make_shared<train::CSVLogger>(train::CSVLoggerOptions{.save_dir = dir});
  train::Trainer trainer({.max_epochs = epochs,
                          .enable_progress_bar = true,
                          .callbacks = {clock, ckpt},
                          .loggers = {csv},
                          .default_root_dir = dir});
  trainer.fit(model, loader);
  return {clock->clock, ckpt->total_ms / static_cast<double>(epochs)};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t epochs = 3, batches = 100, reps = 3;
  bool linear = false;
  std::string dir = (std::filesystem::temp_directory_path() / "ember_trainer_overhead").string();
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--epochs")
      epochs = std::atoll(argv[i + 1]);
    else if (k == "--batches")
      batches = std::atoll(argv[i + 1]);
    else if (k == "--reps")
      reps = std::atoll(argv[i + 1]);
    else if (k == "--dir")
      dir = argv[i + 1];
    else if (k == "--model")
      linear = std::string(argv[i + 1]) == "linear";
    else
      return std::fprintf(stderr, "trainer_overhead: unknown option %s\n", k.c_str()), 2;
  }
  try {
    auto loader = make_loader(batches);
    std::vector<double> plain_step, plain_boundary, trainer_step, trainer_boundary, ckpt, overhead;
    plain_run(1, *loader, linear);  // warm-up: allocator caches, thread pools
    for (int64_t r = 0; r < reps; ++r) {
      std::filesystem::remove_all(dir);
      Clock p = plain_run(epochs, *loader, linear);
      TrainerResult t = trainer_run(epochs, loader, dir, linear);
      plain_step.push_back(p.step_ms());
      plain_boundary.push_back(p.boundary_ms());
      trainer_step.push_back(t.clock.step_ms());
      trainer_boundary.push_back(t.clock.boundary_ms());
      ckpt.push_back(t.checkpoint_ms);
      overhead.push_back(t.clock.step_ms() / p.step_ms() - 1);
    }
    std::filesystem::remove_all(dir);
    nlohmann::json out = {{"framework", "ember"},
                          {"model", linear ? "Linear(784, 10), batch 64, Adam" : "LeNet-5, batch 64, Adam"},
                          {"epochs", epochs},
                          {"batches", batches},
                          {"reps", reps},
                          {"plain_step_ms", median(plain_step)},
                          {"plain_boundary_ms", median(plain_boundary)},
                          {"trainer_step_ms", median(trainer_step)},
                          {"trainer_boundary_ms", median(trainer_boundary)},
                          {"checkpoint_ms", median(ckpt)},
                          {"step_overhead", median(overhead)},
                          {"raw",
                           {{"plain_step_ms", plain_step},
                            {"trainer_step_ms", trainer_step},
                            {"plain_boundary_ms", plain_boundary},
                            {"trainer_boundary_ms", trainer_boundary},
                            {"checkpoint_ms", ckpt}}}};
    std::printf("\n%s\n", out.dump().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trainer_overhead: %s\n", e.what());
    return 1;
  }
}
