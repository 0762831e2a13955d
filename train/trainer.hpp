// Trainer (Lightning's Trainer): runs fit/validate/test/predict over a TrainModule and its data, with
// callbacks, loggers, checkpoints and exact resume. Options keep Lightning's names, meanings and defaults.
#pragma once
#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/ops/random.hpp"
#include "core/stream.hpp"
#include "dist/cluster_environment.hpp"
#include "dist/communicator.hpp"
#include "dist/ddp.hpp"
#include "train/callback.hpp"
#include "train/checkpoint.hpp"
#include "train/data/datamodule.hpp"
#include "train/logger.hpp"
#include "train/metrics.hpp"
#include "train/module.hpp"
#include "train/plugins/checkpoint_io.hpp"
#include "train/plugins/precision.hpp"
#include "train/plugins/strategy.hpp"
#include "train/profilers/trainer_profiler.hpp"

namespace ember::train {

// A count of batches (an integer) or a fraction of an epoch's batches (a floating-point number), as
// Lightning's int-or-float options: `.limit_val_batches = 10` or `.limit_val_batches = 0.25`.
class CudaGraphStep;  // train/cuda_graph_step.hpp

class BatchLimit {
 public:
  template <std::integral I>
  BatchLimit(I batches) : batches_(static_cast<int64_t>(batches)) {}  // NOLINT: implicit by design
  template <std::floating_point F>
  BatchLimit(F fraction) : fraction_(static_cast<double>(fraction)) {}  // NOLINT
  bool is_fraction() const { return !batches_.has_value(); }
  // The number of batches out of an epoch of `available` (-1: unknown length).
  int64_t resolve(int64_t available, const char* option) const;
  double fraction() const { return fraction_; }
  std::optional<int64_t> batches() const { return batches_; }

