// Interop check with the Python safetensors package: `write DIR` saves files for
// check_safetensors.py to read; `check DIR` verifies the files that script wrote.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>

#include "ember.hpp"

using namespace ember;

namespace {

// Every value is a formula of the flat index, shared with check_safetensors.py (exact in each dtype).
double f32_value(int64_t i) { return i * 0.5 - 2.0; }
double f64_value(int64_t i) { return i / 3.0; }
double f16_value(int64_t i) { return i * 0.25 - 0.5; }
double bf16_value(int64_t i) { return i - 1.5; }
int64_t i32_value(int64_t i) { return -7 * i + 3; }
int64_t i64_value(int64_t i) { return (int64_t{1} << 40) + i; }
int64_t u8_value(int64_t i) { return i * 50; }
bool bool_value(int64_t i) { return i % 2 == 0; }

template <class T, class F>
Tensor filled(const Shape& shape, F f) {
  Tensor t = make_tensor(shape, dtype_of<T>());
  T* p = t.data_ptr<T>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(f(i));
  return t;
}

int failures = 0;
void expect(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "FAIL: %s\n", what.c_str());
    ++failures;
  }
}

template <class T, class F>
void check(const TensorMap& m, const std::string& name, const Shape& shape, F f) {
  auto it = m.find(name);
  if (it == m.end()) return expect(false, "missing tensor " + name);
  const Tensor& t = it->second;
  if (t.dtype() != dtype_of<T>() || t.shape() != shape)
    return expect(false, name + ": got " + describe(t) + ", want " + detail::cat_str(shape, " ", dtype_of<T>()));
  const T* p = t.data_ptr<T>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (static_cast<double>(p[i]) != static_cast<double>(static_cast<T>(f(i))))
      return expect(false,
                    name + ": element " + std::to_string(i) + " is " + std::to_string(static_cast<double>(p[i])));
  }
}

int write_files(const std::string& dir) {
  Tensor base = filled<float>({2, 3}, [](int64_t i) { return static_cast<double>(i); });
  TensorMap m{
      {"f32", filled<float>({3, 4}, f32_value)},
      {"f64", filled<double>({2, 3}, f64_value)},
      {"f16", filled<half>({5}, f16_value)},
      {"i32", filled<int32_t>({4}, i32_value)},
      {"i64", filled<int64_t>({2, 2}, i64_value)},
      {"u8", filled<uint8_t>({6}, u8_value)},
      {"bool", filled<bool>({5}, bool_value)},
      {"scalar", filled<double>({}, [](int64_t) { return 3.25; })},
      {"empty", make_tensor({0, 3}, kF32)},
      {"transposed", base.transpose(0, 1)},  // non-contiguous: written as its [3, 2] values
  };
  save(dir + "/ember.safetensors", m, {{"framework", "ember"}, {"note", "h\xc3\xa9llo"}});
  save(dir + "/ember_bf16.safetensors", {{"bf16", filled<bfloat16>({2, 2}, bf16_value)}});
  // A model's state_dict (same layers and names as check_safetensors.py's PyTorch Net) with an input and
  // Ember's output, so Python can load the weights into PyTorch and compare.
  manual_seed(0);
  nn::Sequential features{nn::Conv2d(1, 4, 3), nn::BatchNorm2d(4), nn::ReLU(), nn::MaxPool2d(2)};
  nn::Sequential head{nn::Flatten(), nn::Linear(4 * 3 * 3, 5), nn::GELU(), nn::Dropout(0.1), nn::Linear(5, 3)};
  struct Net : nn::Module {} net;
  net.register_module("features", features);
  net.register_module("head", head);
  features(randn({8, 1, 8, 8}));  // one training step of BatchNorm's running statistics
  net.eval();
  Tensor x = randn({2, 1, 8, 8});
  save(dir + "/model.safetensors", net.state_dict());
  save(dir + "/model_io.safetensors", {{"x", x}, {"y", head(features(x))}});

  // The same net trained two Adam steps by the Trainer: its checkpoint's weights load into PyTorch.
  struct Trained : train::TrainModule {
    nn::Sequential features{nn::Conv2d(1, 4, 3), nn::BatchNorm2d(4), nn::ReLU(), nn::MaxPool2d(2)};
    nn::Sequential head{nn::Flatten(), nn::Linear(4 * 3 * 3, 5), nn::GELU(), nn::Dropout(0.1), nn::Linear(5, 3)};
    Trained() {
      register_module("features", features);
      register_module("head", head);
    }
    Tensor forward(const Tensor& in) { return head(features(in)); }
    Tensor training_step(const data::Batch& b, int64_t) override {
      return nn::functional::cross_entropy(forward(b.input), b.target);
    }
    train::OptimizerConfig configure_optimizers() override {
      return std::make_shared<optim::Adam>(parameters(), optim::AdamOptions{.lr = 0.01});
    }
  } trained;
  auto loader = std::make_shared<data::DataLoader>(
      data::TensorDataset(randn({8, 1, 8, 8}), randint(0, 3, {8}, {.dtype = kI64})), data::DataLoaderOptions{.batch_size = 4});
  train::Trainer trainer({.max_epochs = 1, .enable_checkpointing = false, .enable_progress_bar = false,
                          .enable_model_summary = false, .logger = false});
  trainer.fit(trained, loader);
  trainer.save_checkpoint(dir + "/trainer_checkpoint.safetensors");
  trained.eval();
  save(dir + "/trained_io.safetensors", {{"x", x}, {"y", trained.forward(x)}});
  std::printf("wrote %s/ember.safetensors, ember_bf16.safetensors, model.safetensors, trainer_checkpoint.safetensors\n",
              dir.c_str());
  return 0;
}

int check_files(const std::string& dir) {
  Metadata meta;
  TensorMap m = load(dir + "/python.safetensors", &meta);
  check<float>(m, "f32", {3, 4}, f32_value);
  check<double>(m, "f64", {2, 3}, f64_value);
  check<half>(m, "f16", {5}, f16_value);
  check<int32_t>(m, "i32", {4}, i32_value);
  check<int64_t>(m, "i64", {2, 2}, i64_value);
  check<uint8_t>(m, "u8", {6}, u8_value);
  check<bool>(m, "bool", {5}, bool_value);
  check<double>(m, "scalar", {}, [](int64_t) { return 3.25; });
  check<float>(m, "empty", {0, 3}, f32_value);
  expect(m.size() == 9, "python.safetensors holds " + std::to_string(m.size()) + " tensors, want 9");
  expect(meta == Metadata{{"framework", "numpy"}, {"note", "w\xc3\xb6rld"}}, "metadata of python.safetensors");

  const std::string bf16_path = dir + "/python_bf16.safetensors";
  if (std::filesystem::exists(bf16_path)) {
    TensorMap b = load(bf16_path);
    check<bfloat16>(b, "bf16", {2, 2}, bf16_value);
  } else {
    std::printf("skip bf16: %s not written (no torch)\n", bf16_path.c_str());
  }
  if (failures == 0) std::printf("ember read the Python-written files correctly\n");
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || (std::string(argv[1]) != "write" && std::string(argv[1]) != "check")) {
    std::fprintf(stderr, "usage: %s write|check DIR\n", argv[0]);
    return 2;
  }
  try {
    return std::string(argv[1]) == "write" ? write_files(argv[2]) : check_files(argv[2]);
  } catch (const Error& e) {
    std::fprintf(stderr, "FAIL: %s\n", e.what());
    return 1;
  }
}
