// LearningRateMonitor: Lightning's naming of optimizers and groups, and its logging schedule.
#include "train/callbacks/lr_monitor.hpp"

#include <algorithm>
#include <iostream>

#include "core/error.hpp"
#include "train/trainer.hpp"

namespace ember::train {
namespace {

struct Named {
  optim::Optimizer* optimizer = nullptr;
  std::vector<std::string> names;  // one per parameter group
};

// Lightning's _find_names_from_schedulers then _find_names_from_optimizers, sharing what they have seen.
struct NameTable {
  std::vector<Named> scheduled;    // parallel to trainer.lr_scheduler_configs()
  std::vector<Named> unscheduled;  // optimizers without a scheduler, in order

  explicit NameTable(const Trainer& trainer) {
    std::vector<optim::Optimizer*> seen;
    std::map<std::string, int> seen_types;  // optimizer type -> how many unnamed ones so far
    auto name_groups = [&](optim::Optimizer& opt, std::string name, bool counted) {
      seen.push_back(&opt);
      if (counted) ++seen_types[opt.name()];
      if (auto it = seen_types.find(opt.name()); it != seen_types.end() && it->second > 1)
        name += std::string("-") + std::to_string(it->second - 1);
      std::vector<std::string> names;
      const size_t groups = opt.num_param_groups();
      for (size_t g = 0; g < groups; ++g) names.push_back(groups > 1 ? name + "/pg" + std::to_string(g + 1) : name);
      return Named{&opt, names};
    };
    for (const LRSchedulerConfig& config : trainer.lr_scheduler_configs()) {
      EMBER_CHECK(config.scheduler != nullptr, ValueError, "[LearningRateMonitor] a scheduler config has no scheduler");
      optim::Optimizer& opt = config.scheduler->optimizer();
      const bool named = !config.name.empty();
      scheduled.push_back(name_groups(opt, named ? config.name : "lr-" + opt.name(), !named));
    }
    for (const auto& opt : trainer.optimizers()) {
      if (std::find(seen.begin(), seen.end(), opt.get()) != seen.end()) continue;
      unscheduled.push_back(name_groups(*opt, "lr-" + opt->name(), true));
    }
  }
};

// Lightning's should_update_logs, checked before the step: the step about to be taken is a logging one.
bool should_update_logs(const Trainer& trainer) {
  const int64_t every = trainer.options().log_every_n_steps;
  if (every <= 0) return false;
  return (trainer.global_step() + 1) % every == 0 || trainer.should_stop;
}

}  // namespace

LearningRateMonitor::LearningRateMonitor(std::optional<std::string> logging_interval, bool log_momentum,
                                         bool log_weight_decay)
    : logging_interval_(std::move(logging_interval)), log_momentum_(log_momentum), log_weight_decay_(log_weight_decay) {
  EMBER_CHECK(!logging_interval_ || *logging_interval_ == "step" || *logging_interval_ == "epoch", ValueError,
              "[LearningRateMonitor] logging_interval should be \"step\" or \"epoch\" or unset, got \"",
              logging_interval_.value_or(""), "\"");
}

std::vector<std::vector<std::string>> LearningRateMonitor::names(const Trainer& trainer) {
  NameTable table(trainer);
  std::vector<std::vector<std::string>> out;
  for (const Named& n : table.scheduled) out.push_back(n.names);
  for (const Named& n : table.unscheduled) out.push_back(n.names);
  return out;
}

void LearningRateMonitor::on_train_start(Trainer& trainer, TrainModule& /*module*/) {
  EMBER_CHECK(!trainer.loggers().empty(), ValueError,
              "[LearningRateMonitor] cannot be used with a Trainer that has no logger (logger = false, or "
              "fast_dev_run): give the Trainer a logger or remove the callback");
  if (log_momentum_) {
    bool all_have = true;
    if (!trainer.lr_scheduler_configs().empty()) {
      for (const auto& c : trainer.lr_scheduler_configs())
        all_have = all_have && c.scheduler && c.scheduler->optimizer().has_momentum();
    } else {
      for (const auto& o : trainer.optimizers()) all_have = all_have && o->has_momentum();
    }
    if (!all_have)
      std::cerr << "[LearningRateMonitor] warning: log_momentum = true, but some optimizers have no momentum; "
                   "their momentum is logged as 0\n";
  }
  lrs_.clear();
  last_momentum_.clear();
  last_weight_decay_.clear();
  for (const auto& group_names : names(trainer))
    for (const auto& name : group_names) lrs_[name];
}

std::map<std::string, double> LearningRateMonitor::extract_stats(const Trainer& trainer, const std::string& interval) {
  NameTable table(trainer);
  std::map<std::string, double> stats;
  auto add = [&](const Named& n) {
    optim::Optimizer& opt = *n.optimizer;
    for (size_t g = 0; g < n.names.size(); ++g) {
      const std::string& name = n.names[g];
      const double lr = opt.lr(g);
      lrs_[name].push_back(lr);
      stats[name] = lr;
      if (log_momentum_) {
        const double momentum = opt.momentum(g).value_or(0.0);
        last_momentum_[name + "-momentum"] = momentum;
        stats[name + "-momentum"] = momentum;
      }
      if (log_weight_decay_) {
        const nlohmann::json options = opt.group_options(g);
        const auto it = options.find("weight_decay");
        const double wd = it != options.end() && it->is_number() ? it->get<double>() : 0.0;
        last_weight_decay_[name + "-weight_decay"] = wd;
        stats[name + "-weight_decay"] = wd;
      }
    }
  };
  const auto& configs = trainer.lr_scheduler_configs();
  for (size_t i = 0; i < configs.size(); ++i)
    if (interval == "any" || interval == configs[i].interval) add(table.scheduled[i]);
  for (const Named& n : table.unscheduled) add(n);
  return stats;
}

void LearningRateMonitor::log(Trainer& trainer, const std::map<std::string, double>& stats, int64_t step) {
  if (stats.empty()) return;
  trainer.add_callback_metrics(stats);  // monitorable, as Lightning's (ModelCheckpoint on "lr-Adam")
  for (const auto& logger : trainer.loggers()) logger->log_metrics(stats, step);
}

void LearningRateMonitor::on_train_batch_start(Trainer& trainer, TrainModule& /*module*/, const data::Batch& /*batch*/,
                                               int64_t /*batch_idx*/) {
  if (!should_update_logs(trainer)) return;
  if (logging_interval_ == "epoch") return;
  // The row of the step about to be taken: the loss rows of this batch carry that step (global_step after
  // it), so the two join on "step" in metrics.csv as Lightning's do.
  log(trainer, extract_stats(trainer, logging_interval_ ? "any" : "step"), trainer.global_step() + 1);
}

void LearningRateMonitor::on_train_epoch_start(Trainer& trainer, TrainModule& /*module*/) {
  if (logging_interval_ == "step") return;
  log(trainer, extract_stats(trainer, logging_interval_ ? "any" : "epoch"), trainer.global_step());
}

}  // namespace ember::train
