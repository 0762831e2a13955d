// TensorBoardLogger: Event protocol buffers encoded by hand, framed as TFRecords, appended to an event file.
#include "train/loggers/tensorboard.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "core/error.hpp"

namespace ember::train {
namespace fs = std::filesystem;

// ---------------------------------------------------------------- CRC-32C, TFRecord

namespace {

constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

}  // namespace

uint32_t crc32c(std::string_view data, uint32_t crc) {
  crc = ~crc;
  for (char ch : data) crc = kCrc32cTable[(crc ^ static_cast<unsigned char>(ch)) & 0xff] ^ (crc >> 8);
  return ~crc;
}

uint32_t masked_crc32c(std::string_view data) {
  const uint32_t crc = crc32c(data);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string tfrecord_frame(std::string_view data) {
  std::string out;
  out.reserve(data.size() + 16);
  put_le(out, data.size(), 8);
  put_le(out, masked_crc32c(out), 4);
  out.append(data);
  put_le(out, masked_crc32c(data), 4);
  return out;
}

// ---------------------------------------------------------------- protocol buffer encoding

namespace {

// Field numbers from tensorboard/compat/proto (event.proto, summary.proto, tensor.proto, tensor_shape.proto).
namespace pb {
constexpr int kEventWallTime = 1, kEventStep = 2, kEventFileVersion = 3, kEventSummary = 5;
constexpr int kSummaryValue = 1;
constexpr int kValueTag = 1, kValueSimpleValue = 2, kValueTensor = 8, kValueMetadata = 9;
constexpr int kMetadataPluginData = 1, kPluginDataPluginName = 1;
constexpr int kTensorDtype = 1, kTensorShape = 2, kTensorStringVal = 8;
constexpr int kShapeDim = 2, kDimSize = 1;
constexpr uint64_t kDtString = 7;  // tensorflow.DataType.DT_STRING
}  // namespace pb

// Appends protocol buffer fields (wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
class ProtoWriter {
 public:
  ProtoWriter& varint(int field, uint64_t v) {
    key(field, 0);
    raw_varint(v);
    return *this;
  }
  ProtoWriter& f64(int field, double v) {
    key(field, 1);
    put_le(buf_, std::bit_cast<uint64_t>(v), 8);
    return *this;
  }
  ProtoWriter& f32(int field, float v) {
    key(field, 5);
    put_le(buf_, std::bit_cast<uint32_t>(v), 4);
    return *this;
  }
  ProtoWriter& bytes(int field, std::string_view v) {
    key(field, 2);
    raw_varint(v.size());
    buf_.append(v);
    return *this;
  }
  std::string take() { return std::move(buf_); }

 private:
  void key(int field, int wire) { raw_varint((static_cast<uint64_t>(field) << 3) | static_cast<uint64_t>(wire)); }
  void raw_varint(uint64_t v) {
    while (v >= 0x80) {
      buf_ += static_cast<char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    buf_ += static_cast<char>(v);
  }
  std::string buf_;
};

double unix_now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::string event(int64_t step, int field, std::string_view payload) {
  return ProtoWriter()
      .f64(pb::kEventWallTime, unix_now())
      .varint(pb::kEventStep, static_cast<uint64_t>(step))  // int64: negative steps take ten bytes
      .bytes(field, payload)
      .take();
}

std::string scalar_value(const std::string& tag, double v) {
  return ProtoWriter().bytes(pb::kValueTag, tag).f32(pb::kValueSimpleValue, static_cast<float>(v)).take();
}

// A text-plugin summary value: a scalar DT_STRING tensor (shape [1], as SummaryWriter.add_text writes it).
std::string text_value(const std::string& tag, const std::string& text) {
  const std::string plugin = ProtoWriter().bytes(pb::kPluginDataPluginName, "text").take();
  const std::string metadata = ProtoWriter().bytes(pb::kMetadataPluginData, plugin).take();
  const std::string dim = ProtoWriter().varint(pb::kDimSize, 1).take();
  const std::string shape = ProtoWriter().bytes(pb::kShapeDim, dim).take();
  const std::string tensor = ProtoWriter()
                                 .varint(pb::kTensorDtype, pb::kDtString)
                                 .bytes(pb::kTensorShape, shape)
                                 .bytes(pb::kTensorStringVal, text)
                                 .take();
  return ProtoWriter()
      .bytes(pb::kValueTag, tag)
      .bytes(pb::kValueMetadata, metadata)
      .bytes(pb::kValueTensor, tensor)
      .take();
}

// Nested objects flattened to "a.b" keys; the rest as one cell each.
void flatten(const nlohmann::json& v, const std::string& key, std::vector<std::pair<std::string, std::string>>& out) {
  if (v.is_object() && !v.empty()) {
    for (const auto& [k, x] : v.items()) flatten(x, key.empty() ? k : key + "." + k, out);
    return;
  }
  std::string text;
  if (v.is_string())
    text = v.get<std::string>();
  else if (v.is_number_float())
    text = logger_util::format_double(v.get<double>());
  else
    text = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  out.emplace_back(key.empty() ? "value" : key, std::move(text));
}

std::string markdown_cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|')
      out += "\\|";
    else if (c == '\n' || c == '\r')
      out += ' ';
    else
      out += c;
  }
  return out;
}

std::string hparams_markdown(const nlohmann::json& params) {
  std::vector<std::pair<std::string, std::string>> cells;
  flatten(params, "", cells);
  std::string out = "| parameter | value |\n|---|---|\n";
  for (const auto& [k, v] : cells) out += "| " + markdown_cell(k) + " | " + markdown_cell(v) + " |\n";
  return out;
}

std::atomic<int64_t> g_file_counter{0};  // the last part of event file names (SummaryWriter's global uid)

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

}  // namespace

// ---------------------------------------------------------------- TensorBoardLogger

TensorBoardLogger::TensorBoardLogger(TensorBoardLoggerOptions options) : options_(std::move(options)) {
  EMBER_CHECK(options_.max_queue > 0, ValueError, "[TensorBoardLogger] max_queue must be positive, got ",
              options_.max_queue);
  root_dir_ = logger_root_dir(options_.save_dir, options_.name);
  version_ = logger_version_name(options_.version, root_dir_);
  fs::path dir = fs::path(root_dir_) / version_;
  if (!options_.sub_dir.empty()) dir /= options_.sub_dir;
  log_dir_ = dir.string();
  last_flush_ = std::chrono::steady_clock::now();
}

TensorBoardLogger::~TensorBoardLogger() {
  try {
    flush();
  } catch (const std::exception&) {  // NOLINT(bugprone-empty-catch): a destructor must not throw
  }
  if (fd_ >= 0) ::close(fd_);
}

void TensorBoardLogger::open() {
  logger_util::make_dirs(log_dir_, "TensorBoardLogger");
  char name[512];
  std::snprintf(name, sizeof(name), "events.out.tfevents.%010lld.%s.%lld.%lld%s", static_cast<long long>(unix_now()),
                host_name().c_str(), static_cast<long long>(::getpid()),
                static_cast<long long>(g_file_counter.fetch_add(1)), options_.filename_suffix.c_str());
  const std::string path = (fs::path(log_dir_) / name).string();
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    const int err = errno;
    throw IOError(::ember::detail::cat_str("[TensorBoardLogger] cannot create ", path, ": ", std::strerror(err)));
  }
  event_path_ = path;
  // The first record names the format; written at once so that the file is valid from the start.
  pending_ += tfrecord_frame(event(0, pb::kEventFileVersion, kFileVersion));
  flush();
}

