// ModelSummary (Lightning's ModelSummary callback): prints the module's layer table at the start of fit,
// and summarize()/format_summary(), the same numbers as data and text for anyone to use. A TrainModule
// with example_input_array also gets each layer's FLOPs for one forward pass (core/flop_counter.hpp).
#pragma once
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "nn/module.hpp"
#include "train/callback.hpp"

namespace ember::train {

// One row of the table: a submodule under its dotted name, or "other params" (type "n/a") for parameters
// registered directly on the root or on modules below max_depth's cut but not inside any listed layer.
struct LayerSummary {
  std::string name;
  std::string type;
  int64_t params = 0;            // the layer's parameters, shared ones counted once
  int64_t trainable_params = 0;  // those that require grad
  bool training = true;          // the layer's mode
  int64_t flops = 0;             // of the example forward, when one ran (ModelSummaryData::total_flops)
};

// The whole model's numbers as Lightning's ModelSummary computes them (shared parameters and modules once).
struct ModelSummaryData {
  std::vector<LayerSummary> layers;  // without the "other params" row
  int64_t total_params = 0;
  int64_t trainable_params = 0;
  int64_t leftover_params = 0;  // total_params minus the listed layers' (the "other params" row when > 0)
  int64_t modules_in_train_mode = 0;
  int64_t modules_in_eval_mode = 0;  // every descendant module, the root excluded
  double model_size_mb = 0;          // total_params x bytes per parameter / 1e6
  // Set when the example forward ran: format_summary() then adds the FLOPs column and "Total Flops".
  std::optional<int64_t> total_flops;
};

// max_depth: 1 lists the root's children, N > 1 every module up to N levels down, -1 all of them, 0
// none (ValueError below -1). precision_bits sizes the parameters (Lightning: 32 unless the Trainer's
// precision says 64 or 16).
ModelSummaryData summarize_model(const nn::Module& model, int max_depth = 1, int precision_bits = 32);
// As above; when model.example_input_array is set, first runs model.forward on it (moved to the device
// and floating dtype of the parameters) once under a FlopCounter, as Lightning does: in eval mode,
// without grad, every module's mode and the default generator's state restored afterwards. A layer's
// FLOPs are those of the ops run inside its calls through a handle (`fc(x)`) or a Sequential.
ModelSummaryData summarize_model(TrainModule& model, int max_depth = 1, int precision_bits = 32);
// The rows alone (the layers, plus "other params" when there are parameters outside them).
std::vector<LayerSummary> summarize(const nn::Module& model, int max_depth = 1);
// Lightning's table: "  | Name | Type | Params | Mode" (then "| FLOPs" when total_flops is set), a
// rule, one row per layer, a rule, then the totals (trainable, non-trainable, total, size in MB, modules
// in train and eval mode, and "Total Flops" with the FLOPs column).
std::string format_summary(const ModelSummaryData& data);
std::string format_summary(const nn::Module& model, int max_depth = 1, int precision_bits = 32);
std::string format_summary(TrainModule& model, int max_depth = 1, int precision_bits = 32);

// Lightning's get_human_readable_count: 123 -> "123  ", 1234 -> "1.2 K", 2e6 -> "2.0 M", 4e14 -> "400 T".
std::string human_readable_count(int64_t number);
// Bits per parameter for a Trainer precision ("64" -> 64, "16-true"/"bf16-true" -> 16, else 32).
int precision_bits(const std::string& precision);

class ModelSummary : public Callback {
 public:
  // max_depth as summarize(); the table goes to `out` (std::cout when null).
  explicit ModelSummary(int max_depth = 1, std::ostream* out = nullptr);
  int max_depth() const { return max_depth_; }
  void set_output(std::ostream& out) { out_ = &out; }

  void on_fit_start(Trainer& trainer, TrainModule& module) override;

 private:
  int max_depth_;
  std::ostream* out_;
};

}  // namespace ember::train
