// The CUDA backend's host-side entry points that need no CUDA headers: device discovery, the caching
// allocator per device, byte copies across devices. A CPU-only build defines them in cuda_stubs.cpp.
#pragma once
#include <cstddef>

#include "core/allocator.hpp"
#include "core/device.hpp"

namespace ember::kernels::cuda {

// Usable CUDA devices; 0 without CUDA support, driver or device (any runtime error counts as none).
int device_count();
bool is_available();
// Waits for all work queued on `device` (every device when -1).
void synchronize(int device = -1);
// The caching allocator of one device; DeviceError when the index is out of range.
Allocator& allocator(int device);
// Copies nbytes between buffers on any two devices (CPU or CUDA). Copies to or from the host return
// when done; device-to-device copies are ordered before all later work on the devices.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);

}  // namespace ember::kernels::cuda
