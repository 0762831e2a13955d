// CSVLogger: buffered rows written to metrics.csv atomically; read_metrics_csv parses the file back.
#include "train/loggers/csv.hpp"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.hpp"
#include "core/io/temp_files.hpp"
#include "train/loggers/svg.hpp"

namespace ember::train {
namespace fs = std::filesystem;

namespace {

// Quotes a field the way Python's csv module does (QUOTE_MINIMAL): only when it holds a comma, a quote or a
// line break; quotes inside are doubled.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + '"';
}

// Splits CSV text into records of fields (RFC 4180: quoted fields may hold commas, "" and line breaks).
// Returns false on an unterminated quote; *bad_line is then the line it started on.
bool parse_csv(const std::string& text, std::vector<std::vector<std::string>>& records, std::vector<int64_t>& lines,
               int64_t* bad_line) {
  std::vector<std::string> record;
  std::string field;
  bool quoted = false, any = false;
  int64_t line = 1, record_line = 1, quote_line = 1;
  auto end_record = [&] {
    if (any || !field.empty() || !record.empty()) {
      record.push_back(std::move(field));
      records.push_back(std::move(record));
      lines.push_back(record_line);
    }
    record.clear();
    field.clear();
    any = false;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"') {
      quoted = any = true;
      quote_line = line;
    } else if (c == ',') {
      record.push_back(std::move(field));
      field.clear();
      any = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      end_record();
      record_line = ++line;
    } else {
      field += c;
    }
  }
  if (quoted) {
    *bad_line = quote_line;
    return false;
  }
  end_record();
  return true;
}

}  // namespace

// ---------------------------------------------------------------- CSVLogger

CSVLogger::CSVLogger(CSVLoggerOptions options) : options_(std::move(options)) {
  EMBER_CHECK(options_.flush_logs_every_n_steps > 0, ValueError,
              "[CSVLogger] flush_logs_every_n_steps must be positive, got ", options_.flush_logs_every_n_steps);
  root_dir_ = logger_root_dir(options_.save_dir, options_.name);
  version_ = logger_version_name(options_.version, root_dir_);
  log_dir_ = (fs::path(root_dir_) / version_).string();
}

CSVLogger::~CSVLogger() {
  try {
    save();
  } catch (const std::exception&) {  // NOLINT(bugprone-empty-catch): a destructor must not throw
  }
}

std::string CSVLogger::metrics_file_path() const { return (fs::path(log_dir_) / kMetricsFile).string(); }

void CSVLogger::ensure_dir() {
  if (dir_ready_) return;
  logger_util::make_dirs(log_dir_, "CSVLogger");
  // A run killed mid-write (kill -9) leaves "metrics.csv.tmp.<pid>": ours to remove once that process is gone.
  remove_stale_temp_files(log_dir_,
                          [](const std::string& target) { return target == kMetricsFile || target == kHparamsFile; });
  dir_ready_ = true;
}

void CSVLogger::log_metrics(const std::map<std::string, double>& metrics, int64_t step) {
  Row row;
  row.step = step;
  for (const auto& [key, value] : metrics) {
    std::string name = logger_util::add_prefix(options_.prefix, key);
    if (name == "step") continue;  // the step column is the step argument (Lightning overwrites it too)
    columns_.insert(name);
    row.values.emplace(std::move(name), value);
  }
  columns_.insert("step");
  rows_.push_back(std::move(row));
  dirty_ = true;
  if (++since_save_ >= options_.flush_logs_every_n_steps) save();
}

void CSVLogger::log_hyperparams(const nlohmann::json& params) {
  if (hparams_.is_object() && params.is_object())
    hparams_.update(params);
  else
    hparams_ = params;
  ensure_dir();
  logger_util::write_file_atomic((fs::path(log_dir_) / kHparamsFile).string(), to_yaml(hparams_), "CSVLogger");
}

std::string CSVLogger::render() const {
  std::string out;
  bool first = true;
  for (const std::string& column : columns_) {
    if (!first) out += ',';
    out += csv_field(column);
    first = false;
  }
  out += '\n';
  for (const Row& row : rows_) {
    first = true;
    for (const std::string& column : columns_) {
      if (!first) out += ',';
      first = false;
      if (column == "step") {
        out += std::to_string(row.step);
      } else if (auto it = row.values.find(column); it != row.values.end()) {
        out += logger_util::format_double(it->second);
      }
    }
    out += '\n';
  }
  return out;
}

void CSVLogger::save() {
  if (!dirty_) return;
  ensure_dir();
  logger_util::write_file_atomic(metrics_file_path(), render(), "CSVLogger");
  dirty_ = false;
  since_save_ = 0;
}

void CSVLogger::finalize(const std::string& status) {
  (void)status;  // the files are written the same way whatever the outcome
  save();
  if (rows_.empty()) return;
  std::vector<std::map<std::string, double>> rows;
  rows.reserve(rows_.size());
  for (const Row& row : rows_) {
    std::map<std::string, double> r = row.values;
    r["step"] = static_cast<double>(row.step);
    rows.push_back(std::move(r));
  }
  write_metrics_svg((fs::path(log_dir_) / kChartFile).string(), rows);
}

// ---------------------------------------------------------------- reader

MetricsCsv read_metrics_csv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EMBER_CHECK(in, IOError, "[read_metrics_csv] cannot open ", path);
  std::ostringstream buf;
  buf << in.rdbuf();
  EMBER_CHECK(!in.bad(), IOError, "[read_metrics_csv] cannot read ", path);
  const std::string text = buf.str();

  std::vector<std::vector<std::string>> records;
  std::vector<int64_t> lines;
  int64_t bad_line = 0;
  EMBER_CHECK(parse_csv(text, records, lines, &bad_line), FormatError, "[read_metrics_csv] ", path, ": line ", bad_line,
              ": a quoted field is never closed");
  MetricsCsv out;
  if (records.empty()) return out;
  out.columns = records[0];
  for (size_t r = 1; r < records.size(); ++r) {
    const auto& record = records[r];
    EMBER_CHECK(record.size() == out.columns.size(), FormatError, "[read_metrics_csv] ", path, ": line ", lines[r],
                " has ", record.size(), " fields, the header has ", out.columns.size());
    std::map<std::string, double> row;
    for (size_t c = 0; c < record.size(); ++c) {
      const std::string& cell = record[c];
      if (cell.empty()) continue;
      double v = 0;
      const char* first = cell.data();
      const char* last = first + cell.size();
      auto [end, err] = std::from_chars(first, last, v);
      EMBER_CHECK(err == std::errc() && end == last, FormatError, "[read_metrics_csv] ", path, ": line ", lines[r],
                  ", column \"", out.columns[c], "\": \"", cell, "\" is not a number");
      row[out.columns[c]] = v;
    }
    out.rows.push_back(std::move(row));
  }
  return out;
}

}  // namespace ember::train
