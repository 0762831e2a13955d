// ember::dist across two processes: run as `mpirun -np 2 ember_dist_tests` (meson test "dist"). Every
// rank runs every test in the same order; rank 1 prints only its failures. Checks are CHECKs, not
// REQUIREs, so a failure on one rank never leaves the other waiting in a collective.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "dist/mpi.hpp"
#include "ember.hpp"
#include "examples/digits_mlp/digits_mlp.hpp"
#include "test_util.hpp"
#include "trainer_fixtures.hpp"

using namespace ember;
using testing::throws_with;
namespace fs = std::filesystem;

namespace {

dist::Communicator& comm() { return dist::world(); }
int rank() { return comm().rank(); }

// Whether `t` (any shape) holds the same values on every rank.
bool same_on_all_ranks(const Tensor& t) {
  Tensor g = comm().all_gather(t.detach().to(kF64).contiguous());
  return testing::equal(g.select(0, 0), g.select(0, 1));
}

Tensor flat(const nn::Module& m) {
  std::vector<Tensor> parts;
  for (const Tensor& p : m.parameters()) parts.push_back(p.detach().to(kF64).reshape({-1}));
  return cat(parts, 0);
}

}  // namespace

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

  TEST_CASE("EMBER_DIST_DEBUG turns mismatched collectives into an error on every rank") {
    setenv("EMBER_DIST_DEBUG", "1", 1);
    std::unique_ptr<dist::Communicator> checked = dist::make_mpi_communicator();
    unsetenv("EMBER_DIST_DEBUG");
    Tensor t = zeros({rank() == 0 ? 3 : 4});
    CHECK(throws_with<DistError>([&] { checked->all_reduce(t); }, "rank 0 called all_reduce on 3 elements"));
    Tensor same = ones({2});
    checked->all_reduce(same);  // matched calls still work afterwards
    CHECK(testing::equal(same, full({2}, 2.0)));
  }
}

TEST_SUITE("dist ddp") {
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
  Tensor training_step(const data::Batch& b, int64_t) override {
    Tensor loss = nn::functional::cross_entropy(fc(b.input), b.target);
    log("train_loss", loss, {.sync_dist = true});
    log("local_loss", loss);
    if (stop_signal_at >= 0 && trainer().global_step() == stop_signal_at && rank() == 0) std::raise(SIGTERM);
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
  int64_t stop_signal_at = -1, stop_at = -1;
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
}

TEST_SUITE("dist examples") {
  TEST_CASE("the digits MLP under DDP on two ranks reaches 97% held-out accuracy") {
    auto r = digits_mlp::train({.epochs = 30, .verbose = false});
    CHECK(r.test_accuracy >= 0.97);
    CHECK(comm().broadcast_scalar(r.test_accuracy) == r.test_accuracy);  // sync_dist: one number for both
  }
}

int main(int argc, char** argv) {
  if (dist::launch_info().world_size != 2) {
    std::cerr << "ember_dist_tests: run under `mpirun -np 2` (this process is rank " << dist::launch_info().rank
              << " of " << dist::launch_info().world_size << ")\n";
    return 2;
  }
  doctest::Context context(argc, argv);
  if (dist::rank() != 0) context.setOption("minimal", true);  // rank 1 reports failures only
  const int failed = context.run();
  // Every rank learns whether any failed, so both exit alike.
  const bool any_failed = dist::world().any(failed != 0);
  dist::destroy_process_group();
  return any_failed ? 1 : 0;
}
