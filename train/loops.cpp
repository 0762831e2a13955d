// The Trainer's loops: fit (epochs of training batches with validation checks), the evaluation loop
// (validation, test, sanity check) and prediction. Module hooks run before the callbacks' hooks of the
// same name, so what the module logs in a hook is visible to the callbacks.
#include <cmath>
#include <filesystem>
#include <iostream>
#include <utility>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/profiler.hpp"
#include "train/signals.hpp"
#include "train/trainer.hpp"

namespace ember::train {
namespace {

// DDP: ranks that run different numbers of training batches wait for each other in a collective forever.
// One all-reduce of (count, -count) at each epoch's start gives every rank the largest and smallest count.
void check_batch_counts(dist::Communicator& comm, int64_t batches) {
  Tensor t = tensor_from<double>({double(batches), -double(batches)}, {2}, {{.dtype = kF64}});
  comm.all_reduce(t, dist::ReduceOp::kMax);
  const int64_t most = static_cast<int64_t>(t.data_ptr<double>()[0]);
  const int64_t least = -static_cast<int64_t>(t.data_ptr<double>()[1]);
  auto count = [](int64_t n) { return n < 0 ? std::string("unknown (a stream)") : std::to_string(n); };
  EMBER_CHECK(most == least, DistError,
              "[Trainer] the ranks disagree on the number of training batches per epoch: some rank has ", count(least),
              " and another ", count(most), " (this rank, ", comm.rank(), ", has ", count(batches),
              "). Under DDP every rank must run as many batches as the others, or they wait for each other forever: "
              "give every rank the same dataset (the DistributedSampler splits it evenly) or set limit_train_batches");
}

}  // namespace

data::Batch Trainer::prepare_batch(const data::Batch& batch) const {
  profiler::RecordFunction range("[Trainer] batch_to_device");
  data::Batch b;
  if (device_.is_cuda() && batch.input.defined() && batch.input.device().is_cpu()) {
    // A host batch crosses on a copy stream: pinned, the copy overlaps the compute already queued;
    // pageable, the copy waits for its own (idle) stream, where on the compute stream it would wait for
    // the steps queued before it. The compute stream waits for the copy, and the batch's memory stays
    // reserved until that compute is done.
    const Stream compute = Stream::current(device_);
    if (!copy_stream_) copy_stream_ = Stream(device_);
    {
      StreamGuard on_copy(*copy_stream_);
      b = batch.to(device_, /*non_blocking=*/true);
    }
    compute.wait(*copy_stream_);
    auto keep = [&](const Tensor& t) {
      if (t.defined() && t.device().is_cuda()) record_stream(t, compute);
    };
    keep(b.input);
    keep(b.target);
    for (const auto& [name, t] : b.extra) keep(t);
  } else {
    b = batch.to(device_);
  }
  if (dtype_ != kF32) {
    auto convert = [&](Tensor& t) {
      if (t.defined() && t.dtype() == kF32) t = t.to(dtype_);
    };
    convert(b.input);
    convert(b.target);
    for (auto& [name, t] : b.extra) convert(t);
  }
  return b;
}

bool Trainer::min_reached() const {
  return current_epoch_ >= options_.min_epochs && global_step_ >= options_.min_steps;
}

bool Trainer::done_fitting() const {
  if (options_.max_steps >= 0 && global_step_ >= options_.max_steps) return true;
  if (fast_dev_ && global_step_ >= options_.fast_dev_run) return true;
  const int64_t epochs = max_epochs();
  if (epochs >= 0 && current_epoch_ >= epochs) return true;
  if (options_.max_time &&
      (comm_ != nullptr ? time_up_ : std::chrono::duration<double>(elapsed()).count() >= *options_.max_time))
    return true;
  return should_stop && min_reached();
}

void Trainer::send_to_loggers(MetricMap metrics) {
  if (metrics.empty() || sanity_checking()) return;
  profiler::RecordFunction range("[Trainer] log");
  metrics["epoch"] = double(current_epoch_);
  metrics_.note_logged(metrics);
  if (eval_start_) ++eval_start_->rows_sent;
  if (muted_rows_ > 0) {  // the interrupted run logged this row before its checkpoint
    --muted_rows_;
    return;
  }
  if (is_global_zero())
    for (const auto& l : loggers_) l->log_metrics(metrics, global_step_);
}

// The decisions to stop are per process (a callback's, a clock's, a signal's); under DDP every rank
// must take the same one at the same batch, so each adopts the most urgent of all ranks'.
void Trainer::sync_stop() {
  if (comm_ == nullptr) return;
  const bool time_up = options_.max_time && std::chrono::duration<double>(elapsed()).count() >= *options_.max_time;
  const int sig = options_.handle_signals ? SignalWatch::received() : 0;
  Tensor flags =
      tensor_from<double>({should_stop ? 1.0 : 0.0, time_up ? 1.0 : 0.0, double(sig)}, {3}, {{.dtype = kF64}});
  comm_->all_reduce(flags, dist::ReduceOp::kMax);
  const double* f = flags.data_ptr<double>();
  should_stop = f[0] != 0;
  time_up_ = f[1] != 0;
  pending_signal_ = static_cast<int>(f[2]);
}

// The loaders and batch counts of a fit (before configure_optimizers, which may ask for
// estimated_stepping_batches()).
void Trainer::setup_fit_loops() {
  graph_step_.reset();  // a new fit captures its own graph
  unregistered_checked_ = no_validation_step_ = false;
  // overfit_batches: train and validate on the same first batches, in order.
  const bool overfit = options_.overfit_batches.is_fraction() ? options_.overfit_batches.fraction() > 0
                                                              : *options_.overfit_batches.batches() > 0;
  if (overfit) {
    EMBER_CHECK(train_loader_->dataset() != nullptr, ValueError,
                "[Trainer] overfit_batches needs a map-style dataset (an IterableDataset has no fixed batches)");
    data::DataLoaderOptions o = train_loader_->options();
    o.shuffle = false;
    o.sampler = nullptr;
    train_loader_ = std::make_shared<data::DataLoader>(train_loader_->dataset(), o);
    val_loader_ = std::make_shared<data::DataLoader>(train_loader_->dataset(), o);
  }
  train_loader_ = distributed(train_loader_);
  val_loader_ = distributed(val_loader_);
  const BatchLimit& train_limit = overfit ? options_.overfit_batches : options_.limit_train_batches;
  num_training_batches_ =
      limit_batches(train_limit, *train_loader_, overfit ? "overfit_batches" : "limit_train_batches");
  num_val_batches_ = val_loader_ == nullptr
                         ? 0
                         : limit_batches(overfit ? options_.overfit_batches : options_.limit_val_batches, *val_loader_,
                                         "limit_val_batches");
  // Lightning warns about empty loaders rather than training or validating on nothing in silence.
  if (is_global_zero()) {
    if (train_loader_->dataset() != nullptr && train_loader_->size() == 0)
      std::cerr << "[Trainer] warning: the training loader is empty (0 batches): fit will not train\n";
    if (val_loader_ != nullptr && val_loader_->dataset() != nullptr && val_loader_->size() == 0)
      std::cerr << "[Trainer] warning: the validation loader is empty (0 batches): fit will not validate\n";
  }
  data_fingerprint_ = data_fingerprint();
  const BatchLimit& vci = options_.val_check_interval;
  EMBER_CHECK(vci.is_fraction() || !options_.check_val_every_n_epoch || num_training_batches_ < 0 ||
                  *vci.batches() <= num_training_batches_ || num_val_batches_ == 0,
              ValueError, "[Trainer] val_check_interval = ", vci.batches().value_or(0), " batches is more than the ",
              num_training_batches_,
              " training batches of an epoch (set check_val_every_n_epoch unset to count across epochs)");
}

void Trainer::run_fit() {
  TrainModule& m = *model_;
  m.on_fit_start();
  call_hook("on_fit_start", [&](Callback& c) { c.on_fit_start(*this, m); });
  if (!fast_dev_ && options_.num_sanity_val_steps != 0 && num_val_batches_ != 0) run_sanity_check();
  m.train();
  m.on_train_start();
  call_hook("on_train_start", [&](Callback& c) { c.on_train_start(*this, m); });
  sync_stop();
  while (!done_fitting() && !stop_for_signal()) run_train_epoch();
  m.on_train_end();
  call_hook("on_train_end", [&](Callback& c) { c.on_train_end(*this, m); });
  m.on_fit_end();
  call_hook("on_fit_end", [&](Callback& c) { c.on_fit_end(*this, m); });
}

bool Trainer::stop_for_signal() {
  if (received_signal_ != 0) return true;
  const int sig = comm_ != nullptr ? pending_signal_ : options_.handle_signals ? SignalWatch::received() : 0;
  if (sig == 0) return false;
  received_signal_ = sig;
  const std::string path = interrupted_checkpoint_path();
  std::error_code ec;  // a missing folder is made; any other problem surfaces in the save below
  std::filesystem::create_directories(options_.default_root_dir, ec);
  save_checkpoint(path);
  if (!is_global_zero()) return true;
  std::cerr << "\n[Trainer] " << SignalWatch::name(sig) << " received: stopped after global step " << global_step_
            << " (epoch " << current_epoch_ << ", batch " << batches_this_epoch_ << ") and saved the run to " << path
            << ".\n[Trainer] Resume it with fit(model, data, {.ckpt_path = \"interrupted\"}) under the same "
               "default_root_dir, or with that path.\n";
  return true;
}

// The sanity check leaves the run as it found it: what it logged, the random numbers it drew and the
// validation loader's position are put back, so a resumed run (which checks again) continues exactly.
void Trainer::run_sanity_check() {
  profiler::RecordFunction range("[Trainer] sanity_check");
  const Stage saved = stage_;
  stage_ = Stage::kSanityChecking;
  eval_start_.emplace(EvalStart{metrics_, default_generator().state(), val_loader_->state_dict(), 0, ""});
  call_hook("on_sanity_check_start", [&](Callback& c) { c.on_sanity_check_start(*this, *model_); });
  const int64_t n = options_.num_sanity_val_steps, full = num_val_batches_;
  run_eval(Stage::kValidating, val_loader_, n < 0 ? full : (full < 0 ? n : std::min(n, full)));
  num_val_batches_ = no_validation_step_ ? 0 : full;
  call_hook("on_sanity_check_end", [&](Callback& c) { c.on_sanity_check_end(*this, *model_); });
  stage_ = saved;
  metrics_ = std::move(eval_start_->metrics);
  default_generator().set_state(eval_start_->rng);
  val_loader_->load_state_dict(eval_start_->val_loader);
  eval_start_.reset();
}

void Trainer::run_train_epoch() {
  profiler::RecordFunction range("run_training_epoch");
  TrainModule& m = *model_;
  epoch_done_ = false;
  m.train();
  metrics_.set_training(true);
  metrics_.set_step_hook(false);
  m.on_train_epoch_start();
  call_hook("on_train_epoch_start", [&](Callback& c) { c.on_train_epoch_start(*this, m); });
  // Resumed from a checkpoint taken right after a batch, or during the validation that followed one.
  if (tail_pending_) batch_tail();
  if (resume_validation_ == "after_batch") run_validation("after_batch", std::exchange(resume_muted_rows_, 0));
  const bool loop_done = resume_validation_ == "epoch_end";  // ... or during the epoch end's validation
  resume_validation_.clear();

  const int64_t loader_epoch = loop_done ? train_loader_->epoch() - 1 : train_loader_->epoch();
  if (comm_ != nullptr) check_batch_counts(*comm_, num_training_batches_);
  sync_stop();
  if (!done_fitting() && !loop_done) {
    int64_t next_start = profiler::now_ns();  // the wait for each batch: the loader's fetch and collate
    for (const data::Batch& batch : *train_loader_) {
      if (num_training_batches_ >= 0 && batches_this_epoch_ >= num_training_batches_) break;
      profiler::record_range("[Loop] train_dataloader_next", next_start);
      if (!training_batch(batch, batches_this_epoch_)) break;
      batch_tail();
      if (profiling_) profiling_->step();  // the profiler's schedule counts training batches
      sync_stop();
      if (done_fitting() || stop_for_signal()) break;
      next_start = profiler::now_ns();
    }
  }
  if (interrupted()) return;  // the run is saved mid-epoch; the epoch's end belongs to the resumed run
  // Batches left unread (limits, max_steps, should_stop) are skipped: the next epoch starts afresh.
  train_loader_->set_epoch(loader_epoch + 1);
  if (loop_done)
    run_validation("epoch_end", std::exchange(resume_muted_rows_, 0));
  else if (num_training_batches_ < 0 && validation_due(/*epoch_end=*/true))
    run_validation("epoch_end");
  epoch_done_ = true;

  metrics_.set_training(true);
  metrics_.set_step_hook(false);
  m.on_train_epoch_end();
  send_to_loggers(metrics_.end_epoch());
  step_schedulers("epoch");
  call_hook("on_train_epoch_end", [&](Callback& c) { c.on_train_epoch_end(*this, m); });
  ++current_epoch_;
  batches_this_epoch_ = 0;
  epoch_done_ = false;
  sync_stop();
}

bool Trainer::training_batch(const data::Batch& batch, int64_t batch_idx) {
  profiler::RecordFunction range("run_training_batch");
  TrainModule& m = *model_;
  batch_idx_ = batch_idx;
  const data::Batch b = prepare_batch(batch);
  metrics_.set_training(true);
  metrics_.set_step_hook(true);
  metrics_.set_batch_size(b.size());
  step_before_batch_ = global_step_;
  if (!m.on_train_batch_start(b, batch_idx)) return false;
  strategy_->before_training_step();
  call_hook("on_train_batch_start", [&](Callback& c) { c.on_train_batch_start(*this, m, b, batch_idx); });

  Tensor loss;
  if (m.automatic_optimization && cuda_graph_step(b, batch_idx, loss)) {
    // the whole step was a CUDA graph replay (TrainerOptions::cuda_graphs, train/cuda_graph_step.cpp)
  } else if (m.automatic_optimization) {
    const bool window_end = (batches_this_epoch_ + 1) % accumulate_ == 0 ||
                            (num_training_batches_ >= 0 && batches_this_epoch_ + 1 == num_training_batches_);
    {
      const std::shared_ptr<void> amp = precision_->forward_context(device_);
      profiler::RecordFunction step_range("[TrainModule] training_step");
      loss = m.training_step(b, batch_idx);
    }
    if (loss.defined()) {
      EMBER_CHECK(loss.numel() == 1, ValueError, "[Trainer] training_step must return a one-element loss, got ",
                  describe(loss));
      EMBER_CHECK(loss.requires_grad(), AutogradError,
                  "[Trainer] training_step's loss does not require grad (computed under no_grad, or from "
                  "detached tensors?)");
      if (options_.detect_anomaly) {
        const double v = loss.detach().to(kF64).item<double>();
        EMBER_CHECK(std::isfinite(v), ValueError, "[Trainer] detect_anomaly: training_step returned a loss of ", v,
                    " at epoch ", current_epoch_, ", batch ", batch_idx, " (global step ", global_step_, ")");
      }
      // accumulate locally until the window ends
      const std::shared_ptr<void> local = window_end ? nullptr : strategy_->block_backward_sync();
      backward(accumulate_ > 1 ? loss / double(accumulate_) : loss);
      grads_pending_ = true;
    }
    if (window_end && grads_pending_) optimizer_step();
  } else {
    auto steps = [&] {
      int64_t n = 0;
      for (const auto& o : optimizers_) n += o->step_count();
      return n;
    };
    const int64_t before = steps();
    manual_steps_ = manual_skipped_ = 0;
    const std::shared_ptr<void> amp = precision_->forward_context(device_);
    profiler::RecordFunction step_range("[TrainModule] training_step");
    loss = m.training_step(b, batch_idx);
    const int64_t taken = steps() - before;
    EMBER_CHECK(precision_->scaler() == nullptr || taken <= manual_steps_ - manual_skipped_, ValueError,
                "[Trainer] precision \"", precision_->name(),
                "\" scales the loss, but training_step called an optimizer's step() itself, which applied "
                "scaled gradients: step with manual_step(opt) under manual optimisation");
    EMBER_CHECK(!strategy_->requires_optimizer_step() || taken <= manual_steps_ - manual_skipped_, ValueError,
                "[Trainer] strategy \"", strategy_->name(),
                "\" updates each rank's shard and then sends it to the others, but training_step called an "
                "optimizer's step() itself, which leaves the ranks' weights different: step with manual_step(opt)");
    // every optimizer step counts (one the precision plugin skipped too), as Lightning's manual optimisation
    global_step_ += taken + manual_skipped_;
    update_precision();
  }
  ++batches_this_epoch_;
  ++batches_total_;
  tail_pending_ = true;  // a checkpoint from the batch-end hooks resumes with the tail below
  metrics_.set_step_hook(true);
  m.on_train_batch_end(loss, b, batch_idx);
  call_hook("on_train_batch_end", [&](Callback& c) { c.on_train_batch_end(*this, m, loss, b, batch_idx); });
  return true;
}

void Trainer::batch_tail() {
  // Step metrics go to the loggers when global_step passes a multiple of log_every_n_steps (or the
  // run is stopping); values logged in other batches are dropped, as Lightning's.
  // Only a batch that sends a row reads its logged tensors to the host (train/metrics.hpp).
  const int64_t n = options_.log_every_n_steps;
  const bool row = global_step_ / n > step_before_batch_ / n || (should_stop && min_reached()) ||
                   (options_.max_steps >= 0 && global_step_ >= options_.max_steps);
  MetricMap step_metrics = metrics_.take_step_metrics(row && !sanity_checking());
  if (row) send_to_loggers(std::move(step_metrics));
  tail_pending_ = false;
  if (num_training_batches_ >= 0 && validation_due(batches_this_epoch_ == num_training_batches_))
    run_validation("after_batch");
}

void Trainer::backward(const Tensor& loss) {
  profiler::RecordFunction range("[Trainer] backward");
  TrainModule& m = *model_;
  m.on_before_backward(loss);
  call_hook("on_before_backward", [&](Callback& c) { c.on_before_backward(*this, m, loss); });
  if (!unregistered_checked_ && stage_ == Stage::kFitting) check_unregistered(loss);
  precision_->pre_backward(loss).backward();
  m.on_after_backward();
  call_hook("on_after_backward", [&](Callback& c) { c.on_after_backward(*this, m); });
}

void Trainer::optimizer_step() {
  profiler::RecordFunction range("[Trainer] optimizer_step");
  TrainModule& m = *model_;
  optim::Optimizer& opt = *optimizers_.front();
  unscale_once(opt);  // hooks and clipping see the true gradients
  m.on_before_optimizer_step(opt);
  call_hook("on_before_optimizer_step", [&](Callback& c) { c.on_before_optimizer_step(*this, m, opt); });
  if (options_.gradient_clip_val && *options_.gradient_clip_val > 0)
    clip_gradients(opt, *options_.gradient_clip_val, options_.gradient_clip_algorithm);
  strategy_->optimizer_step(opt, *precision_);  // the precision plugin may skip it (16-mixed overflow)
  update_precision();
  ++global_step_;
  m.on_before_zero_grad(opt);
  call_hook("on_before_zero_grad", [&](Callback& c) { c.on_before_zero_grad(*this, m, opt); });
  opt.zero_grad();
  grads_pending_ = false;
  step_schedulers("step");
}

bool Trainer::manual_step(optim::Optimizer& opt) {
  profiler::RecordFunction range("[Trainer] optimizer_step");
  unscale_once(opt);
  const bool stepped = strategy_->optimizer_step(opt, *precision_);
  ++manual_steps_;
  if (!stepped) ++manual_skipped_;
  return stepped;
}

void Trainer::clip_gradients(optim::Optimizer& opt, double clip_val, const std::string& algorithm) {
  EMBER_CHECK(algorithm == "norm" || algorithm == "value", ValueError,
              "[Trainer.clip_gradients] algorithm must be \"norm\" or \"value\", got \"", algorithm, "\"");
  unscale_once(opt);
  std::vector<Tensor> params;
  for (const Tensor& p : opt.parameters())
    if (p.grad().defined()) params.push_back(p);
  if (algorithm == "norm")
    strategy_->clip_grad_norm(params, clip_val);
  else
    strategy_->clip_grad_value(params, clip_val);
}

void Trainer::unscale_once(optim::Optimizer& opt) {
  if (unscaled_.insert(&opt).second) precision_->unscale_gradients(opt);
}

void Trainer::update_precision() {
  precision_->update();
  unscaled_.clear();
}

void Trainer::step_schedulers(const std::string& interval) {
  const int64_t count = interval == "step" ? global_step_ : current_epoch_ + 1;
  for (const LRSchedulerConfig& c : schedulers_) {
    if (c.interval != interval || count % c.frequency != 0) continue;
    auto* plateau = dynamic_cast<optim::ReduceLROnPlateau*>(c.scheduler.get());
    if (plateau == nullptr) {
      c.scheduler->step();
      continue;
    }
    const MetricMap& cm = metrics_.callback_metrics();
    auto it = cm.find(c.monitor);
    if (it == cm.end()) {
      std::string available;
      for (const auto& [k, v] : cm) available += (available.empty() ? "" : ", ") + k;
      EMBER_CHECK(!c.strict, ValueError, "[Trainer] ReduceLROnPlateau monitors '", c.monitor,
                  "', which was not logged; logged metrics: ", available.empty() ? "none" : available);
      std::cerr << "[Trainer] ReduceLROnPlateau skipped a step: '" << c.monitor << "' was not logged\n";
      continue;
    }
    plateau->step(it->second);
  }
}

bool Trainer::validation_due(bool epoch_end) const {
  if (val_loader_ == nullptr || num_val_batches_ == 0) return false;
  if (options_.check_val_every_n_epoch && (current_epoch_ + 1) % *options_.check_val_every_n_epoch != 0) return false;
  if (fast_dev_) return epoch_end;
  const BatchLimit& v = options_.val_check_interval;
  if (!v.is_fraction()) {
    const int64_t done = options_.check_val_every_n_epoch ? batches_this_epoch_ : batches_total_;
    return done % *v.batches() == 0;
  }
  if (num_training_batches_ < 0 || v.fraction() == 1.0) return epoch_end;
  const int64_t every = std::max<int64_t>(1, int64_t(double(num_training_batches_) * v.fraction()));
  return batches_this_epoch_ % every == 0;
}

// A validation inside fit; `muted_rows` of its logger rows were sent before the checkpoint it resumes.
void Trainer::run_validation(const char* at, int64_t muted_rows) {
  profiler::RecordFunction range("[Trainer] run_validation");
  eval_start_.emplace(EvalStart{{}, default_generator().state(), val_loader_->state_dict(), 0, at});
  muted_rows_ = muted_rows;
  run_eval(Stage::kValidating, val_loader_, num_val_batches_);
  model_->train();
  metrics_.set_training(true);
}

MetricMap Trainer::run_eval(Stage stage, const std::shared_ptr<data::DataLoader>& loader, int64_t limit) {
  TrainModule& m = *model_;
  const bool test = stage == Stage::kTesting;
  if (test)
    num_test_batches_ = limit;
  else
    num_val_batches_ = limit;
  m.eval();
  autograd::NoGradGuard no_grad;
  metrics_.set_training(false);
  metrics_.set_step_hook(false);
  metrics_.reset_epoch();
  if (test) {
    m.on_test_start();
    call_hook("on_test_start", [&](Callback& c) { c.on_test_start(*this, m); });
    m.on_test_epoch_start();
    call_hook("on_test_epoch_start", [&](Callback& c) { c.on_test_epoch_start(*this, m); });
  } else {
    m.on_validation_start();
    call_hook("on_validation_start", [&](Callback& c) { c.on_validation_start(*this, m); });
    m.on_validation_epoch_start();
    call_hook("on_validation_epoch_start", [&](Callback& c) { c.on_validation_epoch_start(*this, m); });
  }
  int64_t idx = 0;
  const int64_t loader_epoch = loader->epoch();
  if (limit != 0) {
    for (const data::Batch& batch : *loader) {
      if (limit >= 0 && idx >= limit) break;
      const data::Batch b = prepare_batch(batch);
      metrics_.set_batch_size(b.size());
      if (test) {
        call_hook("on_test_batch_start", [&](Callback& c) { c.on_test_batch_start(*this, m, b, idx); });
        {
          const std::shared_ptr<void> amp = precision_->forward_context(device_);
          profiler::RecordFunction step_range("[TrainModule] test_step");
          m.test_step(b, idx);
        }
        call_hook("on_test_batch_end", [&](Callback& c) { c.on_test_batch_end(*this, m, b, idx); });
      } else {
        call_hook("on_validation_batch_start", [&](Callback& c) { c.on_validation_batch_start(*this, m, b, idx); });
        try {
          const std::shared_ptr<void> amp = precision_->forward_context(device_);
          profiler::RecordFunction step_range("[TrainModule] validation_step");
          m.validation_step(b, idx);
        } catch (const StepNotOverridden&) {
          // Lightning skips the validation loop of a module without validation_step (validate() raises).
          if (stage_ != Stage::kFitting && stage_ != Stage::kSanityChecking) throw;
          if (is_global_zero())
            std::cerr << "[Trainer] warning: you passed in a validation loader but " << m.type_name()
                      << " has no validation_step: skipping the validation loop\n";
          no_validation_step_ = true;
          num_val_batches_ = 0;
          break;
        }
        call_hook("on_validation_batch_end", [&](Callback& c) { c.on_validation_batch_end(*this, m, b, idx); });
      }
      send_to_loggers(metrics_.take_step_metrics());
      // validate()/test() profile their own batches (a validation inside fit is part of fit's steps)
      if (profiling_ && (stage_ == Stage::kValidating || stage_ == Stage::kTesting)) profiling_->step();
      ++idx;
    }
  }
  if (test) {
    m.on_test_epoch_end();
    call_hook("on_test_epoch_end", [&](Callback& c) { c.on_test_epoch_end(*this, m); });
  } else {
    m.on_validation_epoch_end();
    call_hook("on_validation_epoch_end", [&](Callback& c) { c.on_validation_epoch_end(*this, m); });
  }
  // A pass cut short by the limit ends here too: the next evaluation reads the next epoch from its start.
  loader->set_epoch(loader_epoch + 1);
  MetricMap epoch = metrics_.end_epoch();
  send_to_loggers(epoch);
  // The evaluation's results are out: a checkpoint from the end hooks resumes after it. (The sanity
  // check keeps its snapshot: it restores it when it ends.)
  if (!sanity_checking()) {
    eval_start_.reset();
    muted_rows_ = 0;
  }
  if (test) {
    m.on_test_end();
    call_hook("on_test_end", [&](Callback& c) { c.on_test_end(*this, m); });
  } else {
    m.on_validation_end();
    call_hook("on_validation_end", [&](Callback& c) { c.on_validation_end(*this, m); });
  }
  metrics_.set_training(true);
  return epoch;
}

std::vector<Tensor> Trainer::run_predict(std::shared_ptr<data::DataLoader> loader) {
  EMBER_CHECK(loader != nullptr, ValueError, "[Trainer.predict] no data: the loader is null");
  TrainModule& m = *model_;
  const int64_t limit = limit_batches(options_.limit_predict_batches, *loader, "limit_predict_batches");
  num_predict_batches_ = limit;
  m.eval();
  autograd::NoGradGuard no_grad;
  m.on_predict_start();
  call_hook("on_predict_start", [&](Callback& c) { c.on_predict_start(*this, m); });
  call_hook("on_predict_epoch_start", [&](Callback& c) { c.on_predict_epoch_start(*this, m); });
  std::vector<Tensor> out;
  int64_t idx = 0;
  if (limit != 0) {
    for (const data::Batch& batch : *loader) {
      if (limit >= 0 && idx >= limit) break;
      const data::Batch b = prepare_batch(batch);
      call_hook("on_predict_batch_start", [&](Callback& c) { c.on_predict_batch_start(*this, m, b, idx); });
      Tensor p;
      {
        const std::shared_ptr<void> amp = precision_->forward_context(device_);
        profiler::RecordFunction step_range("[TrainModule] predict_step");
        p = m.predict_step(b, idx);
      }
      call_hook("on_predict_batch_end", [&](Callback& c) { c.on_predict_batch_end(*this, m, p, b, idx); });
      if (profiling_) profiling_->step();  // the profiler's schedule counts predict batches
      out.push_back(std::move(p));
      ++idx;
    }
  }
  call_hook("on_predict_epoch_end", [&](Callback& c) { c.on_predict_epoch_end(*this, m); });
  m.on_predict_end();
  call_hook("on_predict_end", [&](Callback& c) { c.on_predict_end(*this, m); });
  return out;
}

}  // namespace ember::train
