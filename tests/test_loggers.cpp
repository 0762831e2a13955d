// Tests of the loggers (train/loggers): version folders, metrics.csv, hparams.yaml, TensorBoard event files
// (framing, CRC-32C, decoded records) and the SVG chart.
#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "test_util.hpp"
#include "train/loggers/csv.hpp"
#include "train/loggers/svg.hpp"
#include "train/loggers/tensorboard.hpp"

using namespace ember;
using namespace ember::train;
namespace fs = std::filesystem;
using ember::testing::dead_pid;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("ember_test_loggers_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
};

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

// ---- a minimal protocol buffer reader (wire types 0, 1, 2, 5), independent of the writer

struct PbField {
  int number = 0;
  int wire = 0;
  uint64_t value = 0;  // varint, fixed64 or fixed32 bits
  std::string bytes;   // length-delimited payload
};

uint64_t read_varint(std::string_view s, size_t& pos) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    REQUIRE(pos < s.size());
    const auto b = static_cast<unsigned char>(s[pos++]);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  FAIL("varint longer than 10 bytes");
  return 0;
}

uint64_t read_le(std::string_view s, size_t pos, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(s[pos + i])) << (8 * i);
  return v;
}

std::vector<PbField> pb_decode(std::string_view s) {
  std::vector<PbField> out;
  size_t pos = 0;
  while (pos < s.size()) {
    const uint64_t key = read_varint(s, pos);
    PbField f;
    f.number = static_cast<int>(key >> 3);
    f.wire = static_cast<int>(key & 7);
    if (f.wire == 0) {
      f.value = read_varint(s, pos);
    } else if (f.wire == 1 || f.wire == 5) {
      const int n = f.wire == 1 ? 8 : 4;
      REQUIRE(pos + n <= s.size());
      f.value = read_le(s, pos, n);
      pos += n;
    } else {
      REQUIRE(f.wire == 2);
      const uint64_t n = read_varint(s, pos);
      REQUIRE(pos + n <= s.size());
      f.bytes = std::string(s.substr(pos, n));
      pos += n;
    }
    out.push_back(std::move(f));
  }
  return out;
}

const PbField* pb_find(const std::vector<PbField>& fields, int number) {
  for (const auto& f : fields)
    if (f.number == number) return &f;
  return nullptr;
}

// Splits a TFRecord file into its records, checking both masked CRCs of each.
std::vector<std::string> read_tfrecords(const std::string& data) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < data.size()) {
    REQUIRE(pos + 12 <= data.size());
    const uint64_t n = read_le(data, pos, 8);
    CHECK(read_le(data, pos + 8, 4) == masked_crc32c(std::string_view(data).substr(pos, 8)));
    REQUIRE(pos + 12 + n + 4 <= data.size());
    const std::string payload = data.substr(pos + 12, n);
    CHECK(read_le(data, pos + 12 + n, 4) == masked_crc32c(payload));
    out.push_back(payload);
    pos += 12 + n + 4;
  }
  return out;
}

struct DecodedEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  std::vector<std::vector<PbField>> values;  // Summary.value entries
};

DecodedEvent decode_event(const std::string& record) {
  DecodedEvent e;
  for (const auto& f : pb_decode(record)) {
    if (f.number == 1 && f.wire == 1) e.wall_time = std::bit_cast<double>(f.value);
    if (f.number == 2 && f.wire == 0) e.step = static_cast<int64_t>(f.value);
    if (f.number == 3 && f.wire == 2) e.file_version = f.bytes;
    if (f.number == 5 && f.wire == 2)
      for (const auto& v : pb_decode(f.bytes))
        if (v.number == 1 && v.wire == 2) e.values.push_back(pb_decode(v.bytes));
  }
  return e;
}

// ---- a minimal XML well-formedness check: balanced tags, quoted attributes, known entities only

bool valid_entities(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '<') return false;
    if (text[i] != '&') continue;
    const size_t semi = text.find(';', i);
    if (semi == std::string_view::npos) return false;
    const std::string_view name = text.substr(i + 1, semi - i - 1);
    if (name != "amp" && name != "lt" && name != "gt" && name != "quot" && name != "apos") return false;
  }
  return true;
}

