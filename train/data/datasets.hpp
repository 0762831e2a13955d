// Ready-made real data sets: the 8x8 digits (embedded in the library), iris, breast cancer and Pride and
// Prejudice (files in data/), MNIST and Fashion-MNIST (IDX files in a folder of the user's choosing).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "train/data/dataset.hpp"

namespace ember::data {

// Where bundled files are looked for: $EMBER_DATA_DIR when set, then the source tree's data/ folder
// recorded at build time.
std::vector<std::string> data_dirs();
// The path of bundled file `name`; IOError saying where it looked and how to fix it when missing.
std::string find_data_file(const std::string& name);

// UCI optdigits as scikit-learn's load_digits: 1797 images of 8x8 pixels valued 0..16, as f32 features
// [1797, 64] (row-major pixels, unscaled) and i64 labels 0..9. Embedded: needs no files.
std::shared_ptr<TensorDataset> digits();
// Fisher's iris: f32 [150, 4] (sepal length/width, petal length/width in cm), i64 labels 0..2
// (setosa, versicolor, virginica). Reads data/iris.csv.
std::shared_ptr<TensorDataset> iris();
// Wisconsin diagnostic breast cancer: f32 [569, 30], i64 labels (0 malignant, 1 benign).
// Reads data/breast_cancer.csv.gz.
std::shared_ptr<TensorDataset> breast_cancer();
// Jane Austen's Pride and Prejudice (684,767 characters of ASCII text). Reads data/pride_and_prejudice.txt.gz.
std::string pride_and_prejudice();

struct MnistOptions {
  // kF32: images scaled to [0, 1]; kU8: the raw bytes 0..255 (scale per batch with a loader transform).
  DType dtype = kF32;
};
// MNIST from the four standard IDX files (plain or .gz) in `root` (or root/MNIST/raw, torchvision's
// layout): images [N, 1, 28, 28], labels i64 [N]; N = 60000 for train, 10000 for test. Get the files
// with tools/fetch_mnist.sh ROOT. Data: Y. LeCun and C. Cortes, CC BY-SA 3.0.
std::shared_ptr<TensorDataset> mnist(const std::string& root, bool train = true, MnistOptions options = {});
// Fashion-MNIST (Zalando, MIT): the same layout and file names (or root/FashionMNIST/raw).
std::shared_ptr<TensorDataset> fashion_mnist(const std::string& root, bool train = true, MnistOptions options = {});

}  // namespace ember::data
