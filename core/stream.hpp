// CUDA streams and events, as torch.cuda.Stream / Event / stream(): each thread has a current stream
// per device (the device's default stream until a StreamGuard makes another current), and every op,
// copy and allocation on that device uses it. Work on two streams is ordered with events
// (Stream::wait), never with a device-wide synchronisation. A tensor used on a stream other than the
// one it was allocated on must be marked with record_stream, so its memory is not reused too early.
#pragma once
#include <memory>

#include "core/device.hpp"

namespace ember {

class Tensor;
class Event;

class Stream {
 public:
  // A new stream of device d. It does not synchronise with the default stream: order work with events.
  explicit Stream(Device d, int priority = 0);
  // This thread's current stream of d.
  static Stream current(Device d = current_cuda_device());
  // The default (legacy) stream of d.
  static Stream default_stream(Device d = current_cuda_device());

  Device device() const { return device_; }
  void* handle() const { return handle_; }  // a cudaStream_t; nullptr for the default stream
  bool query() const;                       // all queued work done
  void synchronize() const;                 // waits for the queued work
  void wait(const Event& e) const;          // later work here waits for e
  void wait(const Stream& other) const;     // later work here waits for what is queued on other now
  bool operator==(const Stream& o) const { return device_ == o.device_ && handle_ == o.handle_; }

 private:
  Stream(Device d, void* handle, std::shared_ptr<void> owner) : device_(d), handle_(handle), owner_(std::move(owner)) {}
  Device device_;
  void* handle_ = nullptr;
  std::shared_ptr<void> owner_;  // destroys a created stream with its last copy
};

class Event {
 public:
  explicit Event(Device d = current_cuda_device(), bool enable_timing = false);
  void record(const Stream& s);
  void record() { record(Stream::current(device_)); }
  bool query() const;        // the recorded work is done
  void synchronize() const;  // waits for it
  // Milliseconds between this event and end (both recorded, both with enable_timing).
  double elapsed_ms(const Event& end) const;
  Device device() const { return device_; }
  void* handle() const { return handle_.get(); }

 private:
  Device device_;
  std::shared_ptr<void> handle_;
};

// Makes s the current stream of its device on this thread for the guard's lifetime.
class StreamGuard {
 public:
  explicit StreamGuard(const Stream& s);
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  Stream prev_;
};

// t's memory is used by work queued on s: when t is freed, the allocator waits for that work.
void record_stream(const Tensor& t, const Stream& s);

}  // namespace ember
