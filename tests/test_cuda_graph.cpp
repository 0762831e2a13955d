// CUDA graphs: the Trainer option's checks and the batch routing (CPU), and on a GPU the replay of a
// small MLP step against eager steps (same weights after N steps, with a scheduler changing the lr and
// with Adam's bias corrections), dropout drawing new masks each replay, the host-read error during
// capture, the graph pool's memory, and Trainer(cuda_graphs=true) against cuda_graphs=false. Without a
// CUDA device the GPU cases print why they skip.
#include <doctest/doctest.h>

#include "core/cuda_graph.hpp"
#include "core/profiler.hpp"
#include "kernels/philox.hpp"
#include "train/cuda_graph_step.hpp"
#include "trainer_fixtures.hpp"

using namespace trainer_test;
using ember::testing::throws_with;

namespace {

const Device kCuda{Device::Kind::CUDA, 0};

train::CudaGraphSetup ok_setup() {
  return {.device = kCuda,
          .automatic_optimization = true,
          .precision = "32-true",
          .accumulate_grad_batches = 1,
          .strategy = "single_device",
          .world_size = 1};
}

data::Batch batch_of(int64_t rows) {
  return {.input = zeros({rows, 4}), .target = zeros({rows}, {.dtype = kI64}), .extra = {}};
}

}  // namespace

TEST_CASE("cuda graph option: what it cannot take is an error naming it") {
  train::check_cuda_graph_setup(ok_setup());
  train::check_cuda_graph_setup([] {
    auto s = ok_setup();
    s.precision = "bf16-mixed";
    return s;
  }());
  auto with = [](auto change) {
    auto s = ok_setup();
    change(s);
    return [s] { train::check_cuda_graph_setup(s); };
  };
  CHECK(throws_with<ValueError>(with([](auto& s) { s.device = kCPU; }), "cuda_graphs needs accelerator=cuda"));
  CHECK(throws_with<ValueError>(with([](auto& s) { s.automatic_optimization = false; }), "manual optimisation"));
  CHECK(throws_with<ValueError>(with([](auto& s) { s.precision = "16-mixed"; }), "GradScaler"));
  CHECK(throws_with<ValueError>(with([](auto& s) { s.accumulate_grad_batches = 4; }),
                                "accumulate_grad_batches=1, got 4"));
  CHECK(throws_with<ValueError>(with([](auto& s) {
                                  s.strategy = "ddp";
                                  s.world_size = 2;
                                }),
                                "one device only; strategy \"ddp\""));
  CHECK(throws_with<ValueError>(with([](auto& s) { s.detect_anomaly = true; }), "detect_anomaly"));
}

TEST_CASE("cuda graph option: the Trainer refuses a CPU run with cuda_graphs") {
  manual_seed(0);
  Tiny m;
  train::TrainerOptions o = quiet({.max_epochs = 1, .accelerator = "cpu"});
  o.cuda_graphs = true;
  train::Trainer t(o);
  CHECK(throws_with<ValueError>([&] { t.fit(m, loader(64, 16, false)); }, "cuda_graphs needs accelerator=cuda"));
}

TEST_CASE("cuda graph plan: warm-up eagerly, capture once, replay the same shapes, other shapes eagerly") {
  using R = train::GraphPlan::Route;
  train::GraphPlan plan(2);
  const auto full = train::signature_of(batch_of(8)), partial = train::signature_of(batch_of(3));
  CHECK(plan.next(full) == R::kEager);
  CHECK(plan.next(full) == R::kEager);
  CHECK(plan.next(full) == R::kCapture);
  CHECK(plan.next(full) == R::kReplay);
  CHECK(plan.next(partial) == R::kEager);  // the last partial batch
  CHECK(plan.next(full) == R::kReplay);
  CHECK(plan.replays() == 2);
  CHECK(plan.eager_fallbacks() == 1);
  CHECK(*plan.captured() == full);
  plan.disable();
  CHECK(plan.next(full) == R::kEager);

  // The signature sees names, shapes and dtypes.
  data::Batch b = batch_of(8);
  b.extra["mask"] = ones({8});
  CHECK_FALSE(train::signature_of(b) == full);
  data::Batch c = batch_of(8);
  c.target = c.target.to(kI32);
  CHECK_FALSE(train::signature_of(c) == full);
  CHECK(full.str() == "{input: [8, 4] float32 cpu, target: [8] int64 cpu}");
}

