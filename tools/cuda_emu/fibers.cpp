// The CUDA CPU emulator's fiber scheduler (tools/cuda_emu): a grid runs block after block on the calling
// thread, each block's threads as fibers that switch only at barriers (__syncthreads, __syncwarp, the
// shuffles). A warp's lanes run until each has finished or waits; a warp barrier is released when every
// lane it names waits at it, __syncthreads when every thread of the block has finished or waits there.
#include "fibers.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace emu {
namespace {

// Saves the callee-saved registers on the current stack, stores its pointer in *save, and resumes the
// context whose stack pointer is `load` (x86-64 System V; no signal mask or FP environment to save, so
// no system call, unlike swapcontext).
extern "C" void emu_switch(void** save, void* load);
asm(R"(
  .text
  .globl emu_switch
  .type emu_switch, @function
emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emu_switch, .-emu_switch
  .section .note.GNU-stack, "", @progbits
  .text
)");

constexpr size_t kStackBytes = 256 << 10;
constexpr int kMaxThreads = 1024;

struct Fiber {
  void* sp = nullptr;  // the saved stack pointer while it is suspended
  char* stack = nullptr;
  ThreadVars vars;
  int linear = 0;
  enum State { kReady, kBlockBarrier, kWarpBarrier, kDone } state = kReady;
  unsigned mask = 0;
};

struct Scheduler {
  std::vector<Fiber> fibers;
  void* main_sp = nullptr;
  Fiber* cur = nullptr;
  bool direct = false;  // one-thread blocks run on the caller's stack
  ThreadVars direct_vars;
  Body body = nullptr;
  void* ctx = nullptr;
  std::vector<uint64_t> slots;
  std::vector<unsigned char> smem;
  std::string error;

  Scheduler() { fibers.reserve(kMaxThreads); }
  ~Scheduler() {
    for (Fiber& f : fibers)
      if (f.stack) munmap(f.stack, kStackBytes);
  }
  Fiber& fiber(int i) {
    while (static_cast<int>(fibers.size()) <= i) {
      fibers.emplace_back();
      Fiber& f = fibers.back();
      void* m = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (m == MAP_FAILED) {
        std::perror("[cuda emulator] mmap");
        std::abort();
      }
      mprotect(m, 4096, PROT_NONE);  // a guard page below the stack
      f.stack = static_cast<char*>(m);
    }
    return fibers[i];
  }
};
thread_local Scheduler* t_sched = nullptr;

Scheduler& sched() {
  if (t_sched == nullptr) t_sched = new Scheduler();  // kept for the thread's life (fibers' stacks)
  return *t_sched;
}

[[noreturn]] void fiber_main() {
  Scheduler& s = *t_sched;
  s.body(s.ctx);
  Fiber* f = s.cur;
  f->state = Fiber::kDone;
  emu_switch(&f->sp, s.main_sp);
  __builtin_unreachable();
}

// A fresh stack whose first switch "returns" into fiber_main, as if called (rsp = 8 mod 16 on entry).
// The tops are staggered by the fiber's index: stacks a power of two apart would share cache sets.
void start_fiber(Fiber& f, int index) {
  auto* top = reinterpret_cast<void**>(f.stack + kStackBytes - (index % 61) * 64);
  void** sp = top - 8;  // 16-byte aligned: six registers, the entry, a fake return address
  for (int i = 0; i < 6; ++i) sp[i] = nullptr;
  sp[6] = reinterpret_cast<void*>(&fiber_main);
  sp[7] = nullptr;
  f.sp = sp;
}

bool reverse_order() {
  static const bool r = [] {
    const char* s = std::getenv("EMBER_CUDA_EMU_ORDER");
    return s && std::strcmp(s, "reverse") == 0;
  }();
  return r;
}

// Runs warp w's ready lanes, releasing its warp barriers, until each lane has finished or waits at
// __syncthreads (or lanes wait at both kinds of barrier, which run_block reports). False, with s.error
// set, on a warp operation that names a lane that exited or does not exist.
bool run_warp(Scheduler& s, int w, int nthreads, bool rev) {
  const int lo = w * 32, hi = std::min(nthreads, lo + 32);
  for (;;) {
    for (int k = 0; k < hi - lo; ++k) {
      Fiber& f = s.fibers[rev ? hi - 1 - k : lo + k];
      if (f.state != Fiber::kReady) continue;
      s.cur = &f;
      emu_switch(&s.main_sp, f.sp);
    }
    s.cur = nullptr;
    int waiting = 0, at_block = 0;
    unsigned mask = 0;
    for (int i = lo; i < hi; ++i) {
      const Fiber& f = s.fibers[i];
      at_block += f.state == Fiber::kBlockBarrier;
      if (f.state != Fiber::kWarpBarrier) continue;
      if (waiting > 0 && f.mask != mask) {
        s.error = "lanes of warp " + std::to_string(w) + " wait at warp barriers with different masks";
        return false;
      }
      mask = f.mask;
      ++waiting;
    }
    if (waiting == 0 || at_block > 0) return true;
    for (int lane = 0; lane < 32; ++lane) {
      if (!(mask >> lane & 1u)) continue;
      const int i = lo + lane;
      if (i >= hi || s.fibers[i].state != Fiber::kWarpBarrier) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "a warp operation of warp %d names lane %d in mask 0x%08x, but that lane %s", w,
                      lane, mask, i >= hi ? "does not exist (the block is not a multiple of 32)" : "has exited");
        s.error = buf;
        return false;
      }
    }
    for (int i = lo; i < hi; ++i)
      if (s.fibers[i].state == Fiber::kWarpBarrier) s.fibers[i].state = Fiber::kReady;
  }
}

