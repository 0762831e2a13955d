// ember::dist across two processes: run as `mpirun -np 2 ember_dist_tests` (meson test "dist"). Every
// rank runs every test in the same order; rank 1 prints only its failures. Checks are CHECKs, not
// REQUIREs, so a failure on one rank never leaves the other waiting in a collective. The fault tests
// (test_faults.cpp) run child jobs of this program: `--scenario <name> <dir>` goes to their scenarios.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "dist/mpi.hpp"
#include "dist_fixtures.hpp"
#include "ember.hpp"
#include "examples/digits_mlp/digits_mlp.hpp"
#include "test_util.hpp"
#include "trainer_fixtures.hpp"

using namespace ember;
using testing::throws_with;
namespace fs = std::filesystem;

using namespace testing::dist_fixtures;

TEST_SUITE("dist mpi") {
  TEST_CASE("two ranks over MPI") {
    CHECK(comm().backend() == "mpi");
    CHECK(comm().world_size() == 2);
    CHECK(dist::launch_info().launcher == "mpirun");
  }

  TEST_CASE("all_reduce in every dtype and reduce op") {
    const int r = rank();
    for (DType dt : {kF32, kF64, DType::F16, DType::BF16, kI32, kI64, kU8}) {
      CAPTURE(dt);
      Tensor t = full({5}, r + 1, {.dtype = dt});
      comm().all_reduce(t, dist::ReduceOp::kSum);
      CHECK(testing::equal(t, full({5}, 3, {.dtype = dt})));
      t = full({5}, r + 2, {.dtype = dt});
      comm().all_reduce(t, dist::ReduceOp::kProduct);
      CHECK(testing::equal(t, full({5}, 6, {.dtype = dt})));
      t = full({5}, r + 1, {.dtype = dt});
      comm().all_reduce(t, dist::ReduceOp::kMax);
      CHECK(testing::equal(t, full({5}, 2, {.dtype = dt})));
      t = full({5}, r + 1, {.dtype = dt});
      comm().all_reduce(t, dist::ReduceOp::kMin);
      CHECK(testing::equal(t, full({5}, 1, {.dtype = dt})));
      if (is_floating(dt)) {
        t = full({5}, r + 1, {.dtype = dt});
        comm().all_reduce(t, dist::ReduceOp::kAvg);
        CHECK(testing::equal(t, full({5}, 1.5, {.dtype = dt})));
      }
    }
    Tensor b = tensor<bool>({r == 0, true, false});
    comm().all_reduce(b, dist::ReduceOp::kMax);
    CHECK(testing::equal(b, tensor<bool>({true, true, false})));
    b = tensor<bool>({r == 0, true, false});
    comm().all_reduce(b, dist::ReduceOp::kMin);
    CHECK(testing::equal(b, tensor<bool>({false, true, false})));
  }

  TEST_CASE("broadcast, all_gather, reduce_scatter, barrier and the control helpers") {
    const int r = rank();
    Tensor t = full({2, 3}, 10 * r + 1, {.dtype = kF32});
    comm().broadcast(t, 1);
    CHECK(testing::equal(t, full({2, 3}, 11, {.dtype = kF32})));

    Tensor g = comm().all_gather(full({2, 2}, r, {.dtype = DType::BF16}));
    CHECK(g.shape() == Shape{2, 2, 2});
    CHECK(testing::equal(g.select(0, 0), zeros({2, 2}, {.dtype = DType::BF16})));
    CHECK(testing::equal(g.select(0, 1), ones({2, 2}, {.dtype = DType::BF16})));

    // in[j] = 10 r + j on rank r; rank j gets the sum over ranks: 10 + 2 j.
    Tensor in = stack({full({3}, 10 * r + 0, {.dtype = kF64}), full({3}, 10 * r + 1, {.dtype = kF64})}, 0);
    CHECK(testing::equal(comm().reduce_scatter(in), full({3}, 10 + 2 * r, {.dtype = kF64})));
    CHECK(testing::equal(comm().reduce_scatter(in.to(DType::F16), dist::ReduceOp::kAvg),
                         full({3}, 5 + r, {.dtype = DType::F16})));

    comm().barrier();
    CHECK(comm().all_reduce_scalar(r + 0.5, dist::ReduceOp::kSum) == 2.0);
    CHECK(comm().any(r == 1));
    CHECK(!comm().any(false));
    CHECK(comm().broadcast_string(r == 1 ? "from one" : "", 1) == "from one");
    CHECK(comm().broadcast_scalar(r == 0 ? 2.25 : -1.0) == 2.25);
  }

  TEST_CASE("async collectives complete in submission order and overlap the caller") {
    const int r = rank();
    std::vector<Tensor> ts;
    std::vector<dist::Work> works;
    for (int k = 0; k < 4; ++k) {
      ts.push_back(full({100000}, double(r + k), {.dtype = kF32}));
      works.push_back(comm().all_reduce_async(ts.back()));
    }
    for (int k = 3; k >= 0; --k) {
      works[k].wait();
      CHECK(works[k].is_completed());
      CHECK(testing::equal(ts[k], full({100000}, double(2 * k + 1), {.dtype = kF32})));
    }
  }

  TEST_CASE("a finished Work kept after wait() no longer holds its tensors") {
    const int64_t before = memory_stats().current_bytes;
    dist::Work work;
    {
      Tensor t = full({1 << 22}, 1.0, {.dtype = kF32});  // 16 MiB
      work = comm().all_reduce_async(t);
      work.wait();
    }
    // The caller dropped its tensor; the Work (kept, as a reducer keeps its buckets') must not hold it.
    CAPTURE(before);
    CHECK(memory_stats().current_bytes - before < (int64_t(1) << 20));
  }

  TEST_CASE("EMBER_DIST_DEBUG turns mismatched collectives into an error on every rank, naming dtypes and ops") {
    setenv("EMBER_DIST_DEBUG", "1", 1);
    std::unique_ptr<dist::Communicator> checked = dist::make_mpi_communicator();
    unsetenv("EMBER_DIST_DEBUG");
    Tensor t = zeros({rank() == 0 ? 3 : 4});
    // Each rank's message names both sides.
    CHECK(throws_with<DistError>([&] { checked->all_reduce(t); },
                                 "rank 0 called all_reduce (sum) of 3 elements of float32"));
    CHECK(throws_with<DistError>([&] { checked->all_reduce(t); },
                                 "rank 1 called all_reduce (sum) of 4 elements of float32"));
    Tensor mixed = zeros({2}, {.dtype = rank() == 0 ? kF32 : kF64});
    CHECK(throws_with<DistError>(
        [&] { checked->all_reduce(mixed, rank() == 0 ? dist::ReduceOp::kMax : dist::ReduceOp::kAvg); },
        rank() == 0 ? "called all_reduce (max) of 2 elements of float32 but rank 1 called all_reduce (avg) of 2 "
                      "elements of float64"
                    : "called all_reduce (avg) of 2 elements of float64 but rank 0 called all_reduce (max) of 2 "
                      "elements of float32"));
    CHECK(throws_with<DistError>([&] { checked->broadcast(mixed, rank()); },
                                 "broadcast from rank 0 of 2 elements of float32"));
    Tensor same = ones({2});
    checked->all_reduce(same);  // matched calls still work afterwards
    CHECK(testing::equal(same, full({2}, 2.0)));
  }

  TEST_CASE("collectives wait 30 minutes by default") {
    CHECK(dist::timeout() == 1800.0);
    CHECK(comm().timeout() == 1800.0);
    CHECK(dist::make_mpi_communicator()->timeout() == 1800.0);
  }
}

