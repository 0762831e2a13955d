// Trainer: option checks, run set-up and tear-down for fit/validate/test/predict, checkpoints (what a
// run's state is and how it comes back). The loops themselves are in loops.cpp.
#include "train/trainer.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <filesystem>
#include <iostream>

#include "core/autograd.hpp"
#include "core/determinism.hpp"
#include "core/error.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/random.hpp"
#include "dist/process_group.hpp"
#include "train/callbacks/model_checkpoint.hpp"
#include "train/callbacks/model_summary.hpp"
#include "train/callbacks/progress_bar.hpp"
#include "train/loader_resume.hpp"
#include "train/loggers/csv.hpp"
#include "train/plugins/ddp_sharded.hpp"
#include "train/requeue.hpp"
#include "train/signals.hpp"

namespace ember::train {
namespace {

constexpr const char* kEmberVersion = "0.1.0";

bool one_of(const std::string& v, std::initializer_list<const char*> options) {
  for (const char* o : options)
    if (v == o) return true;
  return false;
}

}  // namespace

int64_t BatchLimit::resolve(int64_t available, const char* option) const {
  if (batches_) {
    EMBER_CHECK(*batches_ >= 0, ValueError, "[Trainer] ", option, " must be >= 0, got ", *batches_);
    return available < 0 ? *batches_ : std::min(*batches_, available);
  }
  EMBER_CHECK(fraction_ >= 0.0 && fraction_ <= 1.0, ValueError, "[Trainer] ", option,
              " as a fraction must lie in [0, 1], got ", fraction_);
  if (available < 0) {
    EMBER_CHECK(fraction_ == 1.0 || fraction_ == 0.0, ValueError, "[Trainer] ", option, " = ", fraction_,
                " needs a loader of known length (an IterableDataset has none): give a number of batches");
    return fraction_ == 1.0 ? -1 : 0;
  }
  // Lightning: a fraction that leaves no batch of a non-empty loader is an error, not a silent skip.
  const int64_t n = static_cast<int64_t>(std::floor(double(available) * fraction_));
  EMBER_CHECK(n > 0 || fraction_ == 0.0 || available == 0, ValueError, "[Trainer] ", option, " = ", fraction_, " of ",
              available, " batches leaves none");
  return n;
}

const char* stage_name(Stage stage) {
  switch (stage) {
    case Stage::kFitting:
      return "fit";
    case Stage::kValidating:
      return "validate";
    case Stage::kTesting:
      return "test";
    case Stage::kPredicting:
      return "predict";
    case Stage::kSanityChecking:
      return "sanity_check";
    case Stage::kNone:
      break;
  }
  return "none";
}

namespace {

// The strategy the options name: strategy_instance, or the built-in `strategy` names ("auto": DDP when the
// launcher started several processes, or devices/num_nodes ask for several). A distributed one needs
// exactly devices x num_nodes processes from the launcher.
std::shared_ptr<Strategy> make_strategy(const TrainerOptions& o, const dist::LaunchInfo& launch) {
  std::shared_ptr<Strategy> strategy = o.strategy_instance;
  const bool several = o.devices > 1 || o.num_nodes > 1 || o.devices == -1;
  if (strategy == nullptr) {
    EMBER_CHECK(!several || o.strategy != "single_device", ValueError,
                "[Trainer] strategy \"single_device\" with devices = ", o.devices, ", num_nodes = ", o.num_nodes,
                ": several devices train with strategy \"ddp\"");
    if (o.strategy == "ddp_sharded")
      strategy = std::make_shared<DDPShardedStrategy>(
          DDPShardedStrategyOptions{.bucket_cap_mb = o.ddp_bucket_cap_mb, .timeout = o.ddp_timeout});
    else if (o.strategy == "ddp" || several || (o.strategy == "auto" && launch.world_size > 1))
      strategy = std::make_shared<DDPStrategy>(
          DDPStrategyOptions{.bucket_cap_mb = o.ddp_bucket_cap_mb, .timeout = o.ddp_timeout});
    else
      strategy = std::make_shared<SingleDeviceStrategy>();
  }
  if (strategy->distributed()) {
    const int per_node = o.devices == -1 ? launch.local_world_size : o.devices;
    const int want = per_node * o.num_nodes;
    EMBER_CHECK(want == launch.world_size, ValueError, "[Trainer] devices = ", per_node, " x num_nodes = ", o.num_nodes,
                " needs ", want, " processes, but ",
                launch.launcher == "none" ? std::string("this program runs alone")
                                          : detail::cat_str(launch.launcher, " started ", launch.world_size),
                ": start one process per device, e.g. `mpirun -np ", want,
                " <program>` or `srun --ntasks-per-node=", per_node,
                " <program>`, and set devices to the processes per node (-1: take the launcher's)");
  }
  return strategy;
}

}  // namespace

Trainer::Trainer(TrainerOptions options)
    : options_(std::move(options)),
      checkpoint_io_(options_.checkpoint_io ? options_.checkpoint_io : std::make_shared<LocalCheckpointIO>()) {
  const TrainerOptions& o = options_;
  EMBER_CHECK(one_of(o.accelerator, {"cpu", "cuda", "gpu", "auto"}), ValueError,
              "[Trainer] accelerator must be \"cpu\", \"cuda\" or \"auto\", got \"", o.accelerator, "\"");
  EMBER_CHECK(o.strategy_instance != nullptr || one_of(o.strategy, {"auto", "single_device", "ddp", "ddp_sharded"}),
              ValueError, "[Trainer] strategy must be \"auto\", \"single_device\", \"ddp\" or \"ddp_sharded\", got \"",
              o.strategy, "\"");
  EMBER_CHECK(o.devices == -1 || o.devices >= 1, ValueError, "[Trainer] devices must be >= 1 or -1, got ", o.devices);
  EMBER_CHECK(o.num_nodes >= 1, ValueError, "[Trainer] num_nodes must be >= 1, got ", o.num_nodes);
  EMBER_CHECK(o.ddp_bucket_cap_mb > 0, ValueError, "[Trainer] ddp_bucket_cap_mb must be > 0, got ",
              o.ddp_bucket_cap_mb);
  EMBER_CHECK(!o.ddp_timeout || (std::isfinite(*o.ddp_timeout) && *o.ddp_timeout > 0), ValueError,
              "[Trainer] ddp_timeout must be a positive number of seconds, got ", o.ddp_timeout.value_or(0));
  cluster_environment_ = o.cluster_environment ? o.cluster_environment : dist::detect_cluster_environment();
  const dist::LaunchInfo launch = cluster_environment_->info();
  if (o.cluster_environment) dist::init_process_group(*cluster_environment_);  // MPI must agree with it
  strategy_ = make_strategy(o, launch);
  precision_ = o.precision_plugin != nullptr ? o.precision_plugin : make_precision(o.precision);
  EMBER_CHECK(!o.max_epochs || *o.max_epochs >= -1, ValueError, "[Trainer] max_epochs must be >= -1, got ",
              *o.max_epochs);
  EMBER_CHECK(o.max_steps >= -1, ValueError, "[Trainer] max_steps must be >= -1, got ", o.max_steps);
  EMBER_CHECK(o.min_epochs >= 0, ValueError, "[Trainer] min_epochs must be >= 0, got ", o.min_epochs);
  EMBER_CHECK(!o.max_time || *o.max_time >= 0, ValueError, "[Trainer] max_time must be >= 0 seconds");
  EMBER_CHECK(o.accumulate_grad_batches >= 1, ValueError, "[Trainer] accumulate_grad_batches must be >= 1, got ",
              o.accumulate_grad_batches);
  EMBER_CHECK(!o.gradient_clip_val || *o.gradient_clip_val >= 0, ValueError,
              "[Trainer] gradient_clip_val must be >= 0, got ", *o.gradient_clip_val);
  EMBER_CHECK(one_of(o.gradient_clip_algorithm, {"norm", "value"}), ValueError,
              "[Trainer] gradient_clip_algorithm must be \"norm\" or \"value\", got \"", o.gradient_clip_algorithm,
              "\"");
  EMBER_CHECK(!o.check_val_every_n_epoch || *o.check_val_every_n_epoch >= 1, ValueError,
              "[Trainer] check_val_every_n_epoch must be >= 1, got ", *o.check_val_every_n_epoch);
  EMBER_CHECK(o.val_check_interval.is_fraction()
                  ? o.val_check_interval.fraction() > 0.0 && o.val_check_interval.fraction() <= 1.0
                  : *o.val_check_interval.batches() >= 1,
              ValueError, "[Trainer] val_check_interval must be a fraction in (0, 1] or a number of batches >= 1");
  EMBER_CHECK(o.num_sanity_val_steps >= -1, ValueError, "[Trainer] num_sanity_val_steps must be >= -1, got ",
              o.num_sanity_val_steps);
  EMBER_CHECK(o.fast_dev_run >= 0, ValueError, "[Trainer] fast_dev_run must be >= 0, got ", o.fast_dev_run);
  EMBER_CHECK(o.log_every_n_steps >= 1, ValueError, "[Trainer] log_every_n_steps must be >= 1, got ",
              o.log_every_n_steps);
  for (const auto& c : o.callbacks) EMBER_CHECK(c != nullptr, ValueError, "[Trainer] callbacks holds a null callback");
  for (const auto& l : o.loggers) EMBER_CHECK(l != nullptr, ValueError, "[Trainer] loggers holds a null logger");

  const bool cuda = o.accelerator == "cuda" || o.accelerator == "gpu";
  EMBER_CHECK(!cuda || cuda_is_available(), DeviceError, "[Trainer] accelerator \"", o.accelerator,
              "\" asked for, but no CUDA device is available");
  strategy_->setup_environment(launch, cuda || (o.accelerator == "auto" && cuda_is_available()));
  device_ = strategy_->root_device();
  comm_ = strategy_->communicator();
  dtype_ = precision_->param_dtype();
  accumulate_ = o.accumulate_grad_batches;

  // fast_dev_run: N batches of every loop, one epoch, no loggers, checkpoints or sanity check.
  fast_dev_ = o.fast_dev_run > 0;
  if (fast_dev_ && launch.rank == 0)
    std::cerr << "Running in `fast_dev_run` mode: will run the requested loop using " << o.fast_dev_run
              << " batch(es). Logging and checkpointing is suppressed.\n";
  callbacks_ = o.callbacks;
  if (!fast_dev_) add_default_callbacks();
  // ModelCheckpoints run last (Lightning's order): a checkpoint holds what the other callbacks did in the
  // same hook (EarlyStopping's count of this validation), so a run resumed from it repeats nothing.
  std::stable_partition(callbacks_.begin(), callbacks_.end(),
                        [](const CallbackPtr& c) { return dynamic_cast<ModelCheckpoint*>(c.get()) == nullptr; });
  if (!fast_dev_ && o.logger) loggers_ = o.loggers.empty() ? default_loggers() : o.loggers;
  if (comm_ != nullptr) {
    // Rank 0 prints and logs: the others drop the display callbacks and adopt rank 0's log folder (each
    // logger picked its version_N on its own, and rank 0 may already have made one).
    if (!is_global_zero())
      std::erase_if(callbacks_, [](const CallbackPtr& c) {
        return dynamic_cast<ProgressBar*>(c.get()) != nullptr || dynamic_cast<ModelSummary*>(c.get()) != nullptr;
      });
    metrics_.set_communicator(comm_);
    metrics_.set_sync([comm = comm_](double v, const std::string& reduce) {
      const dist::ReduceOp op = reduce == "sum"   ? dist::ReduceOp::kSum
                                : reduce == "max" ? dist::ReduceOp::kMax
                                : reduce == "min" ? dist::ReduceOp::kMin
                                                  : dist::ReduceOp::kAvg;
      return comm->all_reduce_scalar(v, op);
    });
    // A logged tensor: the same all-reduce on the fit's device, with no host read.
    metrics_.set_tensor_sync([this, comm = comm_](const Tensor& v, const std::string& reduce) {
      const dist::ReduceOp op = reduce == "sum"   ? dist::ReduceOp::kSum
                                : reduce == "max" ? dist::ReduceOp::kMax
                                : reduce == "min" ? dist::ReduceOp::kMin
                                                  : dist::ReduceOp::kAvg;
      if (comm->world_size() == 1) return v;
      Tensor t = v.to(device_, kF64, true).contiguous();
      dist::world(device_).all_reduce(t, op);  // the device's communicator: NCCL for CUDA (MPI takes the CPU's)
      return t;
    });
    log_dir_ = comm_->broadcast_string(loggers_.empty() ? options_.default_root_dir : loggers_.front()->log_dir());
  }
}

Trainer::~Trainer() = default;  // runs detach their module when they end, so no module is touched here

std::string Trainer::interrupted_checkpoint_path() const {
  return (std::filesystem::path(options_.default_root_dir) / "interrupted.safetensors").string();
}

std::string Trainer::log_dir() const {
  const std::string dir = comm_ != nullptr   ? log_dir_
                          : loggers_.empty() ? options_.default_root_dir
                                             : loggers_.front()->log_dir();
  // The folder exists once asked for (Lightning's loggers make theirs when first used), or "" if it cannot.
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  return std::filesystem::is_directory(dir, ec) ? dir : "";
}

void Trainer::set_accumulate_grad_batches(int64_t n) {
  EMBER_CHECK(n >= 1, ValueError, "[Trainer] accumulate_grad_batches must be >= 1, got ", n);
  accumulate_ = n;
}

int64_t Trainer::estimated_stepping_batches() const {
  if (options_.max_steps != -1) return options_.max_steps;
  const int64_t epochs = max_epochs();
  if (epochs < 0 || num_training_batches_ < 0) return -1;
  const int64_t per_epoch = (num_training_batches_ + accumulate_ - 1) / accumulate_;
  return epochs * per_epoch;
}

int64_t Trainer::max_epochs() const {
  if (fast_dev_) return 1;
  if (options_.max_epochs) return *options_.max_epochs;
  return options_.max_steps == -1 ? 1000 : -1;
}

std::chrono::steady_clock::duration Trainer::elapsed() const {
  return elapsed_before_ +
         (stage_ == Stage::kNone ? std::chrono::steady_clock::duration{} : std::chrono::steady_clock::now() - start_);
}

// Lightning's defaults: a model summary and a progress bar first, a ModelCheckpoint (the latest epoch)
// last, so that it sees what the other callbacks logged or changed.
void Trainer::add_default_callbacks() {
  std::vector<CallbackPtr> front;
  if (options_.enable_model_summary && find_callback<ModelSummary>() == nullptr)
    front.push_back(std::make_shared<ModelSummary>());
  if (options_.enable_progress_bar && find_callback<ProgressBar>() == nullptr)
    front.push_back(std::make_shared<ProgressBar>());
  callbacks_.insert(callbacks_.begin(), front.begin(), front.end());
  if (options_.enable_checkpointing && find_callback<ModelCheckpoint>() == nullptr)
    callbacks_.push_back(std::make_shared<ModelCheckpoint>());
}

// Lightning's default logger when TensorBoard is absent: CSV under <default_root_dir>/lightning_logs.
std::vector<LoggerPtr> Trainer::default_loggers() const {
  return {std::make_shared<CSVLogger>(CSVLoggerOptions{.save_dir = options_.default_root_dir})};
}

// ---- runs ----

void Trainer::attach(TrainModule& model) {
  EMBER_CHECK(model.trainer_ == nullptr || model.trainer_ == this, ValueError,
              "[Trainer] the module is in use by another Trainer's run");
  model_ = &model;
  model.trainer_ = this;
}

void Trainer::run_guarded(Stage stage, TrainModule& model, data::DataModule* data, const std::function<void()>& body) {
  attach(model);
  stage_ = stage;
  start_ = std::chrono::steady_clock::now();
  elapsed_before_ = {};
  const std::string name = stage_name(stage);
  // `deterministic` turns the switch on for the run (never off: a process-wide setting stays).
  DeterministicGuard determinism(options_.deterministic || ember::deterministic());
  try {
    profiling_ = ProfilerRun::make(options_.profiler, options_.profiler_instance);
    if (options_.seed) manual_seed(*options_.seed);
    if (data != nullptr) {
      data->prepare_data();
      data->setup(name);
    }
    model.setup(name);
    call_hook("setup", [&](Callback& c) { c.setup(*this, model, name); });
    model.to(device_, dtype_);
    body();
    // A kernel's deferred error from the last steps (a bad index) is raised here, not lost, if no host
    // read came after it.
    synchronize(device_);
    call_hook("teardown", [&](Callback& c) { c.teardown(*this, model, name); });
    model.teardown(name);
    if (data != nullptr) data->teardown(name);
    if (profiling_)  // rank 0 writes the report
      std::exchange(profiling_, nullptr)->finish(is_global_zero() ? log_dir() : "", name, is_global_zero());
  } catch (const std::exception& e) {
    profiling_.reset();  // stops it; a failed fit has no report
    try {
      checkpoint_io_->teardown();         // the writes already queued still finish
    } catch (const std::exception& io) {  // the original error is the one to report
      if (io.what() != std::string_view(e.what())) std::cerr << "[Trainer] " << io.what() << "\n";
    }
    for (const auto& c : callbacks_) {
      try {
        c->on_exception(*this, model, e);
      } catch (...) {  // the original error is the one to report
      }
    }
    for (const auto& l : loggers_) {
      try {
        if (is_global_zero()) l->finalize("failed");
      } catch (...) {
      }
    }
    elapsed_before_ = elapsed();
    stage_ = Stage::kNone;
    model.trainer_ = nullptr;
    strategy_->teardown_training();  // its gradient hooks must not outlive the run
    // The other ranks may wait for this one in a collective: the process group's shutdown must not wait
    // for them in turn (dist::set_run_failure). A later run that succeeds shows they did not.
    if (world_size() > 1) dist::set_run_failure(detail::cat_str(name, ": ", e.what()));
    throw;
  }
  if (world_size() > 1) dist::set_run_failure("");
  elapsed_before_ = elapsed();
  stage_ = Stage::kNone;
  model.trainer_ = nullptr;  // the module may outlive this Trainer, or the other way round
}

void Trainer::fit(TrainModule& model, data::DataModule& data, const RunOptions& run) {
  datamodule_ = &data;
  run_guarded(Stage::kFitting, model, &data, [&] {
    train_loader_ = data.train_dataloader();
    val_loader_ = data.val_dataloader();
    fit_body(run);
  });
}

void Trainer::fit(TrainModule& model, std::shared_ptr<data::DataLoader> train, std::shared_ptr<data::DataLoader> val,
                  const RunOptions& run) {
  datamodule_ = nullptr;
  run_guarded(Stage::kFitting, model, nullptr, [&] {
    train_loader_ = std::move(train);
    val_loader_ = std::move(val);
    fit_body(run);
  });
}

void Trainer::fit_body(const RunOptions& run) {
  EMBER_CHECK(train_loader_ != nullptr, ValueError,
              "[Trainer.fit] no training data: the DataModule's "
              "train_dataloader() returned null");
  current_epoch_ = global_step_ = 0;
  batches_this_epoch_ = batches_total_ = 0;
  epoch_done_ = tail_pending_ = false;
  should_stop = false;
  grads_pending_ = false;
  received_signal_ = 0;
  eval_start_.reset();
  resume_validation_.clear();
  resume_muted_rows_ = muted_rows_ = 0;
  precision_->reset();
  unscaled_.clear();
  accumulate_ = options_.accumulate_grad_batches;
  metrics_.clear();
  setup_fit_loops();
  configure_optimizers();
  strategy_->setup_training(*model_, optimizers_, *precision_);
  const std::string ckpt = run.ckpt_path.empty() ? requeued_checkpoint_path(*this) : run.ckpt_path;  // SLURM
  if (const std::string p = resolve_ckpt_path(ckpt); !p.empty()) {
    Checkpoint ck = checkpoint_io_->load_checkpoint(p);
    strategy_->complete_checkpoint(ck, *checkpoint_io_);  // a sharded checkpoint's shard files
    load_checkpoint(ck, true);
  }
  // Lightning writes hparams.yaml only for a module that saved hyperparameters.
  if (is_global_zero() && !model_->hparams().empty())
    for (const auto& l : loggers_) l->log_hyperparams(model_->hparams());
  std::optional<SignalWatch> watch;
  if (options_.handle_signals) watch.emplace();
  std::optional<autograd::DetectAnomalyGuard> anomaly;
  if (options_.detect_anomaly) anomaly.emplace();
  run_fit();
  checkpoint_io_->teardown();  // every checkpoint of the run is stored (and its errors raised) before fit returns
  if (is_global_zero())
    for (const auto& l : loggers_) l->finalize(interrupted() ? "interrupted" : "success");
  strategy_->teardown_training();
  strategy_->barrier();         // every rank may read what rank 0 wrote (the best checkpoint)
  requeue_after_signal(*this);  // SLURM: last, as requeueing ends the job
}

std::vector<MetricMap> Trainer::validate(TrainModule& model, data::DataModule& data, const RunOptions& run) {
  std::vector<MetricMap> out;
  run_guarded(Stage::kValidating, model, &data,
              [&] { out = eval_body(Stage::kValidating, data.val_dataloader(), run); });
  return out;
}
std::vector<MetricMap> Trainer::validate(TrainModule& model, std::shared_ptr<data::DataLoader> loader,
                                         const RunOptions& run) {
  std::vector<MetricMap> out;
  run_guarded(Stage::kValidating, model, nullptr, [&] { out = eval_body(Stage::kValidating, loader, run); });
  return out;
}
std::vector<MetricMap> Trainer::test(TrainModule& model, data::DataModule& data, const RunOptions& run) {
  std::vector<MetricMap> out;
  run_guarded(Stage::kTesting, model, &data, [&] { out = eval_body(Stage::kTesting, data.test_dataloader(), run); });
  return out;
}
std::vector<MetricMap> Trainer::test(TrainModule& model, std::shared_ptr<data::DataLoader> loader,
                                     const RunOptions& run) {
  std::vector<MetricMap> out;
  run_guarded(Stage::kTesting, model, nullptr, [&] { out = eval_body(Stage::kTesting, loader, run); });
  return out;
}
std::vector<Tensor> Trainer::predict(TrainModule& model, data::DataModule& data, const RunOptions& run) {
  std::vector<Tensor> out;
  run_guarded(Stage::kPredicting, model, &data, [&] { out = predict_body(data.predict_dataloader(), run); });
  return out;
}
std::vector<Tensor> Trainer::predict(TrainModule& model, std::shared_ptr<data::DataLoader> loader,
                                     const RunOptions& run) {
  std::vector<Tensor> out;
  run_guarded(Stage::kPredicting, model, nullptr, [&] { out = predict_body(std::move(loader), run); });
  return out;
}

std::vector<Tensor> Trainer::predict_body(std::shared_ptr<data::DataLoader> loader, const RunOptions& run) {
  if (const std::string p = resolve_ckpt_path(run.ckpt_path); !p.empty())
    load_checkpoint(checkpoint_io_->load_checkpoint(p), false);
  return run_predict(distributed(std::move(loader)));
}

std::vector<MetricMap> Trainer::eval_body(Stage stage, std::shared_ptr<data::DataLoader> loader,
                                          const RunOptions& run) {
  const char* what = stage == Stage::kTesting ? "test" : "validate";
  EMBER_CHECK(loader != nullptr, ValueError, "[Trainer.", what, "] no data: the loader is null");
  if (const std::string p = resolve_ckpt_path(run.ckpt_path); !p.empty())
    load_checkpoint(checkpoint_io_->load_checkpoint(p), false);
  metrics_.clear();
  const BatchLimit& limit = stage == Stage::kTesting ? options_.limit_test_batches : options_.limit_val_batches;
  loader = distributed(std::move(loader));
  MetricMap results =
      run_eval(stage, loader,
               limit_batches(limit, *loader, stage == Stage::kTesting ? "limit_test_batches" : "limit_val_batches"));
  if (run.verbose) print_results(stage, results);
  return {results};
}

std::shared_ptr<data::DataLoader> Trainer::distributed(std::shared_ptr<data::DataLoader> loader) const {
  if (comm_ == nullptr || !options_.use_distributed_sampler || loader == nullptr || loader->dataset() == nullptr)
    return loader;
  const std::shared_ptr<data::Sampler> current = loader->sampler();
  const std::string kind = current ? current->name() : "SequentialSampler";
  if (kind == "DistributedSampler") return loader;
  EMBER_CHECK(kind == "SequentialSampler" || kind == "RandomSampler", ValueError,
              "[Trainer] under DDP every loader gets a DistributedSampler, which cannot stand in for this loader's ",
              kind, ": give the loader a data::DistributedSampler of your own or set use_distributed_sampler = false");
  data::DataLoaderOptions o = loader->options();
  const bool shuffle = o.shuffle || kind == "RandomSampler";
  // Every rank must permute alike: rank 0's seed (an unseeded loader drew its own on each rank).
  const uint64_t seed = std::stoull(comm_->broadcast_string(std::to_string(loader->seed())));
  o.shuffle = false;
  o.seed = seed;
  o.sampler = std::make_shared<data::DistributedSampler>(loader->dataset()->size(), world_size(), global_rank(),
                                                         shuffle, seed, /*drop_last=*/false);
  auto out = std::make_shared<data::DataLoader>(loader->dataset(), o);
  out->set_epoch(loader->epoch());
  return out;
}

int64_t Trainer::limit_batches(const BatchLimit& limit, const data::DataLoader& loader, const char* option) const {
  int64_t available = -1;
  if (loader.dataset() != nullptr) available = loader.size();
  if (fast_dev_) return available < 0 ? options_.fast_dev_run : std::min(options_.fast_dev_run, available);
  return limit.resolve(available, option);
}

void Trainer::configure_optimizers() {
  OptimizerConfig config = model_->configure_optimizers();
  EMBER_CHECK(!config.optimizers.empty(), ValueError, "[Trainer] configure_optimizers() returned no optimizer");
  for (const auto& o : config.optimizers)
    EMBER_CHECK(o != nullptr, ValueError, "[Trainer] configure_optimizers() returned a null optimizer");
  EMBER_CHECK(!model_->automatic_optimization || config.optimizers.size() == 1, ValueError,
              "[Trainer] automatic optimisation steps one optimizer; configure_optimizers() returned ",
              config.optimizers.size(), " (set automatic_optimization = false and step them in training_step)");
  for (const auto& s : config.schedulers) {
    EMBER_CHECK(s.scheduler != nullptr, ValueError, "[Trainer] an LRSchedulerConfig has no scheduler");
    EMBER_CHECK(s.interval == "epoch" || s.interval == "step", ValueError,
                "[Trainer] a scheduler's interval must be \"epoch\" or \"step\", got \"", s.interval, "\"");
    EMBER_CHECK(s.frequency >= 1, ValueError, "[Trainer] a scheduler's frequency must be >= 1, got ", s.frequency);
    const bool plateau = dynamic_cast<optim::ReduceLROnPlateau*>(s.scheduler.get()) != nullptr;
    EMBER_CHECK(
        !plateau || !s.monitor.empty(), ValueError,
        "[Trainer] ReduceLROnPlateau needs a monitor: LRSchedulerConfig{.scheduler = s, .monitor = \"val_loss\"}");
  }
  optimizers_ = std::move(config.optimizers);
  schedulers_ = std::move(config.schedulers);
}

// ---- checkpoints ----

std::string Trainer::resolve_ckpt_path(const std::string& ckpt_path) const {
  if (ckpt_path == "interrupted") {
    const std::string p = interrupted_checkpoint_path();
    EMBER_CHECK(checkpoint_io_->exists(p), ValueError, "[Trainer] ckpt_path = \"interrupted\": there is no ", p,
                " (no run under this default_root_dir was stopped by a signal)");
    return p;
  }
  if (ckpt_path != "best" && ckpt_path != "last") return ckpt_path;
  auto mc = find_callback<ModelCheckpoint>();
  EMBER_CHECK(mc != nullptr, ValueError, "[Trainer] ckpt_path = \"", ckpt_path,
              "\" needs a ModelCheckpoint callback in this Trainer");
  std::string p = ckpt_path == "best" ? mc->best_model_path() : mc->last_model_path();
  if (ckpt_path == "last" && p.empty()) {
    // Lightning: the newest "last" file in the checkpoint folder, else a warning and a fresh start.
    const auto in_dir = std::filesystem::path(mc->dirpath()) / (std::string("last") + ModelCheckpoint::kExtension);
    if (!mc->dirpath().empty() && checkpoint_io_->exists(in_dir.string())) return in_dir.string();
    if (is_global_zero())
      std::cerr << "[Trainer] warning: ckpt_path = \"last\" is set, but there is no last checkpoint available"
                << (mc->dirpath().empty() ? std::string() : " in " + mc->dirpath())
                << ". No checkpoint will be loaded (ModelCheckpoint writes last.safetensors with save_last = true)\n";
    return "";
  }
  EMBER_CHECK(!p.empty(), ValueError, "[Trainer] ckpt_path = \"", ckpt_path, "\": the ModelCheckpoint has no ",
              ckpt_path, " checkpoint yet");
  return p;
}

void Trainer::save_checkpoint(const std::string& path, bool weights_only) {
  profiler::RecordFunction range("[Trainer] save_checkpoint");
  EMBER_CHECK(model_ != nullptr, ValueError, "[Trainer.save_checkpoint] no module: call fit first");
  // Every rank builds the checkpoint (its hooks may communicate); rank 0 writes it, and no rank goes on
  // before the file is there.
  Checkpoint ck = make_checkpoint(weights_only);
  strategy_->save_checkpoint(ck, path, [&](const Checkpoint& c, const std::string& p) {
    checkpoint_io_->save_checkpoint(c, p);
    if (is_global_zero())  // a sharded strategy writes on every rank
      for (const auto& l : loggers_) l->save();
  });
}

Checkpoint Trainer::make_checkpoint(bool weights_only) {
  Checkpoint ck;
  for (const auto& [name, t] : model_->state_dict()) {
    EMBER_CHECK(name.rfind(kOptimizerPrefix, 0) != 0, ValueError, "[Trainer.save_checkpoint] the module's entry '",
                name, "' starts with \"", kOptimizerPrefix, "\", which checkpoints keep for optimizer state");
    ck.tensors.emplace(name, t);
  }
  nlohmann::json& s = ck.state;
  s["format"] = "ember-checkpoint";
  s["ember_version"] = kEmberVersion;
  s["weights_only"] = weights_only;
  s["epoch"] = current_epoch_;
  s["global_step"] = global_step_;
  s["hparams"] = model_->hparams();
  if (weights_only) return ck;
  record_slurm_job(*cluster_environment_, s);
  if (!data_fingerprint_.is_null()) s["train_data"] = data_fingerprint_;

  s["optimizer_states"] = nlohmann::json::array();
  for (size_t i = 0; i < optimizers_.size(); ++i) {
    optim::StateDict sd = strategy_->optimizer_state(*optimizers_[i]);
    const std::string prefix = std::string(kOptimizerPrefix) + std::to_string(i) + ".";
    for (const auto& [k, t] : sd.state) ck.tensors.emplace(prefix + k, t);
    s["optimizer_states"].push_back(sd.param_groups);
  }
  s["lr_schedulers"] = nlohmann::json::array();
  for (const auto& c : schedulers_) s["lr_schedulers"].push_back(c.scheduler->state_dict());
  if (nlohmann::json p = precision_->state_dict(); !p.is_null()) s["precision"] = std::move(p);
  s["loops"] = {{"batches_this_epoch", batches_this_epoch_},
                {"batches_total", batches_total_},
                {"epoch_done", epoch_done_},
                {"tail_pending", tail_pending_},
                {"step_before_batch", step_before_batch_},
                {"accumulate_grad_batches", accumulate_},
                {"grads_pending", grads_pending_},
                {"elapsed_s", std::chrono::duration<double>(elapsed()).count()}};
  if (grads_pending_) save_pending_grads(ck);
  // The loaders the loops read (not the DataModule's factories, which may build fresh ones).
  if (train_loader_ != nullptr) s["train_loader"] = train_loader_->state_dict();
  // During an evaluation the run is recorded as it stood when the evaluation began: the resumed run
  // repeats it (a sanity check, from the start; a validation inside fit, with its logged rows muted).
  GeneratorState rng = default_generator().state();
  const MetricCollector* metrics = &metrics_;
  if (val_loader_ != nullptr) s["val_loader"] = val_loader_->state_dict();
  if (eval_start_) {
    rng = eval_start_->rng;
    s["val_loader"] = eval_start_->val_loader;
    if (sanity_checking())
      metrics = &eval_start_->metrics;
    else
      s["loops"]["validation"] = {{"at", eval_start_->at}, {"rows_sent", eval_start_->rows_sent}};
  }
  s["rng"] = {{"seed", rng.seed}, {"offset", rng.offset}};
  s["metrics"] = metrics->state_dict();
  for (const auto& [k, t] : metrics->metric_states()) ck.tensors.emplace(kMetricStatePrefix + k, t);
  s["callbacks"] = callback_states();
  model_->on_save_checkpoint(ck);
  call_hook("on_save_checkpoint", [&](Callback& c) { c.on_save_checkpoint(*this, *model_, ck); });
  return ck;
}

// A save inside a gradient-accumulation window (a signal, a time interval, a validation) keeps the
// window's gradients, so the resumed run's next step sums the same batches. Under DDP each rank holds its
// own part (no_sync): all ranks go on from their mean, which the window's all-reduce then completes to
// the same mean as without the save, and that mean is what the checkpoint keeps.
void Trainer::save_pending_grads(Checkpoint& ck) {
  auto params = model_->named_parameters();
  const bool ranks = comm_ != nullptr && comm_->world_size() > 1;
  // Which parameters hold a gradient on some rank: every rank then takes part in the same all-reduces
  // (a rank without one adds zeros, as DDP's reduction does).
  std::vector<double> present(params.size());
  for (size_t i = 0; i < params.size(); ++i) present[i] = params[i].second.grad().defined() ? 1.0 : 0.0;
  if (ranks && !params.empty()) {
    Tensor flags = tensor(present, Shape{static_cast<int64_t>(params.size())}, {.dtype = kF64});
    comm_->all_reduce(flags, dist::ReduceOp::kMax);
    present = flags.to_vector<double>();
  }
  for (size_t i = 0; i < params.size(); ++i) {
    if (present[i] == 0.0) continue;
    auto& [name, p] = params[i];
    if (ranks) {
      Tensor g = p.grad();
      Tensor mean = g.defined() ? g.contiguous() : zeros(p.shape(), {.dtype = p.dtype(), .device = p.device()});
      dist::world(device_).all_reduce(mean, dist::ReduceOp::kAvg);
      if (!g.defined())
        p.set_grad(mean);
      else if (!mean.is_same(g))
        g.copy_(mean);
    }
    ck.tensors.emplace(kAccumulatedGradPrefix + name, p.grad());
  }
}

void Trainer::restore_pending_grads(const Checkpoint& ck, const StateReader& r) {
  for (auto [name, p] : model_->named_parameters()) {
    auto it = ck.tensors.find(kAccumulatedGradPrefix + name);
    if (it == ck.tensors.end()) continue;
    if (it->second.shape() != p.shape())
      r.fail("loops.grads_pending", detail::cat_str("the gradient of '", name, "' has shape ", it->second.shape(),
                                                    ", the parameter ", p.shape()));
    p.set_grad(it->second.to(p.device(), p.dtype(), /*copy=*/true));
  }
  grads_pending_ = true;
}

void Trainer::load_checkpoint(const Checkpoint& ck, bool restore_training) {
  model_->load_state_dict(ck.weights(), /*strict=*/true);
  if (!restore_training) return;
  const StateReader r(ck.path, ck.state);
  EMBER_CHECK(!r.has("weights_only") || !r.boolean("weights_only"), ValueError,
              "[Trainer.fit] ckpt_path holds weights only (save_weights_only): "
              "it cannot resume a run; load it with load_state_dict instead");
  restore_run_state(ck);
  check_data_fingerprint(ck);
  model_->on_load_checkpoint(ck);
  call_hook("on_load_checkpoint", [&](Callback& c) { c.on_load_checkpoint(*this, *model_, ck); });
}

// The run state is untrusted input: the loop fields are checked against their types, their ranges, one
// another and this run before any is used; each part's own state is loaded by that part, and whatever
// it rejects is reported as a FormatError naming the file and the field.
void Trainer::restore_run_state(const Checkpoint& ck) {
  const StateReader r(ck.path, ck.state);
  constexpr int64_t kMaxCount = int64_t(1) << 53;  // no run counts further (and doubles stay exact)
  const int64_t epoch = r.integer("epoch", 0, kMaxCount);
  const int64_t step = r.integer("global_step", 0, kMaxCount);
  const int64_t total = r.integer("loops.batches_total", 0, kMaxCount);
  const int64_t in_epoch = r.integer("loops.batches_this_epoch", 0, total);
  const bool epoch_done = r.boolean("loops.epoch_done");
  const bool tail = r.boolean("loops.tail_pending");
  const int64_t before = r.integer("loops.step_before_batch", 0, step);
  const int64_t accumulate = r.integer("loops.accumulate_grad_batches", 1, int64_t(1) << 31);
  const bool grads_pending = r.has("loops.grads_pending") && r.boolean("loops.grads_pending");
  const double elapsed_s = r.number("loops.elapsed_s", 0.0, 1e12);
  if (num_training_batches_ >= 0 && in_epoch > num_training_batches_ && !epoch_done)
    r.fail("loops.batches_this_epoch",
           detail::cat_str("an epoch of this run has ", num_training_batches_, " training batches"));
  if (tail && in_epoch == 0) r.fail("loops.tail_pending", "no batch of the epoch has run");
  std::string validation_at;
  int64_t rows_sent = 0;
  if (r.has("loops.validation")) {
    const nlohmann::json& at = r.at("loops.validation.at");
    if (at != "after_batch" && at != "epoch_end") r.fail("loops.validation.at", "must be after_batch or epoch_end");
    validation_at = at.get<std::string>();
    rows_sent = r.integer("loops.validation.rows_sent", 0, kMaxCount);
    if (epoch_done || tail) r.fail("loops.validation", "a validation in progress excludes epoch_done and tail_pending");
    if (val_loader_ == nullptr || num_val_batches_ == 0)
      r.fail("loops.validation", "the checkpoint was taken during a validation, but this run has no validation data");
  }
  const uint64_t seed = r.unsigned_integer("rng.seed"), offset = r.unsigned_integer("rng.offset");
  const nlohmann::json& opt_states = r.array("optimizer_states");
  if (opt_states.size() != optimizers_.size())
    r.fail("optimizer_states", detail::cat_str("configure_optimizers() gave ", optimizers_.size(), " optimizers"));
  const nlohmann::json& scheds = r.array("lr_schedulers");
  if (scheds.size() != schedulers_.size())
    r.fail("lr_schedulers", detail::cat_str("configure_optimizers() gave ", schedulers_.size(), " schedulers"));
  const nlohmann::json& cbs = r.object("callbacks");
  if (max_epochs() >= 0 && epoch > max_epochs() && is_global_zero())
    std::cerr << "[Trainer] the checkpoint is at epoch " << epoch << ", past max_epochs = " << max_epochs()
              << ": fit has nothing left to train\n";

  for (size_t i = 0; i < optimizers_.size(); ++i)
    r.section(detail::cat_str("optimizer_states.", i), [&](const nlohmann::json& groups) {
      optim::StateDict sd;
      const std::string prefix = std::string(kOptimizerPrefix) + std::to_string(i) + ".";
      for (const auto& [k, t] : ck.tensors)
        if (k.rfind(prefix, 0) == 0) sd.state.emplace(k.substr(prefix.size()), t);
      sd.param_groups = groups;
      strategy_->load_optimizer_state(*optimizers_[i], sd);
    });
  for (size_t i = 0; i < schedulers_.size(); ++i)
    r.section(detail::cat_str("lr_schedulers.", i),
              [&](const nlohmann::json& j) { schedulers_[i].scheduler->load_state_dict(j); });
  for (const char* key : {"precision", "grad_scaler"})  // "grad_scaler": checkpoints before 2026-12-06
    if (r.has(key)) r.section(key, [&](const nlohmann::json& j) { precision_->load_state_dict(j); });
  // DDP: rank 0 saved its own samplers' states; every rank stands at the same place in the epoch's order.
  auto restore_loader = [&](data::DataLoader& loader) {
    return [&](const nlohmann::json& j) {
      loader.load_state_dict(map_loader_state(j, loader));  // also from a run with another rank count
    };
  };
  if (r.has("train_loader"))
    r.section("train_loader", restore_loader(*train_loader_));
  else if (datamodule_ != nullptr && r.has("datamodule"))  // checkpoints written before 2026-12
    r.section("datamodule", [&](const nlohmann::json& j) { datamodule_->load_state_dict(j); });
  if (val_loader_ != nullptr && r.has("val_loader")) r.section("val_loader", restore_loader(*val_loader_));
  r.section("metrics", [&](const nlohmann::json& j) {
    metrics_.load_state_dict(j);
    metrics_.load_metric_states(ck.tensors, kMetricStatePrefix, is_global_zero());  // rank 0's hold every rank's
  });
  for (const auto& c : callbacks_)
    if (auto it = cbs.find(c->state_key()); it != cbs.end())
      r.section_of("callbacks." + c->state_key(), *it, [&](const nlohmann::json& j) { c->load_state_dict(j); });

  global_step_ = step;
  current_epoch_ = epoch;
  epoch_done_ = epoch_done;
  batches_this_epoch_ = in_epoch;
  batches_total_ = total;
  tail_pending_ = tail;
  step_before_batch_ = before;
  accumulate_ = accumulate;
  if (grads_pending) restore_pending_grads(ck, r);
  elapsed_before_ =
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(elapsed_s));
  resume_validation_ = validation_at;
  resume_muted_rows_ = rows_sent;
  if (epoch_done_) {  // the epoch's end ran before the save: start the next one
    ++current_epoch_;
    batches_this_epoch_ = 0;
    epoch_done_ = tail_pending_ = false;
  }
  default_generator().set_state({seed, offset});
}

}  // namespace ember::train
