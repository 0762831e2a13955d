// make_metric: a metric rebuilt from its name() and config(), as a checkpoint records them.
#include "core/error.hpp"
#include "train/metrics/metrics.hpp"

namespace ember::metrics {
namespace {

std::optional<int64_t> optional_int(const nlohmann::json& j, const char* key) {
  const nlohmann::json& v = j.at(key);
  return v.is_null() ? std::nullopt : std::optional<int64_t>(v.get<int64_t>());
}

std::unique_ptr<Metric> build(const std::string& name, const nlohmann::json& c) {
  if (name == "Accuracy") return std::make_unique<Accuracy>(classification_options_from_json(c));
  if (name == "Precision") return std::make_unique<Precision>(classification_options_from_json(c));
  if (name == "Recall") return std::make_unique<Recall>(classification_options_from_json(c));
  if (name == "F1Score") return std::make_unique<F1Score>(classification_options_from_json(c));
  if (name == "ConfusionMatrix")
    return std::make_unique<ConfusionMatrix>(ConfusionMatrixOptions{.task = c.at("task").get<std::string>(),
                                                                    .threshold = c.at("threshold").get<double>(),
                                                                    .num_classes = optional_int(c, "num_classes"),
                                                                    .normalize = c.at("normalize").get<std::string>(),
                                                                    .ignore_index = optional_int(c, "ignore_index")});
  if (name == "AUROC")
    return std::make_unique<AUROC>(AUROCOptions{.task = c.at("task").get<std::string>(),
                                                .num_classes = optional_int(c, "num_classes"),
                                                .average = c.at("average").get<std::string>(),
                                                .ignore_index = optional_int(c, "ignore_index")});
  if (name == "MeanSquaredError")
    return std::make_unique<MeanSquaredError>(MeanSquaredErrorOptions{.squared = c.at("squared").get<bool>()});
  if (name == "MeanAbsoluteError") return std::make_unique<MeanAbsoluteError>();
  if (name == "Perplexity")
    return std::make_unique<Perplexity>(PerplexityOptions{.ignore_index = optional_int(c, "ignore_index")});
  const AggregationOptions agg{.nan_strategy = c.contains("nan_strategy") ? c.at("nan_strategy").get<std::string>()
                                                                          : std::string("warn")};
  if (name == "MeanMetric") return std::make_unique<MeanMetric>(agg);
  if (name == "SumMetric") return std::make_unique<SumMetric>(agg);
  if (name == "MaxMetric") return std::make_unique<MaxMetric>(agg);
  if (name == "MinMetric") return std::make_unique<MinMetric>(agg);
  return nullptr;
}

}  // namespace

std::unique_ptr<Metric> make_metric(const std::string& name, const nlohmann::json& config) {
  std::unique_ptr<Metric> m;
  try {
    m = build(name, config);
  } catch (const nlohmann::json::exception& e) {
    throw ValueError(detail::cat_str("[make_metric] ", name, ": bad options ", config.dump(), " (", e.what(), ")"));
  }
  EMBER_CHECK(m != nullptr, ValueError, "[make_metric] unknown metric \"", name,
              "\" (a metric of your own cannot be rebuilt from a checkpoint: log it on_step only, or log its value)");
  return m;
}

}  // namespace ember::metrics
