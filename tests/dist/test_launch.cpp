// The launch environment under `mpirun -np 2` (part of ember_dist_tests, meson test "dist"): what
// dist::detect_cluster_environment() finds agrees with MPI, and the Trainer takes DDP from it alone.
#include <doctest/doctest.h>

#include "dist_fixtures.hpp"
#include "ember.hpp"
#include "test_util.hpp"
#include "trainer_fixtures.hpp"

using namespace ember;
using testing::throws_with;

using testing::dist_fixtures::comm;

TEST_SUITE("dist mpi") {
  TEST_CASE("the detected OpenMPI environment agrees with MPI about every rank") {
    auto env = dist::detect_cluster_environment();
    CHECK(env->name() == "openmpi");
    CHECK(env->creates_processes_externally());
    CHECK(env->global_rank() == comm().rank());
    CHECK(env->world_size() == comm().world_size());
    CHECK(env->local_world_size() == 2);  // one node here
    CHECK(env->num_nodes() == 1);
    CHECK(env->node_rank() == 0);
    // The local ranks are a permutation of 0..1: their sum over the ranks is 1.
    CHECK(comm().all_reduce_scalar(env->local_rank(), dist::ReduceOp::kSum) == 1.0);
    train::Trainer t(trainer_test::quiet({.accelerator = "cpu", .devices = -1}));  // DDP, from the environment alone
    CHECK(t.cluster_environment()->name() == "openmpi");
    CHECK(t.world_size() == 2);
    CHECK(t.global_rank() == env->global_rank());
    // Given explicitly, an environment must agree with MPI: one that claims 3 processes is refused.
    train::Trainer given(trainer_test::quiet({.accelerator = "cpu", .devices = -1, .cluster_environment = env}));
    CHECK(given.cluster_environment() == env);
    CHECK(given.world_size() == 2);
    struct Three : dist::LocalEnvironment {
      int world_size() const override { return 3; }
      int local_world_size() const override { return 3; }
      std::string name() const override { return "three"; }
    };
    auto three = std::make_shared<Three>();
    CHECK(throws_with<DistError>(
        [&] {
          train::Trainer bad(trainer_test::quiet({.accelerator = "cpu", .devices = -1, .cluster_environment = three}));
        },
        "three says rank 0 of 3 but MPI says rank"));
  }
}
