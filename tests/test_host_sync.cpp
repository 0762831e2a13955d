// A training step without host reads: the host-read counter (core/host_sync.hpp), lazy tensor logging
// (train/metrics.hpp) and a Trainer fit whose batches between logging steps read nothing to the host,
// with logged values bit-identical to reading each loss when it is logged.
#include <doctest/doctest.h>

#include <bit>
#include <functional>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "ember.hpp"
#include "kernels/deferred_error.hpp"
#include "trainer_fixtures.hpp"

namespace {

using namespace ember;
using namespace trainer_test;

// 4 -> 16 -> 3 classifier; `eager` logs the loss as a number read at once (the reference), else the tensor.
struct SyncFree : train::TrainModule {
  nn::Sequential net{nn::Linear(4, 16), nn::ReLU(), nn::Linear(16, 3)};
  bool eager = false;
  bool read_in_step = false;  // an item() inside the step: the test below must notice it
  SyncFree() { register_module("net", net); }
  Tensor training_step(const data::Batch& b, int64_t) override {
    Tensor loss = nn::functional::cross_entropy(net(b.input), b.target);
    const train::LogOptions both{.prog_bar = true, .on_step = true, .on_epoch = true};
    const train::LogOptions step_only{.on_step = true, .on_epoch = false};
    if (eager) {
      log("train_loss", loss.detach().to(kF64).item<double>(), both);
      log("loss_x2", (loss.detach() * 2.0).to(kF64).item<double>(), step_only);
    } else {
      log("train_loss", loss, both);
      log("loss_x2", loss.detach() * 2.0, step_only);
    }
    if (read_in_step) (void)loss.item<float>();
    return loss;
  }
  train::OptimizerConfig configure_optimizers() override {
    auto opt = std::make_shared<optim::AdamW>(parameters(), optim::AdamWOptions{.lr = 1e-2});
    return {opt, {.scheduler = std::make_shared<optim::StepLR>(opt, 7, 0.5), .interval = "step"}};
  }
};

// host_reads() at the start of every training batch.
struct ReadCounter : train::Callback {
  std::vector<int64_t> at_start;
  void on_train_batch_start(train::Trainer&, train::TrainModule&, const data::Batch&, int64_t) override {
    at_start.push_back(host_reads());
  }
};

struct Run {
  std::shared_ptr<RecordingLogger> logger = std::make_shared<RecordingLogger>();
  std::shared_ptr<ReadCounter> counter = std::make_shared<ReadCounter>();
  train::MetricMap callback, progress;
  std::string bar_text;
};

constexpr int64_t kBatches = 25;  // per epoch (100 samples in batches of 4)
constexpr int64_t kEvery = 10;    // log_every_n_steps

Run fit(const std::string& precision, const std::string& clip, bool eager, bool read_in_step, const TempDir& dir) {
  manual_seed(0);
  SyncFree m;
  m.eager = eager;
  m.read_in_step = read_in_step;
  Run r;
  std::ostringstream bar_out;
  // A frozen clock: the bar's time-based metric refresh never fires, only logging steps and epoch ends.
  auto bar = std::make_shared<train::ProgressBar>(train::ProgressBarOptions{.tty = true, .stream = &bar_out});
  bar->set_clock([] { return 0.0; });
  auto ckpt = std::make_shared<train::ModelCheckpoint>(
      train::ModelCheckpointOptions{.dirpath = (dir.path / precision / clip).string(), .monitor = "train_loss"});
  train::Trainer t({.max_epochs = 2,
                    .precision = precision,
                    .gradient_clip_val = 0.5,
                    .gradient_clip_algorithm = clip,
                    .log_every_n_steps = kEvery,
                    .enable_model_summary = false,
                    .callbacks = {r.counter, bar, ckpt, std::make_shared<train::LearningRateMonitor>("step")},
                    .loggers = {r.logger},
                    .default_root_dir = dir.str()});
  t.fit(m, loader(100, 4, true));
  r.callback = t.callback_metrics();
  r.progress = t.progress_bar_metrics();
  r.bar_text = bar_out.str();
  return r;
}

}  // namespace

