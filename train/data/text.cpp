// CharVocab (strict UTF-8 decoding, ASCII fast path), NextTokenDataset's batched gathers, split helpers.
#include "train/data/text.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/ops/creation.hpp"
#include "core/ops/index.hpp"
#include "train/data/readers.hpp"

namespace ember::data {
namespace {

using json = nlohmann::json;

// Decodes the code point at s[i] and advances i; FormatError on invalid UTF-8.
char32_t next_code_point(std::string_view s, size_t& i, const char* op) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  int len = 0;
  char32_t cp = 0, min = 0;
  if ((b0 & 0xE0) == 0xC0)
    len = 2, cp = b0 & 0x1F, min = 0x80;
  else if ((b0 & 0xF0) == 0xE0)
    len = 3, cp = b0 & 0x0F, min = 0x800;
  else if ((b0 & 0xF8) == 0xF0)
    len = 4, cp = b0 & 0x07, min = 0x10000;
  else
    throw FormatError(ember::detail::cat_str("[", op, "] invalid UTF-8: byte ", int(b0), " at offset ", i));
  EMBER_CHECK(i + static_cast<size_t>(len) <= s.size(), FormatError, "[", op,
              "] invalid UTF-8: truncated sequence at offset ", i);
  for (int k = 1; k < len; ++k) {
    const unsigned char b = byte(i + static_cast<size_t>(k));
    EMBER_CHECK((b & 0xC0) == 0x80, FormatError, "[", op, "] invalid UTF-8: bad continuation byte at offset ",
                i + static_cast<size_t>(k));
    cp = (cp << 6) | (b & 0x3F);
  }
  EMBER_CHECK(cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF), FormatError, "[", op,
              "] invalid UTF-8: bad code point at offset ", i);
  i += static_cast<size_t>(len);
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// A character for messages: printable ASCII as 'c', the rest as U+XXXX.
std::string show(char32_t c) {
  if (c >= 0x20 && c < 0x7F) return std::string("'") + static_cast<char>(c) + "'";
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(c));
  return buf;
}

}  // namespace

// ---- CharVocab ----

CharVocab::CharVocab(std::vector<char32_t> chars) : chars_(std::move(chars)), ascii_(128, -1) {
  for (size_t k = 0; k < chars_.size(); ++k) {
    const char32_t c = chars_[k];
    EMBER_CHECK(c <= 0x10FFFF && !(c >= 0xD800 && c <= 0xDFFF), ValueError, "[CharVocab] ", show(c),
                " is not a Unicode scalar value");
    EMBER_CHECK(!contains(c), ValueError, "[CharVocab] character ", show(c), " appears twice (ids ", id(c), " and ", k,
                ")");
    if (c < 128)
      ascii_[c] = static_cast<int32_t>(k);
    else
      other_.emplace(c, static_cast<int64_t>(k));
  }
}

CharVocab CharVocab::build(std::string_view text) {
  std::set<char32_t> seen;
  for (size_t i = 0; i < text.size();) seen.insert(next_code_point(text, i, "CharVocab::build"));
  return CharVocab(std::vector<char32_t>(seen.begin(), seen.end()));
}

bool CharVocab::contains(char32_t c) const {
  if (c < 128) return !ascii_.empty() && ascii_[c] >= 0;
  return other_.contains(c);
}

int64_t CharVocab::id(char32_t c) const {
  EMBER_CHECK(contains(c), IndexError, "[CharVocab] character ", show(c), " is not in the vocabulary of ", size(),
              " characters");
  return c < 128 ? ascii_[c] : other_.at(c);
}

std::vector<int64_t> CharVocab::encode_ids(std::string_view text) const {
  std::vector<int64_t> ids;
  ids.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t at = i;
    const unsigned char b = static_cast<unsigned char>(text[i]);
    if (b < 128 && !ascii_.empty() && ascii_[b] >= 0) {  // the common case
      ids.push_back(ascii_[b]);
      ++i;
      continue;
    }
    const char32_t c = next_code_point(text, i, "CharVocab::encode");
    EMBER_CHECK(contains(c), IndexError, "[CharVocab::encode] character ", show(c), " at byte offset ", at,
                " is not in the vocabulary of ", size(), " characters");
    ids.push_back(id(c));
  }
  return ids;
}

Tensor CharVocab::encode(std::string_view text) const {
  std::vector<int64_t> ids = encode_ids(text);
  return tensor(ids, Shape{static_cast<int64_t>(ids.size())});
}

std::string CharVocab::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  out.reserve(ids.size());
  for (size_t k = 0; k < ids.size(); ++k) {
    EMBER_CHECK(ids[k] >= 0 && ids[k] < size(), IndexError, "[CharVocab::decode] id ", ids[k], " at position ", k,
                " is out of range for a vocabulary of ", size(), " characters");
    append_utf8(out, chars_[static_cast<size_t>(ids[k])]);
  }
  return out;
}

std::string CharVocab::decode(const Tensor& ids) const {
  EMBER_CHECK(ids.dtype() == kI64 || ids.dtype() == kI32 || ids.dtype() == kU8, DTypeError,
              "[CharVocab::decode] ids must be an integer tensor, got ", describe(ids));
  return decode(ids.cpu().to_vector<int64_t>());
}

