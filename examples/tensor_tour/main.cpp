// tensor_tour: the README's main job. A walk through Ember's tensor library (creation, broadcasting,
// matmul, reductions, softmax, conv2d, save/load) ending in two small models fitted to the iris data:
// a regression by hand-written gradient steps and an MLP trained with autograd. Every section checks
// its result; the exit code says if all held.
#include <unistd.h>

#include <cmath>
#include <ember.hpp>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

using namespace ember;

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  std::cout << (ok ? "  [ok]   " : "  [FAIL] ") << what << "\n";
  if (!ok) ++failures;
}

bool all_close(const Tensor& a, const Tensor& b, double tol = 1e-5) {
  return a.shape() == b.shape() && (a - b).abs().max().item<double>() <= tol;
}

void section(const std::string& title) { std::cout << "\n== " << title << " ==\n"; }

// iris.csv: a header "150,4,setosa,versicolor,virginica", then rows of 4 floats and an integer label.
struct Iris {
  Tensor features;  // [150, 4] f32
  Tensor labels;    // [150] i64
  std::vector<std::string> classes;
};

Iris read_iris(const std::string& path) {
  std::ifstream in(path);
  EMBER_CHECK(in.good(), IOError, "[tensor_tour] cannot open ", path);
  std::string line, field;
  std::getline(in, line);
  std::stringstream header(line);
  int64_t rows = 0, cols = 0;
  std::getline(header, field, ',');
  rows = std::stoll(field);
  std::getline(header, field, ',');
  cols = std::stoll(field);
  Iris iris;
  while (std::getline(header, field, ',')) iris.classes.push_back(field);
  std::vector<float> x;
  std::vector<int64_t> y;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::stringstream row(line);
    for (int64_t c = 0; c < cols; ++c) {
      std::getline(row, field, ',');
      x.push_back(std::stof(field));
    }
    std::getline(row, field, ',');
    y.push_back(std::stoll(field));
  }
  EMBER_CHECK(static_cast<int64_t>(y.size()) == rows, FormatError, "[tensor_tour] ", path, ": expected ", rows,
              " rows, read ", y.size());
  iris.features = tensor(x, Shape{rows, cols});
  iris.labels = tensor(y);
  return iris;
}

// Zero mean, unit (sample) variance per column.
Tensor standardise(const Tensor& x) { return (x - x.mean({0}, true)) / x.std({0}, 1, true); }

void tour_basics() {
  section("creation and broadcasting");
  manual_seed(0);
  Tensor a = arange(6, kF32).reshape({2, 3});
  std::cout << "a = " << a << "\n";
  std::cout << "eye(3) = " << eye(3) << "\nlinspace(0, 1, 5) = " << linspace(0, 1, 5) << "\n";
  std::cout << "randn({2, 2}) = " << randn({2, 2}) << "\n";
  Tensor row = tensor({10.0f, 20.0f, 30.0f});
  Tensor col = tensor({{1.0f}, {2.0f}});
  check(all_close(a + row, tensor({{10.0f, 21.0f, 32.0f}, {13.0f, 24.0f, 35.0f}})),
        "[2, 3] + [3] broadcasts over rows");
  check(all_close(a * col, tensor({{0.0f, 1.0f, 2.0f}, {6.0f, 8.0f, 10.0f}})),
        "[2, 3] * [2, 1] broadcasts over columns");
  Tensor h = a.to(kBF16) * 2;
  check(h.dtype() == kBF16 && all_close(h.to(kF32), a * 2), "bf16 * int scalar stays bf16");

  section("matmul");
  check(all_close(matmul(a, a.t()), tensor({{5.0f, 14.0f}, {14.0f, 50.0f}})), "a @ a.T by hand");
  Tensor batch = randn({4, 2, 3});
  Tensor w = randn({3, 5});
  Tensor out = matmul(batch, w);
  std::cout << "[4, 2, 3] @ [3, 5] -> " << describe(out) << "\n";
  check(out.shape() == Shape{4, 2, 5} && all_close(out[2], matmul(batch[2], w)),
        "batched matmul matches per-batch matmul");

  section("reductions and softmax");
  check(a.sum().item<float>() == 15.0f, "sum(a) = 15");
  check(all_close(a.mean({0}), tensor({1.5f, 2.5f, 3.5f})), "mean over dim 0");
  auto [values, indices] = a.max(1);
  check(all_close(values, tensor({2.0f, 5.0f})) && indices.to_vector<int64_t>() == std::vector<int64_t>{2, 2},
        "max over dim 1 with indices");
  check(std::abs(a.var().item<double>() - 3.5) < 1e-6, "unbiased var(0..5) = 3.5");
  Tensor s = softmax(a, 1);
  std::cout << "softmax(a, 1) = " << s << "\n";
  Tensor e = (a - a.amax({1}, true)).exp();
  check(all_close(s, e / e.sum({1}, true)), "softmax = exp(x - max) / sum");
  check(all_close(s[0], s[1]), "softmax is shift-invariant (rows differ by 3)");

  section("conv2d and pooling");
  Tensor img = arange(16, kF32).reshape({1, 1, 4, 4});
  Tensor conv = conv2d(img, ones({1, 1, 3, 3}));
  std::cout << "conv2d(0..15 as 4x4, 3x3 ones) = " << conv << "\n";
  check(all_close(conv, tensor({45.0f, 54.0f, 81.0f, 90.0f}).reshape({1, 1, 2, 2})), "3x3 window sums by hand");
  check(all_close(max_pool2d(img, {2, 2}), tensor({5.0f, 7.0f, 13.0f, 15.0f}).reshape({1, 1, 2, 2})),
        "2x2 max pooling");
}

