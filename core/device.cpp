// Device parsing and printing.
#include "core/device.hpp"

#include <ostream>

#include "core/error.hpp"
#include "kernels/cuda_device.hpp"

namespace ember {

Device::Device(const std::string& spec) {
  if (spec == "cpu") return;
  if (spec.rfind("cuda", 0) == 0) {
    kind = Kind::CUDA;
    if (spec.size() == 4) return;
    EMBER_CHECK(spec[4] == ':' && spec.size() > 5 && spec.find_first_not_of("0123456789", 5) == std::string::npos,
                ValueError, "[device] cannot parse device string '", spec, "'");
    index = std::stoi(spec.substr(5));
    return;
  }
  throw ValueError("[device] unknown device string '" + spec + "' (expected cpu, cuda or cuda:N)");
}

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

std::ostream& operator<<(std::ostream& os, const Device& d) { return os << d.str(); }

int cuda_device_count() { return kernels::cuda::device_count(); }
bool cuda_is_available() { return kernels::cuda::is_available(); }
void set_device(Device device) {
  EMBER_CHECK(device.is_cuda(), DeviceError, "[set_device] expected a CUDA device, got ", device);
  kernels::cuda::set_device(device.index);
}
Device current_cuda_device() { return Device(Device::Kind::CUDA, kernels::cuda::current_device()); }
void synchronize(Device device) {
  if (device.is_cuda()) kernels::cuda::synchronize(device.index);
}

}  // namespace ember
