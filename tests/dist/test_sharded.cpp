// dist::ShardedDataParallel (ZeRO stage 1 and 2) and the sharded optimizer state, on 2 or 3 ranks (the
// "dist sharded" suite runs under `mpirun -np 2` with the rest of ember_dist_tests, and alone under
// `mpirun -np 3`). In float64 every sharded run is checked against DDP and against one process on the
// whole batch; each rank takes an equal share of a 12-example batch.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>

#include "dist_fixtures.hpp"
#include "ember.hpp"
#include "test_util.hpp"
#include "train/loader_resume.hpp"
#include "train/plugins/ddp_sharded.hpp"
#include "train/plugins/sharded_checkpoint.hpp"
#include "train/plugins/sharded_state.hpp"
#include "trainer_fixtures.hpp"

using namespace ember;
using testing::throws_with;
namespace fs = std::filesystem;

namespace {

using namespace testing::dist_fixtures;

// 6 parameters of different sizes: with 2 ranks owners 0,0,1,1,1,1; with 3 ranks 0,1,1,2,2,2.
nn::Sequential make_net() {
  nn::Sequential net{nn::Linear(6, 8), nn::Tanh(), nn::Linear(8, 8), nn::Tanh(), nn::Linear(8, 3)};
  net->to(kF64);
  return net;
}

enum class Opt { kSGD, kAdamW };
std::shared_ptr<optim::Optimizer> make_opt(Opt o, const std::vector<Tensor>& params) {
  if (o == Opt::kSGD) return std::make_shared<optim::SGD>(params, optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
  return std::make_shared<optim::AdamW>(params, optim::AdamWOptions{.lr = 0.01, .weight_decay = 0.1});
}

constexpr int64_t kBatch = 12;  // divisible by 2 and 3 ranks

// This rank's equal share of a batch.
Tensor share(const Tensor& t) {
  const int64_t n = t.shape()[0] / world();
  return t.narrow(0, n * rank(), n);
}

struct Batch {
  Tensor x, y;
};
Batch next_batch(Generator& g) {
  return {randn({kBatch, 6}, {.dtype = kF64}, &g), randn({kBatch, 3}, {.dtype = kF64}, &g)};
}

}  // namespace

TEST_SUITE("dist sharded") {
  TEST_CASE("the partition: contiguous, balanced by bytes, deterministic") {
    using SDP = dist::ShardedDataParallel;
    CHECK(SDP::partition({8, 8, 8, 8}, 2) == std::vector<int>{0, 0, 1, 1});
    CHECK(SDP::partition({8, 8, 8, 8, 8, 8}, 3) == std::vector<int>{0, 0, 1, 1, 2, 2});
    CHECK(SDP::partition({100, 1, 1, 1}, 2) == std::vector<int>{0, 1, 1, 1});
    CHECK(SDP::partition({1, 1, 1, 100}, 2) == std::vector<int>{0, 0, 0, 1});
    CHECK(SDP::partition({4, 4}, 3) == std::vector<int>{0, 2});  // a rank may own nothing
    CHECK(SDP::partition({5}, 4) == std::vector<int>{2});
    CHECK(SDP::partition({}, 2).empty());
    CHECK(SDP::partition({3, 3}, 1) == std::vector<int>{0, 0});
    // Contiguous runs and nobody holds more than the average plus one parameter.
    const std::vector<int64_t> sizes{7, 300, 12, 12, 900, 5, 64, 64, 3, 250, 31};
    for (int w = 1; w <= 5; ++w) {
      CAPTURE(w);
      const std::vector<int> o = SDP::partition(sizes, w);
      CHECK(std::is_sorted(o.begin(), o.end()));
      std::vector<int64_t> load(w, 0);
      for (size_t i = 0; i < sizes.size(); ++i) load[o[i]] += sizes[i];
      for (int r = 0; r < w; ++r) CHECK(load[r] <= 1648 / w + 900);
      CHECK(SDP::partition(sizes, w) == o);
    }
    CHECK(throws_with<ValueError>([] { SDP::partition({1}, 0); }, "[ShardedDataParallel] partition: world_size"));

    manual_seed(3);
    nn::Sequential net = make_net();
    CHECK(throws_with<ValueError>([&] { dist::ShardedDataParallel s(net, comm(), {.stage = 3}); },
                                  "[ShardedDataParallel] stage must be 1 or 2, got 3"));
    dist::ShardedDataParallel sdp(net, comm());
    REQUIRE(sdp.parameters().size() == 6);
    const std::vector<int> expect = world() == 2   ? std::vector<int>{0, 0, 1, 1, 1, 1}
                                    : world() == 3 ? std::vector<int>{0, 1, 1, 2, 2, 2}
                                                   : std::vector<int>(6, 0);
    for (size_t k = 0; k < 6; ++k) {
      CHECK(sdp.owner(k) == expect[k]);
      CHECK(sdp.owner_of(net->parameters()[k]) == expect[k]);
    }
    CHECK(sdp.owner_of(zeros({2})) == -1);
    for (size_t k : sdp.owned()) CHECK(expect[k] == rank());
    CHECK(throws_with<IndexError>([&] { (void)sdp.owner(6); }, "[ShardedDataParallel] owner: parameter index 6"));
  }

  TEST_CASE("the ranks' models are checked as DDP checks them") {
    nn::Sequential f{nn::Linear(4, 6)};
    if (rank() == 1) f->to(kF64);
    CHECK(throws_with<DistError>([&] { dist::ShardedDataParallel s(f, comm()); },
                                 "[ShardedDataParallel] the ranks hold different models"));
    CHECK(throws_with<DistError>([&] { dist::ShardedDataParallel s(f, comm()); },
                                 "parameter 0 is \"0.weight\" [6, 4] float32 on rank 0 but \"0.weight\" [6, 4] "
                                 "float64 on rank 1"));
  }

  // Stage 1 and 2, SGD with momentum and AdamW, with and without accumulation and clipping, small and
  // large buckets: k steps give the weights of DDP and of one process on the whole batch.
  TEST_CASE("sharded training equals DDP and one process on the whole batch") {
    struct Config {
      int stage;
      Opt opt;
      int accumulate;
      double clip_norm_type;  // 0: no clipping
      double bucket_cap_mb;
    };
    std::vector<Config> configs;
    for (int stage : {1, 2})
      for (Opt o : {Opt::kSGD, Opt::kAdamW}) {
        configs.push_back({stage, o, 1, 0, 0.0008});  // buckets [b3 w3 b2 w2 b1] [w1]: owners mixed
        configs.push_back({stage, o, 2, 0, 25});
        configs.push_back({stage, o, 1, 2.0, 0.0008});
        configs.push_back({stage, o, 2, INFINITY, 0.0008});
      }
    configs.push_back({2, Opt::kAdamW, 1, 1.0, 0.0002});  // three buckets
    for (const Config& c : configs) {
      CAPTURE(c.stage);
      CAPTURE(int(c.opt));
      CAPTURE(c.accumulate);
      CAPTURE(c.clip_norm_type);
      CAPTURE(c.bucket_cap_mb);
      manual_seed(100 + rank());  // different weights per rank: the wrappers start from rank 0's
      nn::Sequential net = make_net(), ddp_net = make_net(), ref = make_net();
      dist::ShardedDataParallel sdp(net, comm(), {.stage = c.stage, .bucket_cap_mb = c.bucket_cap_mb});
      CHECK(same_on_all_ranks(flat(*net)));
      ddp_net->load_state_dict(net->state_dict());
      ref->load_state_dict(net->state_dict());
      dist::DDP ddp(ddp_net, comm(), {.bucket_cap_mb = c.bucket_cap_mb});
      auto opt = make_opt(c.opt, net->parameters()), ddp_opt = make_opt(c.opt, ddp_net->parameters()),
           ref_opt = make_opt(c.opt, ref->parameters());
      const double max_norm = c.clip_norm_type == 2.0 ? 0.05 : c.clip_norm_type == 1.0 ? 0.2 : 0.01;
      Generator g(5);
      for (int step = 0; step < 4; ++step) {
        for (int micro = 0; micro < c.accumulate; ++micro) {
          const Batch b = next_batch(g);
          const bool last = micro + 1 == c.accumulate;
          {
            std::optional<dist::ShardedDataParallel::NoSync> s;
            std::optional<dist::DDP::NoSync> d;
            if (!last) s.emplace(sdp), d.emplace(ddp);
            nn::functional::mse_loss(net(share(b.x)), share(b.y)).backward();
            nn::functional::mse_loss(ddp_net(share(b.x)), share(b.y)).backward();
          }
          nn::functional::mse_loss(ref(b.x), b.y).backward();
          if (!last) {  // accumulating: every gradient is still there, local
            for (const Tensor& p : net->parameters()) CHECK(p.grad().defined());
          }
        }
        // Reduced: this rank holds its own parameters' gradients only, the mean over the whole batch.
        const auto p = net->parameters(), q = ref->parameters();
        for (size_t k = 0; k < p.size(); ++k) {
          CAPTURE(k);
          CHECK(p[k].grad().defined() == (sdp.owner(k) == rank()));
          if (p[k].grad().defined()) CHECK(testing::allclose(p[k].grad(), q[k].grad(), 1e-12, 1e-14));
        }
        if (c.clip_norm_type != 0) {
          const int64_t reads = host_reads();
          const Tensor norm_tensor = sdp.clip_grad_norm_(max_norm, c.clip_norm_type);
          CHECK(host_reads() == reads);  // the norm and the scaling stay on the device
          const double norm = norm_tensor.item<double>();
          nn::clip_grad_norm_(ddp_net->parameters(), max_norm, c.clip_norm_type);
          const double ref_norm = nn::clip_grad_norm_(ref->parameters(), max_norm, c.clip_norm_type).item<double>();
          CHECK(norm == doctest::Approx(ref_norm).epsilon(1e-12));
          if (step == 0) CHECK(ref_norm > max_norm);  // the clipping is live
          for (size_t k = 0; k < p.size(); ++k)
            if (p[k].grad().defined()) CHECK(testing::allclose(p[k].grad(), q[k].grad(), 1e-12, 1e-14));
        }
        opt->step();
        ddp_opt->step();
        ref_opt->step();
        sdp.gather_parameters();
        opt->zero_grad();
        ddp_opt->zero_grad();
        ref_opt->zero_grad();
      }
      CHECK(same_on_all_ranks(flat(*net)));
      CHECK(testing::allclose(flat(*net), flat(*ddp_net), 1e-12, 1e-14));
      CHECK(testing::allclose(flat(*net), flat(*ref), 1e-11, 1e-13));
      CHECK((flat(*net) - flat(*make_net())).abs().max().item<double>() > 1e-3);  // it trained
    }
  }

  TEST_CASE("a gradient no rank has stays undefined; a non-finite one is seen by every rank") {
    manual_seed(9);
    nn::Linear trunk(4, 2), unused(4, 2);
    std::vector<Tensor> params = trunk->parameters();
    for (const Tensor& t : unused->parameters()) params.push_back(t);
    dist::ShardedDataParallel sdp(params, {}, comm(), {.stage = 2, .bucket_cap_mb = 1.0});
    trunk(full({3, 4}, 1.0 + rank())).sum().backward();
    for (size_t k = 2; k < 4; ++k) CHECK(!params[k].grad().defined());
    CHECK(!sdp.found_nonfinite());
    // A NaN in the shard of the rank that owns the trunk's bias: every rank learns it.
    if (rank() == sdp.owner(1)) params[1].grad().fill_(NAN);
    CHECK(sdp.found_nonfinite());
    CHECK(throws_with<ValueError>([&] { sdp.clip_grad_norm_(1.0, 2.0, true); },
                                  "over every rank's gradients is non-finite"));
    CHECK(std::isnan(sdp.clip_grad_norm_(1.0, INFINITY).item<double>()));
    CHECK(sdp.any_rank(rank() == world() - 1));
    CHECK(!sdp.any_rank(false));
  }

  TEST_CASE("optimizer state per rank is about 1/N of DDP's") {
    // 6 equal parameters: 3 per rank on 2 ranks, 2 per rank on 3.
    for (Opt o : {Opt::kSGD, Opt::kAdamW}) {
      CAPTURE(int(o));
      manual_seed(4);
      std::vector<Tensor> a, b;
      for (int i = 0; i < 6; ++i) {
        Tensor w = randn({8, 8}, {.dtype = kF64}).mul_(0.3);
        a.push_back(w.clone().requires_grad_());
        b.push_back(w.clone().requires_grad_());
      }
      dist::ShardedDataParallel sdp(a, {}, comm(), {.stage = 2});
      dist::DDP ddp(b, {}, comm());
      auto opt_a = make_opt(o, a), opt_b = make_opt(o, b);
      Tensor x = randn({4, 8}, {.dtype = kF64});
      for (int step = 0; step < 2; ++step) {
        Tensor ha = x, hb = x;
        for (int i = 0; i < 6; ++i) ha = matmul(ha, a[i]).tanh(), hb = matmul(hb, b[i]).tanh();
        ha.sum().backward();
        hb.sum().backward();
        opt_a->step();
        opt_b->step();
        sdp.gather_parameters();
        opt_a->zero_grad();
        opt_b->zero_grad();
      }
      const double sharded = double(train::state_bytes(opt_a->state_dict()));
      const double full = double(train::state_bytes(opt_b->state_dict()));
      if (rank() == 0)
        MESSAGE("rank ", rank(), ": optimizer state ", sharded, " bytes sharded, ", full, " bytes under DDP");
      CHECK(full > 0);
      if (world() == 2) CHECK(sharded < 0.6 * full);
      CHECK(sharded <= (1.0 / world() + 0.05) * full);
      for (const auto& [key, t] : opt_a->state_dict().state) CHECK(sdp.owner(std::stoul(key.substr(6))) == rank());
      for (size_t i = 0; i < 6; ++i) CHECK(testing::allclose(a[i], b[i], 1e-12, 1e-14));
    }
    // Adagrad makes state for every parameter at construction: drop_unowned_state keeps this rank's.
    std::vector<Tensor> c;
    for (int i = 0; i < 6; ++i) c.push_back(zeros({8, 8}, {.dtype = kF64}).requires_grad_());
    dist::ShardedDataParallel sdp(c, {}, comm());
    optim::Adagrad ada(c);
    const double before = double(train::state_bytes(ada.state_dict()));
    train::drop_unowned_state(ada, train::optimizer_owners(ada, sdp), rank());
    CHECK(double(train::state_bytes(ada.state_dict())) <= (1.0 / world() + 0.05) * before);
  }

  // Consolidate on N ranks, then reload into any number of ranks M: each rank's shard for (rank, M), the
  // shards' union is the whole state, and M optimizers each stepping their shard equal one whole one.
  TEST_CASE("optimizer state: consolidated on rank 0, re-sharded for any rank count") {
    manual_seed(31 + rank());
    nn::Sequential net = make_net(), ref = make_net();
    dist::ShardedDataParallel sdp(net, comm(), {.stage = 2, .bucket_cap_mb = 0.0008});
    ref->load_state_dict(net->state_dict());
    auto opt = make_opt(Opt::kAdamW, net->parameters()), ref_opt = make_opt(Opt::kAdamW, ref->parameters());
    Generator g(8);
    auto train_steps = [&](nn::Sequential& m, optim::Optimizer& o, dist::ShardedDataParallel* s, int steps) {
      for (int i = 0; i < steps; ++i) {
        const Batch b = next_batch(g);
        if (s)
          nn::functional::mse_loss(m(share(b.x)), share(b.y)).backward();
        else
          nn::functional::mse_loss(m(b.x), b.y).backward();
        o.step();
        if (s) s->gather_parameters();
        o.zero_grad();
      }
    };
    Generator g0 = g;
    train_steps(net, *opt, &sdp, 3);
    g = g0;
    train_steps(ref, *ref_opt, nullptr, 3);
    REQUIRE(testing::allclose(flat(*net), flat(*ref), 1e-11, 1e-13));

    const std::vector<int> owners = train::optimizer_owners(*opt, sdp);
    const optim::StateDict whole = train::consolidate_state_dict(opt->state_dict(), owners, comm(), 0);
    const optim::StateDict expect = ref_opt->state_dict();
    CHECK(whole.param_groups == expect.param_groups);
    if (rank() == 0) {
      CHECK(whole.state.size() == expect.state.size());
      CHECK(whole.state.size() == 6 * 3);  // step, exp_avg, exp_avg_sq per parameter
      for (const auto& [key_, t] : expect.state) {
        const std::string& key = key_;  // (clang 14: doctest's CAPTURE cannot capture a structured binding)
        CAPTURE(key);
        REQUIRE(whole.state.count(key));
        CHECK(whole.state.at(key).dtype() == t.dtype());
        CHECK(testing::allclose(whole.state.at(key), t, 1e-10, 1e-14));
      }
    } else {
      CHECK(whole.state.empty());
    }
    // Through a checkpoint file, as a resumed run reads it.
    const fs::path file = fs::temp_directory_path() / "ember_dist_sharded_optimizer.safetensors";
    if (rank() == 0) {
      TensorMap tensors;
      Metadata meta;
      whole.to_safetensors(tensors, meta);
      save(file.string(), tensors, meta);
    }
    comm().barrier();
    Metadata meta;
    const TensorMap tensors = load(file.string(), &meta);
    const optim::StateDict from_file = optim::StateDict::from_safetensors(tensors, meta);
    comm().barrier();
    if (rank() == 0) fs::remove(file);
    CHECK(from_file.state.size() == 18);

    // The same N: each rank loads its shard into a fresh wrapper and optimizer and goes on as one process.
    {
      nn::Sequential again = make_net();
      again->load_state_dict(net->state_dict());
      dist::ShardedDataParallel sdp2(again, comm(), {.stage = 1});
      auto opt2 = make_opt(Opt::kAdamW, again->parameters());
      const std::vector<int> own2 = train::optimizer_owners(*opt2, sdp2);
      opt2->load_state_dict(train::shard_state_dict(from_file, own2, rank()));
      CHECK((train::state_bytes(opt2->state_dict()) < train::state_bytes(from_file) || world() == 1));
      nn::Sequential ref2 = make_net();
      ref2->load_state_dict(ref->state_dict());
      auto ref_opt2 = make_opt(Opt::kAdamW, ref2->parameters());
      ref_opt2->load_state_dict(from_file);
      Generator g1 = g;
      train_steps(again, *opt2, &sdp2, 2);
      g = g1;
      train_steps(ref2, *ref_opt2, nullptr, 2);
      CHECK(testing::allclose(flat(*again), flat(*ref2), 1e-11, 1e-13));
      CHECK(same_on_all_ranks(flat(*again)));
    }

    // Any M (simulated in this process): the shards partition the state, and M optimizers each loaded
    // with its shard and given its own parameters' gradients step as the whole optimizer does.
    for (int m = 1; m <= 4; ++m) {
      CAPTURE(m);
      nn::Sequential sim = make_net(), whole_net = make_net();
      sim->load_state_dict(ref->state_dict());
      whole_net->load_state_dict(ref->state_dict());
      const std::vector<Tensor> params = sim->parameters();
      std::vector<std::shared_ptr<optim::Optimizer>> opts;
      for (int r = 0; r < m; ++r) opts.push_back(make_opt(Opt::kAdamW, params));
      const std::vector<int> own = train::optimizer_owners(*opts[0], params, m);
      size_t entries = 0;
      for (int r = 0; r < m; ++r) {
        const optim::StateDict part = train::shard_state_dict(from_file, own, r);
        entries += part.state.size();
        for (const auto& [key, t] : part.state) CHECK(own[std::stoul(key.substr(6))] == r);
        opts[r]->load_state_dict(part);
      }
      CHECK(entries == from_file.state.size());
      auto whole_opt = make_opt(Opt::kAdamW, whole_net->parameters());
      whole_opt->load_state_dict(from_file);
      Generator gm(77);
      for (int step = 0; step < 2; ++step) {
        const Batch b = next_batch(gm);
        nn::functional::mse_loss(sim(b.x), b.y).backward();
        nn::functional::mse_loss(whole_net(b.x), b.y).backward();
        std::vector<Tensor> grads;
        for (const Tensor& p : params) grads.push_back(p.grad());
        for (int r = 0; r < m; ++r) {
          for (size_t k = 0; k < params.size(); ++k) Tensor(params[k]).set_grad(own[k] == r ? grads[k] : Tensor());
          opts[r]->step();
        }
        for (const Tensor& p : params) Tensor(p).set_grad(Tensor());
        whole_opt->step();
        whole_opt->zero_grad();
      }
      CHECK(testing::equal(flat(*sim), flat(*whole_net)));
    }
    CHECK(throws_with<ValueError>(
        [&] {
          train::shard_state_dict(from_file, {0, 0}, 0);
        },
        "names parameter 2 but the optimizer has 2 parameters"));
  }
}

// ---------------------------------------------------------------- the Trainer's "ddp_sharded"
namespace {
struct Mlp : train::TrainModule {
  nn::Linear fc1{4, 8}, fc2{8, 3};
  Mlp() {
    register_module("fc1", fc1);
    register_module("fc2", fc2);
  }
  Tensor training_step(const data::Batch& b, int64_t) override {
    return nn::functional::cross_entropy(fc2(fc1(b.input).tanh()), b.target);
  }
  train::OptimizerConfig configure_optimizers() override {
    return {std::make_shared<optim::AdamW>(parameters(), optim::AdamWOptions{.lr = 0.05})};
  }
};

// A fit of `epochs` epochs over 96 examples in batches of `batch` per process (clipped, accumulating
// 2 batches), optionally resumed from `resume` and saved to `save`; returns the weights.
Tensor fit_mlp(const std::string& strategy, int64_t batch, int64_t epochs, const std::string& save = "",
               const std::string& resume = "") {
  manual_seed(21);
  Mlp m;
  const bool multi = strategy != "single_device";
  train::Trainer t(trainer_test::quiet({.max_epochs = epochs,
                                        .devices = multi ? world() : 1,
                                        .strategy = strategy,
                                        .precision = "64",
                                        .accumulate_grad_batches = 2,
                                        .gradient_clip_val = 0.3,
                                        .num_sanity_val_steps = 0}));
  if (strategy == "ddp_sharded") CHECK(t.strategy().name() == "ddp_sharded");
  t.fit(m, trainer_test::loader(96, batch, /*shuffle=*/true), nullptr, {.ckpt_path = resume});
  if (!save.empty()) t.save_checkpoint(save);
  return flat(m);
}
}  // namespace

TEST_SUITE("dist sharded") {
  // 16-mixed: an Inf in one parameter's gradient, on one rank, at one step. After the reduction only that
  // parameter's owner sees it; the scaler's decision is shared, so every rank skips the step and halves
  // its scale, as DDP's ranks (which all see the Inf) do.
  TEST_CASE("ddp_sharded with manual optimisation: manual_step trains as ddp; a plain step() is an error") {
    struct Manual : Mlp {
      bool plain = false;
      Manual() { automatic_optimization = false; }
      Tensor training_step(const data::Batch& b, int64_t i) override {
        optim::Optimizer& opt = *optimizers().front();
        Tensor loss = Mlp::training_step(b, i);
        manual_backward(loss);
        if (plain) {
          opt.step();  // this rank's shard only: the others never see it
        } else {
          clip_gradients(opt, 0.3);
          manual_step(opt);
        }
        opt.zero_grad();
        return loss;
      }
    };
    auto run = [](const std::string& strategy, bool plain) {
      manual_seed(21);
      Manual m;
      m.plain = plain;
      train::Trainer t(trainer_test::quiet(
          {.max_epochs = 2, .devices = world(), .strategy = strategy, .precision = "64", .num_sanity_val_steps = 0}));
      t.fit(m, trainer_test::loader(48, 4, /*shuffle=*/true));
      return flat(m);
    };
    const Tensor ddp = run("ddp", false);
    const Tensor sharded = run("ddp_sharded", false);
    CHECK(same_on_all_ranks(sharded));
    CHECK(testing::allclose(sharded, ddp, 1e-12, 1e-14));
    CHECK(throws_with<ValueError>([&] { run("ddp_sharded", true); }, "step with manual_step(opt)"));
  }

  TEST_CASE("ddp_sharded with 16-mixed: an overflow only one rank's shard sees skips the step on every rank") {
    struct Poisoned : Mlp {
      bool poison = false;
      Poisoned() {
        fc2->weight.register_hook(
            [this](const Tensor& g) { return poison ? g * std::numeric_limits<double>::infinity() : g; });
      }
      Tensor training_step(const data::Batch& b, int64_t i) override {
        poison = rank() == world() - 1 && trainer().global_step() == 2;
        return Mlp::training_step(b, i);
      }
    };
    auto run = [](const std::string& strategy, double* scale) {
      manual_seed(21);
      Poisoned m;
      train::Trainer t(trainer_test::quiet({.max_epochs = 2,
                                            .devices = world(),
                                            .strategy = strategy,
                                            .precision = "16-mixed",
                                            .gradient_clip_val = 0.3,
                                            .num_sanity_val_steps = 0}));
      t.fit(m, trainer_test::loader(48, 4, /*shuffle=*/true));
      *scale = t.scaler()->get_scale();
      return flat(m);
    };
    double ddp_scale = 0, sharded_scale = 0;
    const Tensor ddp = run("ddp", &ddp_scale);
    const Tensor sharded = run("ddp_sharded", &sharded_scale);
    CHECK(ddp_scale == 32768.0);  // halved once
    CHECK(sharded_scale == ddp_scale);
    CHECK(same_on_all_ranks(sharded));
    CHECK(testing::allclose(sharded, ddp, 1e-6, 1e-7));
  }

  TEST_CASE(
      "Trainer strategy ddp_sharded trains as ddp and one process; its checkpoint is DDP's and resumes anywhere") {
    const fs::path dir = fs::temp_directory_path() / "ember_dist_sharded_trainer";
    if (rank() == 0) {
      fs::remove_all(dir);
      fs::create_directories(dir);
    }
    comm().barrier();
    const std::string sharded_ckpt = (dir / "sharded.safetensors").string(),
                      ddp_ckpt = (dir / "ddp.safetensors").string();
    const int64_t per_rank = 4, whole = 4 * world();
    const Tensor sharded = fit_mlp("ddp_sharded", per_rank, 2, sharded_ckpt);
    const Tensor ddp = fit_mlp("ddp", per_rank, 2, ddp_ckpt);
    const Tensor one = fit_mlp("single_device", whole, 2);
    CHECK(same_on_all_ranks(sharded));
    CHECK(testing::allclose(sharded, ddp, 1e-12, 1e-14));
    CHECK(testing::allclose(sharded, one, 1e-11, 1e-13));
    // The consolidated checkpoint holds what DDP's holds: every tensor, the same values.
    Metadata meta_s, meta_d;
    const TensorMap s = load(sharded_ckpt, &meta_s), d = load(ddp_ckpt, &meta_d);
    CHECK(s.size() == d.size());
    size_t optimizer_entries = 0;
    for (const auto& [key_, t] : d) {
      const std::string& key = key_;  // (clang 14: see above)
      CAPTURE(key);
      REQUIRE(s.count(key));
      optimizer_entries += key.find("optimizer") != std::string::npos;
      CHECK(testing::allclose(s.at(key), t, 1e-10, 1e-13));
    }
    CHECK(optimizer_entries == 4 * 3);  // step, exp_avg, exp_avg_sq of 4 parameters
    // Resumed for one more epoch, each from its own file, the runs stay together. (A Trainer resume with
    // another rank count is refused by the data loader's saved position, not by the optimizer state:
    // re-sharding that state for any rank count is checked above.)
    const Tensor ddp_more = fit_mlp("ddp", per_rank, 3, "", ddp_ckpt);
    CHECK(testing::allclose(fit_mlp("ddp_sharded", per_rank, 3, "", sharded_ckpt), ddp_more, 1e-12, 1e-14));
    CHECK(testing::allclose(fit_mlp("ddp_sharded", per_rank, 3, "", ddp_ckpt), ddp_more, 1e-12, 1e-14));
    comm().barrier();
    if (rank() == 0) fs::remove_all(dir);
  }
}

// ---------------------------------------------------------------- N ranks -> M ranks
// A checkpoint written by the -np 2 run (consolidated and save_sharded) resumes on 1 rank there and on 3
// ranks in the -np 3 run, which reads it from kCrossDir (fixed, so that it outlives the first mpirun;
// `meson test` runs "dist" before "dist3" by priority, and the 3-rank case fails when the file is missing).
// Every run sees a global batch of 12 (12 x 1, 6 x 2, 4 x 3) of the same shuffled order, so each resumed
// run equals one process trained without a break, in float64.
namespace {
const fs::path kCrossDir = "/tmp/ember_dist_n_to_m";

Tensor fit_global12(const std::string& strategy, int64_t epochs, const std::string& save = "",
                    const std::string& resume = "", bool save_sharded = false,
                    std::shared_ptr<train::Strategy>* keep = nullptr) {
  manual_seed(21);
  Mlp m;
  const bool multi = strategy != "single_device";
  train::TrainerOptions o = trainer_test::quiet({.max_epochs = epochs,
                                                 .devices = multi ? world() : 1,
                                                 .strategy = strategy,
                                                 .precision = "64",
                                                 .accumulate_grad_batches = 2,
                                                 .gradient_clip_val = 0.3,
                                                 .num_sanity_val_steps = 0});
  if (strategy == "ddp_sharded")
    o.strategy_instance =
        std::make_shared<train::DDPShardedStrategy>(train::DDPShardedStrategyOptions{.save_sharded = save_sharded});
  train::Trainer t(o);
  const int64_t batch = multi ? 12 / world() : 12;
  t.fit(m, trainer_test::loader(96, batch, /*shuffle=*/true), nullptr, {.ckpt_path = resume});
  if (!save.empty()) t.save_checkpoint(save);
  if (keep != nullptr) *keep = o.strategy_instance;
  return flat(m);
}

std::string in_dir(const fs::path& dir, const std::string& name) { return (dir / name).string(); }
}  // namespace

TEST_SUITE("dist sharded") {
  TEST_CASE("a ddp_sharded checkpoint, consolidated or save_sharded, resumes on 1 rank and on the same ranks") {
    const int n = world();
    const fs::path dir = n == 2 ? kCrossDir : fs::temp_directory_path() / "ember_dist_sharded_3";
    if (rank() == 0) {
      fs::remove_all(dir);
      fs::create_directories(dir);
    }
    comm().barrier();
    const std::string whole = in_dir(dir, "consolidated.safetensors"), sharded = in_dir(dir, "sharded.safetensors");
    const Tensor reference = fit_global12("single_device", 3);
    fit_global12("ddp_sharded", 2, whole);
    std::shared_ptr<train::Strategy> strategy;
    fit_global12("ddp_sharded", 2, sharded, "", /*save_sharded=*/true, &strategy);
    // The index holds weights and run state; each rank's shard only its owned optimizer entries.
    Metadata meta;
    const TensorMap index = load(sharded, &meta);
    for (const auto& [key, t] : index) CHECK(key.find("optimizer_states.") != 0);
    CHECK(meta.at("ember_checkpoint").find("optimizer_shards") != std::string::npos);
    size_t entries = 0;
    for (int r = 0; r < n; ++r) {
      const std::string shard = sharded + train::shard_suffix(r, n);
      REQUIRE(fs::exists(shard));
      entries += load(shard).size();
    }
    CHECK(entries == load(whole).size() - index.size());  // every optimizer entry once
    CHECK(testing::allclose(fit_global12("ddp_sharded", 3, "", sharded), reference, 1e-11, 1e-13));
    if (rank() == 0) {
      // One process resumes either layout.
      CHECK(testing::allclose(fit_global12("single_device", 3, "", whole), reference, 1e-11, 1e-13));
      CHECK(testing::allclose(fit_global12("single_device", 3, "", sharded), reference, 1e-11, 1e-13));
      // Copies and removals take the shard files along; a missing or damaged shard is named.
      const std::string copy = in_dir(dir, "copy.safetensors");
      train::LocalCheckpointIO io;
      strategy->copy_checkpoint(sharded, copy, io);
      for (int r = 0; r < n; ++r) CHECK(fs::exists(copy + train::shard_suffix(r, n)));
      CHECK(testing::allclose(fit_global12("single_device", 3, "", copy), reference, 1e-11, 1e-13));
      // A shard of another save beside the index (the run stopped between writing the shards and the
      // index) is refused, not mixed in.
      const std::string first_shard = copy + train::shard_suffix(0, n);
      train::Checkpoint other = train::Checkpoint::load(first_shard);
      other.state["save_id"] = "0123456789abcdef";
      other.save(first_shard);
      CHECK(throws_with<Error>([&] { fit_global12("single_device", 3, "", copy); }, "belongs to another save"));
      strategy->copy_checkpoint(sharded, copy, io);  // whole again
      const std::string last_shard = copy + train::shard_suffix(n - 1, n);
      fs::resize_file(last_shard, fs::file_size(last_shard) - 3);
      CHECK(throws_with<Error>([&] { fit_global12("single_device", 3, "", copy); }, last_shard));
      fs::remove(last_shard);
      CHECK(throws_with<IOError>([&] { fit_global12("single_device", 3, "", copy); }, "needs its shard " + last_shard));
      strategy->remove_checkpoint(copy, io);
      CHECK_FALSE(fs::exists(copy));
      for (int r = 0; r < n; ++r) CHECK_FALSE(fs::exists(copy + train::shard_suffix(r, n)));
    }
    comm().barrier();
    if (n != 2 && rank() == 0) fs::remove_all(dir);  // the 2-rank files stay for the -np 3 run
  }

  TEST_CASE("a checkpoint of the 2-rank run resumes on 3 ranks (the -np 3 run)") {
    if (world() != 3) {
      MESSAGE("checked by the -np 3 run, which reads this run's files in " << kCrossDir.string());
      return;
    }
    const std::string whole = in_dir(kCrossDir, "consolidated.safetensors"),
                      sharded = in_dir(kCrossDir, "sharded.safetensors");
    INFO("the -np 2 run of ember_dist_tests writes " << kCrossDir.string() << " (meson test runs it first)");
    REQUIRE(fs::exists(whole));
    REQUIRE(fs::exists(sharded + train::shard_suffix(1, 2)));
    const Tensor reference = fit_global12("single_device", 3);
    CHECK(testing::allclose(fit_global12("ddp_sharded", 3, "", whole), reference, 1e-11, 1e-13));
    CHECK(testing::allclose(fit_global12("ddp_sharded", 3, "", sharded), reference, 1e-11, 1e-13));
    CHECK(testing::allclose(fit_global12("ddp", 3, "", sharded), reference, 1e-11, 1e-13));
  }
}

// ---------------------------------------------------------------- a loader's position across world sizes
namespace {
// The loader of rank `r` of `n` over 24 examples whose input is their index.
std::shared_ptr<data::DataLoader> index_loader(int64_t n, int64_t r, int64_t batch) {
  Tensor x = arange(24).to(kF64).reshape({24, 1});
  return std::make_shared<data::DataLoader>(
      std::make_shared<data::TensorDataset>(x, x),
      data::DataLoaderOptions{
          .batch_size = batch, .seed = 5, .sampler = std::make_shared<data::DistributedSampler>(24, n, r, true, 5)});
}
std::vector<int64_t> take(data::DataLoader& l, int64_t batches) {
  std::vector<int64_t> out;
  int64_t i = 0;
  for (const data::Batch& b : l) {
    for (double v : b.input.reshape({-1}).to_vector<double>()) out.push_back(static_cast<int64_t>(v));
    if (++i == batches) break;  // a batch taken counts as yielded
  }
  return out;
}
}  // namespace

TEST_SUITE("dist sharded") {
  TEST_CASE("a loader position maps to another world size when the global batch is the same") {
    // 2 ranks x 3 read 2 batches (12 examples); 3 ranks x 2 read the other 12, each once.
    std::vector<int64_t> seen;
    nlohmann::json saved;
    for (int64_t r = 0; r < 2; ++r) {
      auto l = index_loader(2, r, 3);
      l->set_epoch(1);
      for (int64_t i : take(*l, 2)) seen.push_back(i);
      if (r == 0) saved = l->state_dict();
    }
    for (int64_t r = 0; r < 3; ++r) {
      auto l = index_loader(3, r, 2);
      l->load_state_dict(train::map_loader_state(saved, *l));
      CHECK(l->epoch() == 1);
      for (int64_t i : take(*l, -1)) seen.push_back(i);
    }
    std::sort(seen.begin(), seen.end());
    std::vector<int64_t> all(24);
    std::iota(all.begin(), all.end(), 0);
    CHECK(seen == all);
    // Another global batch mid-epoch cannot map; at an epoch boundary any batch size can.
    auto other = index_loader(3, 0, 3);
    CHECK(throws_with<ValueError>([&] { train::map_loader_state(saved, *other); },
                                  "global batch of 3 x 2 ranks = 6 but this run's is 3 x 3 = 9"));
    nlohmann::json boundary = saved;
    boundary["batches_yielded"] = 0;
    other->load_state_dict(train::map_loader_state(boundary, *other));
    CHECK(other->epoch() == 1);
    // Another dataset never maps.
    auto smaller = std::make_shared<data::DataLoader>(
        std::make_shared<data::TensorDataset>(zeros({12, 1}), zeros({12, 1})),
        data::DataLoaderOptions{.batch_size = 4, .sampler = std::make_shared<data::DistributedSampler>(12, 3, 0)});
    CHECK(throws_with<ValueError>([&] { train::map_loader_state(saved, *smaller); }, "had 24 examples"));
  }
}

TEST_SUITE("dist sharded") {
  TEST_CASE("ModelCheckpoint keeps a save_sharded checkpoint whole: old shards go with their index, last copies them") {
    const fs::path dir = fs::temp_directory_path() / "ember_dist_sharded_mc";
    if (rank() == 0) fs::remove_all(dir);
    comm().barrier();
    manual_seed(21);
    Mlp m;
    train::TrainerOptions o = trainer_test::quiet({.max_epochs = 3, .devices = world(), .precision = "64"});
    o.strategy_instance =
        std::make_shared<train::DDPShardedStrategy>(train::DDPShardedStrategyOptions{.save_sharded = true});
    o.enable_checkpointing = true;
    o.callbacks = {std::make_shared<train::ModelCheckpoint>(
        train::ModelCheckpointOptions{.dirpath = dir.string(), .save_last = true, .save_top_k = 1})};
    train::Trainer t(o);
    t.fit(m, trainer_test::loader(48, 12 / world(), true));
    comm().barrier();
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    std::vector<std::string> want;
    for (const std::string base : {"epoch=2-step=12.safetensors", "last.safetensors"}) {
      want.push_back(base);
      for (int r = 0; r < world(); ++r) want.push_back(base + train::shard_suffix(r, world()));
    }
    std::sort(want.begin(), want.end());
    CHECK(names == want);
    comm().barrier();
    if (rank() == 0) fs::remove_all(dir);
  }
}
