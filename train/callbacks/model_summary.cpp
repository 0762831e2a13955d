// ModelSummary: the layer table Lightning prints at the start of fit (its numbers, widths and units).
#include "train/callbacks/model_summary.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <set>
#include <sstream>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/flop_counter.hpp"
#include "core/ops/random.hpp"
#include "train/module.hpp"
#include "train/trainer.hpp"

namespace ember::train {
namespace {

using NamedModules = std::vector<std::pair<std::string, const nn::Module*>>;

// PyTorch's named_modules(): depth first, each module once (a shared layer under its first name).
void collect_modules(const nn::Module& m, const std::string& prefix, std::set<const nn::Module*>& seen,
                     NamedModules& out) {
  for (const auto& [name, child] : m.named_children()) {
    if (!seen.insert(child.get()).second) continue;
    const std::string full = prefix.empty() ? name : prefix + "." + name;
    out.emplace_back(full, child.get());
    collect_modules(*child, full, seen, out);
  }
}

NamedModules all_descendants(const nn::Module& root) {
  std::set<const nn::Module*> seen{&root};
  NamedModules out;
  collect_modules(root, "", seen, out);
  return out;
}

// "1234567" -> "1,234,567" (Python's "{:,d}").
std::string group_thousands(const std::string& digits) {
  std::string out;
  const size_t n = digits.size();
  for (size_t i = 0; i < n; ++i) {
    if (i > 0 && (n - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// Python's "{:<{width}}".
std::string pad_right(const std::string& s, size_t width) {
  return s.size() >= width ? s : s + std::string(width - s.size(), ' ');
}

// Puts every module's mode and the default generator back as they were, also when forward throws
// (Lightning's _ModuleMode). train() recurses, so modules are set parents first, each last by itself.
class KeepModesAndRng {
 public:
  explicit KeepModesAndRng(nn::Module& model) : rng_(default_generator().state()) {
    for (nn::Module* m : model.modules()) modes_.emplace_back(m, m->is_training());
  }
  ~KeepModesAndRng() {
    for (auto& [m, on] : modes_) m->train(on);
    default_generator().set_state(rng_);
  }
  KeepModesAndRng(const KeepModesAndRng&) = delete;
  KeepModesAndRng& operator=(const KeepModesAndRng&) = delete;

 private:
  std::vector<std::pair<nn::Module*, bool>> modes_;
  GeneratorState rng_;
};

// The example input on the parameters' device, floating inputs in their floating dtype (a "64" or
// "bf16-true" model), as Lightning's batch transfer and precision plugin would give it.
Tensor example_input_for(const nn::Module& model, const Tensor& input) {
  const std::vector<Tensor> params = model.parameters();
  if (params.empty()) return input;
  const Tensor& p = params.front();
  Tensor x = input.device() == p.device() ? input : input.to(p.device());
  if (x.is_floating_point() && p.is_floating_point() && x.dtype() != p.dtype()) x = x.to(p.dtype());
  return x;
}

// summarize_model's body; `flops`, when given, holds the counts of the example forward.
ModelSummaryData summarize_with(const nn::Module& model, int max_depth, int precision_bits, const FlopCounter* flops) {
  EMBER_CHECK(max_depth >= -1, ValueError, "[ModelSummary] max_depth can be -1, 0 or > 0, got ", max_depth);
  ModelSummaryData data;
  const NamedModules descendants = all_descendants(model);

  NamedModules listed;
  if (max_depth == 1) {
    std::set<const nn::Module*> seen;  // named_children() lists each child once
    for (const auto& [name, child] : model.named_children())
      if (seen.insert(child.get()).second) listed.emplace_back(name, child.get());
  } else if (max_depth != 0) {
    for (const auto& entry : descendants)
      if (max_depth < 0 || std::count(entry.first.begin(), entry.first.end(), '.') < max_depth) listed.push_back(entry);
  }

  int64_t layer_total = 0;
  for (const auto& [name, m] : listed) {
    LayerSummary row{
        .name = name, .type = m->type_name(), .params = 0, .trainable_params = 0, .training = m->is_training()};
    if (flops) row.flops = flops->flops_of(m);
    for (const Tensor& p : m->parameters()) {
      row.params += p.numel();
      if (p.requires_grad()) row.trainable_params += p.numel();
    }
    layer_total += row.params;
    data.layers.push_back(std::move(row));
  }
  for (const Tensor& p : model.parameters()) {
    data.total_params += p.numel();
    if (p.requires_grad()) data.trainable_params += p.numel();
  }
  data.leftover_params = std::max<int64_t>(0, data.total_params - layer_total);
  for (const auto& entry : descendants)
    (entry.second->is_training() ? data.modules_in_train_mode : data.modules_in_eval_mode)++;
  data.model_size_mb = static_cast<double>(data.total_params) * (precision_bits / 8.0) * 1e-6;
  if (flops) data.total_flops = flops->total();
  return data;
}

}  // namespace

std::string human_readable_count(int64_t number) {
  EMBER_CHECK(number >= 0, ValueError, "[ModelSummary] a parameter count cannot be negative, got ", number);
  static const char* const kLabels[] = {" ", "K", "M", "B", "T"};
  const int num_digits = static_cast<int>(std::to_string(number).size());
  const int num_groups = std::min((num_digits + 2) / 3, 5);
  const int index = num_groups - 1;
  const double value = static_cast<double>(number) * std::pow(10.0, -3.0 * index);
  if (index < 1 || value >= 100)
    return group_thousands(std::to_string(static_cast<int64_t>(value))) + " " + kLabels[index];
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", value, kLabels[index]);
  return buf;
}

int precision_bits(const std::string& precision) {
  if (precision == "64" || precision == "64-true") return 64;
  if (precision == "16" || precision == "bf16" || precision == "16-true" || precision == "bf16-true") return 16;
  return 32;  // "32", and the mixed precisions (Lightning sizes them as 32 bits too)
}

ModelSummaryData summarize_model(const nn::Module& model, int max_depth, int precision_bits) {
  return summarize_with(model, max_depth, precision_bits, nullptr);
}

ModelSummaryData summarize_model(TrainModule& model, int max_depth, int precision_bits) {
  if (!model.example_input_array.defined() || max_depth == 0)
    return summarize_with(model, max_depth, precision_bits, nullptr);
  EMBER_CHECK(max_depth >= -1, ValueError, "[ModelSummary] max_depth can be -1, 0 or > 0, got ", max_depth);
  FlopCounter counter;
  {
    KeepModesAndRng keep(model);
    model.eval();
    autograd::NoGradGuard no_grad;
    model.forward(example_input_for(model, model.example_input_array));
  }
  return summarize_with(model, max_depth, precision_bits, &counter);
}

std::vector<LayerSummary> summarize(const nn::Module& model, int max_depth) {
  ModelSummaryData data = summarize_model(model, max_depth);
  if (data.leftover_params > 0)
    data.layers.push_back({.name = "other params",
                           .type = "n/a",
                           .params = data.leftover_params,
                           .trainable_params = 0,
                           .training = model.is_training()});
  return data.layers;
}

std::string format_summary(const ModelSummaryData& data) {
  // Columns as Lightning's _format_summary_table: header, then one cell per row.
  std::vector<std::pair<std::string, std::vector<std::string>>> cols = {
      {" ", {}}, {"Name", {}}, {"Type", {}}, {"Params", {}}, {"Mode", {}}};
  const bool with_flops = data.total_flops.has_value();
  if (with_flops) cols.push_back({"FLOPs", {}});
  for (size_t i = 0; i < data.layers.size(); ++i) {
    const LayerSummary& l = data.layers[i];
    cols[0].second.push_back(std::to_string(i));
    cols[1].second.push_back(l.name);
    cols[2].second.push_back(l.type);
    cols[3].second.push_back(human_readable_count(l.params));
    cols[4].second.push_back(l.training ? "train" : "eval");
    if (with_flops) cols[5].second.push_back(human_readable_count(l.flops));
  }
  if (data.leftover_params > 0) {
    const std::string cells[] = {" ", "other params", "n/a", human_readable_count(data.leftover_params), "n/a", "n/a"};
    for (size_t c = 0; c < cols.size(); ++c) cols[c].second.push_back(cells[c]);
  }
  const size_t n_rows = cols[0].second.size();
  std::vector<size_t> widths;
  size_t total_width = 3 * (cols.size() + 1);
  for (const auto& [header, cells] : cols) {
    size_t w = header.size();
    for (const auto& cell : cells) w = std::max(w, cell.size());
    widths.push_back(w);
    total_width += w;
  }
  auto row_line = [&](auto&& cell_of) {
    std::string line;
    for (size_t c = 0; c < cols.size(); ++c) line += (c ? " | " : "") + pad_right(cell_of(c), widths[c]);
    return line;
  };
  const std::string rule(total_width, '-');
  std::ostringstream os;
  os << row_line([&](size_t c) { return cols[c].first; }) << "\n" << rule;
  for (size_t r = 0; r < n_rows; ++r) os << "\n" << row_line([&](size_t c) { return cols[c].second[r]; });
  os << "\n" << rule;

  char size[64];
  std::snprintf(size, sizeof size, "%.3f", data.model_size_mb);
  std::string size_str = size;
  const size_t dot = size_str.find('.');
  size_str = group_thousands(size_str.substr(0, dot)) + size_str.substr(dot);
  os << "\n" << pad_right(human_readable_count(data.trainable_params), 10) << "Trainable params";
  os << "\n"
     << pad_right(human_readable_count(data.total_params - data.trainable_params), 10) << "Non-trainable params";
  os << "\n" << pad_right(human_readable_count(data.total_params), 10) << "Total params";
  os << "\n" << pad_right(size_str, 10) << "Total estimated model params size (MB)";
  os << "\n" << pad_right(std::to_string(data.modules_in_train_mode), 10) << "Modules in train mode";
  os << "\n" << pad_right(std::to_string(data.modules_in_eval_mode), 10) << "Modules in eval mode";
  if (with_flops) os << "\n" << pad_right(human_readable_count(*data.total_flops), 10) << "Total Flops";
  return os.str();
}

std::string format_summary(const nn::Module& model, int max_depth, int precision_bits) {
  return format_summary(summarize_model(model, max_depth, precision_bits));
}

std::string format_summary(TrainModule& model, int max_depth, int precision_bits) {
  return format_summary(summarize_model(model, max_depth, precision_bits));
}

ModelSummary::ModelSummary(int max_depth, std::ostream* out) : max_depth_(max_depth), out_(out) {
  EMBER_CHECK(max_depth >= -1, ValueError, "[ModelSummary] max_depth can be -1, 0 or > 0, got ", max_depth);
}

void ModelSummary::on_fit_start(Trainer& trainer, TrainModule& module) {
  if (max_depth_ == 0) return;
  std::ostream& os = out_ ? *out_ : std::cout;
  os << format_summary(module, max_depth_, precision_bits(trainer.options().precision)) << "\n";
  os.flush();
}

}  // namespace ember::train