 private:
  std::optional<int64_t> batches_;
  double fraction_ = 1.0;
};

// Fields in declaration order (C++20 designated initialisers). Durations in seconds. Each field has a row in
// trainer_cli_table() (train/cli.cpp, the command line); tests/test_cli.cpp fails when one is missing.
struct TrainerOptions {
  std::optional<int64_t> max_epochs = std::nullopt;  // unset: 1000 unless max_steps is set (then unlimited)
  int64_t min_epochs = 0;
  int64_t max_steps = -1;  // optimizer steps (global_step); -1: no limit
  int64_t min_steps = -1;
  std::optional<double> max_time = std::nullopt;
  std::string accelerator = "auto";  // "cpu", "cuda", "auto" (cuda when a device is present)
  // Processes per node (-1: as many as the launcher started per node). Several devices, or several nodes,
  // mean DDP: one process per device, started by `mpirun -np N` or `srun`, each running the same program.
  int devices = 1;
  int num_nodes = 1;
  // Who this process is among the launcher's (ranks, the CUDA device, SLURM's job): null detects it
  // (dist::detect_cluster_environment: OpenMPI, MPICH/Hydra, SLURM, else local); or an object of your own.
  std::shared_ptr<dist::ClusterEnvironment> cluster_environment = nullptr;
  // "auto" (DDP when the launcher started several processes), "single_device" or "ddp".
  std::string strategy = "auto";
  // A strategy object (a user's own, or a built-in with its options), used in place of `strategy`.
  std::shared_ptr<Strategy> strategy_instance = nullptr;
  // "32", "64", "bf16-mixed", "16-mixed" (with a GradScaler), "bf16-true", "16-true": see plugins/precision.hpp.
  std::string precision = "32";
  // A precision plugin (a user's own, or MixedPrecision with its GradScalerOptions) in place of `precision`.
  std::shared_ptr<Precision> precision_plugin = nullptr;
  int64_t accumulate_grad_batches = 1;
  std::optional<double> gradient_clip_val = std::nullopt;
  std::string gradient_clip_algorithm = "norm";        // "norm" or "value"
  BatchLimit val_check_interval = 1.0;                 // a fraction of the training epoch, or every N training batches
  std::optional<int64_t> check_val_every_n_epoch = 1;  // unset: val_check_interval counts across epochs
  BatchLimit limit_train_batches = 1.0;
  BatchLimit limit_val_batches = 1.0;
  BatchLimit limit_test_batches = 1.0;
  BatchLimit limit_predict_batches = 1.0;
  int64_t num_sanity_val_steps = 2;  // -1: the whole validation set
  int64_t fast_dev_run = 0;          // N (true = 1): N batches of each loop, no loggers/checkpoints
  BatchLimit overfit_batches = 0;    // train and validate on this many (or fraction) training batches
  bool deterministic = false;        // ember::set_deterministic(true) during a run: no float atomics on CUDA
  // Stop at the first non-finite training loss, or the first backward op that makes a gradient
  // non-finite, with an error naming it (autograd's anomaly mode during fit; slower).
  bool detect_anomaly = false;
  int64_t log_every_n_steps = 50;
  // A ModelCheckpoint unless callbacks has one: Lightning's default, which keeps the latest epoch's
  // <log_dir>/checkpoints/epoch=E-step=S.safetensors and no last.safetensors (ckpt_path = "best" finds it).
  bool enable_checkpointing = true;
  bool enable_progress_bar = true;   // a ProgressBar unless callbacks has one
  bool enable_model_summary = true;  // a ModelSummary unless callbacks has one
  std::vector<CallbackPtr> callbacks = {};
  bool logger = true;  // false: no loggers; true with `loggers` empty: a CSVLogger
  std::vector<LoggerPtr> loggers = {};
  std::string default_root_dir = ".";
  std::optional<uint64_t> seed = std::nullopt;  // manual_seed(seed) before setup (seed_everything)
  // Under DDP, each map-style loader gets a DistributedSampler (keeping its shuffle and seed), so every
  // rank sees its own share; false: the loaders are used as given (shard them yourself).
  bool use_distributed_sampler = true;
  double ddp_bucket_cap_mb = 25.0;  // DDP's gradient bucket size
  // DDP: seconds a collective may wait for the other ranks before it raises DistError (and the job ends
  // non-zero) instead of hanging; sets the process group's timeout. Unset: the group's, 30 minutes unless
  // dist::set_timeout said otherwise.
  std::optional<double> ddp_timeout = std::nullopt;
  // SIGTERM or SIGUSR1 during fit (a scheduler's preemption notice): the step in progress finishes, the
  // run is saved to interrupted_checkpoint_path() and fit returns with interrupted() true.
  bool handle_signals = true;
  // Under SLURM (see train/requeue.hpp): the requeue signal (SIGUSR1, sbatch --signal=USR1@90) also
  // requeues the job when it allows it (sbatch --requeue), and fit with an empty ckpt_path in the requeued
  // job resumes from the interrupted checkpoint of the same job id. false: neither.
  bool auto_requeue = true;
  // "simple": when fit ends, print and write to <log_dir>/fit-profiler.txt the time of each Trainer phase and
  // hook (Lightning's SimpleProfiler); "ops": also every op on 3 scheduled steps, a top-20 op table and
  // <log_dir>/fit-trace.json (Chrome trace). "": off.
  std::string profiler = "";
  // A user's profiler (its own options and schedule), run during fit in place of `profiler`.
  std::shared_ptr<::ember::profiler::Profiler> profiler_instance = nullptr;
  // Where checkpoints are written, read and removed (see plugins/checkpoint_io.hpp): null is a
  // LocalCheckpointIO; an AsyncCheckpointIO writes in a background thread; or a store of your own.
  std::shared_ptr<CheckpointIO> checkpoint_io = nullptr;
  // CUDA: capture the training step into a CUDA graph after a few eager steps and replay it for every
  // batch of the same shapes (see train/cuda_graph_step.hpp for what it applies to and what it refuses).
  bool cuda_graphs = false;
};

struct RunOptions {
  // A checkpoint to start from: a path, "last" or "best" (ModelCheckpoint's), "interrupted" (the one a
  // signal left, see TrainerOptions::handle_signals), or empty. "last" with no last checkpoint (no
  // ModelCheckpoint with save_last wrote one) starts fresh with a warning, as Lightning.
  std::string ckpt_path = "";
  bool verbose = true;  // validate/test: print Lightning's results table
};

enum class Stage { kNone, kFitting, kValidating, kTesting, kPredicting, kSanityChecking };
const char* stage_name(Stage stage);

class Trainer {
 public:
  explicit Trainer(TrainerOptions options = {});
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  void fit(TrainModule& model, data::DataModule& data, const RunOptions& run = {});
  void fit(TrainModule& model, std::shared_ptr<data::DataLoader> train, std::shared_ptr<data::DataLoader> val = nullptr,
           const RunOptions& run = {});
  // One metric map per loader (Lightning returns a list): the epoch values logged during the loop.
  std::vector<MetricMap> validate(TrainModule& model, data::DataModule& data, const RunOptions& run = {});
  std::vector<MetricMap> validate(TrainModule& model, std::shared_ptr<data::DataLoader> loader,
                                  const RunOptions& run = {});
  std::vector<MetricMap> test(TrainModule& model, data::DataModule& data, const RunOptions& run = {});
  std::vector<MetricMap> test(TrainModule& model, std::shared_ptr<data::DataLoader> loader, const RunOptions& run = {});
  std::vector<Tensor> predict(TrainModule& model, data::DataModule& data, const RunOptions& run = {});
  std::vector<Tensor> predict(TrainModule& model, std::shared_ptr<data::DataLoader> loader, const RunOptions& run = {});