TEST_SUITE("dist ddp") {
  // Before the check, rank 0's weights went out by broadcast into whatever rank 1 held: a different shape
  // took partial data, and a transposed one trained on in silence.
  TEST_CASE("DDP refuses ranks whose models differ, naming the first difference on every rank") {
    const int r = rank();
    auto mismatch = [&](nn::Sequential net, const std::string& text) {
      const Tensor before = flat(*net);
      CHECK(throws_with<DistError>([&] { dist::DDP ddp(net, comm()); }, text));
      CHECK(testing::equal(flat(*net), before));  // nothing was sent
    };
    manual_seed(50 + r);
    // Transposed: the same number of elements.
    mismatch(r == 0 ? nn::Sequential{nn::Linear(4, 6), nn::Tanh(), nn::Linear(6, 2)}
                    : nn::Sequential{nn::Linear(4, 6), nn::Tanh(), nn::Linear(2, 6)},
             "parameter 2 is \"2.weight\" [2, 6] float32 on rank 0 but \"2.weight\" [6, 2] float32 on rank 1");
    // Another dtype.
    nn::Sequential f{nn::Linear(4, 6)};
    if (r == 1) f->to(kF64);
    mismatch(f, "parameter 0 is \"0.weight\" [6, 4] float32 on rank 0 but \"0.weight\" [6, 4] float64 on rank 1");
    // Another count: the message says how many each has and where they part.
    mismatch(r == 0 ? nn::Sequential{nn::Linear(4, 6)} : nn::Sequential{nn::Linear(4, 6), nn::Linear(6, 6)},
             "rank 0 has 2 parameters and 0 buffers, rank 1 has 4 parameters and 0 buffers; parameter 2 is missing "
             "(2 parameters) on rank 0 but \"1.weight\" [6, 6] float32 on rank 1");
    // A parameter frozen on one rank only.
    nn::Sequential frozen{nn::Linear(4, 6)};
    if (r == 1) frozen->parameters()[1].requires_grad_(false);
    mismatch(frozen,
             "parameter 1 is \"0.bias\" [6] float32 on rank 0 but \"0.bias\" [6] float32 (requires_grad "
             "false) on rank 1");
    // Buffers, and tensors given by hand (named and unnamed).
    Tensor w = ones({3}).requires_grad_();
    CHECK(throws_with<DistError>(
        [&] {
          dist::DDP ddp({{"w", w}}, {{"stats", zeros({r == 0 ? 2 : 3})}}, comm());
        },
        "buffer 0 is \"stats\" [2] float32 on rank 0 but \"stats\" [3] float32 on rank 1"));
    Tensor v = ones({r == 0 ? 3 : 4}).requires_grad_();
    CHECK(throws_with<DistError>([&] { dist::DDP ddp(std::vector<Tensor>{v}, {}, comm()); },
                                 "parameter 0 is [3] float32 on rank 0 but [4] float32 on rank 1"));
    // The ranks are in step afterwards, and equal models pass.
    nn::Sequential same{nn::Linear(4, 6), nn::Tanh(), nn::Linear(6, 2)};
    dist::DDP ddp(same, comm());
    CHECK(same_on_all_ranks(flat(*same)));
  }

  // Each rank takes half of a batch; DDP's mean gradient must equal the whole batch's gradient in one
  // process (mean losses over equal halves).
  TEST_CASE("DDP gradients are the full batch's, bucket by bucket during backward") {
    const int r = rank();
    manual_seed(100 + r);  // different initial weights: DDP starts every rank from rank 0's
    nn::Sequential net{nn::Linear(6, 16), nn::Tanh(), nn::Linear(16, 3)};
    net->to(kF64);
    dist::DDP ddp(net, comm(), {.bucket_cap_mb = 0.0003});
    CHECK(ddp.bucket_layout().size() == 2);  // 315 bytes: [b2, w2] and [b1, w1] (a bucket closes past the cap)
    CHECK(same_on_all_ranks(flat(*net)));

    nn::Sequential ref{nn::Linear(6, 16), nn::Tanh(), nn::Linear(16, 3)};
    ref->to(kF64);
    ref->load_state_dict(net->state_dict());

    Generator g(5);
    Tensor x = randn({8, 6}, {.dtype = kF64}, &g), y = randn({8, 3}, {.dtype = kF64}, &g);
    Tensor x2 = randn({8, 6}, {.dtype = kF64}, &g), y2 = randn({8, 3}, {.dtype = kF64}, &g);
    {
      auto local = ddp.no_sync();  // first micro-batch: local only
      nn::functional::mse_loss(net(x.narrow(0, 4 * r, 4)), y.narrow(0, 4 * r, 4)).backward();
    }
    Tensor local_grad = net->parameters()[0].grad().clone();
    nn::functional::mse_loss(net(x2.narrow(0, 4 * r, 4)), y2.narrow(0, 4 * r, 4)).backward();
    CHECK(ddp.buckets_launched_early() == 2);
    CHECK(!testing::equal(local_grad, net->parameters()[0].grad()));

    nn::functional::mse_loss(ref(x), y).backward();
    nn::functional::mse_loss(ref(x2), y2).backward();
    const auto p = net->parameters(), q = ref->parameters();
    for (size_t i = 0; i < p.size(); ++i) {
      CAPTURE(i);
      CHECK(testing::allclose(p[i].grad(), q[i].grad(), 1e-12, 1e-14));
      CHECK(same_on_all_ranks(p[i].grad()));
    }

    // Training keeps the replicas equal.
    optim::SGD opt(net->parameters(), {.lr = 0.1, .momentum = 0.9});
    for (int step = 0; step < 5; ++step) {
      opt.zero_grad();
      nn::functional::mse_loss(net(x.narrow(0, 4 * r, 4)), y.narrow(0, 4 * r, 4)).backward();
      opt.step();
    }
    CHECK(same_on_all_ranks(flat(*net)));
  }

  TEST_CASE("DDP: a weight used inside a checkpointed block and outside it is an error, not a partial mean") {
    // The recompute's nested backward accumulates into w, its bucket (w alone) starts reducing, and the
    // outer use adds more afterwards: the mean would leave that part out. Every rank raises the same error.
    const int r = rank();
    manual_seed(3);
    Tensor w = randn({4, 4}, {.dtype = kF64}).requires_grad_(true);
    dist::DDP ddp(std::vector<Tensor>{w}, {}, comm());
    Tensor x = full({2, 4}, 1.0 + r, {.dtype = kF64});
    auto twice = [&] {
      Tensor inside = nn::checkpoint([&](const Tensor& t) { return matmul(t, w).tanh(); }, x);
      return (inside.sum() + matmul(x, w).sum());
    };
    CHECK(throws_with<AutogradError>([&] { twice().backward(); },
                                     "got more gradient after its bucket's all-reduce had started"));
    // Used twice in the outer graph only, the engine sums the uses first: one arrival, the full mean.
    w.set_grad(Tensor());
    (matmul(x, w).sum() + matmul(x, w).tanh().sum()).backward();
    Tensor want = w.grad().clone();
    CHECK(same_on_all_ranks(want));
  }

  TEST_CASE("DDP with a parameter one rank does not use, and one no rank uses") {
    const int r = rank();
    manual_seed(7);
    nn::Linear trunk(4, 2), head(4, 2), unused(4, 2);
    std::vector<Tensor> params = trunk->parameters();
    for (const auto& m : {head, unused})
      for (const Tensor& t : m->parameters()) params.push_back(t);
    dist::DDP ddp(params, {}, comm(), {.bucket_cap_mb = 1.0});
    Tensor x = full({3, 4}, 1.0 + r);
    Tensor loss = trunk(x).sum();
    if (r == 0) loss = loss + head(x).sum();
    loss.backward();
    CHECK(trunk->weight.grad().defined());
    REQUIRE(head->weight.grad().defined());  // rank 1 gets it too: rank 0's gradient, averaged with zeros
    CHECK(testing::allclose(head->weight.grad(), full({2, 4}, 1.5)));
    CHECK(!unused->weight.grad().defined());
    CHECK(testing::allclose(trunk->weight.grad(), full({2, 4}, 4.5)));  // (3 * 1 + 3 * 2) / 2
  }
}

