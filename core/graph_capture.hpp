// The host side of CUDA graph capture, as plain C++ (no CUDA headers) so that CPU tests cover it: which
// graph captures on this thread, the check that turns a host read during capture into a clear Error,
// and the slot table, small values a captured graph reads from device memory that the host rewrites
// before each replay (the optimizer's step scalars, the RNG's Philox seed and offset). kernels/ may
// include it: it names no op and no autograd.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

namespace ember::graph {

// Device values of one graph, staged on the host. A slot is either refreshed by a function before each
// replay (the RNG: advance the generator as the eager op would) or rewritten by re-running the host code
// that made it, in capture order (the optimizer's step: lr from schedulers, the step count).
class SlotTable {
 public:
  static constexpr size_t kAlign = 16;
  explicit SlotTable(size_t capacity) : host_(capacity) {}

  // Reserves n bytes holding init; refresh (when given) rewrites them before every replay. Returns the
  // slot's byte offset. Error when the table is full.
  size_t add(const void* init, size_t n, std::function<void(void*)> refresh = {});
  // Runs every refresher (before a replay).
  void refresh();
  // Re-running: the slots without a refresher are written again in the order they were added.
  void begin_rerun();
  void rerun_write(const void* bytes, size_t n);  // Error when the size or the count differs from capture
  void end_rerun();                               // Error when fewer slots were written than captured
  bool rerunning() const { return rerunning_; }

  const void* host() const { return host_.data(); }
  size_t used() const { return used_; }
  size_t capacity() const { return host_.size(); }
  size_t rerun_slots() const { return manual_.size(); }
  // Tensors covered by rerun slots (the optimizer's launches count their parameters).
  int64_t rerun_tensors() const { return rerun_tensors_; }
  void count_tensors(int64_t n) { rerun_tensors_ += n; }
  // State shared by the slots of one source (the RNG: one per generator), empty until its first slot.
  std::shared_ptr<void>& shared(const void* source) { return shared_[source]; }

 private:
  struct Entry {
    size_t offset, size;
    std::function<void(void*)> refresh;
  };
  std::vector<std::byte> host_;
  size_t used_ = 0;
  std::vector<Entry> entries_;
  std::vector<size_t> manual_;  // indices of the entries without a refresher
  bool rerunning_ = false;
  size_t rerun_next_ = 0;
  int64_t rerun_tensors_ = 0;
  std::map<const void*, std::shared_ptr<void>> shared_;
};

// What ops see while a graph captures (or re-runs its host code) on this thread.
struct CaptureContext {
  enum class Mode { kCapture, kRerun };
  int device = 0;
  Mode mode = Mode::kCapture;
  SlotTable* slots = nullptr;
  char* device_base = nullptr;  // device address of the slot table's byte 0
};

// This thread's context for a device, or nullptr. Capture is per thread (the CUDA capture mode is
// thread-local), so another thread's eager work is never mistaken for captured work.
CaptureContext* active(int device);
// Installs ctx (nullptr to clear); Error when one is already installed for the device.
void set_active(int device, CaptureContext* ctx);
bool is_capturing(int device);
bool is_capturing_any();

// Throws Error "[cuda graph] <op> reads to the host while a CUDA graph captures ..." when this thread
// captures on the device (device -1: on any device). Every host read of device memory passes here.
void check_host_read(int device, const char* op);

// How a launch passes its per-step scalars: by value (eager), through a device slot (while capturing:
// the graph reads the slot, rewritten before each replay) or not at all (a re-run: the scalars are
// written to the next slot and the kernel is not launched again).
struct ScalarRoute {
  enum class Kind { kValue, kSlot, kSkip };
  Kind kind = Kind::kValue;
  const void* device_ptr = nullptr;  // the slot (kSlot)
};
// tensors: how many tensors the launch updates (checked against the optimizer's parameters).
ScalarRoute route_scalars(int device, const void* bytes, size_t n, int64_t tensors);

}  // namespace ember::graph
