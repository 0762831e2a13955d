// Streams, events, pinned memory and asynchronous copies (core/stream.hpp, Tensor::pin_memory,
// DataLoaderOptions::pin_memory). The no-device behaviour runs everywhere; the rest needs a GPU.
#include <thread>

#include "test_util.hpp"

using namespace ember;
using ember::testing::equal;

namespace {
const Device kCuda{Device::Kind::CUDA, 0};
}

TEST_CASE("streams: without a device, pinning, streams and events raise DeviceError; pin_memory loaders still load") {
  if (cuda_is_available()) {
    MESSAGE("skipped: a device is present (this case checks the no-device path)");
    return;
  }
  CHECK(ember::testing::throws_with<DeviceError>([] { (void)ones({3}).pin_memory(); }, "[pin_memory]"));
  CHECK(!ones({3}).is_pinned());
  CHECK_THROWS_AS(Stream{kCuda}, DeviceError);
  CHECK_THROWS_AS(Event{kCuda}, DeviceError);
  CHECK_THROWS_AS(Stream::current(kCuda), DeviceError);
  CHECK_THROWS_AS(Stream{kCPU}, DeviceError);
  // non_blocking without pinned memory or a device is a plain copy.
  Tensor a = arange(6, kF32);
  CHECK(equal(a.to(kCPU, true, true), a));

  // pin_memory = true is ignored without a device: the same batches as without it.
  auto ds = std::make_shared<data::TensorDataset>(arange(20, kF32).reshape({10, 2}), arange(10, kI64));
  for (int64_t workers : {0, 2}) {
    data::DataLoader pinned(ds,
                            {.batch_size = 4, .shuffle = true, .seed = 3, .num_workers = workers, .pin_memory = true});
    data::DataLoader plain(ds, {.batch_size = 4, .shuffle = true, .seed = 3, .num_workers = workers});
    std::vector<Tensor> got, want;
    for (const data::Batch& b : pinned) got.push_back(b.input);
    for (const data::Batch& b : plain) want.push_back(b.input);
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) CHECK(equal(got[i], want[i]));
  }
}

TEST_CASE("streams: pinned memory and non-blocking copies round trip") {
  CUDA_OR_SKIP();
  Tensor x = randn({1000, 33});
  Tensor p = x.pin_memory();
  CHECK(p.is_pinned());
  CHECK(!x.is_pinned());
  CHECK(p.pin_memory().is_same(p));
  CHECK(p.narrow(0, 5, 10).is_pinned());  // a view into a pinned block
  CHECK(equal(p, x));
  Tensor g = p.to(kCuda, false, true);
  Tensor back = (g * 2).to(kCPU, false, true);  // queued; pinned output
  CHECK(back.is_pinned());
  Stream::current(kCuda).synchronize();
  CHECK(equal(back, x * 2));
  // Many async copies from recycled pinned blocks: each reads its own values.
  std::vector<Tensor> on_gpu;
  for (int k = 0; k < 16; ++k) on_gpu.push_back(full({1 << 16}, k).pin_memory().to(kCuda, false, true));
  for (int k = 0; k < 16; ++k) CHECK(equal(on_gpu[k].cpu(), full({1 << 16}, k)));
}

TEST_CASE("streams: a side stream, StreamGuard, events and record_stream") {
  CUDA_OR_SKIP();
  Stream side(kCuda);
  CHECK(Stream::current(kCuda) == Stream::default_stream(kCuda));
  Tensor a = full({1 << 22}, 1.0, {.device = kCuda});
  Tensor b;
  {
    StreamGuard guard(side);
    CHECK(Stream::current(kCuda) == side);
    side.wait(Stream::default_stream(kCuda));  // a was written on the default stream
    Tensor m = randn({4096, 4096}, {.device = kCuda});
    for (int i = 0; i < 8; ++i) m = m.matmul(m) * (1.0 / 64);  // keeps side busy for milliseconds
    b = a * 3 + 1;                                             // queued on side behind the products
    record_stream(a, side);
  }
  CHECK(Stream::current(kCuda) == Stream::default_stream(kCuda));
  const void* a_block = a.raw_data();
  const bool side_busy = !side.query();
  a = Tensor();  // freed while side still reads it: the block waits for side's event
  Tensor c = full({1 << 22}, 7.0, {.device = kCuda});  // on the default stream, not ordered after side
  if (side_busy) CHECK(c.raw_data() != a_block);       // without record_stream, c would take a's block
  Stream::default_stream(kCuda).wait(side);
  CHECK(equal(b.cpu(), full({1 << 22}, 4.0)));
  CHECK(equal(c.cpu(), full({1 << 22}, 7.0)));
  side.synchronize();
  CHECK(side.query());

  Event start(kCuda, true), stop(kCuda, true);
  start.record();
  Tensor big = randn({2048, 2048}, {.device = kCuda});
  for (int i = 0; i < 5; ++i) big = big * 1.0001;
  stop.record();
  stop.synchronize();
  CHECK(stop.query());
  CHECK(start.elapsed_ms(stop) >= 0.0);
  // The current stream is per thread: another thread still sees the default stream.
  StreamGuard guard(side);
  bool other_default = false;
  std::thread([&] { other_default = Stream::current(kCuda) == Stream::default_stream(kCuda); }).join();
  CHECK(other_default);
}

TEST_CASE("streams: a stream dropped while a tensor still names it is recycled, not destroyed") {
  CUDA_OR_SKIP();
  Stream::default_stream(kCuda).synchronize();
  const int64_t before = memory_stats(kCuda).current_bytes;
  Tensor a = full({1 << 20}, 2.0, {.device = kCuda});
  void* handle = nullptr;
  {
    Stream side(kCuda);
    handle = side.handle();
    side.wait(Stream::default_stream(kCuda));
    StreamGuard guard(side);
    Tensor b = a * 5;
    record_stream(a, side);  // a's free must record an event on side, after side's last copy is gone
  }
  a = Tensor();  // a destroyed stream's handle here would fail (or name another stream's queue)
  {
    Stream again(kCuda);
    CHECK(again.handle() == handle);  // the same queue, handed out again
    StreamGuard guard(again);
    CHECK(equal((full({8}, 1.0, {.device = kCuda}) + 1).cpu(), full({8}, 2.0)));
  }
  // a's block came back once side's work was done (a failed event on a dead stream would leak it).
  synchronize(kCuda);
  (void)full({8}, 1.0, {.device = kCuda});  // an allocation collects the blocks whose events are done
  CHECK(memory_stats(kCuda).current_bytes == before);
  Stream high(kCuda, -1);  // another priority: never the spare default-priority stream
  CHECK(high.handle() != handle);
  Stream normal(kCuda);
  CHECK(normal.handle() == handle);
}

TEST_CASE("streams: steady-state training sizes reuse cached blocks (no cudaMalloc after the first step)") {
  CUDA_OR_SKIP();
  auto step = [] {
    std::vector<Tensor> ts;
    for (int64_t n : {100, 5000, 300000, 1 << 20, 3 << 20, 7777, 1 << 23}) ts.push_back(empty({n}, {.device = kCuda}));
  };
  step();
  const int64_t before = memory_stats(kCuda).system_allocations;
  for (int i = 0; i < 5; ++i) step();
  CHECK(memory_stats(kCuda).system_allocations == before);
}