TEST_CASE("cuda graph log recorder: log calls are recorded while it is active, and only then") {
  const Tensor v = ones({});
  CHECK_FALSE(train::record_graph_log("a", v, {}));
  {
    train::GraphLogRecorder r;
    CHECK(train::record_graph_log("a", v, {.prog_bar = true}));
    CHECK(train::record_graph_log("b", v, {}));
    auto calls = r.take();
    REQUIRE(calls.size() == 2);
    CHECK(calls[0].name == "a");
    CHECK(calls[0].options.prog_bar);
    CHECK(calls[1].name == "b");
  }
  CHECK_FALSE(train::record_graph_log("a", v, {}));
}

TEST_CASE("cuda graph log recorder: a number or a Metric logged inside a captured step is an error") {
  // Their values would be the capture step's in every replay; a tensor is recorded and re-issued instead.
  struct LogsInCapture : Tiny {
    std::string what;
    Tensor training_step(const data::Batch& b, int64_t i) override {
      train::GraphLogRecorder recording;  // as the graph step's capture
      metrics::MeanMetric mean;
      if (what == "number") log("lr", 0.1);
      if (what == "metric") log("mean", mean);
      return Tiny::training_step(b, i);
    }
  };
  for (const char* what : {"number", "metric"}) {
    CAPTURE(what);
    LogsInCapture m;
    m.what = what;
    train::Trainer t(quiet({.max_epochs = 1, .accelerator = "cpu"}));
    CHECK(throws_with<ValueError>([&] { t.fit(m, loader(16, 8, false)); }, "captured by cuda_graphs"));
  }
}

// ---------------------------------------------------------------- on a GPU

