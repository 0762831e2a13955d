// CUDA runtime glue: error reporting, device discovery (no driver means no devices, not an error),
// device guards, synchronisation and byte copies between any two devices.
#include <cstring>

#include "core/error.hpp"
#include "kernels/cuda/runtime.hpp"

namespace ember::kernels::cuda {

void check_error(cudaError_t err, const char* expr, const char* file, int line) {
  if (err == cudaSuccess) return;
  cudaGetLastError();  // clear a non-sticky error so later calls start clean
  throw Error(detail::cat_str("[cuda] ", expr, " failed at ", file, ":", line, ": ", cudaGetErrorName(err), ": ",
                              cudaGetErrorString(err)));
}

int device_count() {
  static int count = [] {
    int n = 0;
    // Without a driver this returns an error ("driver version is insufficient"): that means no devices.
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

bool is_available() { return device_count() > 0; }

int device_index(Device d, const char* op) {
  EMBER_CHECK(d.is_cuda(), DeviceError, "[", op, "] expected a CUDA device, got ", d);
  EMBER_CHECK(d.index >= 0 && d.index < device_count(), DeviceError, "[", op, "] device ", d,
              " is not available (this machine has ", device_count(), " CUDA devices)");
  return d.index;
}

DeviceGuard::DeviceGuard(int device) : cur_(device) {
  EMBER_CUDA_CHECK(cudaGetDevice(&prev_));
  if (prev_ != cur_) EMBER_CUDA_CHECK(cudaSetDevice(cur_));
}
DeviceGuard::~DeviceGuard() {
  if (prev_ != cur_) cudaSetDevice(prev_);
}

void synchronize(int device) {
  if (device >= 0) {
    DeviceGuard g(device_index(Device(Device::Kind::CUDA, device), "synchronize"));
    EMBER_CUDA_CHECK(cudaDeviceSynchronize());
    return;
  }
  for (int d = 0; d < device_count(); ++d) {
    DeviceGuard g(d);
    EMBER_CUDA_CHECK(cudaDeviceSynchronize());
  }
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, nbytes);
    return;
  }
  // Run on a CUDA side's device; unified addressing lets cudaMemcpyDefault tell the directions apart,
  // and a peer copy between two GPUs goes through cudaMemcpyPeer.
  if (dst_device.is_cuda() && src_device.is_cuda() && dst_device.index != src_device.index) {
    device_index(dst_device, "to");
    device_index(src_device, "to");
    EMBER_CUDA_CHECK(cudaMemcpyPeer(dst, dst_device.index, src, src_device.index, nbytes));
    DeviceGuard g(dst_device.index);
    EMBER_CUDA_CHECK(cudaDeviceSynchronize());
    return;
  }
  int dev = dst_device.is_cuda() ? device_index(dst_device, "to") : device_index(src_device, "to");
  DeviceGuard g(dev);
  cudaMemcpyKind kind = dst_device.is_cpu()   ? cudaMemcpyDeviceToHost
                        : src_device.is_cpu() ? cudaMemcpyHostToDevice
                                              : cudaMemcpyDeviceToDevice;
  EMBER_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, kind));
}

}  // namespace ember::kernels::cuda
