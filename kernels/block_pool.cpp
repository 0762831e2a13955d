// BlockPool: best-fit split and merge over system segments (see block_pool.hpp).
#include "kernels/block_pool.hpp"

#include <cassert>
#include <vector>

namespace ember::kernels {

BlockPool::~BlockPool() {
  // Blocks still handed out belong to tensors that outlive the pool (process teardown): leave them.
  for (Pool* pool : {&small_, &large_})
    for (Block* b : *pool) delete b;
  for (auto& [p, b] : live_) delete b;
}

size_t BlockPool::round_size(size_t nbytes) {
  if (nbytes == 0) nbytes = 1;
  return (nbytes + kAlign - 1) / kAlign * kAlign;
}

size_t BlockPool::segment_size(size_t size) {
  if (size <= kSmallLimit) return kSmallSegment;
  if (size < kMidSegment / 2) return kMidSegment;
  return (size + kLargeRound - 1) / kLargeRound * kLargeRound;
}

BlockPool::Block* BlockPool::take_free(size_t size, uintptr_t stream, bool small) {
  Pool& pool = pool_of(small);
  Block key{nullptr, size, stream, small};
  auto it = pool.lower_bound(&key);
  if (it == pool.end() || (*it)->stream != stream) return nullptr;
  Block* b = *it;
  pool.erase(it);
  return b;
}

BlockPool::Block* BlockPool::new_segment(size_t size, uintptr_t stream, bool small, bool may_release) {
  const size_t seg = segment_size(size);
  void* p = system_alloc_(seg);
  if (p == nullptr) {
    if (!may_release) return nullptr;
    release_cached();
    p = system_alloc_(seg);
    if (p == nullptr) return nullptr;
  }
  ++stats_.system_allocations;
  ++stats_.segments;
  stats_.reserved_bytes += static_cast<int64_t>(seg);
  return new Block{static_cast<char*>(p), seg, stream, small};
}

void* BlockPool::allocate(size_t nbytes, uintptr_t stream, bool may_release) {
  const size_t size = round_size(nbytes);
  const bool small = size <= kSmallLimit;
  Block* b = take_free(size, stream, small);
  if (b == nullptr && (b = new_segment(size, stream, small, may_release)) == nullptr) return nullptr;
  // Split off the rest when it is worth keeping: any remainder in the small pool, more than the small
  // limit in the large pool (a large block is not carved into many small ones).
  const size_t rest = b->size - size;
  if (rest >= (small ? kAlign : kSmallLimit + 1)) {
    auto* r = new Block{b->ptr + size, rest, stream, small};
    r->prev = b;
    r->next = b->next;
    if (b->next) b->next->prev = r;
    b->next = r;
    b->size = size;
    pool_of(small).insert(r);
  }
  b->allocated = true;
  live_[b->ptr] = b;
  stats_.allocated_bytes += static_cast<int64_t>(b->size);
  return b->ptr;
}

// Folds `next` (free, right after `into`) into `into`.
void BlockPool::merge(Block* into, Block* next) {
  assert(into->next == next && into->ptr + into->size == next->ptr);
  pool_of(next->small).erase(next);
  into->size += next->size;
  into->next = next->next;
  if (next->next) next->next->prev = into;
  delete next;
}

void BlockPool::free(void* p) {
  auto it = live_.find(p);
  assert(it != live_.end() && "BlockPool::free of a pointer it did not hand out");
  Block* b = it->second;
  live_.erase(it);
  b->allocated = false;
  stats_.allocated_bytes -= static_cast<int64_t>(b->size);
  if (b->next && !b->next->allocated) merge(b, b->next);
  if (b->prev && !b->prev->allocated) {
    Block* prev = b->prev;
    pool_of(prev->small).erase(prev);
    merge(prev, b);
    b = prev;
  }
  pool_of(b->small).insert(b);
}

void BlockPool::release_cached() {
  for (Pool* pool : {&small_, &large_}) {
    std::vector<Block*> whole;
    for (Block* b : *pool)
      if (b->prev == nullptr && b->next == nullptr) whole.push_back(b);
    for (Block* b : whole) {
      pool->erase(b);
      system_free_(b->ptr);
      ++stats_.system_frees;
      --stats_.segments;
      stats_.reserved_bytes -= static_cast<int64_t>(b->size);
      delete b;
    }
  }
}

size_t BlockPool::block_size(const void* p) const {
  auto it = live_.find(p);
  return it == live_.end() ? 0 : it->second->size;
}

uintptr_t BlockPool::block_stream(const void* p) const {
  auto it = live_.find(p);
  return it == live_.end() ? 0 : it->second->stream;
}

}  // namespace ember::kernels
