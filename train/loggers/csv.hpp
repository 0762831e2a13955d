// CSVLogger (Lightning's CSVLogger): metrics.csv and hparams.yaml in <save_dir>/<name>/version_N, plus a
// metrics.svg chart at the end of the run. read_metrics_csv reads such a file back.
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "train/logger.hpp"
#include "train/loggers/common.hpp"

namespace ember::train {

// Fields in declaration order (C++20 designated initialisers); names and defaults as Lightning's.
struct CSVLoggerOptions {
  std::string save_dir = ".";
  std::string name = "lightning_logs";     // empty: the versions sit directly in save_dir
  LoggerVersion version = {};              // unset: the next free version_N
  std::string prefix = "";                 // metric keys become "<prefix>-<key>"
  int64_t flush_logs_every_n_steps = 100;  // log_metrics calls between writes of metrics.csv
};

class CSVLogger : public Logger {
 public:
  static constexpr const char* kMetricsFile = "metrics.csv";
  static constexpr const char* kHparamsFile = "hparams.yaml";
  static constexpr const char* kChartFile = "metrics.svg";

  // Picks the version now (scanning <save_dir>/<name>); the folder is created at the first write, which
  // also removes the temporary files ("metrics.csv.tmp.<pid>", "hparams.yaml.tmp.<pid>") of processes
  // that no longer exist. As in Lightning, a metrics.csv already in that folder is replaced by this run's.
  explicit CSVLogger(CSVLoggerOptions options = {});
  // Writes what is still buffered (errors are swallowed here; call save() or finalize() to see them).
  ~CSVLogger() override;
  CSVLogger(const CSVLogger&) = delete;
  CSVLogger& operator=(const CSVLogger&) = delete;

  std::string name() const override { return options_.name; }
  // "version_N" (or the folder name given as the version).
  std::string version() const override { return version_; }
  std::string log_dir() const override { return log_dir_; }
  std::string root_dir() const { return root_dir_; }
  std::string save_dir() const { return options_.save_dir; }
  std::string metrics_file_path() const;

  // Buffers one row: the given keys plus "step". A key not seen before widens the header (the file is
  // rewritten with the new column; earlier rows get empty cells).
  void log_metrics(const std::map<std::string, double>& metrics, int64_t step) override;
  // Merges params into the run's hyperparameters and writes hparams.yaml.
  void log_hyperparams(const nlohmann::json& params) override;
  // Writes metrics.csv (atomically: the file on disk is always a complete one).
  void save() override;
  // save(), then the metrics.svg chart of the logged curves.
  void finalize(const std::string& status) override;

  const nlohmann::json& hparams() const { return hparams_; }

 private:
  struct Row {
    int64_t step = 0;
    std::map<std::string, double> values;
  };
  void ensure_dir();
  std::string render() const;

  CSVLoggerOptions options_;
  std::string root_dir_, version_, log_dir_;
  bool dir_ready_ = false;
  bool dirty_ = false;             // rows logged since the last save
  int64_t since_save_ = 0;         // log_metrics calls since the last save
  std::vector<Row> rows_;          // every row of the run: metrics.csv is rewritten whole, atomically
  std::set<std::string> columns_;  // sorted, "step" among them (Lightning sorts every key)
  nlohmann::json hparams_ = nlohmann::json::object();
};

// A metrics.csv read back: the header's columns and one map per row (empty cells left out; "step" is a
// column like the others). FormatError naming the path, line and column on a cell that is not a number;
// IOError when the file cannot be read.
struct MetricsCsv {
  std::vector<std::string> columns;
  std::vector<std::map<std::string, double>> rows;
};
MetricsCsv read_metrics_csv(const std::string& path);

}  // namespace ember::train