// ---------------------------------------------------------------- the Trainer under DDP
namespace {
using trainer_test::loader;

// Linear softmax regression without dropout, logging its losses with sync_dist.
struct Softmax : train::TrainModule {
  nn::Linear fc{4, 3};
  Softmax() { register_module("fc", fc); }
  Tensor training_step(const data::Batch& b, int64_t i) override {
    Tensor loss = nn::functional::cross_entropy(fc(b.input), b.target);
    log("train_loss", loss, {.sync_dist = true});
    log("local_loss", loss);
    if (stop_signal_at >= 0 && trainer().global_step() == stop_signal_at && rank() == 0) std::raise(SIGTERM);
    if (signal_at_batch >= 0 && i == signal_at_batch && trainer().current_epoch() == 0 && rank() == 0)
      std::raise(SIGTERM);
    if (stop_at >= 0 && trainer().global_step() == stop_at && rank() == 1) trainer().should_stop = true;
    return loss;
  }
  void validation_step(const data::Batch& b, int64_t) override {
    log("val_loss", nn::functional::cross_entropy(fc(b.input), b.target), {.sync_dist = true});
  }
  void test_step(const data::Batch& b, int64_t) override {
    log("test_acc", fc(b.input).argmax(1).eq(b.target).to(kF32).mean(), {.sync_dist = true});
  }
  train::OptimizerConfig configure_optimizers() override {
    return {std::make_shared<optim::SGD>(parameters(), optim::SGDOptions{.lr = 0.2, .momentum = 0.5})};
  }
  // Whether the ranks' gradients agree after each backward (they do only where DDP communicated).
  void on_after_backward() override {
    if (record_sync) synced.push_back(same_on_all_ranks(fc->weight.grad()));
  }
  int64_t stop_signal_at = -1, stop_at = -1, signal_at_batch = -1;
  bool record_sync = false;
  std::vector<bool> synced;
};

// A folder both ranks share (one machine), emptied by rank 0 before and after.
struct SharedDir {
  fs::path path;
  explicit SharedDir(const std::string& name) : path(fs::temp_directory_path() / ("ember_dist_" + name)) {
    if (rank() == 0) {
      fs::remove_all(path);
      fs::create_directories(path);
    }
    comm().barrier();
  }
  ~SharedDir() {
    comm().barrier();
    if (rank() == 0) fs::remove_all(path);
  }
};
}  // namespace