void TensorBoardLogger::add_event(const std::string& ev) {
  if (fd_ < 0) open();
  pending_ += tfrecord_frame(ev);
  ++pending_events_;
  const double since = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_flush_).count();
  if (pending_events_ >= options_.max_queue || since >= options_.flush_secs) flush();
}

void TensorBoardLogger::flush() {
  last_flush_ = std::chrono::steady_clock::now();
  pending_events_ = 0;
  if (fd_ < 0 || pending_.empty()) return;
  std::string data = std::move(pending_);
  pending_.clear();
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t w = ::write(fd_, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      throw IOError(
          ::ember::detail::cat_str("[TensorBoardLogger] cannot write ", event_path_, ": ", std::strerror(err)));
    }
    p += w;
    left -= static_cast<size_t>(w);
  }
}

void TensorBoardLogger::log_metrics(const std::map<std::string, double>& metrics, int64_t step) {
  ProtoWriter summary;
  for (const auto& [key, value] : metrics)
    summary.bytes(pb::kSummaryValue, scalar_value(logger_util::add_prefix(options_.prefix, key), value));
  add_event(event(step, pb::kEventSummary, summary.take()));
}

void TensorBoardLogger::log_hyperparams(const nlohmann::json& params) {
  if (hparams_.is_object() && params.is_object())
    hparams_.update(params);
  else
    hparams_ = params;
  logger_util::make_dirs(log_dir_, "TensorBoardLogger");
  logger_util::write_file_atomic((fs::path(log_dir_) / kHparamsFile).string(), to_yaml(hparams_), "TensorBoardLogger");
  const std::string summary =
      ProtoWriter().bytes(pb::kSummaryValue, text_value("hparams", hparams_markdown(hparams_))).take();
  add_event(event(0, pb::kEventSummary, summary));
}

void TensorBoardLogger::save() { flush(); }

void TensorBoardLogger::finalize(const std::string& status) {
  (void)status;
  flush();
  if (fd_ >= 0) {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) {
      const int err = errno;
      throw IOError(
          ::ember::detail::cat_str("[TensorBoardLogger] cannot close ", event_path_, ": ", std::strerror(err)));
    }
  }
}

}  // namespace ember::train