namespace {

struct Mlp {
  nn::Sequential net{nn::Linear(16, 32), nn::ReLU(), nn::Dropout(0.0), nn::Linear(32, 4)};
};

// N steps of a small MLP on the GPU, eagerly or with steps 3.. replayed from a graph; the weights after.
std::vector<Tensor> train_mlp(bool graphed, bool adam, int steps) {
  manual_seed(0);
  Mlp m;
  m.net->to(kCuda);
  std::shared_ptr<optim::Optimizer> opt;
  if (adam)
    opt = std::make_shared<optim::AdamW>(m.net->parameters(), optim::AdamWOptions{.lr = 1e-2});
  else
    opt = std::make_shared<optim::SGD>(m.net->parameters(), optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
  optim::StepLR sched(*opt, 2, 0.5);  // the lr changes every other step
  Generator g(7);
  std::vector<Tensor> xs, ys;
  for (int i = 0; i < steps; ++i) {
    xs.push_back(randn({8, 16}, {}, &g).to(kCuda));
    ys.push_back(randn({8, 4}, {}, &g).to(kCuda));
  }
  Tensor x = zeros({8, 16}, {.device = kCuda}), y = zeros({8, 4}, {.device = kCuda});
  auto step = [&] {
    opt->zero_grad(false);
    Tensor loss = nn::functional::mse_loss(m.net(x), y);
    loss.backward();
    opt->step();
    return loss;
  };
  CudaGraph graph(kCuda);
  for (int i = 0; i < steps; ++i) {
    x.copy_(xs[i]);
    y.copy_(ys[i]);
    if (!graphed || i < 2) {
      step();
    } else if (i == 2) {
      {
        CudaGraphCapture cap(graph);
        step();
      }
      graph.replay();
    } else {
      graph.rerun([&] { opt->step(); });
      graph.replay();
    }
    sched.step();
  }
  std::vector<Tensor> out;
  for (const Tensor& p : m.net->parameters()) out.push_back(p.detach().cpu());
  return out;
}

}  // namespace

TEST_CASE("cuda graph: replaying an MLP step equals eager steps, with a scheduler changing the lr") {
  CUDA_OR_SKIP();
  for (bool adam : {false, true}) {
    CAPTURE(adam);
    const auto eager = train_mlp(false, adam, 7), graphed = train_mlp(true, adam, 7);
    REQUIRE(eager.size() == graphed.size());
    for (size_t i = 0; i < eager.size(); ++i) CHECK(ember::testing::equal(graphed[i], eager[i]));
  }
}

TEST_CASE("cuda graph: dropout draws a new mask each replay, the masks eager steps draw") {
  CUDA_OR_SKIP();
  Tensor x = ones({64, 64}, {.device = kCuda});
  manual_seed(11);
  std::vector<Tensor> eager;
  for (int i = 0; i < 3; ++i) eager.push_back(dropout(x, 0.5, true).cpu());
  manual_seed(11);
  CudaGraph graph(kCuda);
  Tensor out;
  {
    CudaGraphCapture cap(graph);
    out = dropout(x, 0.5, true);
  }
  for (int i = 0; i < 3; ++i) {
    graph.replay();
    CHECK(ember::testing::equal(out.cpu(), eager[i]));
  }
  CHECK_FALSE(ember::testing::equal(eager[0], eager[1]));
  CHECK(default_generator().state().offset == [] {  // the generator is where three eager draws leave it
    Generator g(11);
    for (int i = 0; i < 3; ++i) g.advance(kernels::philox_blocks(64 * 64));
    return g.state().offset;
  }());
}

TEST_CASE("cuda graph: a checkpointed dropout's recompute repeats the forward's mask in every replay") {
  CUDA_OR_SKIP();
  // w = 1: y = dropout(2 w) = 4 mask and dy.sum()/dw = 4 mask, so the gradient equals y exactly when the
  // backward's recompute drew the forward's mask.
  Tensor w = ones({64, 64}, {.device = kCuda}).requires_grad_(true);
  const std::function<Tensor(const std::vector<Tensor>&)> block = [](const std::vector<Tensor>& in) {
    return dropout(in[0] * 2.0, 0.5, true);
  };
  manual_seed(12);
  std::vector<Tensor> eager;
  for (int i = 0; i < 3; ++i) {
    Tensor y = nn::checkpoint(block, {w});
    eager.push_back(y.detach().cpu());
    CHECK(ember::testing::equal(autograd::grad({y.sum()}, {w})[0].cpu(), eager.back()));
  }
  const uint64_t eager_offset = default_generator().state().offset;
  manual_seed(12);
  CudaGraph graph(kCuda);
  Tensor y, g;
  {
    CudaGraphCapture cap(graph);
    y = nn::checkpoint(block, {w});
    g = autograd::grad({y.sum()}, {w})[0];
  }
  for (int i = 0; i < 3; ++i) {
    CAPTURE(i);
    graph.replay();
    CHECK(ember::testing::equal(y.cpu(), eager[i]));
    CHECK(ember::testing::equal(g.cpu(), eager[i]));
  }
  CHECK(default_generator().state().offset == eager_offset);
}

TEST_CASE("cuda graph: the ops profiler times eager CUDA ops and leaves captured ones untimed") {
  CUDA_OR_SKIP();
  Tensor x = ones({256, 256}, {.device = kCuda});
  profiler::Profiler p;
  p.start();
  Tensor eager = x * 2.0;  // timed by two events on its stream
  CudaGraph graph(kCuda);
  Tensor out;
  {
    CudaGraphCapture cap(graph);
    out = x * 3.0;  // runs at replay: events recorded now would be part of the graph, never timed
  }
  graph.replay();
  p.stop();
  int timed = 0, untimed = 0;
  for (const profiler::Event& e : p.events())
    if (e.name == "mul") ++(e.cuda_us >= 0 ? timed : untimed);
  CHECK(timed == 1);
  CHECK(untimed == 1);
  CHECK(out.cpu().to_vector<float>()[0] == 3.0f);
  CHECK(eager.cpu().to_vector<float>()[0] == 2.0f);
}

TEST_CASE("cuda graph: numbers in elementwise ops are captured as values (no host copy), results as on the CPU") {
  CUDA_OR_SKIP();
  Tensor xc = arange(6, kF32).view({2, 3}), ic = arange(6, kI64);
  Tensor x = xc.to(kCuda), i = ic.to(kCuda);
  CudaGraph graph(kCuda);
  Tensor a, b, c, d;
  {
    CudaGraphCapture cap(graph);
    a = (x * 2.0 + 1) / 3;
    b = i + 3;
    c = pow(2.0, x);
    d = where(x > 2.5, x, 0.5);
  }
  graph.replay();
  CHECK(ember::testing::equal(a.cpu(), (xc * 2.0 + 1) / 3));
  CHECK(ember::testing::equal(b.cpu(), ic + 3));
  CHECK(ember::testing::allclose(c.cpu(), pow(2.0, xc), 1e-6));
  CHECK(ember::testing::equal(d.cpu(), where(xc > 2.5, xc, 0.5)));
}

TEST_CASE("cuda graph: a host read during capture is an error naming it, and the capture is dropped") {
  CUDA_OR_SKIP();
  Tensor x = ones({4}, {.device = kCuda});
  CudaGraph graph(kCuda);
  CHECK(throws_with<Error>(
      [&] {
        CudaGraphCapture cap(graph);
        (void)(x * 2).sum().item<float>();
      },
      "reads to the host while a CUDA graph captures"));
  CHECK_FALSE(graph.captured());
  CHECK_FALSE(is_capturing(kCuda));
  CHECK(throws_with<Error>(
      [&] {
        CudaGraphCapture cap(graph);
        cap.stream().synchronize();
      },
      "Stream::synchronize() reads to the host"));
  CHECK(throws_with<Error>(
      [&] {
        CudaGraphCapture cap(graph);
        (void)cap.stream().query();
      },
      "Stream::query() reads to the host"));
  Tensor pinned = ones({4}).pin_memory();
  CHECK(throws_with<Error>(
      [&] {
        CudaGraphCapture cap(graph);
        (void)pinned.to(kCuda, false, /*non_blocking=*/true);
      },
      "a non-blocking copy between pinned host memory and the device runs while a CUDA graph captures"));
  CHECK_FALSE(graph.captured());
  // The legacy default stream cannot capture.
  CHECK(throws_with<DeviceError>([&] { graph.capture_begin(); }, "legacy default stream"));
}

TEST_CASE("cuda graph: capture allocates from the graph's pool, which lives as long as the graph") {
  CUDA_OR_SKIP();
  Tensor x = ones({1 << 16}, {.device = kCuda});
  const int64_t before = memory_stats(kCuda).current_bytes;
  auto graph = std::make_unique<CudaGraph>(kCuda);
  Tensor out;
  const void* freed_in_capture = nullptr;
  {
    CudaGraphCapture cap(*graph);
    Tensor tmp = x * 2;  // freed during capture: reusable by this capture only
    out = tmp + 1;
    freed_in_capture = tmp.raw_data();
  }
  graph->replay();
  CHECK(out.cpu().to_vector<float>()[0] == 3.0f);
  // Eager work after capture never gets the graph's blocks, not even the one freed during capture.
  Tensor eager = full({1 << 16}, -1.0, {.device = kCuda});
  CHECK(eager.raw_data() != freed_in_capture);
  x.fill_(5);
  graph->replay();  // writes its own blocks only: eager keeps its -1
  CHECK(out.cpu().to_vector<float>()[0] == 11.0f);
  CHECK(max(abs(eager + 1.0)).item<float>() == 0.0f);
  graph.reset();
  out = Tensor();
  eager = Tensor();
  CHECK(memory_stats(kCuda).current_bytes == before);
}

TEST_CASE("cuda graph: a stream forked into the capture cannot allocate (its memory would be eager memory)") {
  CUDA_OR_SKIP();
  Tensor x = ones({1 << 10}, {.device = kCuda});
  CudaGraph graph(kCuda);
  Stream side(kCuda);
  {
    CudaGraphCapture cap(graph);
    Tensor y = x * 2;
    side.wait(cap.stream());  // side joins the capture
    {
      StreamGuard on_side(side);
      CHECK(throws_with<Error>([] { (void)empty({16}, {.device = kCuda}); },
                               "a stream that joined a CUDA graph capture"));
      CHECK(throws_with<Error>([&] { record_stream(y, side); }, "joined a CUDA graph capture"));
    }
    cap.stream().wait(side);  // joins back, or the capture cannot end
  }
  graph.replay();
  Stream::current(kCuda).synchronize();
}

TEST_CASE(
    "cuda graph: indexing, losses, tril, pad, interpolate and the composed attention capture (no host copy or read)") {
  CUDA_OR_SKIP();
  namespace F = nn::functional;
  manual_seed(7);
  // Each of these used to copy a host-made table to the device (arange, tril, pad's index, interpolate's
  // taps) or read an index range, a check or the masked attention's dead rows back to the host; both are
  // errors while a graph captures.
  const std::vector<Tensor> host = {randn({2, 3, 8, 8}),       randint(0, 8, {2, 3, 8, 4}), randn({16, 5}),
                                    randint(0, 5, {16}),       sigmoid(randn({16})),        rand({16}),
                                    rand({8, 8}) > Scalar(0.3)};
  auto run = [](const std::vector<Tensor>& in) {
    const Tensor &x = in[0], &idx = in[1], &logits = in[2], &y = in[3], &p = in[4], &t = in[5], &mask = in[6];
    return std::vector<Tensor>{tril(x),
                               triu(x, 1),
                               F::pad(x, {2, 3, 1, 2}, "reflect"),
                               F::pad(x, {1, 1, 2, 2}, "replicate"),
                               F::pad(x, {3, 1, 2, 2}, "circular"),
                               F::scaled_dot_product_attention(x, x, x, {}, 0.0, true),  // f32: composed
                               F::scaled_dot_product_attention(x, x, x, mask),
                               x.gather(3, idx),
                               x.scatter_add(3, idx, x.narrow(3, 0, 4)),
                               F::nll_loss(log_softmax(logits, 1), y),
                               F::binary_cross_entropy(p, t),
                               arange(-3, 9, 2, kF32, x.device()),
                               F::interpolate(x, {.size = {11, 5}, .mode = "bilinear", .align_corners = false}),
                               F::interpolate(x, {.scale_factor = {1.5, 2.0}, .mode = "nearest"})};
  };
  const std::vector<Tensor> want = run(host);
  std::vector<Tensor> dev;
  for (const Tensor& h : host) dev.push_back(h.to(kCuda));
  const std::vector<Tensor> eager = run(dev);  // also the warm-up: cuBLAS's handle exists before capture
  CudaGraph graph(kCuda);
  std::vector<Tensor> got;
  {
    CudaGraphCapture cap(graph);
    got = run(dev);
  }
  graph.replay();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    CAPTURE(i);
    CHECK(max(abs(eager[i].cpu() - want[i])).item<float>() < 1e-5f);
    CHECK(max(abs(got[i].cpu() - want[i])).item<float>() < 1e-5f);
  }
}

