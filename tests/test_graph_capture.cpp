// The host side of CUDA graphs, without a GPU: the slot table (offsets, refreshers, the re-run order and
// its errors), the per-thread capture state and the host-read check, the routing of the fused
// optimizer's scalars (by value, to a slot, or skipped in a re-run), and the "hyperparameters from a
// buffer" path on the CPU: Adam steps whose scalars are re-run into a slot table and read back through
// resolve_params equal eager steps bit for bit while a schedule changes the lr; the CUDA allocator's
// graph pools (kernels/graph_pools.hpp) over fake system memory.
#include <doctest/doctest.h>

#include <cstring>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "core/graph_capture.hpp"
#include "kernels/graph_pools.hpp"
#include "kernels/optim.hpp"
#include "kernels/optim_math.hpp"
#include "test_util.hpp"

using namespace ember;
using ember::testing::throws_with;

namespace {

// Installs a capture context for device 0 on this thread for the guard's lifetime.
struct FakeCapture {
  graph::SlotTable table{1024};
  std::vector<char> device_buffer = std::vector<char>(1024);
  graph::CaptureContext ctx{0, graph::CaptureContext::Mode::kCapture, &table, device_buffer.data()};
  FakeCapture() { graph::set_active(0, &ctx); }
  ~FakeCapture() { graph::set_active(0, nullptr); }
  // What a replay does before launching: refresh, then copy the table to the "device".
  void upload() {
    table.refresh();
    std::memcpy(device_buffer.data(), table.host(), table.used());
  }
};

using AdamParams =
    kernels::optim_math::StepParams<kernels::optim_math::AdamScalars<float>, kernels::optim_math::AdamFlags>;

// One Adam update over contiguous f32 tensors, in one function so that both paths run the same machine
// code (two inlined copies of the loop may contract their multiply-adds differently).
[[gnu::noinline]] void apply_adam(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, const AdamParams& prm) {
  float* pp = p.data_ptr<float>();
  float* mm = m.data_ptr<float>();
  float* vv = v.data_ptr<float>();
  const float* gg = g.data_ptr<float>();
  for (int64_t i = 0; i < p.numel(); ++i)
    kernels::optim_math::adam_update<float>(pp, gg, mm, vv, nullptr, i, prm.s, prm.f);
}

}  // namespace

TEST_CASE("graph capture: slots are aligned, hold their initial bytes, and refreshers rewrite them") {
  graph::SlotTable t(64);
  const double a = 1.5;
  const size_t o1 = t.add(&a, sizeof a);
  const uint64_t b[2] = {7, 9};
  int calls = 0;
  const size_t o2 = t.add(b, sizeof b, [&](void* dst) {
    const uint64_t v[2] = {7, 9 + uint64_t(++calls)};
    std::memcpy(dst, v, sizeof v);
  });
  CHECK(o1 == 0);
  CHECK(o2 == graph::SlotTable::kAlign);
  CHECK(t.used() == o2 + sizeof b);
  CHECK(t.rerun_slots() == 1);  // only the slot without a refresher is re-run
  const auto* host = static_cast<const char*>(t.host());
  double a2 = 0;
  std::memcpy(&a2, host + o1, sizeof a2);
  CHECK(a2 == 1.5);
  t.refresh();
  t.refresh();
  uint64_t got[2];
  std::memcpy(got, host + o2, sizeof got);
  CHECK(calls == 2);
  CHECK(got[1] == 11);
  // A full table names its size and the fix.
  const char big[40] = {};
  CHECK(throws_with<Error>([&] { t.add(big, sizeof big); }, "slot table is full (64 bytes"));
}

