// TrainModule: defaults of the optional steps and hooks, logging into the running Trainer, manual
// optimisation helpers.
#include "train/module.hpp"

#include "core/error.hpp"
#include "train/cuda_graph_step.hpp"
#include "train/trainer.hpp"

namespace ember::train {

OptimizerConfig::OptimizerConfig(std::shared_ptr<optim::Optimizer> optimizer, LRSchedulerConfig scheduler)
    : OptimizerConfig(std::vector{std::move(optimizer)}, std::vector{std::move(scheduler)}) {}
OptimizerConfig::OptimizerConfig(std::vector<std::shared_ptr<optim::Optimizer>> optimizers,
                                 std::vector<LRSchedulerConfig> schedulers)
    : optimizers(std::move(optimizers)), schedulers(std::move(schedulers)) {}

void TrainModule::validation_step(const data::Batch& /*batch*/, int64_t /*batch_idx*/) {
  throw StepNotOverridden(detail::cat_str("[Trainer.validate] ", type_name(),
                                          " does not override validation_step (override it, or pass no validation "
                                          "data, or set limit_val_batches = 0)"));
}
void TrainModule::test_step(const data::Batch& /*batch*/, int64_t /*batch_idx*/) {
  throw ValueError("[Trainer.test] the module does not override test_step");
}
Tensor TrainModule::predict_step(const data::Batch& batch, int64_t /*batch_idx*/) { return forward(batch.input); }
Tensor TrainModule::forward(const Tensor& /*input*/) {
  throw ValueError(detail::cat_str("[Trainer.predict] ", type_name(),
                                   " overrides neither predict_step nor forward(const Tensor&): predict_step's default "
                                   "calls forward(batch.input)"));
}
bool TrainModule::on_train_batch_start(const data::Batch& /*batch*/, int64_t /*batch_idx*/) { return true; }
void TrainModule::on_train_batch_end(const Tensor& /*loss*/, const data::Batch& /*batch*/, int64_t /*batch_idx*/) {}

// Kept on its device and read when a number is needed (train/metrics.hpp): no host read here.
void TrainModule::log(const std::string& name, const Tensor& value, const LogOptions& options) {
  EMBER_CHECK(value.defined() && value.numel() == 1, ValueError, "[log] '", name,
              "' must be a one-element tensor, got ", value.defined() ? describe(value) : std::string("undefined"));
  EMBER_CHECK(trainer_ != nullptr, ValueError, "[log] '", name, "' was logged outside a Trainer run");
  if (record_graph_log(name, value, options)) return;  // inside a captured CUDA graph step: re-issued per replay
  trainer_->metrics_.log(name, value, options);
}

// A captured CUDA graph step runs training_step's host code once: a number or a Metric's update logged
// there would stand for the capture step in every replay.
static void check_not_captured(const std::string& name, const char* what) {
  EMBER_CHECK(GraphLogRecorder::active() == nullptr, ValueError, "[log] '", name, "' logs ", what,
              " inside a training_step captured by cuda_graphs, which runs its host code at the capture only: every "
              "replay would report the capture step's value. Log a tensor computed in the step, or log it from "
              "on_train_batch_start/on_train_batch_end");
}

void TrainModule::log(const std::string& name, double value, const LogOptions& options) {
  EMBER_CHECK(trainer_ != nullptr, ValueError, "[log] '", name, "' was logged outside a Trainer run");
  check_not_captured(name, "a number");
  trainer_->metrics_.log(name, value, options);
}

void TrainModule::log(const std::string& name, metrics::Metric& metric, const LogOptions& options) {
  EMBER_CHECK(trainer_ != nullptr, ValueError, "[log] '", name, "' was logged outside a Trainer run");
  check_not_captured(name, "a Metric");
  trainer_->metrics_.log(name, metric, options);
}

void TrainModule::log_dict(const std::map<std::string, Tensor>& values, const LogOptions& options) {
  for (const auto& [name, value] : values) log(name, value, options);
}
void TrainModule::log_dict(const std::map<std::string, double>& values, const LogOptions& options) {
  for (const auto& [name, value] : values) log(name, value, options);
}

void TrainModule::save_hyperparameters(nlohmann::json hparams) {
  EMBER_CHECK(hparams.is_object(), ValueError, "[save_hyperparameters] expected a JSON object, got ",
              hparams.type_name());
  hparams_ = std::move(hparams);
}

Trainer& TrainModule::trainer() const {
  EMBER_CHECK(trainer_ != nullptr, ValueError, "[TrainModule] is not attached to a Trainer");
  return *trainer_;
}
const std::vector<std::shared_ptr<optim::Optimizer>>& TrainModule::optimizers() const { return trainer().optimizers(); }
std::vector<std::shared_ptr<optim::LRScheduler>> TrainModule::lr_schedulers() const {
  std::vector<std::shared_ptr<optim::LRScheduler>> out;
  for (const auto& c : trainer().lr_scheduler_configs()) out.push_back(c.scheduler);
  return out;
}
int64_t TrainModule::current_epoch() const { return trainer_ ? trainer_->current_epoch() : 0; }
int64_t TrainModule::global_step() const { return trainer_ ? trainer_->global_step() : 0; }

void TrainModule::manual_backward(const Tensor& loss) {
  EMBER_CHECK(loss.defined(), ValueError, "[manual_backward] got an undefined loss");
  trainer().backward(loss);
}

bool TrainModule::manual_step(optim::Optimizer& opt) { return trainer().manual_step(opt); }

void TrainModule::clip_gradients(optim::Optimizer& opt, double clip_val, const std::string& algorithm) {
  trainer().clip_gradients(opt, clip_val, algorithm);
}

}  // namespace ember::train
