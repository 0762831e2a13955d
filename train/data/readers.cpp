// Readers for untrusted files: zlib-backed whole-file reads, IDX and numeric CSV. Buffers grow with the
// data actually read, never with sizes a header claims, so a lying header cannot cause a huge allocation.
#include "train/data/readers.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "core/ops/creation.hpp"

namespace ember::data {
namespace {

constexpr size_t kChunk = size_t{1} << 20;

// Sequential reads of a plain or gzipped file.
class GzReader {
 public:
  GzReader(const std::string& path, const char* op) : path_(path), op_(op) {
    errno = 0;
    file_ = gzopen(path.c_str(), "rb");
    EMBER_CHECK(file_ != nullptr, IOError, "[", op, "] cannot open ", path, ": ",
                errno ? std::strerror(errno) : "out of memory");
    gzbuffer(file_, 1 << 17);
  }
  ~GzReader() { gzclose(file_); }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  // Up to n bytes; fewer only at the end of the data. Corrupt or truncated gzip data throws.
  size_t read(char* dst, size_t n) {
    size_t got = 0;
    while (got < n) {
      const unsigned want = static_cast<unsigned>(std::min(n - got, size_t{1} << 30));
      const int r = gzread(file_, dst + got, want);
      if (r <= 0) {
        int err = Z_OK;
        const char* msg = gzerror(file_, &err);
        // zlib reports a truncated stream as Z_BUF_ERROR with a short (or zero) read, not as -1.
        if (err == Z_BUF_ERROR)
          throw FormatError(ember::detail::cat_str("[", op_, "] ", path_, ": truncated gzip data (", msg, ")"));
        if (err == Z_ERRNO)
          throw IOError(ember::detail::cat_str("[", op_, "] ", path_, ": read failed (", std::strerror(errno), ")"));
        if (r < 0 || err != Z_OK)
          throw FormatError(ember::detail::cat_str("[", op_, "] ", path_, ": corrupt gzip data (", msg, ")"));
        break;
      }
      got += static_cast<size_t>(r);
    }
    return got;
  }

 private:
  gzFile file_ = nullptr;
  std::string path_;
  const char* op_;
};

class MemoryReader {
 public:
  explicit MemoryReader(std::string_view bytes) : bytes_(bytes) {}
  size_t read(char* dst, size_t n) {
    n = std::min(n, bytes_.size() - pos_);
    std::memcpy(dst, bytes_.data() + pos_, n);
    pos_ += n;
    return n;
  }

