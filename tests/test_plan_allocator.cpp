// The CUDA caching allocator's block arithmetic (kernels/block_pool.hpp) against a fake system
// allocator: best-fit reuse, splitting, merging, per-stream pools, releasing the cache and running out.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

#include "kernels/block_pool.hpp"

using ember::kernels::BlockPool;

namespace {

// Hands out non-overlapping fake addresses (never dereferenced) up to a byte budget.
struct FakeSystem {
  size_t budget = size_t{1} << 40;
  size_t used = 0;
  uintptr_t next = 1 << 20;
  std::map<uintptr_t, size_t> live;
  void* alloc(size_t n) {
    if (used + n > budget) return nullptr;
    used += n;
    uintptr_t p = next;
    next += n + 4096;  // a gap: segments are never adjacent, so a merge across them would show
    live[p] = n;
    return reinterpret_cast<void*>(p);
  }
  void free(void* p) {
    auto it = live.find(reinterpret_cast<uintptr_t>(p));
    REQUIRE(it != live.end());
    used -= it->second;
    live.erase(it);
  }
};

struct Fixture {
  FakeSystem sys;
  BlockPool pool{[this](size_t n) { return sys.alloc(n); }, [this](void* p) { sys.free(p); }};
};

uintptr_t addr(void* p) { return reinterpret_cast<uintptr_t>(p); }
constexpr size_t kMiB = size_t{1} << 20;

}  // namespace

TEST_CASE("block pool: sizes round to 512 bytes and segments follow the request size") {
  CHECK(BlockPool::round_size(0) == 512);
  CHECK(BlockPool::round_size(1) == 512);
  CHECK(BlockPool::round_size(512) == 512);
  CHECK(BlockPool::round_size(513) == 1024);
  CHECK(BlockPool::segment_size(512) == 2 * kMiB);
  CHECK(BlockPool::segment_size(kMiB) == 2 * kMiB);
  CHECK(BlockPool::segment_size(kMiB + 512) == 20 * kMiB);
  CHECK(BlockPool::segment_size(10 * kMiB) == 10 * kMiB);
  CHECK(BlockPool::segment_size(10 * kMiB + 1) == 12 * kMiB);
}

TEST_CASE("block pool: small blocks split one segment and merge back when freed") {
  Fixture f;
  void* a = f.pool.allocate(1000, 1);
  void* b = f.pool.allocate(3000, 1);
  CHECK(f.pool.stats().system_allocations == 1);
  CHECK(f.pool.block_size(a) == 1024);
  CHECK(f.pool.block_size(b) == 3072);
  CHECK(addr(b) == addr(a) + 1024);  // carved from the same segment, right after a
  CHECK(f.pool.stats().allocated_bytes == 4096);
  CHECK(f.pool.stats().reserved_bytes == static_cast<int64_t>(2 * kMiB));
  CHECK(f.pool.free_blocks() == 1);  // the rest of the segment

  f.pool.free(a);
  CHECK(f.pool.free_blocks() == 2);   // a's hole and the tail, not adjacent
  void* c = f.pool.allocate(512, 1);  // best fit: a's 1 KiB hole, not the big tail
  CHECK(addr(c) == addr(a));
  f.pool.free(c);
  f.pool.free(b);  // merges with both neighbours: one free block, the whole segment
  CHECK(f.pool.free_blocks() == 1);
  CHECK(f.pool.stats().allocated_bytes == 0);
  f.pool.release_cached();
  CHECK(f.pool.stats().reserved_bytes == 0);
  CHECK(f.pool.stats().system_frees == 1);
  CHECK(f.sys.live.empty());
}

TEST_CASE("block pool: a block is reused only by its own stream") {
  Fixture f;
  void* a = f.pool.allocate(kMiB, 7);
  f.pool.free(a);
  void* b = f.pool.allocate(kMiB, 8);
  CHECK(addr(b) != addr(a));
  CHECK(f.pool.stats().system_allocations == 2);
  CHECK(f.pool.block_stream(b) == 8);
  void* c = f.pool.allocate(kMiB, 7);
  CHECK(addr(c) == addr(a));
  CHECK(f.pool.stats().system_allocations == 2);
}