  // Writes the run's full state (or the weights only) to `path` through checkpoint_io() (by default a
  // file written atomically; an AsyncCheckpointIO finishes it in the background).
  void save_checkpoint(const std::string& path, bool weights_only = false);
  // TrainerOptions::checkpoint_io, or the LocalCheckpointIO that stands in for null.
  CheckpointIO& checkpoint_io() const { return *checkpoint_io_; }
  // TrainerOptions::cluster_environment, or the one detected when it is null.
  const std::shared_ptr<dist::ClusterEnvironment>& cluster_environment() const { return cluster_environment_; }

  // -- state, as Lightning's Trainer properties --
  const TrainerOptions& options() const { return options_; }
  // Epochs completed in this run (the epoch in progress while training).
  int64_t current_epoch() const { return current_epoch_; }
  // Optimizer steps taken: with accumulate_grad_batches = N, one per N batches. Logged metrics use this
  // step too (Lightning's loggers count the same way), so "step" in metrics.csv is global_step.
  int64_t global_step() const { return global_step_; }
  // cuda_graphs: the training steps replayed from a captured graph so far (a capture's own first replay
  // not counted); 0 without the option.
  int64_t cuda_graph_replays() const;
  Stage stage() const { return stage_; }
  bool training() const { return stage_ == Stage::kFitting; }
  bool sanity_checking() const { return stage_ == Stage::kSanityChecking; }
  // Set true (from a callback or the module) to stop fit at the next check; min_epochs/min_steps apply.
  bool should_stop = false;
  // The last fit was stopped by SIGTERM/SIGUSR1 (received_signal() says which) after saving the run to
  // interrupted_checkpoint_path(): <default_root_dir>/interrupted.safetensors, outside the versioned log
  // folders so that a requeued job finds it.
  bool interrupted() const { return received_signal_ != 0; }
  int received_signal() const { return received_signal_; }
  std::string interrupted_checkpoint_path() const;

