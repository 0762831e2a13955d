// Trainer: the checks and messages a Lightning user expects (callback state keys, unregistered
// submodules, training data that changed under a resume, the results table of validate/test).
#include <charconv>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <unordered_set>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "train/trainer.hpp"

namespace ember::train {
namespace {

// Python's repr of a float: the shortest text that reads back as the same double.
std::string float_repr(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, ec == std::errc() ? end : buf);
  if (s.find_first_of(".eE") == std::string::npos && s.find_first_of("ni") == std::string::npos) s += ".0";
  return s;
}

// Display width of UTF-8 text (the box characters are one column each).
size_t columns(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string centered(const std::string& s, size_t width) {
  const size_t n = columns(s);
  if (n >= width) return s;
  const size_t left = (width - n) / 2;
  return std::string(left, ' ') + s + std::string(width - n - left, ' ');
}

std::string repeat(const char* piece, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += piece;
  return out;
}

// FNV-1a over a tensor's shape, dtype and bytes (a CPU copy), for data_fingerprint.
void hash_tensor(uint64_t& h, const Tensor& t) {
  auto mix = [&](const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ULL;
  };
  if (!t.defined()) return;
  const Tensor c = t.detach().cpu().contiguous();
  for (int64_t d : c.shape()) mix(&d, sizeof d);
  const int dt = static_cast<int>(c.dtype());
  mix(&dt, sizeof dt);
  mix(c.raw_data(), static_cast<size_t>(c.numel()) * itemsize(c.dtype()));
}

}  // namespace

// Lightning keeps a callback's state only when it has one, under its state_key: any number of stateless
// callbacks of one class (LambdaCallbacks) can share a key; two with state and one key cannot.
nlohmann::json Trainer::callback_states() const {
  nlohmann::json out = nlohmann::json::object();
  std::map<std::string, size_t> owner;  // key -> index in callbacks_
  for (size_t i = 0; i < callbacks_.size(); ++i) {
    const Callback& c = *callbacks_[i];
    nlohmann::json state = c.state_dict();
    if (state.is_null() || (state.is_object() && state.empty())) continue;
    const std::string key = c.state_key();
    if (auto it = owner.find(key); it != owner.end())
      throw ValueError(detail::cat_str("[Trainer.save_checkpoint] callbacks[", it->second, "] and callbacks[", i,
                                       "] both have state under the key '", key,
                                       "', so a checkpoint cannot tell them apart: give them different settings "
                                       "(ModelCheckpoint: monitor/mode, EarlyStopping: monitor/mode) or override "
                                       "state_key() to tell them apart"));
    owner.emplace(key, i);
    out[key] = std::move(state);
  }
  return out;
}

void Trainer::check_unregistered(const Tensor& loss) {
  unregistered_checked_ = true;
  if (model_->allow_unregistered_tensors || !loss.defined() || loss.grad_fn() == nullptr) return;
  std::unordered_set<const autograd::Node*> known;  // accumulators of parameters and optimized tensors
  auto add = [&](const Tensor& t) {
    if (!t.defined() || !t.impl().autograd) return;
    if (auto acc = t.impl().autograd->grad_accumulator.lock()) known.insert(acc.get());
  };
  for (const Tensor& p : model_->parameters()) add(p);
  for (const auto& o : optimizers_)
    for (size_t g = 0; g < o->num_param_groups(); ++g)
      for (const Tensor& p : o->params(g)) add(p);
  // Every leaf the graph reaches has an accumulator node; report those nobody registered.
  std::unordered_set<const autograd::Node*> seen;
  std::vector<const autograd::Node*> stack{loss.grad_fn().get()};
  std::vector<std::string> found;
  std::set<const autograd::Node*> reported;
  while (!stack.empty()) {
    const autograd::Node* n = stack.back();
    stack.pop_back();
    if (!seen.insert(n).second) continue;
    for (const autograd::NodeInput& in : n->inputs) {
      const autograd::Node* next = in.edge.fn.get();
      if (next == nullptr) continue;
      if (std::strcmp(next->name(), "accumulate_grad") == 0) {
        if (!known.contains(next) && reported.insert(next).second)
          found.push_back(detail::cat_str(in.geometry.shape, " ", dtype_name(in.geometry.dtype), " (an input of '",
                                          n->name(), "')"));
        continue;
      }
      stack.push_back(next);
    }
  }
  if (found.empty()) return;
  std::string list;
  for (const std::string& f : found) list += (list.empty() ? "" : ", ") + f;
  throw ValueError(detail::cat_str(
      "[Trainer] training_step's loss depends on ", found.size(), " tensor", found.size() > 1 ? "s" : "",
      " that require grad but are not parameters of ", model_->type_name(), " and that no optimizer steps: ", list,
      ". They would never be trained or checkpointed: register the submodule that holds them "
      "(register_module(\"name\", "
      "member)) or the tensor itself (register_parameter), or detach it; set allow_unregistered_tensors = true in the "
      "module's constructor if this is intended"));
}

nlohmann::json Trainer::data_fingerprint() const {
  if (train_loader_ == nullptr || train_loader_->dataset() == nullptr) return nullptr;
  const data::DatasetPtr ds = train_loader_->dataset();
  const int64_t n = ds->size();
  uint64_t h = 1469598103934665603ULL;
  if (n > 0) {
    // A dataset may draw random numbers in get(): the run must not see that it was asked.
    const GeneratorState rng = default_generator().state();
    for (int64_t i : {int64_t(0), n - 1}) {
      const data::Example e = ds->get(i);
      hash_tensor(h, e.input);
      hash_tensor(h, e.target);
      for (const auto& [name, t] : e.extra) hash_tensor(h, t);
    }
    default_generator().set_state(rng);
  }
  return {{"examples", n}, {"hash", std::to_string(h)}};
}

void Trainer::check_data_fingerprint(const Checkpoint& ck) const {
  auto it = ck.state.find("train_data");
  if (it == ck.state.end() || data_fingerprint_.is_null() || *it == data_fingerprint_ || !is_global_zero()) return;
  std::cerr << "[Trainer] warning: the training data differ from those of the run that wrote " << ck.path
            << " (its first or last example, or its size, changed): the DataModule builds its dataset differently "
               "in this process (a random split or random data without a fixed seed?), so the resumed run will not "
               "repeat the original. Seed what train_dataloader() builds to resume exactly.\n";
}

void Trainer::print_results(Stage stage, const MetricMap& metrics) const {
  if (metrics.empty() || !is_global_zero()) return;
  const std::string title = stage == Stage::kTesting ? "Test metric" : "Validate metric";
  const std::string header = "DataLoader 0";
  size_t width = std::max<size_t>({title.size(), header.size(), 25});
  std::vector<std::pair<std::string, std::string>> rows;
  for (const auto& [name, value] : metrics) {
    if (name == "epoch") continue;
    rows.emplace_back(name, float_repr(value));
    width = std::max({width, columns(name), rows.back().second.size()});
  }
  width = std::min<size_t>(width, 60);  // Lightning: at most half of a 120-column terminal
  const size_t cell = width + 2;        // rich pads each cell with a space on either side
  std::string out;
  out += "┏" + repeat("━", cell) + "┳" + repeat("━", cell) + "┓\n";
  out += "┃ " + centered(title, width) + " ┃ " + centered(header, width) + " ┃\n";
  out += "┡" + repeat("━", cell) + "╇" + repeat("━", cell) + "┩\n";
  for (const auto& [name, value] : rows) out += "│ " + centered(name, width) + " │ " + centered(value, width) + " │\n";
  out += "└" + repeat("─", cell) + "┴" + repeat("─", cell) + "┘\n";
  std::cout << out << std::flush;
}

}  // namespace ember::train
