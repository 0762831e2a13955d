// libFuzzer target for a checkpoint's run state (the "ember_checkpoint" JSON, untrusted input): fit
// resumed from any state must train or throw ember::Error, never crash, divide by zero or run without
// end. The input is the state's JSON text; the tensors are those of a valid checkpoint of the same run.
// With EMBER_FUZZ_SEEDS=<folder>, start-up writes the states of valid checkpoints taken at several points
// of a run there (mid-epoch, epoch end, during validation, the sanity check), so that the fuzzer starts
// from real states and reaches every field (tools/fuzz.sh does this).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "ember.hpp"

namespace fs = std::filesystem;
using namespace ember;

namespace {

struct Model : train::TrainModule {
  nn::Linear fc{4, 3};
  nn::Dropout drop{0.2};
  Model() {
    register_module("fc", fc);
    register_module("drop", drop);
  }
  Tensor training_step(const data::Batch& b, int64_t) override {
    Tensor loss = nn::functional::cross_entropy(fc(drop(b.input)), b.target);
    log("train_loss", loss, {.prog_bar = true});
    return loss;
  }
  void validation_step(const data::Batch& b, int64_t) override {
    log("val_loss", nn::functional::cross_entropy(fc(b.input), b.target));
  }
  train::OptimizerConfig configure_optimizers() override {
    auto opt = std::make_shared<optim::Adam>(parameters(), optim::AdamOptions{.lr = 0.05});
    return {opt, {.scheduler = std::make_shared<optim::StepLR>(*opt, 2, 0.5), .interval = "step"}};
  }
};

std::shared_ptr<data::DataLoader> loader(int64_t n, bool shuffle) {
  Generator g(3);
  Tensor x = randn({n, 4}, {}, &g);
  return std::make_shared<data::DataLoader>(data::TensorDataset(x, x.narrow(1, 0, 3).argmax(1)),
                                            data::DataLoaderOptions{.batch_size = 4, .shuffle = shuffle, .seed = 7});
}

fs::path work_dir() {
  static const fs::path dir = fs::temp_directory_path() / ("ember_fuzz_checkpoint_" + std::to_string(getpid()));
  return dir;
}

// A run of 2 epochs (4 batches each, validation twice an epoch), with the callbacks whose state travels.
void fit(const std::string& ckpt, std::vector<train::CallbackPtr> extra = {}) {
  extra.push_back(std::make_shared<train::EarlyStopping>(train::EarlyStoppingOptions{.monitor = "val_loss"}));
  extra.push_back(std::make_shared<train::ModelCheckpoint>(train::ModelCheckpointOptions{
      .dirpath = (work_dir() / "ckpt").string(), .monitor = "val_loss", .save_last = true}));
  Model m;
  train::Trainer t({.max_epochs = 2,
                    .val_check_interval = 0.5,
                    .enable_progress_bar = false,
                    .enable_model_summary = false,
                    .callbacks = extra,
                    .logger = false,
                    .default_root_dir = work_dir().string(),
                    .handle_signals = false});
  t.fit(m, loader(16, true), loader(8, false), {.ckpt_path = ckpt});
}

// Writes a checkpoint at the n-th call of each of several hooks.
struct SeedWriter : train::Callback {
  int count = 0;
  std::string state_key() const override { return "SeedWriter"; }
  void save(train::Trainer& t) { t.save_checkpoint((work_dir() / ("seed" + std::to_string(count++))).string()); }
  void on_train_batch_end(train::Trainer& t, train::TrainModule&, const Tensor&, const data::Batch&, int64_t) override {
    if (t.global_step() % 3 == 1) save(t);
  }
  void on_validation_batch_end(train::Trainer& t, train::TrainModule&, const data::Batch&, int64_t i) override {
    if (i == 1) save(t);
  }
  void on_train_epoch_end(train::Trainer& t, train::TrainModule&) override { save(t); }
};

TensorMap g_tensors;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fs::create_directories(work_dir());
  auto writer = std::make_shared<SeedWriter>();
  fit("", {writer});
  g_tensors = train::Checkpoint::load((work_dir() / "seed1").string()).tensors;
  if (const char* seeds = std::getenv("EMBER_FUZZ_SEEDS")) {
    fs::create_directories(seeds);
    for (int i = 0; i < writer->count; ++i) {
      const train::Checkpoint ck = train::Checkpoint::load((work_dir() / ("seed" + std::to_string(i))).string());
      std::ofstream(fs::path(seeds) / ("state" + std::to_string(i) + ".json")) << ck.state.dump(1);
    }
  }
  std::atexit([] { fs::remove_all(work_dir()); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  train::Checkpoint ck;
  try {
    ck.state = nlohmann::json::parse(data, data + size);
  } catch (const nlohmann::json::exception&) {
    return 0;  // not JSON: the checkpoint reader rejects it before any field is read
  }
  ck.tensors = g_tensors;
  const std::string path = (work_dir() / "input.safetensors").string();
  ck.save(path);
  try {
    fit(path);
  } catch (const Error&) {  // rejected cleanly
  }
  return 0;
}
