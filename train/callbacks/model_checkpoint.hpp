// ModelCheckpoint (Lightning's): saves checkpoints by epoch, step count or elapsed time, keeps the best
// save_top_k by a monitored metric, and optionally "last". Files are safetensors (see train/checkpoint.hpp).
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "train/callback.hpp"
#include "train/metrics.hpp"

namespace ember::train {

struct ModelCheckpointOptions {
  std::string dirpath = "";  // empty: <trainer.log_dir()>/checkpoints
  // Template with {metric} or {metric:.2f} fields ({epoch}, {step} and any logged metric); with
  // auto_insert_metric_name each field reads "name=value". Empty: "{epoch}-{step}".
  std::string filename = "";
  std::string monitor = "";  // empty: keep the latest save_top_k checkpoints (1 or -1)
  bool verbose = false;
  bool save_last = false;  // also write last.safetensors at every save
  int64_t save_top_k = 1;  // -1: keep all; 0: none (save_last alone)
  bool save_weights_only = false;
  std::string mode = "min";  // or "max"
  bool auto_insert_metric_name = true;
  int64_t every_n_train_steps = 0;                           // > 0: save after every N optimizer steps
  std::optional<double> train_time_interval = std::nullopt;  // seconds between saves during training
  std::optional<int64_t> every_n_epochs = std::nullopt;      // unset: 1 when no step/time trigger is set
  // Unset: at the train epoch's end when validation runs once per epoch at its end (or never), else
  // after each validation.
  std::optional<bool> save_on_train_epoch_end = std::nullopt;
  bool enable_version_counter = true;  // a name already taken gets "-v1", "-v2", ...
};

class ModelCheckpoint : public Callback {
 public:
  static constexpr const char* kExtension = ".safetensors";

  explicit ModelCheckpoint(ModelCheckpointOptions options = {});
  std::string state_key() const override;

  // At fit: removes the "*.safetensors.tmp.<pid>" files in dirpath of processes that no longer exist.
  void setup(Trainer& trainer, TrainModule& module, const std::string& stage) override;
  void on_fit_start(Trainer& trainer, TrainModule& module) override;
  void on_load_checkpoint(Trainer& trainer, TrainModule& module, const Checkpoint& checkpoint) override;
  void on_exception(Trainer& trainer, TrainModule& module, const std::exception& error) override;
  void on_train_start(Trainer& trainer, TrainModule& module) override;
  void on_train_batch_end(Trainer& trainer, TrainModule& module, const Tensor& loss, const data::Batch& batch,
                          int64_t batch_idx) override;
  void on_train_epoch_end(Trainer& trainer, TrainModule& module) override;
  void on_validation_end(Trainer& trainer, TrainModule& module) override;
  nlohmann::json state_dict() const override;
  // A state saved for this dirpath is adopted, and the folder is then made to match it: a run killed between
  // writing a new top-k file and removing the one it displaced leaves one file too many. When the fit starts
  // (or resumes), files in dirpath that this filename template could have produced and that the state does
  // not list (best_k_models, last) are removed, except the checkpoint being resumed and any file another
  // ModelCheckpoint of the Trainer keeps or could have written there. Only with save_top_k > 0 (with -1
  // nothing is ever displaced), only on rank 0, and one line on stderr names what went.
  void load_state_dict(const nlohmann::json& state) override;

  const std::string& dirpath() const { return dirpath_; }
  const std::string& best_model_path() const { return best_model_path_; }
  std::optional<double> best_model_score() const { return best_model_score_; }
  const std::string& last_model_path() const { return last_model_path_; }
  const std::string& kth_best_model_path() const { return kth_best_model_path_; }
  const std::map<std::string, double>& best_k_models() const { return best_k_models_; }
  // The file name (without folder) for these metrics, as the template says.
  std::string format_checkpoint_name(const MetricMap& metrics) const;

 private:
  void save(Trainer& trainer);
  void save_top_k(Trainer& trainer, const MetricMap& candidates);
  void save_last(Trainer& trainer, const std::string& written);
  // A free file name (rank 0's choice under DDP: other ranks may already see the files it wrote).
  std::string unique_path(const Trainer& trainer, const MetricMap& candidates) const;
  bool better(double a, double b) const;
  bool on_epoch_end_trigger(Trainer& trainer) const;
  // A regular expression (ECMAScript, for regex_match) of exactly the file names (no folder) that the
  // filename template can produce; nullopt for a template format_checkpoint_name rejects.
  std::optional<std::string> name_pattern() const;
  // Removes the files the restored state does not list (see load_state_dict); `resumed` is the checkpoint
  // the fit resumes from (its file is kept), null when the state was restored by hand.
  void reconcile(const Trainer& trainer, const Checkpoint* resumed);

  ModelCheckpointOptions o_;
  std::string dirpath_;
  bool save_on_epoch_end_ = true;
  std::map<std::string, double> best_k_models_;
  std::string best_model_path_, kth_best_model_path_, last_model_path_;
  std::optional<double> best_model_score_;
  int64_t last_global_step_saved_ = -1;
  std::chrono::steady_clock::time_point last_time_check_{};
  bool reconcile_pending_ = false;  // a state for this folder was restored; the folder is not yet checked
  std::string restored_dirpath_;
};

}  // namespace ember::train
