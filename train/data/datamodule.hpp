// DataModule (Lightning's LightningDataModule): the data side of a training run, building datasets in
// setup() and handing out loaders; DigitsDataModule wraps the bundled 8x8 digits.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "train/data/loader.hpp"

namespace ember::data {

// A Trainer calls prepare_data(), setup(stage) ("fit", "validate", "test", "predict"), then the
// *_dataloader() it needs (nullptr: none). Return the same loader on every call: its position is part of
// the run's state (state_dict() collects them for checkpoints).
class DataModule {
 public:
  virtual ~DataModule() = default;
  virtual void prepare_data() {}
  virtual void setup(const std::string& stage) { (void)stage; }
  virtual void teardown(const std::string& stage) { (void)stage; }
  virtual std::shared_ptr<DataLoader> train_dataloader() { return nullptr; }
  virtual std::shared_ptr<DataLoader> val_dataloader() { return nullptr; }
  virtual std::shared_ptr<DataLoader> test_dataloader() { return nullptr; }
  virtual std::shared_ptr<DataLoader> predict_dataloader() { return nullptr; }
  // {"train": ..., "val": ..., "test": ..., "predict": ...}: the state of each loader made so far.
  virtual nlohmann::json state_dict();
  virtual void load_state_dict(const nlohmann::json& state);
};

struct DigitsDataModuleOptions {
  int64_t batch_size = 64;
  double val_fraction = 0.2;  // held out (random_split with `seed`); also the test set
  bool normalize = true;      // pixels / 16, so inputs lie in [0, 1]
  uint64_t seed = 0;          // the split and the training shuffle
  int64_t num_workers = 0;
};

// The bundled digits (data::digits()): a shuffled training loader and an in-order validation loader
// over a seeded split (1438 / 359 examples with the defaults).
class DigitsDataModule : public DataModule {
 public:
  explicit DigitsDataModule(DigitsDataModuleOptions options = {});
  void setup(const std::string& stage) override;
  std::shared_ptr<DataLoader> train_dataloader() override;
  std::shared_ptr<DataLoader> val_dataloader() override;
  std::shared_ptr<DataLoader> test_dataloader() override { return val_dataloader(); }
  const DigitsDataModuleOptions& options() const { return options_; }
  DatasetPtr train_dataset() const { return train_set_; }
  DatasetPtr val_dataset() const { return val_set_; }

 private:
  DigitsDataModuleOptions options_;
  DatasetPtr train_set_, val_set_;
  std::shared_ptr<DataLoader> train_, val_;
};

}  // namespace ember::data
