// DataModule's loader-state bookkeeping and the bundled digits module.
#include "train/data/datamodule.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/ops/elementwise.hpp"
#include "train/data/datasets.hpp"

namespace ember::data {

using json = nlohmann::json;

json DataModule::state_dict() {
  json s = json::object();
  const std::pair<const char*, std::shared_ptr<DataLoader>> loaders[] = {{"train", train_dataloader()},
                                                                         {"val", val_dataloader()},
                                                                         {"test", test_dataloader()},
                                                                         {"predict", predict_dataloader()}};
  std::vector<const DataLoader*> seen;  // a loader serving two roles (val and test) is saved once
  for (const auto& [name, loader] : loaders) {
    if (!loader || std::find(seen.begin(), seen.end(), loader.get()) != seen.end()) continue;
    seen.push_back(loader.get());
    s[name] = loader->state_dict();
  }
  return s;
}

void DataModule::load_state_dict(const json& state) {
  EMBER_CHECK(state.is_object(), ValueError, "[DataModule::load_state_dict] expected a JSON object, got ",
              state.dump().substr(0, 200));
  for (const auto& [name, value] : state.items()) {
    std::shared_ptr<DataLoader> loader = name == "train"     ? train_dataloader()
                                         : name == "val"     ? val_dataloader()
                                         : name == "test"    ? test_dataloader()
                                         : name == "predict" ? predict_dataloader()
                                                             : nullptr;
    EMBER_CHECK(loader != nullptr, ValueError, "[DataModule::load_state_dict] the state has a '", name,
                "' loader that this module does not provide");
    loader->load_state_dict(value);
  }
}

DigitsDataModule::DigitsDataModule(DigitsDataModuleOptions options) : options_(options) {
  EMBER_CHECK(options.val_fraction > 0 && options.val_fraction < 1, ValueError,
              "[DigitsDataModule] val_fraction must lie in (0, 1), got ", options.val_fraction);
  EMBER_CHECK(options.batch_size >= 1, ValueError, "[DigitsDataModule] batch_size must be >= 1, got ",
              options.batch_size);
}

void DigitsDataModule::setup(const std::string& stage) {
  (void)stage;
  if (train_set_) return;  // every stage shares the one split
  std::shared_ptr<TensorDataset> all = digits();
  if (options_.normalize) all = std::make_shared<TensorDataset>(all->input() / 16.0, all->target());
  auto parts = random_split(all, std::vector<double>{1 - options_.val_fraction, options_.val_fraction}, options_.seed);
  train_set_ = parts[0];
  val_set_ = parts[1];
}

std::shared_ptr<DataLoader> DigitsDataModule::train_dataloader() {
  if (!train_) {
    setup("fit");
    train_ = std::make_shared<DataLoader>(train_set_, DataLoaderOptions{.batch_size = options_.batch_size,
                                                                        .shuffle = true,
                                                                        .seed = options_.seed,
                                                                        .num_workers = options_.num_workers});
  }
  return train_;
}

std::shared_ptr<DataLoader> DigitsDataModule::val_dataloader() {
  if (!val_) {
    setup("validate");
    val_ = std::make_shared<DataLoader>(
        val_set_, DataLoaderOptions{.batch_size = options_.batch_size, .num_workers = options_.num_workers});
  }
  return val_;
}

}  // namespace ember::data
