// Streams and events over the CUDA runtime's handles (kernels/cuda_device.hpp); in a CPU-only build
// each raises DeviceError ("built without CUDA support").
#include "core/stream.hpp"

#include "core/error.hpp"
#include "core/tensor.hpp"
#include "kernels/cuda_device.hpp"

namespace ember {
namespace {
Device checked(Device d, const char* what) {
  EMBER_CHECK(d.is_cuda(), DeviceError, "[", what, "] needs a CUDA device, got ", d);
  EMBER_CHECK(d.index >= 0 && d.index < cuda_device_count(), DeviceError, "[", what, "] device ", d,
              " is not available (this machine has ", cuda_device_count(), " CUDA devices)");
  return d;
}
}  // namespace

Stream::Stream(Device d, int priority) : device_(checked(d, "Stream")) {
  const int dev = d.index;
  handle_ = kernels::cuda::stream_create(dev, priority);
  owner_ = std::shared_ptr<void>(handle_, [dev](void* h) { kernels::cuda::stream_destroy(dev, h); });
}

Stream Stream::current(Device d) {
  checked(d, "Stream");
  return Stream(d, kernels::cuda::current_stream_handle(d.index), nullptr);
}
Stream Stream::default_stream(Device d) { return Stream(checked(d, "Stream"), nullptr, nullptr); }

bool Stream::query() const { return kernels::cuda::stream_query(device_.index, handle_); }
void Stream::synchronize() const { kernels::cuda::stream_synchronize(device_.index, handle_); }
void Stream::wait(const Event& e) const { kernels::cuda::stream_wait_event(device_.index, handle_, e.handle()); }
void Stream::wait(const Stream& other) const {
  Event e(other.device());
  e.record(other);
  wait(e);
}

Event::Event(Device d, bool enable_timing) : device_(checked(d, "Event")) {
  const int dev = d.index;
  handle_ = std::shared_ptr<void>(kernels::cuda::event_create(dev, enable_timing),
                                  [dev](void* h) { kernels::cuda::event_destroy(dev, h); });
}
void Event::record(const Stream& s) {
  EMBER_CHECK(s.device() == device_, DeviceError, "[Event] an event of ", device_, " cannot record a stream of ",
              s.device());
  kernels::cuda::event_record(device_.index, handle_.get(), s.handle());
}
bool Event::query() const { return kernels::cuda::event_query(device_.index, handle_.get()); }
void Event::synchronize() const { kernels::cuda::event_synchronize(device_.index, handle_.get()); }
double Event::elapsed_ms(const Event& end) const {
  return kernels::cuda::event_elapsed_ms(device_.index, handle_.get(), end.handle_.get());
}

StreamGuard::StreamGuard(const Stream& s) : prev_(Stream::current(s.device())) {
  kernels::cuda::set_current_stream_handle(s.device().index, s.handle());
}
StreamGuard::~StreamGuard() { kernels::cuda::set_current_stream_handle(prev_.device().index, prev_.handle()); }

void record_stream(const Tensor& t, const Stream& s) {
  EMBER_CHECK(t.device() == s.device(), DeviceError, "[record_stream] tensor ", describe(t),
              " is not on the stream's device ", s.device());
  kernels::cuda::record_stream(s.device().index, t.impl().storage->data(), s.handle());
}

}  // namespace ember