 private:
  std::string_view bytes_;
  size_t pos_ = 0;
};

// Appends up to `want` bytes from src to buf, growing buf only as data arrives.
template <class Src>
void read_into(Src& src, std::string& buf, size_t want) {
  const size_t target = buf.size() + want;
  while (buf.size() < target) {
    const size_t old = buf.size(), step = std::min(target - old, std::max(kChunk, old / 2));
    buf.resize(old + step);
    const size_t got = src.read(buf.data() + old, step);
    buf.resize(old + got);
    if (got < step) return;
  }
}

uint32_t be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string hex_byte(unsigned v) {
  const char* digits = "0123456789abcdef";
  return std::string("0x") + digits[(v >> 4) & 15] + digits[v & 15];
}

template <class Src>
Tensor read_idx_from(Src& src, const std::string& name, int64_t max_bytes) {
  unsigned char head[4];
  std::string buf;
  read_into(src, buf, 4);
  EMBER_CHECK(buf.size() == 4, FormatError, "[read_idx] ", name, ": truncated: ", buf.size(),
              " bytes, shorter than the 4-byte IDX magic");
  std::memcpy(head, buf.data(), 4);
  EMBER_CHECK(head[0] == 0 && head[1] == 0, FormatError, "[read_idx] ", name, ": not an IDX file (magic starts ",
              hex_byte(head[0]), " ", hex_byte(head[1]), ", expected 0x00 0x00)");
  DType dtype;
  size_t elem;
  switch (head[2]) {
    case 0x08:
      dtype = kU8, elem = 1;
      break;
    case 0x0C:
      dtype = kI32, elem = 4;
      break;
    case 0x0D:
      dtype = kF32, elem = 4;
      break;
    case 0x0E:
      dtype = kF64, elem = 8;
      break;
    default:
      throw FormatError(ember::detail::cat_str(
          "[read_idx] ", name, ": element type ", hex_byte(head[2]),
          head[2] == 0x09 || head[2] == 0x0B ? " (int8/int16) is not supported" : " is not an IDX type",
          " (supported: 0x08 u8, 0x0c i32, 0x0d f32, 0x0e f64)"));
  }
  const int ndims = head[3];
  EMBER_CHECK(ndims >= 1 && ndims <= 8, FormatError, "[read_idx] ", name, ": ", ndims,
              " dimensions in the header (expected 1 to 8)");
  buf.clear();
  read_into(src, buf, static_cast<size_t>(4 * ndims));
  EMBER_CHECK(buf.size() == static_cast<size_t>(4 * ndims), FormatError, "[read_idx] ", name,
              ": truncated header: ", ndims, " dimensions need ", 4 * ndims, " bytes, found ", buf.size());
  Shape shape;
  // bytes: the data the dimensions describe; extent: the same with zero dims counted as 1, bounded too,
  // so that an empty tensor with absurd other dims cannot overflow its strides.
  uint64_t bytes = elem, extent = elem;
  for (int d = 0; d < ndims; ++d) {
    const uint32_t n = be32(reinterpret_cast<const unsigned char*>(buf.data()) + 4 * d);
    shape.push_back(static_cast<int64_t>(n));
    bytes *= n;  // cannot overflow: at most extent
    EMBER_CHECK(!__builtin_mul_overflow(extent, uint64_t{std::max<uint32_t>(n, 1)}, &extent) &&
                    extent <= static_cast<uint64_t>(max_bytes),
                FormatError, "[read_idx] ", name, ": the header's dimensions ", shape, (d + 1 < ndims ? "..." : ""),
                " describe more than ", max_bytes, " bytes of data");
  }
  buf.clear();
  read_into(src, buf, bytes);
  EMBER_CHECK(buf.size() == bytes, FormatError, "[read_idx] ", name, ": truncated: the header's dimensions ", shape,
              " need ", bytes, " bytes of data, the file holds ", buf.size());
  char extra;
  EMBER_CHECK(src.read(&extra, 1) == 0, FormatError, "[read_idx] ", name, ": trailing data after the ", bytes,
              " bytes that the dimensions ", shape, " describe");
  Tensor out = make_tensor(shape, dtype);
  unsigned char* dst = static_cast<unsigned char*>(out.raw_data());
  const unsigned char* s = reinterpret_cast<const unsigned char*>(buf.data());
  if (elem == 1) {
    std::memcpy(dst, s, bytes);
  } else {  // big-endian on disk
    for (size_t i = 0; i < bytes; i += elem)
      for (size_t b = 0; b < elem; ++b) dst[i + b] = s[i + elem - 1 - b];
  }
  return out;
}

// ---- CSV ----

struct CsvContext {
  const std::string& name;
  size_t line = 0;
  [[noreturn]] void fail(const std::string& what) const {
    throw FormatError(ember::detail::cat_str("[read_csv] ", name, " line ", line, ": ", what));
  }
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::vector<std::string> split_fields(std::string_view line, char delim, const CsvContext& ctx) {
  std::vector<std::string> out;
  std::string field;
  size_t i = 0;
  while (true) {
    field.clear();
    size_t q = i;
    while (q < line.size() && (line[q] == ' ' || line[q] == '\t')) ++q;
    if (q < line.size() && line[q] == '"') {  // quoted: "" is a literal quote
      size_t j = q + 1;
      while (true) {
        if (j >= line.size()) ctx.fail("unterminated quoted field");
        if (line[j] == '"') {
          if (j + 1 < line.size() && line[j + 1] == '"') {
            field += '"';
            j += 2;
            continue;
          }
          ++j;
          break;
        }
        field += line[j++];
      }
      while (j < line.size() && (line[j] == ' ' || line[j] == '\t')) ++j;
      if (j < line.size() && line[j] != delim) ctx.fail("unexpected text after a quoted field");
      out.push_back(field);
      if (j >= line.size()) return out;
      i = j + 1;
    } else {
      size_t j = line.find(delim, i);
      out.emplace_back(trim(line.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i)));
      if (j == std::string_view::npos) return out;
      i = j + 1;
    }
  }
}

bool parse_double(std::string_view s, double& v) {
  s = trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && ptr == s.data() + s.size();
}

std::string column_label(size_t c, const std::vector<std::string>& names) {
  std::string s = "column " + std::to_string(c + 1);
  if (c < names.size()) s += " ('" + names[c] + "')";
  return s;
}

}  // namespace

// ---- public ----

std::string read_file(const std::string& path, int64_t max_bytes) {
  GzReader src(path, "read_file");
  std::string buf;
  read_into(src, buf, static_cast<size_t>(max_bytes) + 1);
  EMBER_CHECK(static_cast<int64_t>(buf.size()) <= max_bytes, FormatError, "[read_file] ", path,
              " holds more than the limit of ", max_bytes, " bytes (decompressed)");
  return buf;
}

Tensor read_idx(const std::string& path, int64_t max_bytes) {
  GzReader src(path, "read_idx");
  return read_idx_from(src, path, max_bytes);
}

Tensor parse_idx(std::string_view bytes, const std::string& name) {
  MemoryReader src(bytes);
  return read_idx_from(src, name, static_cast<int64_t>(bytes.size()));
}

CsvData read_csv(const std::string& path, const CsvOptions& options) {
  return parse_csv(read_file(path, options.max_bytes), options, path);
}

CsvData parse_csv(std::string_view text, const CsvOptions& options, const std::string& name) {
  EMBER_CHECK(options.dtype == kF32 || options.dtype == kF64, DTypeError,
              "[read_csv] features must be float32 or float64, got ", dtype_name(options.dtype));
  CsvData out;
  CsvContext ctx{name};
  std::vector<double> values;
  std::vector<int64_t> labels;
  std::vector<std::string> label_names;
  int64_t ncols = -1, label_col = -1, rows = 0, header_rows = -1, header_features = -1;
  bool header_pending = options.header != CsvHeader::none;
  size_t first_row_line = 0;

  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++ctx.line;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::string_view t = trim(line);
    if (t.empty() || (options.comment != '\0' && t.front() == options.comment)) continue;
    std::vector<std::string> fields = split_fields(line, options.delimiter, ctx);

    if (header_pending) {
      header_pending = false;
      if (options.header == CsvHeader::names) {
        out.feature_names = fields;
        ncols = static_cast<int64_t>(fields.size());
      } else {  // sklearn: n_samples, n_features, class names
        double r = 0, f = 0;
        if (fields.size() < 2 || !parse_double(fields[0], r) || !parse_double(fields[1], f) || r < 0 || f < 0 ||
            r != std::floor(r) || f != std::floor(f) || r > 1e15 || f > 1e9)
          ctx.fail("expected a scikit-learn header 'n_samples,n_features,class names...', got '" + std::string(t) +
                   "'");
        header_rows = static_cast<int64_t>(r);
        header_features = static_cast<int64_t>(f);
        out.class_names.assign(fields.begin() + 2, fields.end());
      }
      continue;
    }

    if (ncols < 0) ncols = static_cast<int64_t>(fields.size());
    if (label_col < 0 && options.label_column) {
      label_col = *options.label_column < 0 ? *options.label_column + ncols : *options.label_column;
      if (label_col < 0 || label_col >= ncols)
        ctx.fail("label column " + std::to_string(*options.label_column) + " is out of range for " +
                 std::to_string(ncols) + " columns");
    }
    if (first_row_line == 0) first_row_line = ctx.line;
    if (static_cast<int64_t>(fields.size()) != ncols)
      ctx.fail(
          std::to_string(fields.size()) + " fields, expected " + std::to_string(ncols) +
          (out.feature_names.empty() ? " (as in line " + std::to_string(first_row_line) + ")" : " (as in the header)"));
    for (int64_t c = 0; c < ncols; ++c) {
      const std::string& cell = fields[static_cast<size_t>(c)];
      if (c == label_col && options.string_labels) {
        label_names.push_back(cell);
        continue;
      }
      double v = 0;
      if (!parse_double(cell, v))
        ctx.fail(column_label(static_cast<size_t>(c), out.feature_names) + ": " +
                 (cell.empty() ? std::string("empty cell") : "'" + cell + "' is not a number"));
      if (c == label_col) {
        if (!(v == std::floor(v) && std::abs(v) < 9.0e15))
          ctx.fail(column_label(static_cast<size_t>(c), out.feature_names) + ": label '" + cell +
                   "' is not an integer");
        labels.push_back(static_cast<int64_t>(v));
      } else {
        values.push_back(v);
      }
    }
    ++rows;
  }
  ctx.line = 0;
  EMBER_CHECK(!header_pending, FormatError, "[read_csv] ", name, ": empty file (no header)");
  EMBER_CHECK(rows > 0, FormatError, "[read_csv] ", name, ": no data rows");
  const int64_t nfeat = ncols - (label_col >= 0 ? 1 : 0);
  if (options.header == CsvHeader::sklearn) {
    EMBER_CHECK(rows == header_rows, FormatError, "[read_csv] ", name, ": the header promises ", header_rows,
                " rows, the file has ", rows);
    EMBER_CHECK(nfeat == header_features, FormatError, "[read_csv] ", name, ": the header promises ", header_features,
                " features, the rows have ", nfeat);
  }
  if (label_col >= 0 && !out.feature_names.empty()) out.feature_names.erase(out.feature_names.begin() + label_col);

  if (options.string_labels && label_col >= 0) {
    std::set<std::string> unique(label_names.begin(), label_names.end());
    out.class_names.assign(unique.begin(), unique.end());
    std::map<std::string, int64_t> id;
    for (const std::string& s : out.class_names) id.emplace(s, static_cast<int64_t>(id.size()));
    for (const std::string& s : label_names) labels.push_back(id.at(s));
  } else if (label_col >= 0 && !out.class_names.empty()) {
    const int64_t k = static_cast<int64_t>(out.class_names.size());
    for (size_t r = 0; r < labels.size(); ++r)
      EMBER_CHECK(labels[r] >= 0 && labels[r] < k, FormatError, "[read_csv] ", name, ": data row ", r + 1,
                  " has label ", labels[r], " but the header names ", k, " classes");
  }
  out.features = tensor(values, Shape{rows, nfeat}, TensorOptions{.dtype = kF64}).to(options.dtype);
  if (label_col >= 0) out.labels = tensor(labels, Shape{rows});
  return out;
}

}  // namespace ember::data
