// TensorBoardLogger (Lightning's TensorBoardLogger): a TensorBoard event file (TFRecord framing of Event
// protocol buffers, encoded here by hand) in <save_dir>/<name>/version_N, scalars per logged metric and the
// hyperparameters as a text summary; hparams.yaml beside it. crc32c is the checksum the framing uses.
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "train/logger.hpp"
#include "train/loggers/common.hpp"

namespace ember::train {

// Fields in declaration order (C++20 designated initialisers); names and defaults as Lightning's and
// torch.utils.tensorboard.SummaryWriter's.
struct TensorBoardLoggerOptions {
  std::string save_dir = ".";
  std::string name = "lightning_logs";  // empty: the versions sit directly in save_dir
  LoggerVersion version = {};           // unset: the next free version_N
  std::string sub_dir = "";             // events go to <log_dir>/<sub_dir> when set
  std::string prefix = "";              // metric tags become "<prefix>-<key>"
  int64_t max_queue = 10;               // events buffered before they are written
  double flush_secs = 120;              // or: an event this long after the last write flushes
  std::string filename_suffix = "";     // appended to the event file's name
};

class TensorBoardLogger : public Logger {
 public:
  static constexpr const char* kHparamsFile = "hparams.yaml";
  static constexpr const char* kFileVersion = "brain.Event:2";

  // Picks the version now (scanning <save_dir>/<name>); the folder and event file come with the first write.
  explicit TensorBoardLogger(TensorBoardLoggerOptions options = {});
  // Writes buffered events and closes the file (errors are swallowed here; finalize() reports them).
  ~TensorBoardLogger() override;
  TensorBoardLogger(const TensorBoardLogger&) = delete;
  TensorBoardLogger& operator=(const TensorBoardLogger&) = delete;

  std::string name() const override { return options_.name; }
  std::string version() const override { return version_; }
  // <save_dir>/<name>/<version>[/<sub_dir>]: the event file's folder.
  std::string log_dir() const override { return log_dir_; }
  std::string root_dir() const { return root_dir_; }
  // events.out.tfevents.<unix time>.<host>.<pid>.<n><suffix> in log_dir(); empty before the first write.
  const std::string& event_file_path() const { return event_path_; }

  // One Event at `step` whose Summary holds a scalar (simple_value, float32 as TensorBoard stores them)
  // per metric.
  void log_metrics(const std::map<std::string, double>& metrics, int64_t step) override;
  // A text summary tagged "hparams" (a markdown table of the flattened parameters) and hparams.yaml.
  void log_hyperparams(const nlohmann::json& params) override;
  // Writes the buffered events to the file.
  void save() override;
  // save() and close the file.
  void finalize(const std::string& status) override;

  const nlohmann::json& hparams() const { return hparams_; }

 private:
  void open();
  void add_event(const std::string& event);
  void flush();

  TensorBoardLoggerOptions options_;
  std::string root_dir_, version_, log_dir_, event_path_;
  int fd_ = -1;
  std::string pending_;  // framed records not yet written
  int64_t pending_events_ = 0;
  std::chrono::steady_clock::time_point last_flush_;
  nlohmann::json hparams_ = nlohmann::json::object();
};

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), continuing from `crc` (0 to start).
uint32_t crc32c(std::string_view data, uint32_t crc = 0);
// The TFRecord form: rotate right by 15 and add 0xa282ead8.
uint32_t masked_crc32c(std::string_view data);
// One TFRecord: length (u64 LE), masked CRC of the length bytes, data, masked CRC of the data.
std::string tfrecord_frame(std::string_view data);

}  // namespace ember::train