// An MLP regression with dropout, AdamW and a per-step schedule, with an MSE loss (no host read in it).
struct GraphedRegression : train::TrainModule {
  nn::Sequential net{nn::Linear(4, 16), nn::ReLU(), nn::Dropout(0.1), nn::Linear(16, 3)};
  GraphedRegression() { register_module("net", net); }
  Tensor training_step(const data::Batch& b, int64_t) override {
    Tensor loss = nn::functional::mse_loss(net(b.input), b.target);
    log("train_loss", loss, {.on_step = true, .on_epoch = true});
    return loss;
  }
  train::OptimizerConfig configure_optimizers() override {
    auto opt = std::make_shared<optim::AdamW>(parameters(), optim::AdamWOptions{.lr = 1e-2});
    return {opt,
            train::LRSchedulerConfig{.scheduler = std::make_shared<optim::StepLR>(*opt, 3, 0.7), .interval = "step"}};
  }
};

TEST_CASE("cuda graph: Trainer with cuda_graphs trains as it does without") {
  CUDA_OR_SKIP();
  auto run = [](bool graphs) {
    manual_seed(0);
    GraphedRegression m;
    Generator g(3);
    Tensor x = randn({100, 4}, {}, &g), y = randn({100, 3}, {}, &g);
    auto data = std::make_shared<data::DataLoader>(data::TensorDataset(x, y),
                                                   data::DataLoaderOptions{.batch_size = 16, .shuffle = true});
    train::TrainerOptions o = quiet({.max_epochs = 2, .accelerator = "cuda", .deterministic = true});
    o.cuda_graphs = graphs;
    train::Trainer t(o);
    t.fit(m, data);  // 6 full batches (3 eager warm-up, a capture, replays) and a partial one (eager) per epoch
    CHECK(t.cuda_graph_replays() == (graphs ? 2 + 6 : 0));
    std::vector<Tensor> out;
    for (const Tensor& p : m.parameters()) out.push_back(p.detach().cpu());
    return std::make_pair(out, t.callback_metrics().at("train_loss_epoch"));
  };
  const auto [eager, eager_loss] = run(false);
  const auto [graphed, graphed_loss] = run(true);
  for (size_t i = 0; i < eager.size(); ++i) CHECK(ember::testing::equal(graphed[i], eager[i]));
  CHECK(graphed_loss == eager_loss);  // every replay's loss was logged (re-issued after the replay)
}