// Least-squares fit of petal width from the other three measurements: w <- w - lr * 2/N * X^T (Xw + b - y).
std::pair<Tensor, Tensor> fit_regression(const Tensor& x, const Tensor& y) {
  const int64_t n = x.size(0);
  const double lr = 0.2;
  Tensor w = zeros({x.size(1), 1});
  Tensor b = zeros({1});
  for (int step = 0; step < 300; ++step) {
    Tensor err = matmul(x, w) + b - y;
    w.sub_(matmul(x.t(), err), lr * 2.0 / n);
    b.sub_(err.sum(), lr * 2.0 / n);
  }
  Tensor err = matmul(x, w) + b - y;
  double mse = (err * err).mean().item<double>();
  double r2 = 1.0 - mse / y.var({}, 0).item<double>();
  std::cout << "weights " << w.t() << " bias " << b << "\nmse " << mse << ", R^2 " << r2 << "\n";
  check(r2 > 0.9, "R^2 above 0.9 (petal width is well explained by the other measurements)");
  return {w, b};
}

// A small MLP (tanh hidden layer, softmax output) trained with autograd and plain SGD steps. The first
// step also checks the tape's gradient for the output layer against the hand-derived one,
// h^T (softmax - onehot) / N.
TensorMap fit_classifier(const Tensor& x, const Tensor& labels, int64_t classes) {
  const int64_t n = x.size(0), hidden = 16;
  const double lr = 0.5;
  manual_seed(0);
  TensorMap p = {{"classifier.0.weight", (randn({x.size(1), hidden}) * 0.5).requires_grad_()},
                 {"classifier.0.bias", zeros({hidden}, {.requires_grad = true})},
                 {"classifier.2.weight", zeros({hidden, classes}, {.requires_grad = true})},
                 {"classifier.2.bias", zeros({classes}, {.requires_grad = true})}};
  auto forward = [&](Tensor* hidden_out = nullptr) {
    Tensor h = tanh(matmul(x, p["classifier.0.weight"]) + p["classifier.0.bias"]);
    if (hidden_out) *hidden_out = h;
    return matmul(h, p["classifier.2.weight"]) + p["classifier.2.bias"];
  };
  for (int step = 0; step <= 300; ++step) {
    Tensor h;
    Tensor logits = forward(&h);
    Tensor loss = -log_softmax(logits, 1).gather(1, labels.unsqueeze(1)).mean();
    if (step % 100 == 0) {
      double acc = (logits.argmax(1) == labels).to(kF32).mean().item<double>();
      std::cout << "step " << std::setw(3) << step << "  loss " << std::fixed << std::setprecision(4)
                << loss.item<double>() << "  accuracy " << acc << std::defaultfloat << "\n";
    }
    loss.backward();
    if (step == 0) {
      Tensor onehot = (labels.unsqueeze(1) == arange(classes)).to(kF32);
      Tensor hand = matmul(h.detach().t(), (softmax(logits.detach(), 1) - onehot) / n);
      check(all_close(p["classifier.2.weight"].grad(), hand, 1e-5), "autograd's gradient equals the hand-derived one");
    }
    autograd::NoGradGuard no_grad;  // the update itself is not part of any graph
    for (auto& [name, t] : p) {
      t.sub_(t.grad(), lr);
      t.set_grad({});
    }
  }
  double acc = (forward().argmax(1) == labels).to(kF32).mean().item<double>();
  check(acc > 0.95, "training accuracy above 95%");
  for (auto& [name, t] : p) t = t.detach();
  return p;
}

void tour_iris(const std::string& path) {
  section("iris: linear regression by gradient steps");
  Iris iris = read_iris(path);
  std::cout << "read " << describe(iris.features) << " features, " << iris.classes.size() << " classes from " << path
            << "\n";
  Tensor x = standardise(iris.features);
  auto [reg_w, reg_b] = fit_regression(x.slice(1, 0, 3), iris.features.select(1, 3).unsqueeze(1));

  section("iris: a small MLP trained with autograd");
  TensorMap classifier = fit_classifier(x, iris.labels, static_cast<int64_t>(iris.classes.size()));

  section("save and load (safetensors)");
  const std::string file =
      (std::filesystem::temp_directory_path() / ("tensor_tour_" + std::to_string(::getpid()) + ".safetensors"))
          .string();
  TensorMap saved = classifier;
  saved["regression.weight"] = reg_w;
  saved["regression.bias"] = reg_b;
  save(file, saved, {{"source", "tensor_tour"}});
  Metadata meta;
  TensorMap loaded = load(file, &meta);
  std::filesystem::remove(file);
  bool same = loaded.size() == saved.size();
  for (const auto& [name, t] : saved) same = same && loaded.count(name) && all_close(loaded.at(name), t, 0.0);
  std::cout << "wrote and read back " << loaded.size() << " tensors\n";
  check(same, "loaded tensors equal the saved ones bit for bit");
  check(meta["source"] == "tensor_tour", "metadata round-trips");
}

}  // namespace

int main(int argc, char** argv) {
  const std::string iris_path = argc > 1 ? argv[1] : std::string(EMBER_DATA_DIR) + "/iris.csv";
  try {
    tour_basics();
    tour_iris(iris_path);
  } catch (const Error& e) {
    std::cerr << "tensor_tour: " << e.what() << "\n";
    return 1;
  }
  MemoryStats m = memory_stats();
  std::cout << "\npeak tensor memory " << m.peak_bytes << " bytes in " << m.allocations << " allocations ("
            << m.system_allocations << " from the system)\n";
  std::cout << (failures ? std::to_string(failures) + " check(s) failed\n" : "all checks passed\n");
  return failures ? 1 : 0;
}