TEST_CASE("graph capture: Philox slots draw what eager steps draw, a checkpoint's repeated draw included") {
  // One captured step with two checkpointed dropouts (b1 and b2 blocks): the forward draws at O and O + b1,
  // the backward's recomputes rewind the generator and draw at O + b1 and O again, then put it back.
  const uint64_t b1 = 3, b2 = 5;
  Generator gen(7);
  gen.advance(10);
  graph::SlotTable table(256);
  const uint64_t o = gen.state().offset;
  const uint64_t f1 = gen.advance(b1), f2 = gen.advance(b2);
  const GeneratorState after_forward = gen.state();
  std::vector<size_t> at{graph::add_philox_slot(table, gen, f1, b1), graph::add_philox_slot(table, gen, f2, b2)};
  for (auto [state, blocks] : {std::pair{GeneratorState{7, o + b1}, b2}, std::pair{GeneratorState{7, o}, b1}}) {
    gen.set_state(state);
    const uint64_t base = gen.advance(blocks);
    at.push_back(graph::add_philox_slot(table, gen, base, blocks));
  }
  gen.set_state(after_forward);
  Generator other(9);  // another generator's slot keeps its own range
  at.push_back(graph::add_philox_slot(table, other, other.advance(4), 4));

  auto slot = [&](size_t i) {
    uint64_t v[2];
    std::memcpy(v, static_cast<const std::byte*>(table.host()) + at[i], sizeof v);
    CHECK(v[0] == (i == 4 ? 9u : 7u));
    return v[1];
  };
  for (int replay = 0; replay < 4; ++replay) {
    CAPTURE(replay);
    table.refresh();
    // As eager step number `replay` would draw: its forward's two draws, the recomputes repeating them.
    const uint64_t step = o + replay * (b1 + b2);
    CHECK(slot(0) == step);
    CHECK(slot(1) == step + b1);
    CHECK(slot(2) == step + b1);
    CHECK(slot(3) == step);
    CHECK(slot(4) == 4u * replay);
    CHECK(gen.state().offset == step + b1 + b2);  // where the eager step leaves the generator
  }
}

TEST_CASE("graph capture: a re-run writes the slots in capture order and must match the capture") {
  graph::SlotTable t(256);
  const float x = 1, y = 2;
  const double z = 3;
  t.add(&x, sizeof x);
  t.add(&z, sizeof z);
  t.add(&y, sizeof y, [](void*) {});  // refreshed, not re-run
  const auto* host = static_cast<const char*>(t.host());

  t.begin_rerun();
  CHECK(t.rerunning());
  const float x2 = 10;
  const double z2 = 30;
  t.rerun_write(&x2, sizeof x2);
  t.rerun_write(&z2, sizeof z2);
  t.end_rerun();
  float xr = 0;
  double zr = 0;
  std::memcpy(&xr, host, sizeof xr);
  std::memcpy(&zr, host + graph::SlotTable::kAlign, sizeof zr);
  CHECK(xr == 10);
  CHECK(zr == 30);

  SUBCASE("fewer launches than captured") {
    t.begin_rerun();
    t.rerun_write(&x2, sizeof x2);
    CHECK(throws_with<Error>([&] { t.end_rerun(); }, "made 1 launches, the captured one 2"));
  }
  SUBCASE("more launches than captured") {
    t.begin_rerun();
    t.rerun_write(&x2, sizeof x2);
    t.rerun_write(&z2, sizeof z2);
    CHECK(throws_with<Error>([&] { t.rerun_write(&x2, sizeof x2); }, "more launches (3) than the captured one (2)"));
  }
  SUBCASE("another size") {
    t.begin_rerun();
    CHECK(throws_with<Error>([&] { t.rerun_write(&z2, sizeof z2); }, "passes 8 bytes of scalars, the captured one 4"));
  }
  SUBCASE("no new slots while re-running") {
    t.begin_rerun();
    CHECK(throws_with<Error>([&] { t.add(&x, sizeof x); }, "cannot be added while"));
  }
}

TEST_CASE("graph capture: host reads raise a clear error while this thread captures, and only then") {
  CHECK_FALSE(graph::is_capturing(0));
  graph::check_host_read(0, "item()");  // no capture: fine
  {
    FakeCapture cap;
    CHECK(graph::is_capturing(0));
    CHECK(graph::is_capturing_any());
    CHECK_FALSE(graph::is_capturing(1));
    CHECK(throws_with<Error>([] { graph::check_host_read(0, "item()"); },
                             "[cuda graph] item() reads to the host while a CUDA graph captures"));
    CHECK(throws_with<Error>([] { graph::check_host_read(-1, "synchronize()"); }, "synchronize() reads to the host"));
    graph::check_host_read(1, "item()");  // another device
    // Captures do not nest.
    graph::CaptureContext other{0, graph::CaptureContext::Mode::kCapture, &cap.table, nullptr};
    CHECK(throws_with<Error>([&] { graph::set_active(0, &other); }, "captures do not nest"));
    // Another thread does not capture.
    bool other_thread_capturing = true;
    std::thread([&] { other_thread_capturing = graph::is_capturing(0); }).join();
    CHECK_FALSE(other_thread_capturing);
  }
  CHECK_FALSE(graph::is_capturing(0));
  // A re-run is not a capture: the host code may read.
  graph::SlotTable t(16);
  graph::CaptureContext rerun{0, graph::CaptureContext::Mode::kRerun, &t, nullptr};
  graph::set_active(0, &rerun);
  CHECK_FALSE(graph::is_capturing(0));
  graph::check_host_read(0, "item()");
  graph::set_active(0, nullptr);
}