TEST_CASE("block pool: large requests share 20 MiB segments and do not split into small blocks") {
  Fixture f;
  void* a = f.pool.allocate(5 * kMiB, 0);
  CHECK(f.pool.stats().reserved_bytes == static_cast<int64_t>(20 * kMiB));
  void* b = f.pool.allocate(12 * kMiB, 0);  // from the 15 MiB rest of a's segment
  CHECK(addr(b) == addr(a) + 5 * kMiB);
  CHECK(f.pool.stats().system_allocations == 1);
  // 3 MiB remain; a 2.5 MiB request takes them whole (the 0.5 MiB rest is not worth a block).
  void* c = f.pool.allocate(5 * kMiB / 2, 0);
  CHECK(f.pool.block_size(c) == 3 * kMiB);
  CHECK(f.pool.free_blocks() == 0);
  void* d = f.pool.allocate(100, 0);  // small pool: a segment of its own
  CHECK(f.pool.stats().system_allocations == 2);
  for (void* p : {a, b, c, d}) f.pool.free(p);
  CHECK(f.pool.free_blocks() == 2);
  f.pool.release_cached();
  CHECK(f.sys.live.empty());
}

TEST_CASE("block pool: out of memory releases the cache first, then reports failure") {
  Fixture f;
  f.sys.budget = 40 * kMiB;
  void* a = f.pool.allocate(30 * kMiB, 0);
  REQUIRE(a != nullptr);
  f.pool.free(a);                           // cached, 30 MiB still held from the system
  void* b = f.pool.allocate(20 * kMiB, 1);  // another stream: needs a new segment, only 10 MiB left
  REQUIRE(b != nullptr);                    // ... so the cached segment was released
  CHECK(f.pool.stats().system_frees == 1);
  CHECK(f.pool.allocate(30 * kMiB, 1) == nullptr);
  CHECK(f.pool.stats().allocated_bytes == static_cast<int64_t>(20 * kMiB));
}

TEST_CASE("block pool: with may_release off (a CUDA graph captures), out of memory frees nothing") {
  Fixture f;
  f.sys.budget = 40 * kMiB;
  void* a = f.pool.allocate(30 * kMiB, 0);
  REQUIRE(a != nullptr);
  f.pool.free(a);
  CHECK(f.pool.allocate(20 * kMiB, 1, /*may_release=*/false) == nullptr);
  CHECK(f.pool.stats().system_frees == 0);
  CHECK(f.sys.used == 30 * kMiB);                          // the cached segment is still held
  CHECK(f.pool.allocate(20 * kMiB, 0, false) != nullptr);  // its own stream's cache serves it
}

TEST_CASE("block pool: random traffic keeps blocks disjoint, inside segments, and merges back to whole segments") {
  Fixture f;
  std::mt19937_64 rng(42);
  std::vector<std::pair<uintptr_t, size_t>> live;
  std::vector<void*> ptrs;
  for (int step = 0; step < 4000; ++step) {
    if (ptrs.empty() || rng() % 3 != 0) {
      size_t n = rng() % 4 == 0 ? rng() % (24 * kMiB) : rng() % (64 * 1024);
      uintptr_t stream = rng() % 3;
      void* p = f.pool.allocate(n, stream);
      REQUIRE(p != nullptr);
      CHECK(f.pool.block_size(p) >= n);
      CHECK(f.pool.block_size(p) % BlockPool::kAlign == 0);
      CHECK(f.pool.block_stream(p) == stream);
      ptrs.push_back(p);
    } else {
      size_t i = rng() % ptrs.size();
      f.pool.free(ptrs[i]);
      ptrs.erase(ptrs.begin() + static_cast<long>(i));
    }
    if (step % 500 == 0 || step == 3999) {
      live.clear();
      int64_t total = 0;
      for (void* p : ptrs) {
        live.emplace_back(addr(p), f.pool.block_size(p));
        total += static_cast<int64_t>(f.pool.block_size(p));
      }
      CHECK(total == f.pool.stats().allocated_bytes);
      std::sort(live.begin(), live.end());
      for (size_t i = 1; i < live.size(); ++i) CHECK(live[i - 1].first + live[i - 1].second <= live[i].first);
      for (auto [p, n] : live) {  // inside one system segment
        auto seg = f.sys.live.upper_bound(p);
        REQUIRE(seg != f.sys.live.begin());
        --seg;
        CHECK(p + n <= seg->first + seg->second);
      }
    }
  }
  for (void* p : ptrs) f.pool.free(p);
  CHECK(f.pool.stats().allocated_bytes == 0);
  CHECK(f.pool.free_blocks() == static_cast<size_t>(f.pool.stats().segments));  // every segment whole again
  f.pool.release_cached();
  CHECK(f.sys.live.empty());
  CHECK(f.pool.stats().reserved_bytes == 0);
}
