// File readers for untrusted input: whole files (plain or gzip), IDX (MNIST's format) and numeric CSV.
// Damaged input (truncated, wrong magic, absurd sizes, bad gzip, non-numeric cells) raises FormatError
// or IOError naming the file and the problem; nothing is allocated beyond what the data really holds.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.hpp"

namespace ember::data {

inline constexpr int64_t kMaxReadBytes = int64_t{4} << 30;  // default cap on a file's (decompressed) size

// The bytes of a file, gunzipped when it is gzip (zlib reads plain files unchanged). IOError when it
// cannot be opened, FormatError on corrupt or truncated gzip data or when it exceeds max_bytes.
std::string read_file(const std::string& path, int64_t max_bytes = kMaxReadBytes);
// The same for text (an alias that says what the caller expects).
inline std::string read_text(const std::string& path, int64_t max_bytes = kMaxReadBytes) {
  return read_file(path, max_bytes);
}

// An IDX file (plain or gzipped): big-endian magic 00 00 <type> <ndims>, ndims big-endian uint32 sizes,
// then the data. Types u8 (0x08, MNIST), i32 (0x0C), f32 (0x0D), f64 (0x0E) give tensors of that dtype
// and shape; the data must fill the shape exactly.
Tensor read_idx(const std::string& path, int64_t max_bytes = kMaxReadBytes);
// The same from bytes in memory; `name` appears in error messages.
Tensor parse_idx(std::string_view bytes, const std::string& name = "<memory>");

// How the first line of a CSV file is read.
enum class CsvHeader {
  none,     // every line is data
  names,    // the first line names the columns
  sklearn,  // scikit-learn's "n_samples,n_features,class names..." (iris.csv, breast_cancer.csv)
};

struct CsvOptions {
  CsvHeader header = CsvHeader::names;
  char delimiter = ',';
  // The label column (negative counts from the end); nullopt: no labels, every column is a feature.
  std::optional<int64_t> label_column = -1;
  // Labels are class names (mapped to 0..k-1 in sorted order) instead of integers.
  bool string_labels = false;
  char comment = '#';  // lines starting with it are skipped ('\0': none)
  DType dtype = kF32;  // features: kF32 or kF64
  int64_t max_bytes = kMaxReadBytes;
};

struct CsvData {
  Tensor features;                         // [rows, columns - 1] (or all columns without labels)
  Tensor labels;                           // [rows] i64; undefined when label_column is nullopt
  std::vector<std::string> feature_names;  // from a `names` header, else empty
  std::vector<std::string> class_names;    // from a `sklearn` header or string labels, else empty
};

// A numeric CSV file (plain or gzipped). Fields may be quoted ("..."); blank lines are skipped. Every
// row must have the same number of fields; cells must be numbers (labels integers).
CsvData read_csv(const std::string& path, const CsvOptions& options = {});
CsvData parse_csv(std::string_view text, const CsvOptions& options = {}, const std::string& name = "<memory>");

}  // namespace ember::data