TEST_SUITE("dist trainer") {
  TEST_CASE("DDP over two ranks trains as one process on the whole batch") {
    auto fit = [](const std::string& strategy, int64_t batch, int64_t accumulate = 1) {
      manual_seed(21);
      Softmax m;
      m.record_sync = strategy == "ddp";
      train::Trainer t(trainer_test::quiet({.max_epochs = 3,
                                            .devices = strategy == "ddp" ? 2 : 1,
                                            .strategy = strategy,
                                            .precision = "64",
                                            .accumulate_grad_batches = accumulate,
                                            .num_sanity_val_steps = 0}));
      t.fit(m, loader(96, batch, /*shuffle=*/true), loader(40, batch, false, 2));
      if (strategy == "ddp") {  // gradients agree after the last backward of each window only
        REQUIRE(m.synced.size() == size_t(18 * accumulate));  // 48 examples per rank and epoch, 3 epochs
        for (size_t i = 0; i < m.synced.size(); ++i) CHECK(m.synced[i] == ((i + 1) % accumulate == 0));
      }
      if (strategy == "ddp" && accumulate == 1) {
        CHECK(t.world_size() == 2);
        CHECK(t.num_training_batches() == 6);  // 48 examples per rank in batches of 8
        CHECK(t.global_step() == 18);
        // sync_dist values agree everywhere; a value logged without it is each rank's own.
        CHECK(comm().broadcast_scalar(t.callback_metrics().at("val_loss")) == t.callback_metrics().at("val_loss"));
        CHECK(!comm().any(comm().broadcast_scalar(t.callback_metrics().at("train_loss")) !=
                          t.callback_metrics().at("train_loss")));
        CHECK(comm().any(comm().broadcast_scalar(t.callback_metrics().at("local_loss")) !=
                         t.callback_metrics().at("local_loss")));
      }
      return flat(m);
    };
    Tensor ddp = fit("ddp", 8);
    CHECK(same_on_all_ranks(ddp));
    Tensor one = fit("single_device", 16);  // the same 16 examples per step, in one process
    CHECK(testing::allclose(ddp, one, 1e-11, 1e-13));
    // Accumulating over 2 batches (the first without communication) is the same in both.
    Tensor ddp_acc = fit("ddp", 4, 2);
    CHECK(same_on_all_ranks(ddp_acc));
    CHECK(testing::allclose(ddp_acc, fit("single_device", 8, 2), 1e-11, 1e-13));
    CHECK(testing::allclose(ddp_acc, ddp, 1e-10, 1e-12));  // and 2 x 4 examples per step are the 8 above
  }

  TEST_CASE("rank 0 alone writes logs and checkpoints, into one version folder") {
    SharedDir dir("logs");
    manual_seed(3);
    Softmax m;
    train::Trainer t({.max_epochs = 2,
                      .devices = 2,
                      .enable_progress_bar = false,
                      .enable_model_summary = false,
                      .default_root_dir = dir.path.string()});
    t.fit(m, loader(64, 8, true), loader(32, 8, false, 2));
    CHECK(comm().broadcast_string(t.log_dir()) == t.log_dir());
    CHECK(fs::path(t.log_dir()).filename() == "version_0");
    CHECK(!fs::exists(dir.path / "lightning_logs" / "version_1"));
    CHECK(fs::exists(fs::path(t.log_dir()) / "metrics.csv"));
    auto mc = t.find_callback<train::ModelCheckpoint>();
    REQUIRE(mc != nullptr);
    CHECK(comm().broadcast_string(mc->best_model_path()) == mc->best_model_path());
    CHECK(fs::exists(mc->best_model_path()));
    // Both ranks test from the checkpoint rank 0 wrote; sync_dist makes the metric global.
    auto res = t.test(m, loader(32, 8, false, 2), {.ckpt_path = "best"});
    REQUIRE(res.size() == 1);
    const double acc = res[0].at("test_acc");
    CHECK(comm().broadcast_scalar(acc) == acc);
    CHECK(acc > 0.5);
  }

  TEST_CASE("a stop decided on one rank stops every rank at the same step") {
    manual_seed(4);
    Softmax m;
    m.stop_at = 3;
    train::Trainer t(trainer_test::quiet({.max_epochs = 5, .devices = 2}));
    t.fit(m, loader(64, 8, true));
    CHECK(t.global_step() == 4);
    CHECK(comm().broadcast_scalar(double(t.global_step())) == double(t.global_step()));
  }

  TEST_CASE("SIGTERM on rank 0: both ranks stop together, and the resumed run is bitwise the uninterrupted one") {
    SharedDir dir("signal");
    auto options = [&] {
      return trainer_test::quiet({.max_epochs = 2, .devices = 2, .default_root_dir = dir.path.string()});
    };
    manual_seed(9);
    Softmax whole;
    train::Trainer a(options());
    a.fit(whole, loader(64, 8, true), loader(32, 8, false, 2));

    manual_seed(9);
    Softmax part;
    part.stop_signal_at = 5;  // mid-epoch: 4 batches per rank and epoch
    train::Trainer b(options());
    b.fit(part, loader(64, 8, true), loader(32, 8, false, 2));
    CHECK(b.interrupted());  // on rank 1 too, which never got the signal
    CHECK(b.global_step() == 6);
    CHECK(fs::exists(b.interrupted_checkpoint_path()));

    manual_seed(1234);  // the checkpoint brings the state back
    Softmax resumed;
    train::Trainer c(options());
    c.fit(resumed, loader(64, 8, true), loader(32, 8, false, 2), {.ckpt_path = "interrupted"});
    CHECK(!c.interrupted());
    CHECK(c.global_step() == a.global_step());
    CHECK(testing::equal(flat(resumed), flat(whole)));
  }

  TEST_CASE("SIGTERM inside a gradient-accumulation window: the ranks' gradients so far are saved, as their mean") {
    // 4 batches per rank and epoch, accumulate_grad_batches = 3: stopped after batch 1, each rank holds
    // its own part of the window (no_sync). The resumed run adds the rest to their mean, which the
    // window's all-reduce completes to the uninterrupted run's mean (up to rounding).
    SharedDir dir("signal_accumulate");
    auto options = [&] {
      return trainer_test::quiet(
          {.max_epochs = 2, .devices = 2, .accumulate_grad_batches = 3, .default_root_dir = dir.path.string()});
    };
    manual_seed(9);
    Softmax whole;
    train::Trainer a(options());
    a.fit(whole, loader(64, 8, true));

    manual_seed(9);
    Softmax part;
    part.signal_at_batch = 1;
    train::Trainer b(options());
    b.fit(part, loader(64, 8, true));
    REQUIRE(b.interrupted());
    CHECK(b.global_step() == 0);

    manual_seed(1234);
    Softmax resumed;
    train::Trainer c(options());
    c.fit(resumed, loader(64, 8, true), nullptr, {.ckpt_path = "interrupted"});
    CHECK(c.global_step() == a.global_step());
    CHECK(same_on_all_ranks(flat(resumed)));
    CHECK(testing::allclose(flat(resumed), flat(whole), 1e-5, 1e-6));
  }
}

