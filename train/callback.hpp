// Callback: Lightning's hook set, called by the Trainer after the module's own hook of the same name.
// A callback with state (best score, wait count, ...) returns it from state_dict(); checkpoints keep it
// under state_key().
#pragma once
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "nn/optim/optimizer.hpp"
#include "train/data/batch.hpp"

namespace ember::train {

class Trainer;
class TrainModule;
struct Checkpoint;

class Callback {
 public:
  virtual ~Callback() = default;

  // The key of this callback's state in a checkpoint: its class name unless overridden. Only a non-empty
  // state_dict() is saved (Lightning's rule), so stateless callbacks of one class (LambdaCallbacks) may
  // share a key; stateful ones of one class need distinct keys (ModelCheckpoint's and EarlyStopping's hold
  // their monitor and mode), and two with state under one key are an error at the first checkpoint.
  virtual std::string state_key() const;

  virtual void setup(Trainer& /*trainer*/, TrainModule& /*module*/, const std::string& /*stage*/) {}
  virtual void teardown(Trainer& /*trainer*/, TrainModule& /*module*/, const std::string& /*stage*/) {}
  virtual void on_fit_start(Trainer& /*trainer*/, TrainModule& /*module*/) {}
  virtual void on_fit_end(Trainer& /*trainer*/, TrainModule& /*module*/) {}
  virtual void on_sanity_check_start(Trainer& /*trainer*/, TrainModule& /*module*/) {}
  virtual void on_sanity_check_end(Trainer& /*trainer*/, TrainModule& /*module*/) {}
  virtual void on_train_start(Trainer& /*trainer*/, TrainModule& /*module*/) {}
  virtual void on_train_end(Trainer& /*trainer*/, TrainModule& /*module*/) {}
  virtual void on_train_epoch_start(Trainer& /*trainer*/, TrainModule& /*module*/) {}
  virtual void on_train_epoch_end(Trainer& /*trainer*/, TrainModule& /*module*/) {}
  virtual void on_train_batch_start(Trainer& /*trainer*/, TrainModule& /*module*/, const data::Batch& /*batch*/,
                                    int64_t /*batch_idx*/) {}
  // `loss` is training_step's result (undefined when the step was skipped).
  virtual void on_train_batch_end(Trainer& /*trainer*/, TrainModule& /*module*/, const Tensor& /*loss*/,
                                  const data::Batch& /*batch*/, int64_t /*batch_idx*/) {}
  virtual void on_validation_start(Trainer& /*trainer*/, TrainModule& /*module*/) {}
  virtual void on_validation_end(Trainer& /*trainer*/, TrainModule& /*module*/) {}
  virtual void on_validation_epoch_start(Trainer& /*trainer*/, TrainModule& /*module*/) {}
  virtual void on_validation_epoch_end(Trainer& /*trainer*/, TrainModule& /*module*/) {}
  virtual void on_validation_batch_start(Trainer& /*trainer*/, TrainModule& /*module*/, const data::Batch& /*batch*/,
                                         int64_t /*batch_idx*/) {}
  virtual void on_validation_batch_end(Trainer& /*trainer*/, TrainModule& /*module*/, const data::Batch& /*batch*/,
                                       int64_t /*batch_idx*/) {}
  virtual void on_test_start(Trainer& /*trainer*/, TrainModule& /*module*/) {}
  virtual void on_test_end(Trainer& /*trainer*/, TrainModule& /*module*/) {}
  virtual void on_test_epoch_start(Trainer& /*trainer*/, TrainModule& /*module*/) {}
  virtual void on_test_epoch_end(Trainer& /*trainer*/, TrainModule& /*module*/) {}
  virtual void on_test_batch_start(Trainer& /*trainer*/, TrainModule& /*module*/, const data::Batch& /*batch*/,
                                   int64_t /*batch_idx*/) {}
  virtual void on_test_batch_end(Trainer& /*trainer*/, TrainModule& /*module*/, const data::Batch& /*batch*/,
                                 int64_t /*batch_idx*/) {}
  virtual void on_predict_start(Trainer& /*trainer*/, TrainModule& /*module*/) {}
  virtual void on_predict_end(Trainer& /*trainer*/, TrainModule& /*module*/) {}
  virtual void on_predict_epoch_start(Trainer& /*trainer*/, TrainModule& /*module*/) {}
  virtual void on_predict_epoch_end(Trainer& /*trainer*/, TrainModule& /*module*/) {}
  virtual void on_predict_batch_start(Trainer& /*trainer*/, TrainModule& /*module*/, const data::Batch& /*batch*/,
                                      int64_t /*batch_idx*/) {}
  virtual void on_predict_batch_end(Trainer& /*trainer*/, TrainModule& /*module*/, const Tensor& /*prediction*/,
                                    const data::Batch& /*batch*/, int64_t /*batch_idx*/) {}
  // An exception escaped a loop; it is rethrown after every callback has seen it.
  virtual void on_exception(Trainer& /*trainer*/, TrainModule& /*module*/, const std::exception& /*error*/) {}
  virtual void on_before_backward(Trainer& /*trainer*/, TrainModule& /*module*/, const Tensor& /*loss*/) {}
  virtual void on_after_backward(Trainer& /*trainer*/, TrainModule& /*module*/) {}
  virtual void on_before_optimizer_step(Trainer& /*trainer*/, TrainModule& /*module*/,
                                        optim::Optimizer& /*optimizer*/) {}
  virtual void on_before_zero_grad(Trainer& /*trainer*/, TrainModule& /*module*/, optim::Optimizer& /*optimizer*/) {}
  virtual void on_save_checkpoint(Trainer& /*trainer*/, TrainModule& /*module*/, Checkpoint& /*checkpoint*/) {}
  virtual void on_load_checkpoint(Trainer& /*trainer*/, TrainModule& /*module*/, const Checkpoint& /*checkpoint*/) {}

  virtual nlohmann::json state_dict() const { return nlohmann::json::object(); }
  virtual void load_state_dict(const nlohmann::json& state) { (void)state; }
};

using CallbackPtr = std::shared_ptr<Callback>;

}  // namespace ember::train