  // Latest values: callback_metrics holds every logged metric (monitor names), logged_metrics what went to
  // the loggers, progress_bar_metrics the prog_bar ones. callback_metrics and progress_bar_metrics read
  // logged tensors to the host (a sync on CUDA): call them at logging steps or epoch ends, not every batch.
  const MetricMap& callback_metrics() const { return metrics_.callback_metrics(); }
  // The collector itself: its unread tensor values without a host read (train/metrics.hpp).
  const MetricCollector& metric_collector() const { return metrics_; }
  const MetricMap& logged_metrics() const { return metrics_.logged_metrics(); }
  const MetricMap& progress_bar_metrics() const { return metrics_.progress_bar_metrics(); }
  // For callbacks that compute values of their own (LearningRateMonitor): monitor names from now on.
  void add_callback_metrics(const std::map<std::string, double>& metrics) { metrics_.add_callback_metrics(metrics); }

  const std::vector<CallbackPtr>& callbacks() const { return callbacks_; }
  const std::vector<LoggerPtr>& loggers() const { return loggers_; }
  // The first logger's log_dir, else default_root_dir (where default checkpoints go); the folder is made
  // when asked for, and "" is returned if it cannot be.
  std::string log_dir() const;
  template <class C>
  std::shared_ptr<C> find_callback() const {
    for (const auto& c : callbacks_)
      if (auto p = std::dynamic_pointer_cast<C>(c)) return p;
    return nullptr;
  }

  const std::vector<std::shared_ptr<optim::Optimizer>>& optimizers() const { return optimizers_; }
  const std::vector<LRSchedulerConfig>& lr_scheduler_configs() const { return schedulers_; }
  int64_t accumulate_grad_batches() const { return accumulate_; }
  void set_accumulate_grad_batches(int64_t n);  // GradientAccumulationScheduler, at epoch starts

  // Batches per epoch of the current loops after limits (-1: unknown, an IterableDataset).
  int64_t num_training_batches() const { return num_training_batches_; }
  int64_t num_val_batches() const { return num_val_batches_; }
  int64_t num_test_batches() const { return num_test_batches_; }
  int64_t num_predict_batches() const { return num_predict_batches_; }
  // Index of the batch in progress within its epoch (of the running loop).
  int64_t batch_idx() const { return batch_idx_; }
  // Optimizer steps the fit will take (max_steps, or epochs x batches / accumulation); -1 if unknown.
  int64_t estimated_stepping_batches() const;
  std::chrono::steady_clock::duration elapsed() const;

  TrainModule* model() const { return model_; }
  Device device() const { return device_; }

  // -- the plugins: where and how the run computes --
  Strategy& strategy() const { return *strategy_; }
  Precision& precision_plugin() const { return *precision_; }
  int global_rank() const { return strategy_->global_rank(); }
  int world_size() const { return strategy_->world_size(); }
  // Rank 0 logs, prints and writes checkpoints; the other ranks only compute.
  bool is_global_zero() const { return global_rank() == 0; }
  // The group's CPU communicator under DDP (for decisions every rank must share), else null.
  dist::Communicator* communicator() const { return strategy_->communicator(); }
  // The loss scaler of precision "16-mixed" (null otherwise); its state travels in checkpoints.
  GradScaler* scaler() { return precision_->scaler(); }
  // Manual optimisation (TrainModule::manual_step and clip_gradients call these): one step of opt
  // through the precision plugin and the strategy, and clipping of opt's gradients after unscaling.
  bool manual_step(optim::Optimizer& opt);
  void clip_gradients(optim::Optimizer& opt, double clip_val, const std::string& algorithm);

 private:
  friend class TrainModule;
  friend class CudaGraphStep;