TEST_CASE("graph capture: a launch's scalars go by value, to a slot while capturing, nowhere in a re-run") {
  const double v = 4.25;
  CHECK(graph::route_scalars(0, &v, sizeof v, 3).kind == graph::ScalarRoute::Kind::kValue);
  FakeCapture cap;
  const graph::ScalarRoute r = graph::route_scalars(0, &v, sizeof v, 3);
  CHECK(r.kind == graph::ScalarRoute::Kind::kSlot);
  CHECK(r.device_ptr == cap.device_buffer.data());
  const graph::ScalarRoute r2 = graph::route_scalars(0, &v, sizeof v, 2);
  CHECK(static_cast<const char*>(r2.device_ptr) == cap.device_buffer.data() + graph::SlotTable::kAlign);
  CHECK(cap.table.rerun_tensors() == 5);  // the optimizer's parameters the launches covered
  cap.ctx.mode = graph::CaptureContext::Mode::kRerun;
  cap.table.begin_rerun();
  const double w = 8.5;
  CHECK(graph::route_scalars(0, &w, sizeof w, 3).kind == graph::ScalarRoute::Kind::kSkip);
  CHECK(graph::route_scalars(0, &w, sizeof w, 2).kind == graph::ScalarRoute::Kind::kSkip);
  cap.table.end_rerun();
  cap.upload();
  double got = 0;
  std::memcpy(&got, cap.device_buffer.data(), sizeof got);
  CHECK(got == 8.5);
}

// What kernels/cuda/optim.cu does, on the CPU: the launch's StepParams are routed, and each "replay"
// reads them back from the uploaded buffer through resolve_params before running adam_update.
TEST_CASE("graph capture: Adam with scalars re-run into a slot equals eager steps under a changing lr") {
  namespace om = kernels::optim_math;
  using P = AdamParams;
  manual_seed(5);
  const int64_t n = 300;
  Tensor p_eager = randn({n}), m_eager = zeros({n}), v_eager = zeros({n});
  Tensor p_graph = p_eager.clone(), m_graph = zeros({n}), v_graph = zeros({n});
  Tensor p_cpu = p_eager.clone(), m_cpu = zeros({n}), v_cpu = zeros({n});
  std::vector<Tensor> grads;
  for (int s = 0; s < 6; ++s) grads.push_back(randn({n}));
  Tensor grad_static = zeros({n});  // the "graph" reads its gradient from one static buffer
  auto args = [](int step) {
    const double lr = 0.01 * (1.0 - 0.15 * step);  // a schedule: the lr changes every step
    return AdamStepArgs{.lr = lr, .weight_decay = 0.01, .decoupled = true, .step = double(step)};
  };
  auto params_of = [](const AdamStepArgs& h) { return P{om::adam_scalars<float>(h), om::adam_flags<float>(h)}; };

  FakeCapture cap;
  const P* slot = nullptr;
  P stale{};  // the by-value copy baked into the "graph": must not be what runs
  for (int step = 1; step <= 6; ++step) {
    const AdamStepArgs h = args(step);
    // Eager: the step's scalars by value (the CPU kernel's own loop may contract its multiply-adds
    // differently: it is checked below within rounding).
    apply_adam(p_eager, grads[step - 1], m_eager, v_eager, params_of(h));
    kernels::cpu::adam_step(p_cpu, grads[step - 1], m_cpu, v_cpu, Tensor(), h);

    const P now = params_of(h);
    if (step == 1) {  // capture: the launch's scalars go to a slot
      const graph::ScalarRoute r = graph::route_scalars(0, &now, sizeof now, 1);
      REQUIRE(r.kind == graph::ScalarRoute::Kind::kSlot);
      slot = static_cast<const P*>(r.device_ptr);
      stale = now;
      cap.ctx.mode = graph::CaptureContext::Mode::kRerun;
    } else {  // later steps: the optimizer's host code re-runs and rewrites the slot
      cap.table.begin_rerun();
      CHECK(graph::route_scalars(0, &now, sizeof now, 1).kind == graph::ScalarRoute::Kind::kSkip);
      cap.table.end_rerun();
    }
    cap.upload();
    grad_static.copy_(grads[step - 1]);
    apply_adam(p_graph, grad_static, m_graph, v_graph, om::resolve_params(stale, slot));
  }
  CHECK(ember::testing::equal(p_graph, p_eager));
  CHECK(ember::testing::equal(m_graph, m_eager));
  CHECK(ember::testing::equal(v_graph, v_eager));
  CHECK(ember::testing::allclose(p_graph, p_cpu, 1e-6, 1e-7));  // and the CPU optimizer's own kernel
}

