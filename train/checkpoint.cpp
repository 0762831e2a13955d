// Checkpoint files: safetensors with the run's state as JSON metadata, per-tensor checksums, and the
// reader that treats the run state as untrusted input.
#include "train/checkpoint.hpp"

#include <tbb/parallel_for.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "core/host_sync.hpp"

namespace ember::train {
namespace {

constexpr const char* kStateKey = "ember_checkpoint";
constexpr const char* kIntegrityKey = "ember_integrity";

// CRC-32 of a tensor's bytes as the file stores them (contiguous, little-endian, on the host): chunks in
// parallel, joined with crc32_combine (the same value as one pass; zlib takes 32-bit lengths anyway).
uint32_t crc_of(const Tensor& t) {
  const Tensor c = t.cpu().contiguous();
  const auto* p = static_cast<const unsigned char*>(c.raw_data());
  const size_t n = c.nbytes();
  constexpr size_t kChunk = size_t(8) << 20;
  const size_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<uLong> parts(chunks);
  tbb::parallel_for(size_t(0), chunks, [&](size_t i) {
    parts[i] = crc32(crc32(0L, Z_NULL, 0), p + i * kChunk, static_cast<uInt>(std::min(kChunk, n - i * kChunk)));
  });
  uLong crc = crc32(0L, Z_NULL, 0);
  for (size_t i = 0; i < chunks; ++i)
    crc = crc32_combine(crc, parts[i], static_cast<z_off_t>(std::min(kChunk, n - i * kChunk)));
  return static_cast<uint32_t>(crc);
}

nlohmann::json integrity_of(const Tensor& t) {
  return {{"dtype", dtype_name(t.dtype())},
          {"shape", std::vector<int64_t>(t.shape().begin(), t.shape().end())},
          {"crc32", crc_of(t)}};
}

void verify(const std::string& path, const TensorMap& tensors, const std::string& text) {
  nlohmann::json record;
  try {
    record = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw IOError(detail::cat_str("[Checkpoint] ", path, ": the checksum metadata is damaged (", e.what(), ")"));
  }
  EMBER_CHECK(record.is_object(), IOError, "[Checkpoint] ", path, ": the checksum metadata is not a JSON object");
  for (const auto& [name, t] : tensors)
    EMBER_CHECK(record.contains(name), IOError, "[Checkpoint] ", path, ": tensor '", name,
                "' has no recorded checksum (the file was changed after it was written)");
  for (const auto& [name, want] : record.items()) {
    auto it = tensors.find(name);
    EMBER_CHECK(it != tensors.end(), IOError, "[Checkpoint] ", path, ": tensor '", name,
                "' is recorded in the checksums but missing from the file");
    const nlohmann::json got = integrity_of(it->second);
    EMBER_CHECK(got == want, IOError, "[Checkpoint] ", path, ": tensor '", name,
                "' does not match its checksum (the file is damaged): recorded ", want.dump(), ", read ", got.dump());
  }
}

}  // namespace

TensorMap Checkpoint::weights() const {
  TensorMap out;
  for (const auto& [k, v] : tensors)
    if (!k.starts_with(kOptimizerPrefix) && !k.starts_with(kMetricStatePrefix) &&
        !k.starts_with(kAccumulatedGradPrefix))
      out.emplace(k, v);
  return out;
}

void Checkpoint::save(const std::string& file) const {
  // Device tensors come to the host one at a time (for the checksum, then for the file), so host memory
  // holds one at once; the whole save counts as one host read.
  std::optional<ember::detail::HostReadScope> read;
  if (std::any_of(tensors.begin(), tensors.end(), [](const auto& kv) { return !kv.second.device().is_cpu(); }))
    read.emplace();
  nlohmann::json record = nlohmann::json::object();
  for (const auto& [name, t] : tensors) record[name] = integrity_of(t);
  ember::save(file, tensors, {{kStateKey, state.dump()}, {kIntegrityKey, record.dump()}});
}

Checkpoint Checkpoint::load(const std::string& file, const CheckpointLoadOptions& options) {
  Metadata meta;
  Checkpoint c;
  c.path = file;
  c.tensors = ember::load(file, &meta);
  auto it = meta.find(kStateKey);
  EMBER_CHECK(it != meta.end(), ValueError, "[Checkpoint] ", file,
              " is a safetensors file but not an Ember checkpoint (no \"", kStateKey, "\" metadata)");
  if (auto sums = meta.find(kIntegrityKey); sums != meta.end() && options.verify_checksums)
    verify(file, c.tensors, sums->second);
  try {
    c.state = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    throw IOError(detail::cat_str("[Checkpoint] ", file, ": the state metadata is damaged (", e.what(), ")"));
  }
  EMBER_CHECK(c.state.is_object(), IOError, "[Checkpoint] ", file, ": the state metadata is not a JSON object");
  return c;
}

// ---- StateReader ----

const nlohmann::json* StateReader::find(const std::string& field) const {
  const nlohmann::json* j = &root_;
  size_t start = 0;
  while (start <= field.size()) {
    const size_t dot = std::min(field.find('.', start), field.size());
    const std::string key = field.substr(start, dot - start);
    if (j->is_object()) {
      auto it = j->find(key);
      if (it == j->end()) return nullptr;
      j = &*it;
    } else if (j->is_array() && !key.empty() && key.find_first_not_of("0123456789") == std::string::npos &&
               key.size() < 10 && std::stoull(key) < j->size()) {
      j = &(*j)[std::stoull(key)];
    } else {
      return nullptr;
    }
    start = dot + 1;
  }
  return j;
}

void StateReader::fail_at(const std::string& field, const nlohmann::json* j, const std::string& why) const {
  std::string value = j == nullptr ? "(missing)" : j->dump();
  if (value.size() > 120) value = value.substr(0, 117) + "...";
  throw FormatError(detail::cat_str("[Checkpoint] ", path_.empty() ? std::string("(in memory)") : path_,
                                    ": the run state's field '", field, "' = ", value, " is invalid: ", why));
}

const nlohmann::json& StateReader::at(const std::string& field) const {
  const nlohmann::json* j = find(field);
  if (j == nullptr) fail(field, "the field is missing");
  return *j;
}

int64_t StateReader::integer(const std::string& field, int64_t lo, int64_t hi) const {
  const nlohmann::json& j = at(field);
  if (!j.is_number_integer()) fail(field, "must be an integer");
  if (j.is_number_unsigned() && j.get<uint64_t>() > uint64_t(INT64_MAX)) fail(field, "out of range");
  const int64_t v = j.get<int64_t>();
  if (v < lo || v > hi) fail(field, detail::cat_str("must lie in [", lo, ", ", hi, "]"));
  return v;
}

uint64_t StateReader::unsigned_integer(const std::string& field) const {
  const nlohmann::json& j = at(field);
  if (!j.is_number_unsigned() && !(j.is_number_integer() && j.get<int64_t>() >= 0))
    fail(field, "must be a non-negative integer");
  return j.get<uint64_t>();
}

bool StateReader::boolean(const std::string& field) const {
  const nlohmann::json& j = at(field);
  if (!j.is_boolean()) fail(field, "must be true or false");
  return j.get<bool>();
}

double StateReader::number(const std::string& field, double lo, double hi) const {
  const nlohmann::json& j = at(field);
  if (!j.is_number()) fail(field, "must be a number");
  const double v = j.get<double>();
  if (!(v >= lo && v <= hi)) fail(field, detail::cat_str("must lie in [", lo, ", ", hi, "]"));
  return v;
}

const nlohmann::json& StateReader::object(const std::string& field) const {
  const nlohmann::json& j = at(field);
  if (!j.is_object()) fail(field, "must be a JSON object");
  return j;
}

const nlohmann::json& StateReader::array(const std::string& field) const {
  const nlohmann::json& j = at(field);
  if (!j.is_array()) fail(field, "must be a JSON array");
  return j;
}

}  // namespace ember::train
