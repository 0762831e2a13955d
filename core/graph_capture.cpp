// The host side of CUDA graph capture: slot table bookkeeping and the per-thread capture state (see
// graph_capture.hpp).
#include "core/graph_capture.hpp"

#include <cstring>

#include "core/error.hpp"

namespace ember::graph {

size_t SlotTable::add(const void* init, size_t n, std::function<void(void*)> refresh) {
  EMBER_CHECK(!rerunning_, Error, "[cuda graph] a slot cannot be added while the graph's host code re-runs");
  const size_t offset = (used_ + kAlign - 1) / kAlign * kAlign;
  EMBER_CHECK(offset + n <= host_.size(), Error, "[cuda graph] the graph's slot table is full (", host_.size(),
              " bytes; this slot needs ", n,
              " more): too many optimizer launches or random ops in one capture; give CudaGraph a larger slot_bytes");
  std::memcpy(host_.data() + offset, init, n);
  used_ = offset + n;
  if (!refresh) manual_.push_back(entries_.size());
  entries_.push_back({offset, n, std::move(refresh)});
  return offset;
}

void SlotTable::refresh() {
  for (Entry& e : entries_)
    if (e.refresh) e.refresh(host_.data() + e.offset);
}

void SlotTable::begin_rerun() {
  EMBER_CHECK(!rerunning_, Error, "[cuda graph] begin_rerun while a re-run is under way");
  rerunning_ = true;
  rerun_next_ = 0;
}

void SlotTable::rerun_write(const void* bytes, size_t n) {
  EMBER_CHECK(rerunning_, Error, "[cuda graph] rerun_write outside a re-run");
  EMBER_CHECK(rerun_next_ < manual_.size(), Error, "[cuda graph] the re-run step made more launches (", rerun_next_ + 1,
              ") than the captured one (", manual_.size(), "): its parameters or their batches changed since capture");
  const Entry& e = entries_[manual_[rerun_next_]];
  EMBER_CHECK(e.size == n, Error, "[cuda graph] launch ", rerun_next_, " of the re-run step passes ", n,
              " bytes of scalars, the captured one ", e.size, " (a different dtype or optimizer?)");
  std::memcpy(host_.data() + e.offset, bytes, n);
  ++rerun_next_;
}

void SlotTable::end_rerun() {
  EMBER_CHECK(rerunning_, Error, "[cuda graph] end_rerun outside a re-run");
  rerunning_ = false;
  EMBER_CHECK(rerun_next_ == manual_.size(), Error, "[cuda graph] the re-run step made ", rerun_next_,
              " launches, the captured one ", manual_.size(),
              ": parameters without gradients, or a changed optimizer, since capture");
}

namespace {
constexpr int kMaxDevices = 64;
thread_local CaptureContext* tl_active[kMaxDevices] = {};
}  // namespace

CaptureContext* active(int device) { return device >= 0 && device < kMaxDevices ? tl_active[device] : nullptr; }

void set_active(int device, CaptureContext* ctx) {
  EMBER_CHECK(device >= 0 && device < kMaxDevices, DeviceError, "[cuda graph] device index ", device, " out of range");
  EMBER_CHECK(ctx == nullptr || tl_active[device] == nullptr, Error, "[cuda graph] cuda:", device,
              " already has a graph capturing on this thread: captures do not nest");
  tl_active[device] = ctx;
}

bool is_capturing(int device) {
  const CaptureContext* c = active(device);
  return c != nullptr && c->mode == CaptureContext::Mode::kCapture;
}

bool is_capturing_any() {
  for (int d = 0; d < kMaxDevices; ++d)
    if (is_capturing(d)) return true;
  return false;
}

void check_host_read(int device, const char* op) {
  const bool capturing = device < 0 ? is_capturing_any() : is_capturing(device);
  EMBER_CHECK(!capturing, Error, "[cuda graph] ", op,
              " reads to the host while a CUDA graph captures: nothing runs during capture, so the value does not "
              "exist yet. Read it after replay() (from a static output tensor), or keep this step out of the graph");
}

ScalarRoute route_scalars(int device, const void* bytes, size_t n, int64_t tensors) {
  CaptureContext* c = active(device);
  if (c == nullptr) return {};
  if (c->mode == CaptureContext::Mode::kRerun) {
    c->slots->rerun_write(bytes, n);
    return {ScalarRoute::Kind::kSkip, nullptr};
  }
  const size_t offset = c->slots->add(bytes, n);
  c->slots->count_tensors(tensors);
  return {ScalarRoute::Kind::kSlot, c->device_base + offset};
}

}  // namespace ember::graph
