// A custom CheckpointIO: checkpoints in memory as safetensors bytes, keyed by the Trainer's paths (an object
// store would look the same). A run writes there, and a second Trainer resumes with ckpt_path = "last".
#pragma once
#include <map>
#include <mutex>
#include <string>

#include "../digits_mlp/digits_mlp.hpp"

namespace extending {

using namespace ember;

class MemoryCheckpointIO : public train::CheckpointIO {
 public:
  // Serialised at once: the Trainer's tensors are the live parameters, which the next step changes.
  void save_checkpoint(const train::Checkpoint& ck, const std::string& path) override {
    std::string bytes = save_to_bytes(ck.tensors, {{"state", ck.state.dump()}});
    std::lock_guard lock(mutex_);  // AsyncCheckpointIO may call from its background thread
    files_[path] = std::move(bytes);
  }
  train::Checkpoint load_checkpoint(const std::string& path, const train::CheckpointLoadOptions& = {}) override {
    std::lock_guard lock(mutex_);
    auto it = files_.find(path);
    EMBER_CHECK(it != files_.end(), IOError, "[MemoryCheckpointIO] no checkpoint under ", path);
    Metadata meta;
    train::Checkpoint ck{.tensors = load_from_bytes(it->second, &meta), .path = path};
    ck.state = nlohmann::json::parse(meta.at("state"));
    return ck;
  }
  void remove_checkpoint(const std::string& path) override {
    std::lock_guard lock(mutex_);
    files_.erase(path);
  }
  bool exists(const std::string& path) override {
    std::lock_guard lock(mutex_);
    return files_.contains(path);
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::string> files_;
};

struct ResumeResult {
  int64_t first_step = 0, resumed_step = 0, full_step = 0;  // global_step after each fit
  std::vector<double> resumed_weights, full_weights;
};

// `epochs` epochs in two fits (the second resumed from memory) against one uninterrupted fit.
inline ResumeResult train_resumed_from_memory(int64_t epochs, const std::string& dir = "runs/extending_memory") {
  auto run = [&](int64_t max_epochs, std::shared_ptr<MemoryCheckpointIO> io, const std::string& ckpt,
                 std::vector<double>* weights) {
    digits_mlp::Config cfg{.epochs = epochs, .verbose = false};  // the cosine schedule spans all epochs
    manual_seed(cfg.seed);
    data::DigitsDataModule digits({.batch_size = cfg.batch_size, .val_fraction = 0.2, .seed = cfg.seed});
    digits_mlp::DigitsClassifier model(cfg);
    train::TrainerOptions o = digits_mlp::trainer_options(cfg);
    o.max_epochs = max_epochs;
    o.callbacks = {
        std::make_shared<train::ModelCheckpoint>(train::ModelCheckpointOptions{.dirpath = dir, .save_last = true})};
    o.checkpoint_io = std::move(io);
    train::Trainer trainer(o);
    trainer.fit(model, digits, {.ckpt_path = ckpt});
    for (const Tensor& p : model.parameters()) {
      const Tensor f = p.detach().cpu().to(kF64).contiguous().reshape({-1});
      weights->insert(weights->end(), f.data_ptr<double>(), f.data_ptr<double>() + f.numel());
    }
    return trainer.global_step();
  };
  auto store = std::make_shared<MemoryCheckpointIO>();
  ResumeResult r;
  std::vector<double> unused;
  r.first_step = run(epochs / 2, store, "", &unused);
  r.resumed_step = run(epochs, store, "last", &r.resumed_weights);  // a new Trainer, model and data
  r.full_step = run(epochs, std::make_shared<MemoryCheckpointIO>(), "", &r.full_weights);
  return r;
}

}  // namespace extending