TEST_SUITE("dist metrics") {
  TEST_CASE("metrics: every rank's state joined (sums, maxima, AUROC's uneven gathers) equals one process's") {
    manual_seed(16);  // the same data on both ranks; each takes an uneven share
    const Tensor scores = randn({45, 4}, {.dtype = kF64});
    const Tensor labels = scores.argmax(1).remainder(tensor<int64_t>({3})).to(kI64);  // imperfect: some wrong
    const int64_t split = 19, start = rank() == 0 ? 0 : split, len = rank() == 0 ? split : 45 - split;
    metrics::F1Score f1({.task = "multiclass", .num_classes = 4, .average = "macro"});
    metrics::AUROC auroc({.task = "multiclass", .num_classes = 4});
    metrics::MaxMetric max;
    metrics::MeanMetric mean;
    std::vector<metrics::Metric*> all{&f1, &auroc, &max, &mean};
    for (metrics::Metric* m : all) {
      const bool scalar = m == &max || m == &mean;
      auto whole = metrics::make_metric(m->name(), m->config());
      m->update(scalar ? scores.narrow(0, start, len).select(1, 0) : scores.narrow(0, start, len),
                scalar ? Tensor() : labels.narrow(0, start, len));
      whole->update(scalar ? scores.select(1, 0) : scores, scalar ? Tensor() : labels);
      const Tensor local = m->compute();
      m->sync(comm());
      CAPTURE(m->name());
      CHECK(testing::allclose(m->compute(), whole->compute(), 1e-6, 1e-9));
      const bool differs = (local.to(kF64) - whole->compute().to(kF64)).abs().max().item<double>() > 1e-9;
      CHECK(comm().any(differs));  // the local value alone is not the answer
    }
  }

  TEST_CASE("Trainer: a logged Accuracy object under DDP is the accuracy over every rank's validation data") {
    // Each rank validates on its own data (no DistributedSampler), of uneven size: 8 examples on rank 0,
    // 12 on rank 1, two batches each, so the union's accuracy is neither rank's nor their mean.
    struct Metered : trainer_test::Tiny {
      metrics::Accuracy val_acc{{.task = "multiclass", .num_classes = 3}};
      void validation_step(const data::Batch& b, int64_t) override {
        val_acc(forward(b.input), b.target);
        log("val_acc", val_acc);
      }
    };
    const int64_t sizes[2] = {8, 12};
    const uint64_t seeds[2] = {31, 32};
    manual_seed(17);
    Metered m;
    train::Trainer t(trainer_test::quiet(
        {.max_epochs = 1, .devices = 2, .num_sanity_val_steps = 0, .use_distributed_sampler = false}));
    t.fit(m, trainer_test::loader(32, 8, true),
          trainer_test::loader(sizes[rank()], sizes[rank()] / 2, false, seeds[rank()]));
    CHECK(t.world_size() == 2);
    // The final model (the same on both ranks) over both ranks' validation sets, in this process alone.
    m.eval();
    autograd::NoGradGuard no_grad;
    double correct = 0, local = 0;
    for (int r = 0; r < 2; ++r) {
      const data::TensorDataset ds = trainer_test::problem(sizes[r], seeds[r]);
      const double hits = m.forward(ds.input()).argmax(1).eq(ds.target()).to(kF64).sum().item<double>();
      correct += hits;
      if (r == rank()) local = hits / static_cast<double>(sizes[r]);
    }
    const double want = correct / static_cast<double>(sizes[0] + sizes[1]);
    const double got = t.callback_metrics().at("val_acc");
    CAPTURE(local);
    CHECK(got == doctest::Approx(want).epsilon(1e-6));
    CHECK(comm().broadcast_scalar(got) == got);        // one value on both ranks
    CHECK(comm().any(std::abs(local - want) > 1e-6));  // a rank's own accuracy is not the answer
    const double local0 = comm().broadcast_scalar(local, 0);
    const double local1 = comm().broadcast_scalar(local, 1);
    CHECK(std::abs((local0 + local1) / 2 - want) > 1e-6);  // nor the mean of the ranks' values: states are joined
  }
}