json CharVocab::to_json() const {
  std::string chars;
  for (char32_t c : chars_) append_utf8(chars, c);
  return json{{"type", "char"}, {"chars", chars}};
}

CharVocab CharVocab::from_json(const json& j) {
  EMBER_CHECK(j.is_object() && j.contains("chars") && j.at("chars").is_string(), FormatError,
              "[CharVocab::from_json] expected {\"type\": \"char\", \"chars\": \"...\"}, got ",
              j.dump().substr(0, 200));
  if (j.contains("type"))
    EMBER_CHECK(j.at("type") == "char", FormatError, "[CharVocab::from_json] type ", j.at("type").dump(),
                " is not \"char\"");
  const std::string& s = j.at("chars").get_ref<const std::string&>();
  std::vector<char32_t> chars;
  for (size_t i = 0; i < s.size();) chars.push_back(next_code_point(s, i, "CharVocab::from_json"));
  try {
    return CharVocab(std::move(chars));
  } catch (const ValueError& e) {
    throw FormatError(e.what());
  }
}

void CharVocab::save(const std::string& path) const {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  EMBER_CHECK(f.good(), IOError, "[CharVocab::save] cannot open ", path, " for writing");
  f << to_json().dump() << '\n';
  f.close();
  EMBER_CHECK(f.good(), IOError, "[CharVocab::save] writing ", path, " failed");
}

CharVocab CharVocab::load(const std::string& path) {
  const std::string text = read_file(path, int64_t{64} << 20);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw FormatError(ember::detail::cat_str("[CharVocab::load] ", path, " is not valid JSON: ", e.what()));
  }
  try {
    return from_json(j);
  } catch (const FormatError& e) {
    throw FormatError(ember::detail::cat_str(e.what(), " (in ", path, ")"));
  }
}

// ---- NextTokenDataset ----

NextTokenDataset::NextTokenDataset(Tensor tokens, int64_t block_size, int64_t stride)
    : block_(block_size), stride_(stride) {
  EMBER_CHECK(tokens.defined() && tokens.dim() == 1, ShapeError, "[NextTokenDataset] tokens must be 1-D, got ",
              tokens.defined() ? describe(tokens) : std::string("an undefined tensor"));
  EMBER_CHECK(tokens.dtype() == kI64 || tokens.dtype() == kI32 || tokens.dtype() == kU8, DTypeError,
              "[NextTokenDataset] tokens must be integers, got ", describe(tokens));
  EMBER_CHECK(block_size >= 1, ValueError, "[NextTokenDataset] block_size must be >= 1, got ", block_size);
  EMBER_CHECK(stride >= 1, ValueError, "[NextTokenDataset] stride must be >= 1, got ", stride);
  tokens_ = tokens.detach().to(kI64).contiguous();
  const int64_t n = tokens_.numel();
  size_ = n > block_size ? (n - block_size - 1) / stride + 1 : 0;
}

Example NextTokenDataset::get(int64_t index) const {
  detail::check_index("NextTokenDataset", index, size_);
  const int64_t s = index * stride_;
  return Example{.input = tokens_.narrow(0, s, block_), .target = tokens_.narrow(0, s + 1, block_)};
}

Batch NextTokenDataset::get_batch(std::span<const int64_t> indices) const {
  EMBER_CHECK(!indices.empty(), ValueError, "[NextTokenDataset] get_batch needs at least one index");
  const int64_t b = static_cast<int64_t>(indices.size());
  Tensor pos = make_tensor(Shape{b * block_}, kI64);
  int64_t* p = pos.data_ptr<int64_t>();
  for (int64_t r = 0; r < b; ++r) {
    detail::check_index("NextTokenDataset", indices[static_cast<size_t>(r)], size_);
    const int64_t s = indices[static_cast<size_t>(r)] * stride_;
    for (int64_t t = 0; t < block_; ++t) p[r * block_ + t] = s + t;
  }
  pos = detail::index_to(pos, tokens_.device());
  Batch out;
  out.input = index_select(tokens_, 0, pos).view({b, block_});
  out.target = index_select(tokens_.narrow(0, 1, tokens_.numel() - 1), 0, pos).view({b, block_});
  return out;
}

std::pair<Tensor, Tensor> split_tokens(const Tensor& tokens, double val_fraction) {
  EMBER_CHECK(tokens.defined() && tokens.dim() == 1, ShapeError, "[split_tokens] tokens must be 1-D, got ",
              tokens.defined() ? describe(tokens) : std::string("an undefined tensor"));
  EMBER_CHECK(val_fraction >= 0 && val_fraction <= 1, ValueError,
              "[split_tokens] val_fraction must lie in [0, 1], got ", val_fraction);
  const int64_t n = tokens.numel();
  const int64_t n_train = n - static_cast<int64_t>(std::llround(static_cast<double>(n) * val_fraction));
  return {tokens.narrow(0, 0, n_train), tokens.narrow(0, n_train, n - n_train)};
}

CharLmData char_lm_data(std::string_view text, int64_t block_size, double val_fraction) {
  CharLmData d;
  d.vocab = CharVocab::build(text);
  auto [train, val] = split_tokens(d.vocab.encode(text), val_fraction);
  d.train = std::make_shared<NextTokenDataset>(train, block_size);
  d.val = std::make_shared<NextTokenDataset>(val, block_size);
  return d;
}

}  // namespace ember::data
