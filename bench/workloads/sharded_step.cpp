// Sharded vs replicated optimizer state (issue 17): the Trainer's training step (forward, backward,
// clip_grad_norm 1.0, AdamW) of a wide MLP whose Adam state dominates memory (d-d x depth + d-10, 25 M
// parameters by default, 8 examples per rank), under strategy "ddp" and "ddp_sharded" stage 1 and 2.
// For each strategy rank 0 prints one JSON line: the median ms per step (rank 0's) and each rank's
// median step, peak allocator bytes over the timed steps (ember::memory_stats), live bytes, optimizer
// state bytes and peak RSS. Each configuration resets the allocator peak after its warm-up steps.
// Usage: mpirun -np N sharded_step [--strategies ddp,ddp_sharded1,ddp_sharded2] [--steps 15] [--warmup 3]
//        [--width 2048] [--depth 6] [--batch 8]; bench/sharded.sh runs it beside bench/reference/sharded.py.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "ember.hpp"
#include "train/plugins/ddp_sharded.hpp"  // not in ember.hpp (train/train.hpp) at HEAD

using namespace ember;

namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

struct Config {
  int64_t width = 2048, depth = 6, batch = 8, steps = 15, warmup = 3;
};

// depth Linear(width, width) + ReLU, then Linear(width, 10): equal layers, so a byte-balanced partition
// of whole parameters splits the state evenly over 2 ranks.
struct WideMlp : train::TrainModule {
  nn::Sequential net;
  std::shared_ptr<optim::AdamW> opt;
  WideMlp(int64_t width, int64_t depth) {
    for (int64_t i = 0; i < depth; ++i) net->push_back(nn::Linear(width, width)), net->push_back(nn::ReLU());
    net->push_back(nn::Linear(width, 10));
    register_module("net", net);
  }
  Tensor training_step(const data::Batch& b, int64_t) override {
    return nn::functional::cross_entropy(net(b.input), b.target);
  }
  train::OptimizerConfig configure_optimizers() override {
    opt = std::make_shared<optim::AdamW>(parameters(), optim::AdamWOptions{.lr = 1e-4});
    return opt;
  }
};

// Batch start times; the allocator peak is reset once the warm-up steps (and the lazy Adam state) are
// done and read at the start of the batch after the last timed step.
struct StepClock : train::Callback {
  int64_t warmup, steps;
  std::vector<double> starts;
  int64_t peak = 0, current = 0;
  StepClock(int64_t w, int64_t s) : warmup(w), steps(s) {}
  void on_train_batch_start(train::Trainer&, train::TrainModule&, const data::Batch&, int64_t i) override {
    starts.push_back(now_ms());
    if (i == warmup) reset_peak_memory_stats(kCPU);
    if (i == warmup + steps) {
      const MemoryStats m = memory_stats(kCPU);
      peak = m.peak_bytes, current = m.current_bytes;
    }
  }
  std::vector<double> step_ms() const {
    std::vector<double> out;
    for (int64_t i = warmup; i < warmup + steps; ++i) out.push_back(starts[i + 1] - starts[i]);
    return out;
  }
};

nlohmann::json run(const std::string& which, const Config& c) {
  const int stage = which == "ddp_sharded1" ? 1 : which == "ddp_sharded2" ? 2 : 0;
  EMBER_CHECK(which == "ddp" || stage != 0, ValueError,
              "[sharded_step] strategy must be ddp, ddp_sharded1 or ddp_sharded2, got '", which, "'");
  dist::Communicator& comm = dist::world();
  const int world = comm.world_size(), rank = comm.rank();
  // Every rank draws the same data set; the distributed sampler gives each its own batches.
  const int64_t batches = c.warmup + c.steps + 1;
  manual_seed(1);
  data::TensorDataset ds(randn({batches * c.batch * world, c.width}), randint(0, 10, {batches * c.batch * world}));
  auto loader = std::make_shared<data::DataLoader>(ds, data::DataLoaderOptions{.batch_size = c.batch});
  manual_seed(0);
  WideMlp model(c.width, c.depth);
  auto clock = std::make_shared<StepClock>(c.warmup, c.steps);
  train::TrainerOptions o{.max_epochs = 1,
                          .accelerator = "cpu",
                          .devices = -1,
                          .gradient_clip_val = 1.0,
                          .num_sanity_val_steps = 0,
                          .enable_checkpointing = false,
                          .enable_progress_bar = false,
                          .enable_model_summary = false,
                          .callbacks = {clock},
                          .logger = false};
  if (stage == 0)
    o.strategy = "ddp";
  else
    o.strategy_instance = std::make_shared<train::DDPShardedStrategy>(train::DDPShardedStrategyOptions{.stage = stage});
  train::Trainer trainer(o);
  trainer.fit(model, loader);

  int64_t state = 0, params = 0;
  for (const auto& [name, t] : model.opt->state_dict().state) state += static_cast<int64_t>(t.nbytes());
  for (const Tensor& p : model.parameters()) params += p.numel();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const std::vector<double> ms = clock->step_ms();
  // Per rank: median step (us), allocator peak and live bytes, optimizer state bytes, max RSS (bytes).
  const std::vector<int64_t> all = comm.all_gather_int64(
      {static_cast<int64_t>(median(ms) * 1000), clock->peak, clock->current, state, int64_t{ru.ru_maxrss} * 1024});
  constexpr double kMiB = 1024.0 * 1024.0;
  auto column = [&](int k, double scale) {
    std::vector<double> v;
    for (int r = 0; r < world; ++r) v.push_back(std::round(static_cast<double>(all[r * 5 + k]) / scale * 10) / 10);
    return v;
  };
  std::ostringstream model_name;
  model_name << "MLP " << c.width << "x" << c.depth << "+10, batch " << c.batch << "/rank, AdamW, clip 1.0";
  (void)rank;
  return {{"framework", "ember"},
          {"strategy", stage == 0 ? "ddp" : "ddp_sharded"},
          {"stage", stage},
          {"world", world},
          {"model", model_name.str()},
          {"params", params},
          {"param_mib", std::round(static_cast<double>(params) * 4 / kMiB * 10) / 10},
          {"ms_per_step", std::round(median(ms) * 10) / 10},
          {"rank_ms_per_step", column(0, 1000.0)},
          {"peak_mib", column(1, kMiB)},
          {"live_mib", column(2, kMiB)},
          {"optimizer_state_mib", column(3, kMiB)},
          {"max_rss_mib", column(4, kMiB)}};
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(item);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  std::string strategies = "ddp,ddp_sharded1,ddp_sharded2";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const int64_t v = std::atoll(argv[i + 1]);
    if (k == "--strategies")
      strategies = argv[i + 1];
    else if (k == "--steps")
      c.steps = v;
    else if (k == "--warmup")
      c.warmup = v;
    else if (k == "--width")
      c.width = v;
    else if (k == "--depth")
      c.depth = v;
    else if (k == "--batch")
      c.batch = v;
    else
      return std::fprintf(stderr, "sharded_step: unknown option %s\n", k.c_str()), 2;
  }
  try {
    for (const std::string& s : split(strategies)) {
      const nlohmann::json out = run(s, c);
      if (dist::world().rank() == 0) std::printf("%s\n", out.dump().c_str()), std::fflush(stdout);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sharded_step: %s\n", e.what());
    return 1;
  }
}
