// Training on the GPU through the Trainer: accelerator "cuda" trains, a checkpoint written on the GPU
// resumes on the CPU and the reverse, and a deterministic resume on the GPU equals the uninterrupted
// run bit for bit; datasets resident on the GPU feed the same batches as on the CPU. Each case needs a
// CUDA device and says so when there is none.
#include "trainer_fixtures.hpp"

using namespace trainer_test;

namespace {

train::TrainerOptions on(const std::string& accelerator, int64_t epochs, const std::string& dir = "") {
  train::TrainerOptions o = quiet({.max_epochs = epochs, .accelerator = accelerator, .deterministic = true});
  if (!dir.empty()) o.default_root_dir = dir;
  return o;
}

}  // namespace

TEST_CASE("cuda training: accelerator cuda trains the parameters on the GPU") {
  CUDA_OR_SKIP();
  manual_seed(0);
  Tiny m;
  m.use_adam = true;
  train::Trainer t(on("cuda", 6));
  t.fit(m, loader(256, 32, true), loader(128, 64, false, 2));
  for (const Tensor& p : m.parameters()) CHECK(p.device().is_cuda());
  CHECK(t.callback_metrics().at("val_acc") > 0.8);
}

TEST_CASE("cuda training: a GPU checkpoint resumes on the CPU and a CPU checkpoint on the GPU") {
  CUDA_OR_SKIP();
  for (const auto& [from_, to] : {std::pair<std::string, std::string>{"cuda", "cpu"}, {"cpu", "cuda"}}) {
    // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
    const auto& from = from_;
    CAPTURE(from);
    TempDir dir("cross_device_" + from);
    const std::string ckpt = dir.str() + "/two.safetensors";
    manual_seed(0);
    Tiny a;
    a.use_adam = true;
    train::Trainer ta(on(from, 2));
    ta.fit(a, loader(128, 32, true), loader(64, 64, false, 2));
    ta.save_checkpoint(ckpt);
    const std::vector<double> saved = flat_params(a);

    manual_seed(0);
    Tiny b;
    b.use_adam = true;
    std::vector<double> restored;
    train::TrainerOptions o = on(to, 3);
    o.callbacks.push_back(std::make_shared<train::LambdaCallback>(
        train::LambdaHooks{.on_train_epoch_start = [&](train::Trainer&, train::TrainModule& m) {
          if (restored.empty()) restored = flat_params(m);
        }}));
    train::Trainer tb(o);
    tb.fit(b, loader(128, 32, true), loader(64, 64, false, 2), {.ckpt_path = ckpt});
    CHECK(restored == saved);  // the weights crossed devices unchanged
    CHECK(tb.current_epoch() == 3);
    for (const Tensor& p : b.parameters()) CHECK(p.device().is_cuda() == (to == "cuda"));
  }
}

TEST_CASE("cuda training: a deterministic resume on the GPU equals the uninterrupted run bit for bit") {
  CUDA_OR_SKIP();
  TempDir dir("cuda_resume");
  const std::string ckpt = dir.str() + "/mid.safetensors";
  manual_seed(0);
  Tiny full;
  full.use_adam = true;
  train::Trainer tf(on("cuda", 4));
  tf.fit(full, loader(128, 32, true), loader(64, 64, false, 2));

  manual_seed(0);
  Tiny first;
  first.use_adam = true;
  train::Trainer t1(on("cuda", 2));
  t1.fit(first, loader(128, 32, true), loader(64, 64, false, 2));
  t1.save_checkpoint(ckpt);
  manual_seed(0);
  Tiny second;
  second.use_adam = true;
  train::Trainer t2(on("cuda", 4));
  t2.fit(second, loader(128, 32, true), loader(64, 64, false, 2), {.ckpt_path = ckpt});
  CHECK(flat_params(second) == flat_params(full));
}

TEST_CASE("cuda training: pinned batches (copied on a side stream) train exactly as pageable ones") {
  CUDA_OR_SKIP();
  std::vector<std::vector<double>> runs;
  for (bool pin : {false, true}) {
    manual_seed(0);
    Tiny m;
    m.use_adam = true;
    auto train_loader = std::make_shared<data::DataLoader>(
        problem(256, 1),
        data::DataLoaderOptions{.batch_size = 32, .shuffle = true, .seed = 7, .num_workers = 2, .pin_memory = pin});
    train::Trainer t(on("cuda", 3));
    t.fit(m, train_loader, loader(64, 64, false, 2));
    runs.push_back(flat_params(m));
  }
  CHECK(runs[0] == runs[1]);
}

TEST_CASE("cuda training: datasets resident on a GPU give the CPU's batches, from loader workers too") {
  CUDA_OR_SKIP();
  const Device gpu(Device::Kind::CUDA, 0);
  // Their batch indices reach the GPU through pinned memory as non-blocking copies (detail::index_to).
  Tensor x = arange(0, 60, 1, kF32).view({20, 3}), y = arange(0, 20);
  data::TensorDataset host(x, y), dev(x.to(gpu), y.to(gpu));
  data::NextTokenDataset host_text(arange(0, 500), 8), dev_text(arange(0, 500).to(gpu), 8);
  const std::vector<int64_t> idx{19, 0, 7, 7, 3};
  CHECK(testing::equal(dev.get_batch(idx).input.cpu(), host.get_batch(idx).input));
  CHECK(testing::equal(dev.get_batch(idx).target.cpu(), host.get_batch(idx).target));
  CHECK(testing::equal(dev_text.get_batch(idx).input.cpu(), host_text.get_batch(idx).input));
  CHECK(testing::equal(dev_text.get_batch(idx).target.cpu(), host_text.get_batch(idx).target));
  for (int64_t workers : {0, 2})
    for (bool side : {false, true}) {  // the consumer on another stream than the workers' gathers
      CAPTURE(workers);
      CAPTURE(side);
      const data::DataLoaderOptions o{.batch_size = 16, .num_workers = workers};
      Stream stream(gpu);
      std::optional<StreamGuard> guard;
      if (side) guard.emplace(stream);
      std::vector<Tensor> got, want;
      for (const data::Batch& b : data::DataLoader(dev_text, o)) got.push_back((b.target * 1).cpu());
      guard.reset();
      for (const data::Batch& b : data::DataLoader(host_text, o)) want.push_back(b.target);
      REQUIRE(got.size() == want.size());
      for (size_t i = 0; i < got.size(); ++i) CHECK(testing::equal(got[i], want[i]));
    }
}