  void add_default_callbacks();
  std::vector<LoggerPtr> default_loggers() const;
  int64_t max_epochs() const;  // -1: no limit
  void attach(TrainModule& model);
  // Set-up, body, tear-down of one run; an exception reaches every callback's on_exception and fails
  // the loggers before it propagates.
  void run_guarded(Stage stage, TrainModule& model, data::DataModule* data, const std::function<void()>& body);
  void fit_body(const RunOptions& run);
  std::vector<Tensor> predict_body(std::shared_ptr<data::DataLoader> loader, const RunOptions& run);
  std::vector<MetricMap> eval_body(Stage stage, std::shared_ptr<data::DataLoader> loader, const RunOptions& run);
  int64_t limit_batches(const BatchLimit& limit, const data::DataLoader& loader, const char* option) const;
  void configure_optimizers();
  std::string resolve_ckpt_path(const std::string& ckpt_path) const;
  Checkpoint make_checkpoint(bool weights_only);
  void load_checkpoint(const Checkpoint& checkpoint, bool restore_training);
  void restore_run_state(const Checkpoint& checkpoint);  // fit's part of load_checkpoint
  void save_pending_grads(Checkpoint& checkpoint);       // an accumulation window's gradients, mid-window
  void restore_pending_grads(const Checkpoint& checkpoint, const StateReader& r);

  // trainer_checks.cpp: what a Lightning user expects to be told
  nlohmann::json callback_states() const;  // non-empty states by state_key; clashing keys are an error
  // After the first backward of a fit: leaves the loss reached that neither parameters() nor an
  // optimizer holds are an error (a submodule that was not registered).
  void check_unregistered(const Tensor& loss);
  // A cheap fingerprint of the training data (its size and first and last examples), taken at fit
  // start; a resumed run whose data differ from the checkpoint's is warned that it cannot resume exactly.
  nlohmann::json data_fingerprint() const;
  void check_data_fingerprint(const Checkpoint& checkpoint) const;
  // Lightning's results box ("Test metric" / "DataLoader 0") on rank 0.
  void print_results(Stage stage, const MetricMap& metrics) const;

  // loops.cpp
  void setup_fit_loops();
  void run_fit();
  void run_sanity_check();
  void run_train_epoch();
  bool training_batch(const data::Batch& batch, int64_t batch_idx);
  void batch_tail();  // step logging and validation after a training batch
  void optimizer_step();
  void unscale_once(optim::Optimizer& opt);  // the precision plugin's unscale, once per optimizer and step
  void update_precision();                   // the step's end: the plugin's update(), a new step begins
  void backward(const Tensor& loss);         // with the backward hooks (manual_backward too)
  void step_schedulers(const std::string& interval);
  bool validation_due(bool epoch_end) const;
  // `at`: "after_batch" or "epoch_end" (an epoch of unknown length), where a resumed run repeats it.
  void run_validation(const char* at, int64_t muted_rows = 0);
  MetricMap run_eval(Stage stage, const std::shared_ptr<data::DataLoader>& loader, int64_t limit_batches);
  std::vector<Tensor> run_predict(std::shared_ptr<data::DataLoader> loader);
  void send_to_loggers(MetricMap metrics);
  bool done_fitting() const;
  bool min_reached() const;
  bool stop_for_signal();  // true once a preemption signal arrived (the run is saved on the first call)
  void sync_stop();        // DDP: every rank adopts any rank's should_stop, signal and max_time verdict
  // DDP: the loader with a DistributedSampler in place of its order (see use_distributed_sampler).
  std::shared_ptr<data::DataLoader> distributed(std::shared_ptr<data::DataLoader> loader) const;
  data::Batch prepare_batch(const data::Batch& batch) const;
  mutable std::optional<Stream> copy_stream_;  // the CUDA stream pinned batches cross on
  // TrainerOptions::cuda_graphs (train/cuda_graph_step.cpp): false when the batch runs eagerly.
  bool cuda_graph_step(const data::Batch& b, int64_t batch_idx, Tensor& loss);
  std::shared_ptr<CudaGraphStep> graph_step_;
  std::shared_ptr<ProfilerRun> profiling_;  // TrainerOptions::profiler during a fit

