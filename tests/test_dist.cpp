// ember::dist in one process: the single-process communicator, argument checks, the launcher
// environment, autograd's end-of-backward callbacks, DDP and the Trainer's "ddp" strategy with a group
// of one. The multi-process tests (mpirun -np 2) are in tests/dist/.
#include <doctest/doctest.h>

#include <cstdlib>

#include "ember.hpp"
#include "test_util.hpp"
#include "trainer_fixtures.hpp"

using namespace ember;
using testing::throws_with;

namespace {
// Sets environment variables for one scope and removes them after.
struct ScopedEnv {
  std::vector<std::string> names;
  ScopedEnv(std::initializer_list<std::pair<const char*, const char*>> vars) {
    for (auto [k, v] : vars) {
      setenv(k, v, 1);
      names.emplace_back(k);
    }
  }
  ~ScopedEnv() {
    for (const auto& n : names) unsetenv(n.c_str());
  }
};
}  // namespace

TEST_SUITE("dist") {
  TEST_CASE("the single-process communicator: collectives of one rank") {
    auto comm = dist::make_single_process_communicator();
    CHECK(comm->rank() == 0);
    CHECK(comm->world_size() == 1);
    CHECK(comm->backend() == "single");
    Tensor t = tensor<float>({1, 2, 3});
    comm->all_reduce(t, dist::ReduceOp::kAvg);
    CHECK(testing::equal(t, tensor<float>({1, 2, 3})));
    comm->broadcast(t, 0);
    Tensor g = comm->all_gather(t);
    CHECK(g.shape() == Shape{1, 3});
    CHECK(testing::equal(g.select(0, 0), t));
    Tensor r = comm->reduce_scatter(g.to(kF64));
    CHECK(r.shape() == Shape{3});
    CHECK(testing::equal(r, t.to(kF64)));
    CHECK(comm->all_reduce_scalar(2.5, dist::ReduceOp::kSum) == 2.5);
    CHECK(comm->broadcast_string("hello") == "hello");
    CHECK(comm->any(true));
    dist::Work w = comm->barrier_async();
    w.wait();
    CHECK(w.is_completed());
    CHECK(dist::Work().is_completed());
  }

  TEST_CASE("communicator arguments are checked before anything travels") {
    auto comm = dist::make_single_process_communicator();
    Tensor m = randn({3, 4}).transpose(0, 1);
    CHECK(throws_with<ValueError>([&] { comm->all_reduce(m); }, "[dist::all_reduce] the tensor must be contiguous"));
    CHECK(throws_with<DTypeError>(
        [&] {
          comm->all_reduce(tensor<int64_t>({1, 2}), dist::ReduceOp::kAvg);
        },
        "avg needs a floating tensor"));
    CHECK(throws_with<DTypeError>([&] { comm->all_reduce(tensor<bool>({true}), dist::ReduceOp::kSum); },
                                  "bool tensor reduces with max"));
    CHECK(throws_with<ValueError>([&] { comm->broadcast(tensor<float>({1}), 1); }, "root 1 is not a rank of 1"));
    CHECK(throws_with<ShapeError>(
        [&] {
          comm->all_gather_async(zeros({2, 3}), zeros({3}));
        },
        "[dist::all_gather] the output must be [world_size, *input.shape] = [1, 3]"));
    CHECK(throws_with<ShapeError>(
        [&] {
          comm->reduce_scatter(zeros({2, 3}));
        },
        "first dimension must be the world size 1"));
    CHECK(throws_with<ValueError>([&] { comm->all_reduce(Tensor()); }, "undefined"));
  }

  TEST_CASE("launch_info reads mpirun's, Hydra's and srun's environment") {
    {
      dist::LaunchInfo none = dist::launch_info();
      CHECK(none.world_size == 1);
      CHECK(none.launcher == "none");
    }
    {
      ScopedEnv env({{"OMPI_COMM_WORLD_SIZE", "4"},
                     {"OMPI_COMM_WORLD_RANK", "3"},
                     {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                     {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}});
      dist::LaunchInfo i = dist::launch_info();
      CHECK(i.launcher == "mpirun");
      CHECK(i.rank == 3);
      CHECK(i.world_size == 4);
      CHECK(i.local_rank == 1);
      CHECK(i.local_world_size == 2);
    }
    {
      ScopedEnv env({{"SLURM_STEP_NUM_TASKS", "8"},
                     {"SLURM_PROCID", "5"},
                     {"SLURM_LOCALID", "1"},
                     {"SLURM_STEP_TASKS_PER_NODE", "4(x2)"},  // SLURM's form: 4 tasks on each of 2 nodes
                     {"SLURM_NODEID", "1"},
                     {"SLURM_NTASKS", "8"}});
      dist::LaunchInfo i = dist::launch_info();
      CHECK(i.launcher == "srun");
      CHECK(i.rank == 5);
      CHECK(i.world_size == 8);
      CHECK(i.local_rank == 1);
      CHECK(i.local_world_size == 4);
      CHECK(i.node_rank == 1);
    }
    {
      ScopedEnv env({{"PMI_SIZE", "2"}, {"PMI_RANK", "2"}});
      CHECK(throws_with<DistError>([] { dist::launch_info(); }, "rank 2 of 2"));
    }
    {
      // A Trainer asked for DDP in a process that a launcher placed in a bigger world than devices says.
      ScopedEnv env({{"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_RANK", "0"}});
      CHECK(throws_with<ValueError>([] { train::Trainer t({.devices = 4}); }, "mpirun started 2"));
    }
  }

  TEST_CASE("collective timeouts: 30 minutes by default, set on a communicator, the group or the Trainer") {
    auto comm = dist::make_single_process_communicator();
    CHECK(comm->timeout() == 1800.0);
    CHECK(dist::kDefaultTimeout == 1800.0);
    comm->set_timeout(2.5);
    CHECK(comm->timeout() == 2.5);
    CHECK(throws_with<ValueError>([&] { comm->set_timeout(0); }, "[dist::set_timeout] the timeout must be a positive"));
    CHECK(throws_with<ValueError>([] { dist::set_timeout(-1); }, "positive number of seconds, got -1"));
    CHECK(throws_with<ValueError>([] { train::Trainer t({.ddp_timeout = 0.0}); }, "[Trainer] ddp_timeout must be"));
    CHECK(dist::timeout() == 1800.0);
    {
      train::Trainer plain({.strategy = "ddp"});  // unset: the group's timeout stays
      CHECK(dist::timeout() == 1800.0);
      train::Trainer t({.strategy = "ddp", .ddp_timeout = 42.0});
      CHECK(dist::timeout() == 42.0);
      CHECK(t.communicator()->timeout() == 42.0);
      CHECK(dist::world().timeout() == 42.0);
    }
    dist::set_timeout(dist::kDefaultTimeout);
    CHECK(dist::world().timeout() == 1800.0);
  }

  TEST_CASE("the process group of one process") {
    CHECK(dist::world().world_size() == 1);
    CHECK(dist::is_initialized());
    CHECK(dist::world().backend() == "single");
    CHECK(dist::rank() == 0);
    CHECK(&dist::world(Device()) == &dist::world());
    CHECK(throws_with<ValueError>([] { dist::init_process_group("gloo"); }, "backend must be"));
  }
}

TEST_SUITE("autograd") {
  TEST_CASE("queue_callback runs once every gradient of the backward is accumulated") {
    Tensor a = tensor<double>({1, 2}).requires_grad_();
    Tensor b = tensor<double>({3, 4}).requires_grad_();
    std::vector<std::string> seen;
    // The first leaf finished queues the callback; it must see both gradients when it runs.
    auto h = a.register_post_accumulate_grad_hook([&](const Tensor&) {
      seen.push_back("a");
      autograd::queue_callback(
          [&] { seen.push_back(a.grad().defined() && b.grad().defined() ? "end:both" : "end:partial"); });
    });
    auto h2 = b.register_post_accumulate_grad_hook([&](const Tensor&) { seen.push_back("b"); });
    ((a * b).sum() + a.sum()).backward();
    REQUIRE(seen.size() == 3);
    CHECK(seen.back() == "end:both");
    h.remove();
    h2.remove();
    CHECK(throws_with<AutogradError>([] { autograd::queue_callback([] {}); }, "outside a backward()"));
    // A backward that throws drops its callbacks; the next one starts clean.
    bool ran = false;
    Tensor c = tensor<double>({1}).requires_grad_();
    auto h3 = c.register_post_accumulate_grad_hook([&](const Tensor&) {
      autograd::queue_callback([&] { ran = true; });
      throw ValueError("hook failed");
    });
    CHECK_THROWS_AS((c * 2).sum().backward(), ValueError);
    CHECK(!ran);
    h3.remove();
    CHECK(throws_with<AutogradError>([] { autograd::queue_callback([] {}); }, "outside a backward()"));
  }
}

TEST_SUITE("dist") {
  TEST_CASE("DDP in a group of one leaves gradients as they are") {
    manual_seed(3);
    nn::Linear fc(5, 2);
    dist::DistributedDataParallel ddp(fc, dist::world(), {.bucket_cap_mb = 1e-6});
    CHECK(ddp.bucket_layout().size() == 2);  // a bucket per parameter at this cap
    Tensor x = randn({4, 5});
    fc(x).pow(2).sum().backward();
    Tensor gw = fc->weight.grad().clone();
    fc->zero_grad();
    {
      auto local = ddp.no_sync();
      CHECK(!ddp.require_backward_grad_sync());
      fc(x).pow(2).sum().backward();
    }
    CHECK(ddp.require_backward_grad_sync());
    CHECK(testing::equal(fc->weight.grad(), gw));
    CHECK(throws_with<ValueError>([&] { dist::DistributedDataParallel bad(fc, dist::world(), {.bucket_cap_mb = 0}); },
                                  "bucket_cap_mb"));
  }

  TEST_CASE("Trainer strategies \"ddp\" and \"ddp_sharded\" with one process train exactly as one device") {
    using namespace trainer_test;
    auto run = [](const std::string& strategy) {
      manual_seed(11);
      Tiny m;
      train::Trainer t(quiet({.max_epochs = 2, .strategy = strategy}));
      t.fit(m, loader(64, 8, /*shuffle=*/true), loader(32, 8, false, 2));
      CHECK(t.world_size() == 1);
      CHECK(t.is_global_zero());
      CHECK((strategy != "single_device") == (t.communicator() != nullptr));
      return flat_params(m);
    };
    CHECK(run("ddp") == run("single_device"));
    CHECK(run("ddp_sharded") == run("single_device"));  // one rank owns every parameter
  }
}
