// Bundled data sets: the embedded digits, the data/ files found through EMBER_DATA_DIR or the source
// tree, and the MNIST-format readers with their consistency checks.
#include "train/data/datasets.hpp"

#include <cstdlib>
#include <filesystem>

#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "train/data/readers.hpp"

namespace ember::data {

namespace detail {
// Generated at build time by tools/embed_data.py (see the ember::data block of meson.build).
extern const int64_t kDigitsRows;
extern const unsigned char kDigits[];
extern const char kSourceDataDir[];
}  // namespace detail

namespace {

namespace fs = std::filesystem;

std::shared_ptr<TensorDataset> csv_dataset(const std::string& file, int64_t rows, int64_t features) {
  CsvData d = read_csv(find_data_file(file), {.header = CsvHeader::sklearn});
  EMBER_CHECK(d.features.size(0) == rows && d.features.size(1) == features, FormatError, "[data] ", file, " holds ",
              describe(d.features), ", expected [", rows, ", ", features, "]");
  return std::make_shared<TensorDataset>(d.features, d.labels);
}

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// `base` or `base`.gz inside one of the folders; IOError naming every place tried.
std::string find_idx(const std::string& what, const std::vector<fs::path>& dirs, const std::string& base) {
  std::string tried;
  for (const fs::path& d : dirs)
    for (const std::string& name : {base, base + ".gz"}) {
      if (is_file(d / name)) return (d / name).string();
      tried += "\n  " + (d / name).string();
    }
  throw IOError(ember::detail::cat_str("[", what, "] ", base, "(.gz) not found; looked for:", tried,
                                       "\nDownload the files with: tools/fetch_mnist.sh <folder>",
                                       what == "fashion_mnist" ? " (or apt-get download dataset-fashion-mnist)" : ""));
}

std::shared_ptr<TensorDataset> idx_pair(const std::string& what, const std::string& root, const std::string& raw_dir,
                                        bool train, MnistOptions options) {
  EMBER_CHECK(options.dtype == kF32 || options.dtype == kU8 || options.dtype == kF64 || options.dtype == kF16 ||
                  options.dtype == kBF16,
              DTypeError, "[", what, "] images can be float (scaled to [0, 1]) or uint8, not ",
              dtype_name(options.dtype));
  const std::vector<fs::path> dirs{fs::path(root), fs::path(root) / raw_dir / "raw"};
  const std::string prefix = train ? "train" : "t10k";
  const std::string img_path = find_idx(what, dirs, prefix + "-images-idx3-ubyte");
  const std::string lbl_path = find_idx(what, dirs, prefix + "-labels-idx1-ubyte");
  Tensor images = read_idx(img_path, int64_t{1} << 31);
  Tensor labels = read_idx(lbl_path, int64_t{1} << 31);
  EMBER_CHECK(images.dtype() == kU8 && images.dim() == 3 && images.size(1) == 28 && images.size(2) == 28, FormatError,
              "[", what, "] ", img_path, " holds ", describe(images), ", expected [N, 28, 28] uint8");
  EMBER_CHECK(labels.dtype() == kU8 && labels.dim() == 1, FormatError, "[", what, "] ", lbl_path, " holds ",
              describe(labels), ", expected [N] uint8");
  EMBER_CHECK(images.size(0) == labels.size(0), FormatError, "[", what, "] ", img_path, " has ", images.size(0),
              " images but ", lbl_path, " has ", labels.size(0), " labels");
  const uint8_t* l = labels.data_ptr<uint8_t>();
  for (int64_t i = 0; i < labels.numel(); ++i)
    EMBER_CHECK(l[i] <= 9, FormatError, "[", what, "] ", lbl_path, ": label ", int(l[i]), " at ", i,
                " is not a class 0..9");
  images = images.unsqueeze(1);
  if (options.dtype != kU8) images = (images.to(kF32) / 255.0).to(options.dtype);  // as torchvision ToTensor
  return std::make_shared<TensorDataset>(images, labels.to(kI64));
}

}  // namespace

std::vector<std::string> data_dirs() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("EMBER_DATA_DIR"); env && *env) dirs.emplace_back(env);
  dirs.emplace_back(detail::kSourceDataDir);
  return dirs;
}

std::string find_data_file(const std::string& name) {
  std::string tried;
  const char* env = std::getenv("EMBER_DATA_DIR");
  for (const std::string& d : data_dirs()) {
    const fs::path p = fs::path(d) / name;
    if (is_file(p)) return p.string();
    tried += "\n  " + p.string();
  }
  throw IOError(ember::detail::cat_str("[data] bundled file ", name, " not found; looked for:", tried,
                                       env && *env ? "" : " (EMBER_DATA_DIR is not set)",
                                       "\nSet EMBER_DATA_DIR to the folder holding Ember's data/ files (a copy of the "
                                       "repository's data/ folder)."));
}

std::shared_ptr<TensorDataset> digits() {
  const int64_t rows = detail::kDigitsRows;
  Tensor x = make_tensor(Shape{rows, 64}, kF32);
  Tensor y = make_tensor(Shape{rows}, kI64);
  float* xp = x.data_ptr<float>();
  int64_t* yp = y.data_ptr<int64_t>();
  for (int64_t r = 0; r < rows; ++r) {
    const unsigned char* row = detail::kDigits + r * 65;
    for (int64_t c = 0; c < 64; ++c) xp[r * 64 + c] = static_cast<float>(row[c]);
    yp[r] = row[64];
  }
  return std::make_shared<TensorDataset>(x, y);
}

std::shared_ptr<TensorDataset> iris() { return csv_dataset("iris.csv", 150, 4); }

std::shared_ptr<TensorDataset> breast_cancer() { return csv_dataset("breast_cancer.csv.gz", 569, 30); }

std::string pride_and_prejudice() { return read_text(find_data_file("pride_and_prejudice.txt.gz"), int64_t{16} << 20); }

std::shared_ptr<TensorDataset> mnist(const std::string& root, bool train, MnistOptions options) {
  return idx_pair("mnist", root, "MNIST", train, options);
}

std::shared_ptr<TensorDataset> fashion_mnist(const std::string& root, bool train, MnistOptions options) {
  return idx_pair("fashion_mnist", root, "FashionMNIST", train, options);
}

}  // namespace ember::data