  // Calls f on every callback, each call timed as "[Callback]<state_key>.<hook>" while a profiler runs.
  template <class F>
  void call_hook(const char* hook, F&& f) {
    for (const auto& c : callbacks_) {
      if (::ember::profiler::ranges_on()) [[unlikely]] {
        ::ember::profiler::RecordFunction range("[Callback]" + c->state_key() + "." + hook);
        f(*c);
      } else {
        f(*c);
      }
    }
  }

  TrainerOptions options_;
  std::shared_ptr<CheckpointIO> checkpoint_io_;
  std::shared_ptr<dist::ClusterEnvironment> cluster_environment_;
  std::vector<CallbackPtr> callbacks_;
  std::vector<LoggerPtr> loggers_;
  TrainModule* model_ = nullptr;
  data::DataModule* datamodule_ = nullptr;
  std::shared_ptr<data::DataLoader> train_loader_, val_loader_;
  std::vector<std::shared_ptr<optim::Optimizer>> optimizers_;
  std::vector<LRSchedulerConfig> schedulers_;
  MetricCollector metrics_;
  std::shared_ptr<Strategy> strategy_;
  std::shared_ptr<Precision> precision_;
  dist::Communicator* comm_ = nullptr;             // strategy_'s CPU group under DDP (decisions, metrics), else null
  Device device_{};                                // strategy_'s root device
  DType dtype_ = kF32;                             // precision_'s: of the module's floating tensors and the batches
  int64_t manual_steps_ = 0, manual_skipped_ = 0;  // manual_step calls in this batch, and those skipped
  std::set<const optim::Optimizer*> unscaled_;     // optimizers whose gradients were unscaled this step
  std::string log_dir_;                            // DDP: rank 0's log_dir, the same on every rank
  bool time_up_ = false;                           // DDP: max_time reached on some rank
  int pending_signal_ = 0;                         // DDP: a signal some rank received
  Stage stage_ = Stage::kNone;

  int64_t current_epoch_ = 0;
  int64_t global_step_ = 0;
  int64_t batch_idx_ = 0;
  int64_t batches_this_epoch_ = 0;  // training batches finished in the epoch in progress
  int64_t batches_total_ = 0;       // ... in the whole fit (val_check_interval across epochs)
  int64_t accumulate_ = 1;
  int64_t step_before_batch_ = 0;  // global_step when the batch in progress started
  bool grads_pending_ = false;     // a backward ran since the last optimizer step
  bool epoch_done_ = false;        // the epoch's batches are done (its end hooks run next)
  bool tail_pending_ = false;      // a batch finished but its logging/validation has not run yet
  int64_t num_training_batches_ = 0, num_val_batches_ = 0, num_test_batches_ = 0, num_predict_batches_ = 0;
  bool fast_dev_ = false;
  bool unregistered_checked_ = false;  // check_unregistered ran in this fit
  bool no_validation_step_ = false;    // the module has no validation_step: fit skips validation
  nlohmann::json data_fingerprint_;    // of the fit in progress (see data_fingerprint)
  int received_signal_ = 0;
  // What a sanity check or a validation inside fit may change, as it stood when the evaluation began:
  // the sanity check puts it back when it ends (it changes nothing in the run), and a checkpoint taken
  // during either records it, so the resumed run repeats the evaluation from its start.
  struct EvalStart {
    MetricCollector metrics;
    GeneratorState rng;
    nlohmann::json val_loader;
    int64_t rows_sent = 0;  // logger rows sent since then (a resumed validation sends those again muted)
    std::string at;         // a validation's place in the loop (see run_validation)
  };
  std::optional<EvalStart> eval_start_;
  // A resumed run whose checkpoint was taken during a validation: where it ran (after a training batch,
  // or at the end of an epoch of unknown length) and how many of its rows were logged already.
  std::string resume_validation_;
  int64_t resume_muted_rows_ = 0;
  int64_t muted_rows_ = 0;  // rows the validation in progress does not send again
  std::chrono::steady_clock::time_point start_{};
  std::chrono::steady_clock::duration elapsed_before_{};  // time spent before a resume
};

}  // namespace ember::train