TEST_SUITE("dist examples") {
  TEST_CASE("the digits MLP under DDP on two ranks reaches 97% held-out accuracy") {
    auto r = digits_mlp::train({.epochs = 30, .verbose = false});
    CHECK(r.test_accuracy >= 0.97);
    CHECK(comm().broadcast_scalar(r.test_accuracy) == r.test_accuracy);  // sync_dist: one number for both
  }
}

int run_scenario(const std::string& name, const fs::path& dir);  // test_faults.cpp

int main(int argc, char** argv) {
  // A child job of the fault tests (test_faults.cpp): `--scenario <name> <dir>`.
  if (argc == 4 && std::string(argv[1]) == "--scenario") return run_scenario(argv[2], argv[3]);
  const int world_size = dist::launch_info().world_size;
  if (world_size != 2 && world_size != 3) {
    std::cerr << "ember_dist_tests: run under `mpirun -np 2` (or -np 3: the \"dist sharded\" suite alone; this "
              << "process is rank " << dist::launch_info().rank << " of " << world_size << ")\n";
    return 2;
  }
  doctest::Context context(argc, argv);
  if (world_size == 3) context.addFilter("test-suite", "dist sharded");  // the others are written for 2 ranks
  if (dist::rank() != 0) context.setOption("minimal", true);             // rank 1 reports failures only
  const int failed = context.run();
  // Every rank learns whether any failed, so both exit alike.
  const bool any_failed = dist::world().any(failed != 0);
  dist::destroy_process_group();
  return any_failed ? 1 : 0;
}
