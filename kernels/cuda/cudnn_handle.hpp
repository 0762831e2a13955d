// cuDNN handles shared by the cuDNN users (kernels/cuda/conv.cpp, kernels/cuda/attention_cudnn.cpp):
// a handle is not safe for concurrent use, so each call leases one from its device's pool, bound to
// the device's current stream. Host code; only built with cuDNN (EMBER_CUDNN).
#pragma once
#include <cudnn.h>

// Throws ember::Error naming the failed call, file, line and cuDNN's message.
#define EMBER_CUDNN_CHECK(expr) ::ember::kernels::cuda::check_cudnn((expr), #expr, __FILE__, __LINE__)

namespace ember::kernels::cuda {

void check_cudnn(cudnnStatus_t s, const char* expr, const char* file, int line);

// A leased handle of `device`, set to its current stream; returned to the pool on destruction (the
// pool is never destroyed: handles must not be freed after the CUDA context at exit). `op` names the
// caller in the errors (cuDNN older than 9, no handle).
class CudnnHandle {
 public:
  CudnnHandle(int device, const char* op);
  ~CudnnHandle();
  CudnnHandle(const CudnnHandle&) = delete;
  CudnnHandle& operator=(const CudnnHandle&) = delete;
  cudnnHandle_t get() const { return h_; }

 private:
  int device_;
  cudnnHandle_t h_ = nullptr;
};

}  // namespace ember::kernels::cuda
