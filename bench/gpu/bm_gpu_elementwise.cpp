// GPU elementwise bandwidth: a + b on 256M floats (and f16/bf16) through Ember's CUDA kernels, against
// a device-to-device copy of the same bytes, which bounds what an elementwise kernel can reach.
// Prints one line per workload: time per call and effective bandwidth (bytes read + written per second).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "ember.hpp"
#include "kernels/cuda_device.hpp"

using namespace ember;

namespace {

template <class F>
double time_ms(F&& f, int iters) {
  f();  // warm up (allocator, module load)
  kernels::cuda::synchronize();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) f();
  kernels::cuda::synchronize();
  auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::milli>(t1 - t0).count() / iters;
}

void report(const std::string& name, double ms, double bytes) {
  std::printf("%-34s %9.3f ms  %8.1f GB/s\n", name.c_str(), ms, bytes / (ms * 1e-3) / 1e9);
}

}  // namespace

int main(int argc, char** argv) {
  if (kernels::cuda::device_count() == 0) {
    std::printf("bm_gpu_elementwise: no CUDA device, nothing to measure\n");
    return 0;
  }
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : int64_t{1} << 28;  // 256M elements
  const int iters = argc > 2 ? std::atoi(argv[2]) : 20;
  const Device dev{Device::Kind::CUDA, 0};
  std::printf("elementwise bandwidth, n = %lld elements, %d iterations\n", static_cast<long long>(n), iters);
  for (DType dt : {kF32, kBF16, kF16}) {
    const double es = static_cast<double>(itemsize(dt));
    Tensor a = full({n}, 1.0, {.dtype = dt, .device = dev});
    Tensor b = full({n}, 2.0, {.dtype = dt, .device = dev});
    Tensor c = empty({n}, {.dtype = dt, .device = dev});
    std::string tag = std::string(" ") + dtype_name(dt);
    report("copy D2D (to(device, copy))" + tag, time_ms([&] { (void)a.to(dev, true); }, iters), 2 * n * es);
    report("copy_ (cudaMemcpyAsync)" + tag, time_ms([&] { c.copy_(a); }, iters), 2 * n * es);
    report("add a + b" + tag, time_ms([&] { (void)(a + b); }, iters), 3 * n * es);
    report("add_ a += b" + tag, time_ms([&] { a.add_(b); }, iters), 3 * n * es);
    report("mul by scalar" + tag, time_ms([&] { (void)(a * 2.0); }, iters), 2 * n * es);
    Tensor at = a.view({n / 4096, 4096}).t();
    report("exp of transposed view" + tag, time_ms([&] { (void)exp(at); }, iters / 4 + 1), 2 * n * es);
    Tensor check = (full({8}, 1.0, {.dtype = dt, .device = dev}) + full({8}, 2.0, {.dtype = dt, .device = dev}));
    if (check.cpu().to(kF32).to_vector<float>()[0] != 3.0f) {
      std::printf("wrong result for 1 + 2\n");
      return 1;
    }
  }
  MemoryStats s = memory_stats(dev);
  std::printf("allocator: peak %.2f GiB, cudaMalloc calls %lld of %lld allocations\n",
              static_cast<double>(s.peak_bytes) / (1 << 30), static_cast<long long>(s.system_allocations),
              static_cast<long long>(s.allocations));
  return 0;
}