TEST_CASE("graph pools: a capture's blocks stay its own, ordinary frees wait, memory returns after the graph") {
  // Fake system memory: segments from a vector of buffers, frees counted.
  std::vector<std::unique_ptr<char[]>> segments;
  int system_frees = 0;
  kernels::GraphPools pools(
      [&](size_t n) -> void* {
        segments.push_back(std::make_unique<char[]>(n));
        return segments.back().get();
      },
      [&](void*) { ++system_frees; });
  const uintptr_t capture_stream = 7, other_stream = 9;
  CHECK_FALSE(pools.capturing());
  CHECK_FALSE(pools.pool_for(capture_stream));
  CHECK_FALSE(pools.defer(reinterpret_cast<void*>(0x1000)));  // no capture: the caller frees it now

  pools.begin(1, capture_stream);
  CHECK(pools.capturing());
  REQUIRE(pools.pool_for(capture_stream) == std::optional<uint64_t>(1));
  CHECK_FALSE(pools.pool_for(other_stream));
  CHECK(throws_with<Error>([&] { pools.begin(2, capture_stream); }, "already captures"));

  void* a = pools.allocate(1, 1000, capture_stream);
  CHECK(pools.owns(a));
  CHECK(pools.allocated_bytes() == 1024);  // rounded to 512
  // Freed during the capture: the same capture gets the block again.
  CHECK(pools.free(a));
  void* b = pools.allocate(1, 1000, capture_stream);
  CHECK(b == a);
  // An ordinary block freed during the capture waits for its end.
  int ordinary = 0;
  CHECK(pools.defer(&ordinary));
  CHECK(pools.deferred() == 1);
  CHECK_FALSE(pools.free(&ordinary));  // not a graph block
  const std::vector<void*> released = pools.end(capture_stream);
  REQUIRE(released.size() == 1);
  CHECK(released[0] == &ordinary);
  CHECK_FALSE(pools.capturing());

  // The graph lives: its pool keeps its memory even with no live block.
  CHECK(pools.free(b));
  CHECK(pools.pools() == 1);
  CHECK(pools.reserved_bytes() > 0);
  CHECK(system_frees == 0);
  // A second graph captures while a tensor of the first one is still alive after that graph is gone.
  pools.begin(2, capture_stream);
  void* c = pools.allocate(2, 4096, capture_stream);
  pools.release(2);
  CHECK(pools.pools() == 2);  // dropped neither during a capture nor with a live block
  pools.release(1);
  CHECK(pools.pools() == 2);  // pool 1 is free but a capture is under way: no cudaFree now
  CHECK(pools.end(capture_stream).empty());
  CHECK(pools.pools() == 1);  // pool 1 went back at the capture's end
  CHECK(system_frees == 1);
  const int64_t system_before = pools.system_allocations();
  CHECK(pools.free(c));  // the last block of the dead graph's pool: its memory returns
  CHECK(pools.pools() == 0);
  CHECK(system_frees == 2);
  CHECK(pools.allocated_bytes() == 0);
  CHECK(pools.reserved_bytes() == 0);
  CHECK(pools.system_allocations() == system_before);  // the count never falls
}