// Runs one block to completion, warp by warp between its __syncthreads; false (with s.error set) on a
// deadlock or a malformed warp operation.
bool run_block(Scheduler& s, int nthreads) {
  const int warps = (nthreads + 31) / 32;
  for (int i = 0; i < nthreads; ++i) {
    Fiber& f = s.fiber(i);
    f.state = Fiber::kReady;
    start_fiber(f, i);
  }
  const bool rev = reverse_order();
  for (;;) {
    for (int k = 0; k < warps; ++k)
      if (!run_warp(s, rev ? warps - 1 - k : k, nthreads, rev)) return false;
    bool all_done = true;
    for (int i = 0; i < nthreads; ++i) {
      if (s.fibers[i].state == Fiber::kWarpBarrier) {
        s.error = "deadlock: lanes of warp " + std::to_string(i / 32) +
                  " wait at a warp barrier while others of the warp wait at __syncthreads";
        return false;
      }
      all_done = all_done && s.fibers[i].state == Fiber::kDone;
    }
    if (all_done) return true;
    for (int i = 0; i < nthreads; ++i)
      if (s.fibers[i].state == Fiber::kBlockBarrier) s.fibers[i].state = Fiber::kReady;
  }
}

}  // namespace

ThreadVars& vars() {
  Scheduler& s = *t_sched;
  return s.direct ? s.direct_vars : s.cur->vars;
}
void* dynamic_shared() { return t_sched->smem.data(); }
void sync_block() {
  Scheduler& s = *t_sched;
  if (s.direct) return;
  s.cur->state = Fiber::kBlockBarrier;
  emu_switch(&s.cur->sp, s.main_sp);
}
void sync_warp(unsigned mask) {
  Scheduler& s = *t_sched;
  if (s.direct) {
    if (mask & ~1u) s.error = "a warp operation names lanes a one-thread block does not have";
    return;
  }
  Fiber* f = s.cur;
  f->state = Fiber::kWarpBarrier;
  f->mask = mask;
  emu_switch(&f->sp, s.main_sp);
}
uint64_t* warp_slots() {
  Scheduler& s = *t_sched;
  if (s.direct) return s.slots.data();
  return s.slots.data() + (s.cur->linear / 32) * 32;
}
int lane_id() {
  Scheduler& s = *t_sched;
  return s.direct ? 0 : s.cur->linear % 32;
}

// Runs a whole grid now on this thread: "" or, after the first block that failed, where and why.
std::string run_fibers(const LaunchConfig& c, Body body, void* ctx) {
  Scheduler& s = sched();
  const int nthreads = static_cast<int>(c.block.x * c.block.y * c.block.z);
  s.body = body;
  s.ctx = ctx;
  s.slots.assign(static_cast<size_t>((nthreads + 31) / 32 * 32), 0);
  s.smem.assign(c.smem + 16, 0xff);  // uninitialised shared memory reads as NaN
  for (unsigned bz = 0; bz < c.grid.z; ++bz)
    for (unsigned by = 0; by < c.grid.y; ++by)
      for (unsigned bx = 0; bx < c.grid.x; ++bx) {
        const uint3 b{bx, by, bz};
        if (nthreads == 1) {
          s.direct = true;
          s.direct_vars = {uint3{0, 0, 0}, b, c.block, c.grid};
          s.error.clear();
          body(ctx);
          s.direct = false;
          if (!s.error.empty()) return ": " + s.error;
          continue;
        }
        int i = 0;
        for (unsigned tz = 0; tz < c.block.z; ++tz)
          for (unsigned ty = 0; ty < c.block.y; ++ty)
            for (unsigned tx = 0; tx < c.block.x; ++tx, ++i) {
              Fiber& f = s.fiber(i);
              f.vars = {uint3{tx, ty, tz}, b, c.block, c.grid};
              f.linear = i;
            }
        if (!run_block(s, nthreads))
          return ", block (" + std::to_string(bx) + ", " + std::to_string(by) + ", " + std::to_string(bz) +
                 "): " + s.error;
      }
  return "";
}

}  // namespace emu