// Returns an empty string when xml is well-formed with a single <root_name> root, else what is wrong.
std::string check_xml(const std::string& xml, const std::string& root_name) {
  std::vector<std::string> stack;
  size_t pos = 0, roots = 0;
  if (xml.rfind("<?xml", 0) == 0) pos = xml.find("?>") + 2;
  while (pos < xml.size()) {
    const size_t lt = xml.find('<', pos);
    const std::string_view text = std::string_view(xml).substr(pos, (lt == std::string::npos ? xml.size() : lt) - pos);
    if (!valid_entities(text)) return "bad text near offset " + std::to_string(pos);
    if (stack.empty() && text.find_first_not_of(" \n\t") != std::string_view::npos) return "text outside the root";
    if (lt == std::string::npos) break;
    const size_t gt = xml.find('>', lt);
    if (gt == std::string::npos) return "unclosed tag";
    std::string tag = xml.substr(lt + 1, gt - lt - 1);
    pos = gt + 1;
    if (tag.starts_with("/")) {
      if (stack.empty() || stack.back() != tag.substr(1)) return "mismatched </" + tag.substr(1) + ">";
      stack.pop_back();
      continue;
    }
    const bool self_closing = tag.ends_with("/");
    if (self_closing) tag.pop_back();
    const size_t name_end = std::min(tag.find(' '), tag.size());
    const std::string name = tag.substr(0, name_end);
    if (name.empty()) return "empty tag name";
    // Attributes: name="value" pairs.
    size_t a = name_end;
    while (a < tag.size()) {
      while (a < tag.size() && tag[a] == ' ') ++a;
      if (a >= tag.size()) break;
      const size_t eq = tag.find("=\"", a);
      if (eq == std::string::npos) return "attribute without =\"...\" in <" + name + ">";
      const size_t close = tag.find('"', eq + 2);
      if (close == std::string::npos) return "unterminated attribute in <" + name + ">";
      if (!valid_entities(std::string_view(tag).substr(eq + 2, close - eq - 2))) return "bad attribute value";
      a = close + 1;
    }
    if (stack.empty()) {
      ++roots;
      if (name != root_name) return "root is <" + name + ">";
    }
    if (!self_closing) stack.push_back(name);
  }
  if (!stack.empty()) return "unclosed <" + stack.back() + ">";
  if (roots != 1) return "expected one root element";
  return "";
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

}  // namespace