TEST_CASE("cuda graph: a parameter without a gradient is not stepped, and freezing layers mid-run recaptures") {
  CUDA_OR_SKIP();
  // AdamW's weight decay would shrink a parameter the loss does not reach if the graph stepped it; a
  // callback freezes the first layer at epoch 1, after which the graph must leave it alone.
  struct PartlyUsed : GraphedRegression {
    nn::Linear unused{4, 4};
    PartlyUsed() { register_module("unused", unused); }
    train::OptimizerConfig configure_optimizers() override {
      return {std::make_shared<optim::AdamW>(parameters(), optim::AdamWOptions{.lr = 1e-2, .weight_decay = 0.1})};
    }
  };
  struct FreezeAtEpoch1 : train::Callback {
    void on_train_epoch_start(train::Trainer& t, train::TrainModule& m) override {
      if (t.current_epoch() == 1) (*static_cast<PartlyUsed&>(m).net)[0]->requires_grad_(false);
    }
  };
  auto run = [](bool graphs) {
    manual_seed(0);
    PartlyUsed m;
    const Tensor unused_before = m.unused->weight.detach().clone();
    const Tensor first_before = m.net->at<nn::LinearImpl>(0)->weight.detach().clone();
    Generator g(3);
    Tensor x = randn({100, 4}, {}, &g), y = randn({100, 3}, {}, &g);
    auto data = std::make_shared<data::DataLoader>(data::TensorDataset(x, y),
                                                   data::DataLoaderOptions{.batch_size = 16, .shuffle = true});
    train::TrainerOptions o = quiet({.max_epochs = 3,
                                     .accelerator = "cuda",
                                     .deterministic = true,
                                     .callbacks = {std::make_shared<FreezeAtEpoch1>()}});
    o.cuda_graphs = graphs;
    train::Trainer t(o);
    t.fit(m, data);
    // Epoch 0: 3 warm-up steps, a capture, 2 replays; epoch 1 (frozen): the same again; epoch 2: 6 replays.
    CHECK(t.cuda_graph_replays() == (graphs ? 2 + 2 + 6 : 0));
    CHECK(ember::testing::equal(m.unused->weight.detach().cpu(), unused_before));
    CHECK_FALSE(ember::testing::equal(m.net->at<nn::LinearImpl>(0)->weight.detach().cpu(), first_before));
    std::vector<Tensor> out;
    for (const Tensor& p : m.parameters()) out.push_back(p.detach().cpu());
    return out;
  };
  const std::vector<Tensor> eager = run(false), graphed = run(true);
  for (size_t i = 0; i < eager.size(); ++i) CHECK(ember::testing::equal(graphed[i], eager[i]));
}

TEST_CASE("cuda graph option: a GradientAccumulationScheduler that would accumulate is refused") {
  Tiny m;
  train::TrainerOptions o = quiet({.max_epochs = 1,
                                   .accelerator = "cpu",
                                   .callbacks = {std::make_shared<train::GradientAccumulationScheduler>(
                                       std::map<int64_t, int64_t>{{1, 2}})}});  // accumulates from epoch 1
  o.cuda_graphs = true;
  train::Trainer t(o);
  CHECK(throws_with<ValueError>([&] { t.fit(m, loader(64, 16, false)); }, "cannot accumulate"));
}
