// Device: where a tensor's storage lives.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>

namespace ember {

struct Device {
  enum class Kind : uint8_t { CPU, CUDA };
  Kind kind = Kind::CPU;
  int index = 0;

  constexpr Device() = default;
  constexpr Device(Kind k, int i = 0) : kind(k), index(i) {}
  explicit Device(const std::string& spec);  // "cpu", "cuda", "cuda:1"
  bool is_cpu() const { return kind == Kind::CPU; }
  bool is_cuda() const { return kind == Kind::CUDA; }
  bool operator==(const Device&) const = default;
  std::string str() const;  // "cpu", "cuda:0"
};

inline constexpr Device kCPU{Device::Kind::CPU, 0};
std::ostream& operator<<(std::ostream& os, const Device& d);

// Usable CUDA devices (0 in a CPU-only build, or without driver or device), as torch.cuda.device_count().
int cuda_device_count();
bool cuda_is_available();
// Makes `device` (a CUDA device of this machine) the calling thread's current one, as torch.cuda.set_device:
// a process that works on cuda:3 calls it first, so that nothing it does opens a context on cuda:0.
// DeviceError for a device that is not there.
void set_device(Device device);
// This thread's current CUDA device (cuda:0 unless set_device chose another, or without CUDA), as
// torch.cuda.current_device(). Stream, Event and CudaGraph default to it.
Device current_cuda_device();
// Waits for all work queued on `device` (every stream), then raises the errors its kernels found (a bad
// index, deferred until a synchronisation) as torch.cuda.synchronize. Nothing to do for the CPU.
void synchronize(Device device);

}  // namespace ember
