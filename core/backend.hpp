// Global backend switches, as torch.backends / torch.set_float32_matmul_precision: how much precision a
// float32 matrix product may trade for speed on the GPU.
#pragma once
#include <string>

namespace ember {

// "highest" (default: full f32 products), "high" or "medium" (float32 products on CUDA may use TF32
// tensor cores, CUBLAS_COMPUTE_32F_FAST_TF32). Anything else is a ValueError. The CPU ignores it.
void set_float32_matmul_precision(const std::string& precision);
std::string get_float32_matmul_precision();
// Whether float32 matrix products may use TF32 ("high" or "medium").
bool float32_matmul_allows_tf32();

// torch.backends.cudnn.benchmark: when on, the first convolution of each shape times cuDNN's algorithms
// (cudnnFind*) and keeps the fastest; off (default), cuDNN's heuristics choose without running anything.
void set_cudnn_benchmark(bool on);
bool cudnn_benchmark();

}  // namespace ember
