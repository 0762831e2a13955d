// The cuDNN handle pool of kernels/cuda/cudnn_handle.hpp.
#include "kernels/cuda/cudnn_handle.hpp"

#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/error.hpp"
#include "kernels/cuda/runtime.hpp"

namespace ember::kernels::cuda {
namespace {

struct HandlePool {
  std::mutex mu;
  std::unordered_map<int, std::vector<cudnnHandle_t>> free;
};
HandlePool& handle_pool() {
  static auto* pool = new HandlePool;
  return *pool;
}

}  // namespace

void check_cudnn(cudnnStatus_t s, const char* expr, const char* file, int line) {
  if (s == CUDNN_STATUS_SUCCESS) return;
  throw Error(detail::cat_str("[cudnn] ", expr, " failed at ", file, ":", line, ": ", cudnnGetErrorString(s)));
}

CudnnHandle::CudnnHandle(int device, const char* op) : device_(device) {
  {
    std::lock_guard<std::mutex> lock(handle_pool().mu);
    auto& list = handle_pool().free[device];
    if (!list.empty()) {
      h_ = list.back();
      list.pop_back();
    }
  }
  if (h_ == nullptr) {
    EMBER_CHECK(cudnnGetVersion() >= 90000, DeviceError, "[", op, "] needs cuDNN 9, found version ", cudnnGetVersion());
    DeviceGuard guard(device);
    RelaxedCaptureGuard relaxed;  // a first use inside a CUDA-graph capture: the handle's memory is not stream work
    const cudnnStatus_t s = cudnnCreate(&h_);
    EMBER_CHECK(s == CUDNN_STATUS_SUCCESS, DeviceError, "[", op, "] cannot create a cuDNN handle on cuda:", device,
                ": ", cudnnGetErrorString(s), " (are cuDNN 9's libraries on the library path?)");
  }
  const cudnnStatus_t s = cudnnSetStream(h_, current_stream(device));
  if (s != CUDNN_STATUS_SUCCESS) {
    std::lock_guard<std::mutex> lock(handle_pool().mu);
    handle_pool().free[device_].push_back(h_);
    check_cudnn(s, "cudnnSetStream(h_, current_stream(device))", __FILE__, __LINE__);
  }
}

CudnnHandle::~CudnnHandle() {
  std::lock_guard<std::mutex> lock(handle_pool().mu);
  handle_pool().free[device_].push_back(h_);
}

}  // namespace ember::kernels::cuda