TEST_SUITE("loggers") {
  TEST_CASE("loggers: version numbering follows Lightning's version_N") {
    TempDir tmp;
    CSVLogger first({.save_dir = tmp.str()});
    CHECK(first.version() == "version_0");
    CHECK(first.name() == "lightning_logs");
    CHECK(first.log_dir() == (tmp.path / "lightning_logs" / "version_0").string());

    const fs::path root = tmp.path / "lightning_logs";
    fs::create_directories(root / "version_0");
    fs::create_directories(root / "version_1");
    fs::create_directories(root / "version_x");   // not a number: ignored
    fs::create_directories(root / "version_-4");  // negative: ignored
    fs::create_directories(root / "other");
    std::ofstream(root / "version_9") << "a file, not a folder";
    CHECK(next_logger_version(root.string()) == 2);
    CHECK(CSVLogger({.save_dir = tmp.str()}).version() == "version_2");
    CHECK(TensorBoardLogger({.save_dir = tmp.str()}).version() == "version_2");

    CSVLogger fixed({.save_dir = tmp.str(), .name = "exp", .version = 5});
    CHECK(fixed.log_dir() == (tmp.path / "exp" / "version_5").string());
    CSVLogger named({.save_dir = tmp.str(), .name = "exp", .version = "run_a"});
    CHECK(named.version() == "run_a");
    CHECK(named.log_dir() == (tmp.path / "exp" / "run_a").string());
    CSVLogger no_name({.save_dir = tmp.str(), .name = ""});
    CHECK(no_name.log_dir() == (tmp.path / "version_0").string());
    TensorBoardLogger sub({.save_dir = tmp.str(), .version = 3, .sub_dir = "train"});
    CHECK(sub.log_dir() == (root / "version_3" / "train").string());

    // Nothing is created before the first write.
    CHECK_FALSE(fs::exists(tmp.path / "exp"));
  }

  TEST_CASE("loggers: CSV round trip, a key appearing mid-run widens the header") {
    TempDir tmp;
    const double third = 1.0 / 3.0, tiny = 1e-300, big = 3.141592653589793e200;
    CSVLogger logger({.save_dir = tmp.str(), .version = 0, .flush_logs_every_n_steps = 2});
    logger.log_metrics({{"train_loss", third}, {"epoch", 0}}, 0);
    CHECK_FALSE(fs::exists(logger.metrics_file_path()));  // buffered until the 2nd call
    logger.log_metrics({{"train_loss", 0.1}, {"epoch", 0}}, 1);
    REQUIRE(fs::exists(logger.metrics_file_path()));
    CHECK(first_line(read_all(logger.metrics_file_path())) == "epoch,step,train_loss");

    logger.log_metrics({{"val_loss", tiny}, {"val_acc", 0.75}, {"epoch", 0}}, 1);
    logger.log_metrics({{"train_loss", big},
                        {"epoch", 1},
                        {"a_nan", std::nan("")},
                        {"b_inf", -std::numeric_limits<double>::infinity()},
                        {"step", 77}},
                       2);  // a "step" metric gives way to the step argument (Lightning overwrites it too)
    const std::string text = read_all(logger.metrics_file_path());
    CHECK(first_line(text) == "a_nan,b_inf,epoch,step,train_loss,val_acc,val_loss");
    // The first row, rewritten under the wider header, gets empty cells for the new columns.
    CHECK(text.substr(text.find('\n') + 1, text.find('\n', text.find('\n') + 1) - text.find('\n') - 1) ==
          ",,0,0,0.3333333333333333,,");

    const MetricsCsv csv = read_metrics_csv(logger.metrics_file_path());
    REQUIRE(csv.rows.size() == 4);
    CHECK(csv.columns ==
          std::vector<std::string>{"a_nan", "b_inf", "epoch", "step", "train_loss", "val_acc", "val_loss"});
    CHECK(csv.rows[0].at("train_loss") == third);  // exact: shortest round-trip text
    CHECK(csv.rows[0].at("step") == 0);
    CHECK(csv.rows[0].count("val_loss") == 0);
    CHECK(csv.rows[1].at("train_loss") == 0.1);
    CHECK(csv.rows[2].at("val_loss") == tiny);
    CHECK(csv.rows[2].at("val_acc") == 0.75);
    CHECK(csv.rows[2].count("train_loss") == 0);
    CHECK(csv.rows[3].at("train_loss") == big);
    CHECK(csv.rows[3].at("epoch") == 1);
    CHECK(csv.rows[3].at("step") == 2);
    CHECK(std::isnan(csv.rows[3].at("a_nan")));
    CHECK(csv.rows[3].at("b_inf") == -std::numeric_limits<double>::infinity());
  }

  TEST_CASE("loggers: CSV flushes every N calls, on save, finalize and destruction") {
    TempDir tmp;
    const std::string path = (tmp.path / "lightning_logs" / "version_0" / "metrics.csv").string();
    {
      CSVLogger logger({.save_dir = tmp.str(), .prefix = "fit", .flush_logs_every_n_steps = 3});
      for (int i = 0; i < 4; ++i) logger.log_metrics({{"loss", i}}, i);
      CHECK(read_metrics_csv(path).rows.size() == 3);  // written at the 3rd call
      logger.save();
      CHECK(read_metrics_csv(path).rows.size() == 4);
      logger.log_metrics({{"loss", 9}, {"step", 123}}, 7);
    }
    const MetricsCsv csv = read_metrics_csv(path);
    REQUIRE(csv.rows.size() == 5);  // the destructor wrote the last row
    // The prefix applies to every key, "step" included (as Lightning's _add_prefix).
    CHECK(csv.columns == std::vector<std::string>{"fit-loss", "fit-step", "step"});
    CHECK(csv.rows[4].at("fit-loss") == 9);
    CHECK(csv.rows[4].at("fit-step") == 123);
    CHECK(csv.rows[4].at("step") == 7);

    // finalize also draws the chart; a logger that never logged writes nothing.
    CSVLogger again({.save_dir = tmp.str()});
    CHECK(again.version() == "version_1");
    again.finalize("success");
    CHECK_FALSE(fs::exists(again.log_dir()));
    again.log_metrics({{"loss", 1}}, 0);
    again.finalize("success");
    CHECK(read_metrics_csv(again.metrics_file_path()).rows.size() == 1);
    CHECK(fs::exists(fs::path(again.log_dir()) / "metrics.svg"));
  }

  TEST_CASE("loggers: metrics.csv is always a complete file") {
    TempDir tmp;
    CSVLogger logger({.save_dir = tmp.str(), .flush_logs_every_n_steps = 1});
    logger.log_metrics({{"loss", 0.5}}, 0);
    const std::string path = logger.metrics_file_path();

    // A reader polling while the writer rewrites the file (widening it midway) never sees a partial file.
    std::atomic<bool> done{false};
    std::atomic<int> reads{0}, bad{0};
    std::thread reader([&] {
      size_t last_rows = 0;
      while (!done.load()) {
        const std::string text = read_all(path);
        try {
          const MetricsCsv csv = read_metrics_csv(path);
          if (csv.rows.size() < last_rows || text.empty() || text.back() != '\n') ++bad;
          last_rows = csv.rows.size();
        } catch (const Error&) {
          ++bad;
        }
        ++reads;
      }
    });
    for (int i = 1; i < 60; ++i) logger.log_metrics({{i < 30 ? "loss" : "val_loss", 0.25 * i}}, i);
    done = true;
    reader.join();
    CHECK(bad.load() == 0);
    CHECK(reads.load() > 0);
    CHECK(read_metrics_csv(path).rows.size() == 60);
    for (const auto& entry : fs::directory_iterator(logger.log_dir()))
      CHECK_MESSAGE(entry.path().filename() == "metrics.csv", "left behind: ", entry.path());

    // A save that fails (the temporary file cannot be created) leaves the previous file as it was.
    const std::string before = read_all(path);
    fs::create_directories(path + ".tmp." + std::to_string(::getpid()));
    CHECK_THROWS_AS(logger.log_metrics({{"loss", 1}}, 99), IOError);  // flushes at once, and fails
    CHECK(read_all(path) == before);
    fs::remove_all(path + ".tmp." + std::to_string(::getpid()));
    logger.save();
    CHECK(read_metrics_csv(path).rows.size() == 61);
  }

  TEST_CASE("loggers: CSVLogger removes the temporary files of dead processes when it starts writing") {
    TempDir tmp;
    const fs::path dir = tmp.path / "lightning_logs" / "version_0";
    fs::create_directories(dir);
    const std::string dead = std::to_string(dead_pid()), alive = std::to_string(::getppid());
    const std::vector<std::string> stale = {"metrics.csv.tmp." + dead, "hparams.yaml.tmp." + dead};
    const std::vector<std::string> kept = {
        "metrics.csv.tmp." + alive,        // a live process's (our parent's) write in progress
        "metrics.csv.tmp.1",               // pid 1 always exists
        "metrics.csv.tmp.0" + dead,        // not a pid as writers spell it
        "metrics.csv.tmp." + dead + ".x",  // other shapes
        "metrics.csv.tmp.copy",
        "metrics.csv.tmp.",
        "notes.csv.tmp." + dead,  // not the logger's file
        "metrics.csv"};
    for (const auto& name : stale) std::ofstream(dir / name) << "partial";
    for (const auto& name : kept) std::ofstream(dir / name) << "keep";
    fs::create_directories(dir / ("hparams.yaml.tmp." + dead + "0") / "inner");  // a folder: never touched

    CSVLogger logger({.save_dir = tmp.str(), .version = 0});
    REQUIRE(logger.log_dir() == dir.string());
    for (const auto& name : stale) CHECK(fs::exists(dir / name));  // nothing happens before the first write
    logger.log_metrics({{"loss", 1.0}}, 0);
    logger.save();
    for (const auto& name : stale) CHECK_MESSAGE(!fs::exists(dir / name), "left behind: ", name);
    for (const auto& name : kept)
      if (name != "metrics.csv") CHECK_MESSAGE(read_all((dir / name).string()) == "keep", "removed: ", name);
    CHECK(fs::is_directory(dir / ("hparams.yaml.tmp." + dead + "0") / "inner"));
    CHECK(read_metrics_csv(logger.metrics_file_path()).rows.size() == 1);
  }

  TEST_CASE("loggers: hparams.yaml") {
    TempDir tmp;
    CSVLogger logger({.save_dir = tmp.str(), .version = 0});
    nlohmann::json params = {
        {"lr", 0.001},
        {"batch_size", 32},
        {"name", "mlp"},
        {"flag", true},
        {"none", nullptr},
        {"model", {{"hidden", {64, 32}}, {"act", "relu"}}},
        {"weird", "yes"},
        {"num_str", "1e-3"},
        {"colon", "a: b"},
        {"quote", "say \"hi\"\n"},
        {"empty_list", nlohmann::json::array()},
        {"empty_obj", nlohmann::json::object()},
        {"list_of_obj", {{{"a", 1}, {"b", "x"}}}},
        {"nested_list", {{1, 2}, {3}}},
        {"float1", 1.0},
        {"small", 1e-5},
        {"path", "/data/x.csv"},
    };
    logger.log_hyperparams(params);
    // PyYAML's layout (yaml.dump of the same dict), strings that would not read back as strings quoted.
    const std::string expected =
        "batch_size: 32\n"
        "colon: \"a: b\"\n"
        "empty_list: []\n"
        "empty_obj: {}\n"
        "flag: true\n"
        "float1: 1.0\n"
        "list_of_obj:\n"
        "- a: 1\n"
        "  b: x\n"
        "lr: 0.001\n"
        "model:\n"
        "  act: relu\n"
        "  hidden:\n"
        "  - 64\n"
        "  - 32\n"
        "name: mlp\n"
        "nested_list:\n"
        "- - 1\n"
        "  - 2\n"
        "- - 3\n"
        "none: null\n"
        "num_str: \"1e-3\"\n"
        "path: /data/x.csv\n"
        "quote: \"say \\\"hi\\\"\\n\"\n"
        "small: 1.0e-05\n"
        "weird: \"yes\"\n";
    const std::string path = (fs::path(logger.log_dir()) / "hparams.yaml").string();
    CHECK(read_all(path) == expected);

    // A second call merges.
    logger.log_hyperparams({{"lr", 0.5}, {"seed", 7}});
    const std::string merged = read_all(path);
    CHECK(merged.find("lr: 0.5\n") != std::string::npos);
    CHECK(merged.find("seed: 7\n") != std::string::npos);
    CHECK(merged.find("batch_size: 32\n") != std::string::npos);

    CHECK(to_yaml(nlohmann::json::object()) == "{}\n");
    CHECK(to_yaml({{"x", std::numeric_limits<double>::infinity()}, {"y", 1e20}, {"", 1}}) ==
          "\"\": 1\nx: .inf\n\"y\": 1.0e+20\n");  // YAML 1.1 reads a plain y as true
  }

  TEST_CASE("loggers: CRC-32C and TFRecord framing") {
    CHECK(crc32c("123456789") == 0xE3069283u);
    CHECK(crc32c("") == 0u);
    // RFC 3720 (iSCSI) B.4 test vectors.
    CHECK(crc32c(std::string(32, '\0')) == 0x8A9136AAu);
    CHECK(crc32c(std::string(32, '\xff')) == 0x62A8AB43u);
    std::string inc(32, '\0');
    for (int i = 0; i < 32; ++i) inc[i] = static_cast<char>(i);
    CHECK(crc32c(inc) == 0x46DD794Eu);
    CHECK(crc32c("56789", crc32c("1234")) == 0xE3069283u);  // continues a running CRC
    const uint32_t c = 0xE3069283u;
    CHECK(masked_crc32c("123456789") == ((c >> 15) | (c << 17)) + 0xa282ead8u);

    const std::string framed = tfrecord_frame("abc");
    REQUIRE(framed.size() == 8 + 4 + 3 + 4);
    CHECK(read_le(framed, 0, 8) == 3);
    CHECK(framed.substr(12, 3) == "abc");
    CHECK(read_tfrecords(framed) == std::vector<std::string>{"abc"});
  }

  TEST_CASE("loggers: TensorBoard event file decodes to the logged values") {
    TempDir tmp;
    const double before = static_cast<double>(std::time(nullptr)) - 1;
    TensorBoardLogger logger({.save_dir = tmp.str(), .name = "tb", .max_queue = 100});
    CHECK(logger.event_file_path().empty());
    logger.log_hyperparams({{"lr", 0.001}, {"model", {{"hidden", 32}}}, {"name", "a|b"}});
    const std::string path = logger.event_file_path();
    REQUIRE_FALSE(path.empty());
    CHECK(fs::path(path).parent_path() == fs::path(logger.log_dir()));
    CHECK(fs::path(path).filename().string().rfind("events.out.tfevents.", 0) == 0);
    CHECK(fs::exists(fs::path(logger.log_dir()) / "hparams.yaml"));
    CHECK(read_tfrecords(read_all(path)).size() == 1);  // the version record is written at once

    logger.log_metrics({{"train_loss", 0.5}, {"lr", 1e-3}}, 3);
    logger.log_metrics({{"val_acc", 0.25}}, -1);
    CHECK(read_tfrecords(read_all(path)).size() == 1);  // the rest is queued (max_queue = 100)
    logger.finalize("success");

    const std::vector<std::string> records = read_tfrecords(read_all(path));
    REQUIRE(records.size() == 4);
    const DecodedEvent version = decode_event(records[0]);
    CHECK(version.file_version == "brain.Event:2");
    CHECK(version.wall_time >= before);
    CHECK(version.wall_time < before + 3600);

    const DecodedEvent hp = decode_event(records[1]);
    REQUIRE(hp.values.size() == 1);
    CHECK(pb_find(hp.values[0], 1)->bytes == "hparams");
    const PbField* metadata = pb_find(hp.values[0], 9);
    REQUIRE(metadata != nullptr);
    const auto plugin = pb_decode(pb_find(pb_decode(metadata->bytes), 1)->bytes);
    CHECK(pb_find(plugin, 1)->bytes == "text");
    const PbField* tensor = pb_find(hp.values[0], 8);
    REQUIRE(tensor != nullptr);
    const auto tensor_fields = pb_decode(tensor->bytes);
    CHECK(pb_find(tensor_fields, 1)->value == 7);  // DT_STRING
    const std::string table = pb_find(tensor_fields, 8)->bytes;
    CHECK(table.find("| lr | 0.001 |") != std::string::npos);
    CHECK(table.find("| model.hidden | 32 |") != std::string::npos);
    CHECK(table.find("| name | a\\|b |") != std::string::npos);

    const DecodedEvent scalars = decode_event(records[2]);
    CHECK(scalars.step == 3);
    CHECK(scalars.wall_time >= version.wall_time);
    REQUIRE(scalars.values.size() == 2);
    CHECK(pb_find(scalars.values[0], 1)->bytes == "lr");  // sorted by name
    CHECK(std::bit_cast<float>(static_cast<uint32_t>(pb_find(scalars.values[0], 2)->value)) == 1e-3f);
    CHECK(pb_find(scalars.values[1], 1)->bytes == "train_loss");
    CHECK(std::bit_cast<float>(static_cast<uint32_t>(pb_find(scalars.values[1], 2)->value)) == 0.5f);
    const DecodedEvent negative = decode_event(records[3]);
    CHECK(negative.step == -1);
    CHECK(pb_find(negative.values[0], 1)->bytes == "val_acc");

    // After finalize, logging again starts a new event file (as SummaryWriter does after close()).
    logger.log_metrics({{"x", 1}}, 5);
    CHECK(logger.event_file_path() != path);
    logger.save();
    CHECK(read_tfrecords(read_all(logger.event_file_path())).size() == 2);
  }

  TEST_CASE("loggers: SVG chart is well-formed and copes with NaN, inf and single points") {
    const double nan = std::nan(""), inf = std::numeric_limits<double>::infinity();
    std::vector<std::map<std::string, double>> rows;
    for (int i = 0; i < 10; ++i) {
      std::map<std::string, double> r{{"step", i * 10.0}, {"epoch", i / 5}, {"train_loss", 1.0 / (i + 1)}};
      if (i == 4) r["train_loss"] = nan;  // a gap: two polylines
      if (i == 7) r["train_loss"] = inf;
      if (i == 9) {
        r["val_loss"] = 0.3;  // a single point: a dot
        r["val_acc"] = 0.8;
        r["train_acc"] = 0.8;
      }
      r["flat<&>"] = 2.0;  // constant: a zero range must not divide by zero; the name needs escaping
      rows.push_back(r);
    }
    const std::string svg = render_metrics_svg(rows);
    CHECK(check_xml(svg, "svg") == "");
    CHECK(count(svg, "<g>") == 2 + 1);  // loss, acc, flat<&>
    CHECK(svg.find("flat&lt;&amp;&gt;") != std::string::npos);
    CHECK(svg.find("nan") == std::string::npos);
    CHECK(svg.find("inf") == std::string::npos);
    CHECK(count(svg, "<polyline") == 3 + 1);  // train_loss in three runs (0-3, 5-6, 8-9), flat<&>
    CHECK(count(svg, "<circle") == 3);        // val_loss, val_acc, train_acc
    CHECK(svg.find(">epoch<") == std::string::npos);

    // Degenerate inputs still give a valid chart.
    CHECK(check_xml(render_metrics_svg({}), "svg") == "");
    CHECK(check_xml(render_metrics_svg({{{"loss", nan}}, {{"loss", inf}}}), "svg") == "");
    CHECK(check_xml(render_metrics_svg({{{"step", 0}, {"loss", 1e308}}, {{"step", 1}, {"loss", -1e308}}}), "svg") ==
          "");
    const std::string one = render_metrics_svg({{{"step", 5}, {"loss", 0.0}}});
    CHECK(check_xml(one, "svg") == "");
    CHECK(count(one, "<circle") == 1);
    CHECK(one.find("nan") == std::string::npos);

    TempDir tmp;
    const std::string path = (tmp.path / "chart.svg").string();
    write_metrics_svg(path, rows);
    CHECK(read_all(path) == svg);
  }

  TEST_CASE("loggers: bad input raises clear errors") {
    TempDir tmp;
    const std::string blocker = (tmp.path / "not_a_dir").string();
    std::ofstream(blocker) << "x";
    CSVLogger csv({.save_dir = blocker});
    csv.log_metrics({{"loss", 1}}, 0);
    try {
      csv.save();
      FAIL("no error");
    } catch (const IOError& e) {
      CHECK(std::string(e.what()).find(blocker) != std::string::npos);
      CHECK(std::string(e.what()).find("[CSVLogger]") != std::string::npos);
    }
    CHECK_THROWS_AS(csv.log_hyperparams({{"a", 1}}), IOError);

    TensorBoardLogger tb({.save_dir = blocker});
    try {
      tb.log_metrics({{"loss", 1}}, 0);
      FAIL("no error");
    } catch (const IOError& e) {
      CHECK(std::string(e.what()).find(blocker) != std::string::npos);
    }
    CHECK_THROWS_AS(write_metrics_svg((fs::path(blocker) / "x.svg").string(), {}), IOError);

    CHECK_THROWS_AS(CSVLogger({.flush_logs_every_n_steps = 0}), ValueError);
    CHECK_THROWS_AS(TensorBoardLogger({.max_queue = 0}), ValueError);

    CHECK_THROWS_AS(read_metrics_csv((tmp.path / "missing.csv").string()), IOError);
    const std::string bad = (tmp.path / "bad.csv").string();
    std::ofstream(bad) << "loss,step\n0.5,0\nhello,1\n";
    try {
      read_metrics_csv(bad);
      FAIL("no error");
    } catch (const FormatError& e) {
      const std::string msg = e.what();
      CHECK(msg.find(bad) != std::string::npos);
      CHECK(msg.find("line 3") != std::string::npos);
      CHECK(msg.find("hello") != std::string::npos);
    }
    std::ofstream(bad) << "loss,step\n0.5\n";
    CHECK_THROWS_AS(read_metrics_csv(bad), FormatError);
    std::ofstream(bad) << "\"loss,step\n0.5\n";
    CHECK_THROWS_AS(read_metrics_csv(bad), FormatError);
    // Quoted header fields (a name with a comma) read back.
    std::ofstream(bad) << "\"a,b\",step\r\n1,2\r\n";
    const MetricsCsv quoted = read_metrics_csv(bad);
    CHECK(quoted.columns == std::vector<std::string>{"a,b", "step"});
    CHECK(quoted.rows.at(0).at("a,b") == 1);
  }

}  // TEST_SUITE("loggers")