TEST_SUITE("host_sync") {
  TEST_CASE("host_reads counts item(), to_vector() and copies to the host, once each") {
    Tensor a = tensor(std::vector<float>{1, 2, 3});
    const int64_t before = host_reads();
    (void)a.sum().item<float>();
    CHECK(host_reads() == before + 1);
    (void)a.to_vector<double>();
    CHECK(host_reads() == before + 2);
    Tensor b = a * 2.0 + 1.0;  // ops and copies on the host do not count
    (void)b.to(kF64);
    CHECK(host_reads() == before + 2);
  }

  TEST_CASE("log(tensor) reads nothing; a number is read once, when asked for") {
    train::MetricCollector c;
    c.set_batch_size(2);
    Tensor v = tensor(std::vector<float>{0.25f});
    const int64_t before = host_reads();
    c.log("loss", v, {.prog_bar = true, .on_step = true, .on_epoch = true});
    c.log("loss", v * 3.0, {.prog_bar = true, .on_step = true, .on_epoch = true});
    v.fill_(100.0f);  // the logged value is a copy
    CHECK(host_reads() == before);
    CHECK(c.has_unread());
    CHECK(c.unread_callback_metrics().contains("loss_step"));
    CHECK(c.callback_metrics().at("loss_step") == 0.75);  // one read for all of them
    CHECK(host_reads() == before + 1);
    CHECK(c.progress_bar_metrics().at("loss_step") == 0.75);
    CHECK(!c.has_unread());
    const train::MetricMap epoch = c.end_epoch();
    CHECK(epoch.at("loss_epoch") == (0.25 * 2 + 0.75 * 2) / 4);
    CHECK(host_reads() == before + 1);
    CHECK_THROWS_AS(c.log("bad", Tensor(), {}), ValueError);
    CHECK_THROWS_AS(c.log("bad", zeros({2}), {}), ValueError);
  }

  TEST_CASE("unread epoch values are bounded: kMaxUnread of them are read between steps") {
    train::MetricCollector c;
    const int64_t before = host_reads();
    double want = 0;
    for (size_t i = 0; i < train::MetricCollector::kMaxUnread; ++i) {
      c.log("v", full({}, double(i), {.dtype = kF32}), {.on_step = false, .on_epoch = true, .reduce = "sum"});
      want += double(i);
      (void)c.take_step_metrics(false);
      CHECK(host_reads() == before + (i + 1 == train::MetricCollector::kMaxUnread ? 1 : 0));
    }
    CHECK(!c.has_unread());
    CHECK(c.end_epoch().at("v") == want);
  }

  TEST_CASE("lazy logging folds numbers and tensors in log order, bit-identical to eager logging") {
    // max and mean over values whose order matters; NaN is kept as the eager path keeps it.
    const std::vector<double> xs{0.1, 1e16, -3.5, 0.30000000000000004, 2.0, 1.0 / 3.0};
    for (const std::string reduce : {"mean", "sum", "max", "min"}) {
      train::MetricCollector lazy, eager;
      for (size_t i = 0; i < xs.size(); ++i) {
        const train::LogOptions o{.on_step = true, .on_epoch = true, .reduce = reduce, .batch_size = int64_t(i + 1)};
        eager.log("m", xs[i], o);
        if (i % 3 == 1)
          lazy.log("m", xs[i], o);  // a number between tensors waits for them
        else
          lazy.log("m", full({}, xs[i], {.dtype = kF64}), o);
      }
      CHECK(lazy.state_dict() == eager.state_dict());
      CHECK(lazy.end_epoch() == eager.end_epoch());
      CHECK(lazy.callback_metrics() == eager.callback_metrics());
    }
  }

  TEST_CASE("fit: no host read between logging steps; logged values equal the eager reference") {
    TempDir dir("host_sync");
    for (const std::string precision : {"32-true", "bf16-mixed"})
      for (const std::string clip : {"norm", "value"}) {
        CAPTURE(precision);
        CAPTURE(clip);
        const Run lazy = fit(precision, clip, false, false, dir);
        const Run eager = fit(precision, clip, true, false, dir);
        // The values users see: logger rows, callback and progress-bar metrics, the bar's last line.
        REQUIRE(lazy.logger->rows.size() == eager.logger->rows.size());
        CHECK(lazy.logger->rows.size() >= 5);
        for (size_t i = 0; i < lazy.logger->rows.size(); ++i) {
          CHECK(lazy.logger->rows[i].first == eager.logger->rows[i].first);
          CHECK(lazy.logger->rows[i].second == eager.logger->rows[i].second);
        }
        CHECK(lazy.callback == eager.callback);
        CHECK(lazy.progress == eager.progress);
        CHECK(lazy.progress.contains("train_loss_epoch"));
        CHECK(lazy.bar_text.substr(lazy.bar_text.rfind("Epoch 1")) ==
              eager.bar_text.substr(eager.bar_text.rfind("Epoch 1")));

        // Reads per batch (batch i: from its start to the next batch's start, so its logger row and
        // callbacks count): none between logging steps, a few at a logging step or an epoch's end.
        const std::vector<int64_t>& at = lazy.counter->at_start;
        REQUIRE(at.size() == size_t(2 * kBatches));
        for (size_t i = 0; i + 1 < at.size(); ++i) {
          CAPTURE(i);
          const int64_t step = int64_t(i) + 1;  // global_step after batch i
          const bool epoch_end = (i + 1) % kBatches == 0;
          const int64_t reads = at[i + 1] - at[i];
          if (step % kEvery != 0 && !epoch_end)
            CHECK(reads == 0);
          else if (!epoch_end)
            CHECK((reads >= 1 && reads <= 3));
          else
            CHECK(reads <= 8);
        }
      }
  }

  TEST_CASE("fit: an item() inside the step is noticed") {
    TempDir dir("host_sync_item");
    const Run r = fit("32-true", "norm", false, true, dir);
    const std::vector<int64_t>& at = r.counter->at_start;
    REQUIRE(at.size() >= 3);
    CHECK(at[1] - at[0] == 1);  // batch 0 is no logging step: its one read is the item()
  }

  TEST_CASE("deferred errors: the message is the immediate check's; the CPU still checks at once") {
    Tensor x = randn({4, 3});
    Tensor bad = tensor<int64_t>({0, 1, 7, 2});
    std::string cpu_msg;
    try {
      (void)nn::functional::cross_entropy(x, bad);
    } catch (const IndexError& e) {
      cpu_msg = e.what();
    }
    const kernels::DeferredError rec{.code = int64_t(kernels::DeferredCode::kCrossEntropyTarget),
                                     .args = {7, 3, 2, -100}};
    CHECK(!cpu_msg.empty());
    CHECK(kernels::deferred_error_message(rec) == cpu_msg);
    CHECK_THROWS_AS(kernels::raise_deferred_error(rec), IndexError);
    CHECK_THROWS_AS(kernels::raise_deferred_error({.code = 99}), Error);
    CHECK(kernels::deferred_error_message({.code = 99}).starts_with("[cuda] "));
    // An index out of range (CUDA index_select and embedding check in the kernel): the CPU's words.
    Tensor weight = randn({5, 3});
    for (bool emb : {false, true}) {
      CAPTURE(emb);
      std::string msg;
      try {
        (void)(emb ? embedding(tensor<int64_t>({1, 9}), weight) : weight.index_select(0, tensor<int64_t>({1, 9})));
      } catch (const IndexError& e) {
        msg = e.what();
      }
      const auto op = emb ? kernels::IndexOp::kEmbedding : kernels::IndexOp::kIndexSelect;
      const kernels::DeferredError idx{.code = int64_t(kernels::DeferredCode::kIndexOutOfRange),
                                       .args = {9, 5, 0, int64_t(op)}};
      CHECK(!msg.empty());
      CHECK(kernels::deferred_error_message(idx) == msg);
      CHECK_THROWS_AS(kernels::raise_deferred_error(idx), IndexError);
    }
    // gather, take_along_dim, scatter, scatter_add and index_add check in their CUDA kernels too.
    Tensor at = tensor<int64_t>({1, 9}).view({1, 2});
    Tensor src = ones({1, 2});
    const std::vector<std::pair<kernels::IndexOp, std::function<void()>>> ops = {
        {kernels::IndexOp::kGather, [&] { (void)weight.gather(1, at); }},
        {kernels::IndexOp::kTakeAlongDim, [&] { (void)take_along_dim(weight, at, 1); }},
        {kernels::IndexOp::kScatter, [&] { (void)weight.scatter(1, at, src); }},
        {kernels::IndexOp::kScatterAdd, [&] { (void)weight.scatter_add(1, at, src); }},
        {kernels::IndexOp::kIndexAdd,
         [&] {
           (void)weight.t().index_add(1, at.view({2}), ones({3, 2}));
         }},
    };
    for (const auto& entry : ops) {
      const kernels::IndexOp op = entry.first;
      const std::string name = kernels::index_op_name(op);
      CAPTURE(name);
      CHECK(kernels::index_op(kernels::index_op_name(op)) == op);
      std::string msg;
      try {
        entry.second();
      } catch (const IndexError& e) {
        msg = e.what();
      }
      const kernels::DeferredError idx{.code = int64_t(kernels::DeferredCode::kIndexOutOfRange),
                                       .args = {9, op == kernels::IndexOp::kIndexAdd ? 5 : 3, 1, int64_t(op)}};
      CHECK(!msg.empty());
      CHECK(kernels::deferred_error_message(idx) == msg);
    }
    // one_hot (num_classes given): its class-value wording.
    std::string oh;
    try {
      (void)one_hot(tensor<int64_t>({1, 7}), 5);
    } catch (const IndexError& e) {
      oh = e.what();
    }
    const kernels::DeferredError oh_rec{.code = int64_t(kernels::DeferredCode::kIndexOutOfRange),
                                        .args = {7, 5, 1, int64_t(kernels::IndexOp::kOneHot)}};
    CHECK(!oh.empty());
    CHECK(kernels::deferred_error_message(oh_rec) == oh);
    // Advanced indexing: the deferred message is the CPU's up to the indexed tensor's description.
    std::string adv;
    try {
      (void)weight.index({tensor<int64_t>({1, 9})});
    } catch (const IndexError& e) {
      adv = e.what();
    }
    const kernels::DeferredError adv_rec{.code = int64_t(kernels::DeferredCode::kIndexOutOfRange),
                                         .args = {9, 5, 0, int64_t(kernels::IndexOp::kIndex)}};
    CHECK(!adv.empty());
    CHECK(adv.starts_with(kernels::deferred_error_message(adv_rec) + " of "));
    // nll_loss (and the composed cross-entropy) on CUDA: worded as the fused cross-entropy's report, the
    // CPU's words up to the position.
    std::string nll_msg;
    try {
      (void)nn::functional::nll_loss(x, bad);
    } catch (const IndexError& e) {
      nll_msg = e.what();
    }
    const kernels::DeferredError nll{.code = int64_t(kernels::DeferredCode::kNllLossTarget), .args = {7, 3, 2, -100}};
    const std::string deferred = kernels::deferred_error_message(nll);
    const std::string common = "[nll_loss] target 7 is out of bounds for 3 classes (";
    CHECK(nll_msg.starts_with(common));
    CHECK(deferred.starts_with(common));
    CHECK_THROWS_AS(kernels::raise_deferred_error(nll), IndexError);
    // binary_cross_entropy's input range: ValueError, the CPU's words up to the tensor's description.
    std::string bce_msg;
    try {
      (void)nn::functional::binary_cross_entropy(tensor<float>({0.5f, 1.5f}), tensor<float>({0.f, 1.f}));
    } catch (const ValueError& e) {
      bce_msg = e.what();
    }
    const kernels::DeferredError bce{.code = int64_t(kernels::DeferredCode::kProbabilityRange), .args = {1, 2}};
    const std::string bce_common = "[binary_cross_entropy] all elements of input ";
    CHECK(bce_msg.starts_with(bce_common));
    CHECK(kernels::deferred_error_message(bce).starts_with(bce_common + "should be between 0 and 1"));
    CHECK_THROWS_AS(kernels::raise_deferred_error(bce), ValueError);
    // bernoulli's p: the CPU's words and value, then where it is.
    std::string bern_msg;
    try {
      (void)bernoulli(tensor<double>({0.5, 1.5}));
    } catch (const ValueError& e) {
      bern_msg = e.what();
    }
    const kernels::DeferredError bern{
        .code = int64_t(kernels::DeferredCode::kProbabilityRange),
        .args = {1, 2, int64_t(kernels::ProbabilityOp::kBernoulli), std::bit_cast<int64_t>(1.5)}};
    CHECK(bern_msg == "[bernoulli] probabilities must be in [0, 1], got 1.5");
    CHECK(kernels::deferred_error_message(bern) == bern_msg + " (element 1 of 2)");
    CHECK_THROWS_AS(kernels::raise_deferred_error(bern), ValueError);
  }

#ifdef EMBER_CUDA
  TEST_CASE("a device whose collective was aborted: every later check of it raises DistError, others pass") {
    // dist/nccl.cpp poisons its device before ncclCommAbort lets the waiting streams drain.
    kernels::cuda::poison_device(7, "[dist::all_reduce] timed out");
    CHECK(throws_with<DistError>([] { kernels::cuda::check_deferred_errors(7); },
                                 "[cuda] the results on cuda:7 are not trusted"));
    CHECK(throws_with<DistError>([] { kernels::cuda::check_deferred_errors(); }, "[dist::all_reduce] timed out"));
    CHECK(throws_with<DistError>([] { kernels::cuda::check_deferred_errors(7); }, "timed out"));  // every time
    CHECK_NOTHROW(kernels::cuda::check_deferred_errors(6));
    kernels::cuda::clear_poisoned_devices();
    CHECK_NOTHROW(kernels::cuda::check_deferred_errors());
    if (!cuda_is_available()) return;
    // On a device: the host read of a result raises, the device's own work still runs.
    const Device gpu(Device::Kind::CUDA, 0);
    Tensor x = ones({4}).to(gpu) * 2.0;
    kernels::cuda::poison_device(0, "a test");
    CHECK_THROWS_AS((void)x.cpu(), DistError);
    CHECK_THROWS_AS((void)x.sum().item<float>(), DistError);
    kernels::cuda::clear_poisoned_devices();
    CHECK(x.sum().item<float>() == 8.f);
  }
#endif

  TEST_CASE("cuda: cross_entropy reads nothing to the host; a bad target raises at the next read") {
    CUDA_OR_SKIP();
    const Device gpu(Device::Kind::CUDA, 0);
    manual_seed(3);
    Tensor x = randn({64, 10}).to(gpu).requires_grad_(true);
    Tensor y = randint(0, 10, {64}).to(gpu);
    const int64_t before = host_reads();
    Tensor mean = nn::functional::cross_entropy(x, y);
    Tensor sum = nn::functional::cross_entropy(x, y, {}, -100, "sum");
    (mean + sum).backward();
    CHECK(host_reads() == before);
    // The same values as on the CPU.
    Tensor xc = x.detach().cpu().requires_grad_(true);
    Tensor mc = nn::functional::cross_entropy(xc, y.cpu());
    mc.backward();
    CHECK(mean.item<float>() == doctest::Approx(mc.item<float>()).epsilon(1e-5));
    CHECK(sum.item<float>() ==
          doctest::Approx(nn::functional::cross_entropy(xc, y.cpu(), {}, -100, "sum").item<float>()).epsilon(1e-5));
    // d(mean + sum)/dx = (1/N + 1) d(mean)/dx * N / N: the mean's share divides by the weight sum on the device.
    const std::vector<float> got = x.grad().cpu().to_vector<float>(), want = (xc.grad() * 65.0).to_vector<float>();
    for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-4));
    // An out-of-range target: no error at the call, the CPU's IndexError at the next host read.
    Tensor bad = tensor<int64_t>({0, 1, 12, 2}).to(gpu);
    Tensor l = nn::functional::cross_entropy(randn({4, 10}).to(gpu), bad);
    CHECK(throws_with<IndexError>([&] { (void)l.item<float>(); },
                                  "[cross_entropy] target 12 is out of bounds for 10 classes (at flat target index 2"));
    CHECK_NOTHROW((void)mean.item<float>());  // raised once
  }

  TEST_CASE("cuda: bernoulli(p) reads nothing to the host; a p outside [0, 1] (or NaN) raises at the next read") {
    CUDA_OR_SKIP();
    const Device gpu(Device::Kind::CUDA, 0);
    Tensor p = tensor<float>({0.25f, 0.5f, 1.f, 0.f}).to(gpu);
    const int64_t before = host_reads();
    Tensor ok = bernoulli(p);
    CHECK(host_reads() == before);
    CHECK(ok.cpu().to_vector<float>()[2] == 1.f);
    Tensor bad = bernoulli(tensor<float>({0.5f, 0.5f, 1.5f, -1.f}).to(gpu));
    CHECK(throws_with<ValueError>([&] { (void)bad.cpu(); },
                                  "[bernoulli] probabilities must be in [0, 1], got 1.5 (element 2 of 4)"));
    Tensor nan = bernoulli(tensor<float>({0.5f, std::numeric_limits<float>::quiet_NaN()}).to(gpu));
    CHECK(throws_with<ValueError>([&] { (void)nan.cpu(); }, "[bernoulli] probabilities must be in [0, 1], got nan"));
    // binary_cross_entropy still lets NaN through, as on the CPU.
    Tensor q = tensor<float>({0.5f, std::numeric_limits<float>::quiet_NaN()}).to(gpu);
    Tensor l = nn::functional::binary_cross_entropy(q, tensor<float>({1.f, 0.f}).to(gpu));
    CHECK_NOTHROW((void)l.cpu());
  }

  TEST_CASE("cuda: fused cross_entropy in bf16 at GPT-2's vocabulary: the gradient of f32 logits, rows summing to 0") {
    CUDA_OR_SKIP();
    const Device gpu(Device::Kind::CUDA, 0);
    manual_seed(5);
    // logsumexp is about 13 here, where bf16 steps by 0.0625: a bf16 lse would scale each row's softmax by up
    // to exp(0.03), so the gradients would be off by up to 3% and each row would sum to up to 0.03 / 8.
    const int64_t n = 8, c = 50257;
    Tensor x = (randn({n, c}) * 2.0).to(kBF16);
    Tensor y = randint(0, c, {n});
    Tensor xg = x.to(gpu).requires_grad_(true);
    Tensor loss = nn::functional::cross_entropy(xg, y.to(gpu));
    loss.backward();
    Tensor xc = x.to(kF32).requires_grad_(true);
    Tensor want = nn::functional::cross_entropy(xc, y);
    want.backward();
    CHECK(loss.item<float>() == doctest::Approx(want.item<float>()).epsilon(1e-2));
    Tensor got = xg.grad().cpu().to(kF32);
    CHECK(testing::allclose(got, xc.grad(), 6e-3, 1e-9));  // bf16 rounds the gradient itself by up to 0.4%
    const std::vector<float> row_sums = got.sum({1}).to_vector<float>();
    for (float r : row_sums) CHECK(std::abs(r) < 2e-4f);
  }

  TEST_CASE("cuda: embedding and index_select read nothing to the host; a bad index raises at the next read") {
    CUDA_OR_SKIP();
    const Device gpu(Device::Kind::CUDA, 0);
    manual_seed(4);
    Tensor weight = randn({50, 8});
    Tensor w = weight.to(gpu).requires_grad_(true);
    Tensor idx = tensor<int64_t>({3, 0, 49, 3, 7, 12}).view({2, 3});
    const int64_t before = host_reads();
    Tensor out = embedding(idx.to(gpu), w);
    Tensor sel = w.index_select(1, tensor<int64_t>({7, 0}).to(gpu));
    (out.sum() + sel.sum()).backward();
    CHECK(host_reads() == before);
    CHECK(max(abs(out.cpu() - embedding(idx, weight))).item<float>() == 0.0f);
    CHECK(max(abs(sel.cpu() - weight.index_select(1, tensor<int64_t>({7, 0})))).item<float>() == 0.0f);
    Tensor wc = weight.clone().requires_grad_(true);
    (embedding(idx, wc).sum() + wc.index_select(1, tensor<int64_t>({7, 0})).sum()).backward();
    CHECK(max(abs(w.grad().cpu() - wc.grad())).item<float>() < 1e-6f);
    // Out of range (and negative): zeros for those rows, no error at the call, IndexError at the next read.
    Tensor bad = embedding(tensor<int64_t>({1, 50, 2}).to(gpu), w.detach());
    CHECK(throws_with<IndexError>([&] { (void)bad.cpu(); },
                                  "[embedding] index 50 is out of bounds for dim 0 with size 50"));
    Tensor neg = w.detach().index_select(0, tensor<int64_t>({-1}).to(gpu));
    CHECK(throws_with<IndexError>([&] { (void)neg.cpu(); }, "[index_select] index -1 is out of bounds for dim 0"));
    CHECK(max(abs(neg.cpu())).item<float>() == 0.0f);  // raised once; the bad row reads nothing
  }

  TEST_CASE(
      "cuda: gather, scatter, index_add and nll_loss read nothing to the host; a bad index raises at the next read") {
    CUDA_OR_SKIP();
    const Device gpu(Device::Kind::CUDA, 0);
    manual_seed(5);
    Tensor x = randn({6, 40});
    Tensor idx = randint(0, 40, {6, 50});
    Tensor rows = randint(0, 6, {64});
    Tensor src = randn({6, 50}), add = randn({64, 40});
    Tensor logp = log_softmax(randn({64, 10}), 1), y = randint(0, 10, {64});
    auto on_gpu = [&](bool det) {
      DeterministicGuard guard(det);
      return std::vector<Tensor>{x.to(gpu).gather(1, idx.to(gpu)), take_along_dim(x.to(gpu), idx.to(gpu), 1),
                                 x.to(gpu).scatter_add(1, idx.to(gpu), src.to(gpu)),
                                 x.t().contiguous().to(gpu).t().index_add(0, rows.to(gpu), add.to(gpu)),
                                 nn::functional::nll_loss(logp.to(gpu), y.to(gpu))};
    };
    const std::vector<Tensor> want = {x.gather(1, idx), take_along_dim(x, idx, 1), x.scatter_add(1, idx, src),
                                      x.t().contiguous().t().index_add(0, rows, add),
                                      nn::functional::nll_loss(logp, y)};
    for (bool det : {false, true}) {  // deterministic: index_add takes the sorted path
      CAPTURE(det);
      const int64_t before = host_reads();
      const std::vector<Tensor> got = on_gpu(det);
      CHECK(host_reads() == before);
      for (size_t i = 0; i < got.size(); ++i) {
        CAPTURE(i);
        CHECK(max(abs(got[i].cpu() - want[i])).item<float>() < 1e-5f);
      }
    }
    // A bad index: nothing read or written for it, the rest as on the CPU, IndexError at the next read.
    Tensor bad = tensor<int64_t>({2, 40, 0}).view({1, 3});
    Tensor g = x.to(gpu).gather(1, bad.to(gpu));
    CHECK(throws_with<IndexError>([&] { (void)g.cpu(); }, "[gather] index 40 is out of bounds for dim 1 with size 40"));
    CHECK(g.cpu().to_vector<float>() == std::vector<float>{x[0][2].item<float>(), 0.0f, x[0][0].item<float>()});
    for (bool det : {false, true}) {
      CAPTURE(det);
      Tensor many = rows.clone(), rows0 = rows.clone(), keep = ones({64, 1});
      many[10].fill_(-3);
      rows0[10].fill_(0);
      keep[10].fill_(0.0);
      Tensor got;
      {
        DeterministicGuard guard(det);
        got = zeros({6, 40}).to(gpu).index_add(0, many.to(gpu), add.to(gpu));
      }
      CHECK(throws_with<IndexError>([&] { (void)got.cpu(); },
                                    "[index_add] index -3 is out of bounds for dim 0 with size 6"));
      Tensor ref = zeros({6, 40}).index_add(0, rows0, add * keep);
      CHECK(max(abs(got.cpu() - ref)).item<float>() < 1e-5f);
    }
    Tensor sc = x.to(gpu).scatter(1, bad.to(gpu), full({1, 3}, 7.0f).to(gpu));
    CHECK(throws_with<IndexError>([&] { (void)sc.cpu(); }, "[scatter] index 40 is out of bounds for dim 1"));
    Tensor y_bad = y.clone();
    y_bad[5].fill_(10);
    Tensor l = nn::functional::nll_loss(logp.to(gpu), y_bad.to(gpu));
    CHECK(throws_with<IndexError>([&] { (void)l.item<float>(); },
                                  "[nll_loss] target 10 is out of bounds for 10 classes (at flat target index 5"));
    // Advanced indexing: negative indices wrap on the device; a bad one raises at the next read.
    Tensor xi = x.to(gpu).index({tensor<int64_t>({-1, 2, 0}).to(gpu), indexing::Slice(0, 5)});
    CHECK(max(abs(xi.cpu() - x.index({tensor<int64_t>({-1, 2, 0}), indexing::Slice(0, 5)}))).item<float>() == 0.0f);
    Tensor xb = x.to(gpu).index({tensor<int64_t>({1, -7}).to(gpu)});
    CHECK(throws_with<IndexError>([&] { (void)xb.cpu(); }, "[index] index -7 is out of bounds for dim 0 with size 6"));
    // one_hot with num_classes: no read; a bad class value raises at the next read.
    const int64_t before_oh = host_reads();
    Tensor oh = one_hot(y.to(gpu), 10);
    CHECK(host_reads() == before_oh);
    CHECK(max(abs(oh.cpu() - one_hot(y, 10))).item<int64_t>() == 0);
    Tensor oh_bad = one_hot(y_bad.to(gpu), 10);
    CHECK(throws_with<IndexError>([&] { (void)oh_bad.cpu(); },
                                  "[one_hot] class value 10 is out of bounds for 10 classes"));
    // binary_cross_entropy: no read for its input check either.
    Tensor p = sigmoid(randn({32})), t = rand({32});
    const int64_t before = host_reads();
    Tensor bce = nn::functional::binary_cross_entropy(p.to(gpu), t.to(gpu));
    CHECK(host_reads() == before);
    CHECK(bce.item<float>() == doctest::Approx(nn::functional::binary_cross_entropy(p, t).item<float>()).epsilon(1e-5));
    Tensor p_bad = p.clone();
    p_bad[7].fill_(1.25f);
    Tensor lb = nn::functional::binary_cross_entropy(p_bad.to(gpu), t.to(gpu));
    CHECK(throws_with<ValueError>(
        [&] { (void)lb.item<float>(); },
        "[binary_cross_entropy] all elements of input should be between 0 and 1 (element 7 of 32"));
  }
}
