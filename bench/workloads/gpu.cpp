// The GPU suite (CUDA builds only): matmul in bf16/f16/f32 up to 8192, elementwise on 256M floats, softmax,
// layer_norm, causal attention (forward, and forward + backward), GPT-2 124M training steps, and the
// CPU-sized models (launch overhead), eagerly and replayed from CUDA graphs. Twins in bench/reference/gpu.py. Ops the
// CUDA backend lacks are reported as skipped with Ember's error. `bench_gpu --device-count` prints the number of usable
// CUDA devices and exits.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>

#include "bench/workloads/common.hpp"
#include "bench/workloads/models.hpp"
#include "ember.hpp"
#include "examples/gpt2/gpt2.hpp"
#include "kernels/cuda_device.hpp"

using namespace ember;
namespace F = ember::nn::functional;

namespace {

const Device kGpu{Device::Kind::CUDA, 0};

// Registers fn like bench::workload, synchronising after each iteration; peak_mb is the CUDA allocator's
// peak over the run, and an ember::Error (an op without a CUDA kernel) skips the workload with its message.
template <class Fn>
benchmark::internal::Benchmark* gpu_workload(const char* name, Fn fn) {
  return benchmark::RegisterBenchmark(name,
                                      [fn](benchmark::State& st) {
                                        empty_cache(kGpu);
                                        reset_peak_memory_stats(kGpu);
                                        try {
                                          fn(st);
                                        } catch (const Error& e) {
                                          st.SkipWithError(e.what());
                                          return;
                                        }
                                        st.counters["peak_mb"] =
                                            static_cast<double>(memory_stats(kGpu).peak_bytes) / (1 << 20);
                                      })
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}
#define GPU_WORKLOAD(fn) \
  [[maybe_unused]] static benchmark::internal::Benchmark* const fn##_workload = gpu_workload(#fn, fn)

// One warm-up call, then f() per iteration, each waited for.
template <class Step>
void run_synced(benchmark::State& st, Step&& step) {
  step();
  kernels::cuda::synchronize();
  for (auto _ : st) {
    step();
    kernels::cuda::synchronize();
  }
}

Tensor gpu_randn(Shape shape, DType dtype = kF32) { return randn(shape, {.dtype = dtype, .device = kGpu}); }

void matmul_square(benchmark::State& st, DType dtype) {
  const int64_t n = st.range(0);
  Tensor a = gpu_randn({n, n}, dtype), b = gpu_randn({n, n}, dtype);
  run_synced(st, [&] { (void)matmul(a, b); });
  st.counters["TFLOP/s"] = benchmark::Counter(2.0 * n * n * n * st.iterations() / 1e12, benchmark::Counter::kIsRate);
}
void cuda_matmul_bf16(benchmark::State& st) { matmul_square(st, kBF16); }
void cuda_matmul_f16(benchmark::State& st) { matmul_square(st, kF16); }
// f32 products use TF32 on both sides (main sets "high", as the twins set allow_tf32).
void cuda_matmul_tf32(benchmark::State& st) { matmul_square(st, kF32); }
GPU_WORKLOAD(cuda_matmul_bf16)->Arg(1024)->Arg(4096)->Arg(8192);
GPU_WORKLOAD(cuda_matmul_f16)->Arg(1024)->Arg(4096)->Arg(8192);
GPU_WORKLOAD(cuda_matmul_tf32)->Arg(1024)->Arg(4096)->Arg(8192);

constexpr int64_t k256M = int64_t{1} << 28;
void cuda_add_256M(benchmark::State& st) {
  Tensor a = gpu_randn({k256M}), b = gpu_randn({k256M});
  run_synced(st, [&] { (void)(a + b); });
}
void cuda_mul_256M(benchmark::State& st) {
  Tensor a = gpu_randn({k256M}), b = gpu_randn({k256M});
  run_synced(st, [&] { (void)(a * b); });
}
void cuda_exp_256M(benchmark::State& st) {
  Tensor a = gpu_randn({k256M});
  run_synced(st, [&] { (void)exp(a); });
}
void cuda_gelu_256M(benchmark::State& st) {
  Tensor a = gpu_randn({k256M});
  run_synced(st, [&] { (void)gelu(a); });
}
GPU_WORKLOAD(cuda_add_256M);
GPU_WORKLOAD(cuda_mul_256M);
GPU_WORKLOAD(cuda_exp_256M);
GPU_WORKLOAD(cuda_gelu_256M);

void cuda_softmax_16384x4096(benchmark::State& st) {
  Tensor a = gpu_randn({16384, 4096});
  run_synced(st, [&] { (void)softmax(a, -1); });
}
void cuda_layer_norm_16384x4096(benchmark::State& st) {
  Tensor a = gpu_randn({16384, 4096}), w = ones({4096}).to(kGpu), b = zeros({4096}).to(kGpu);
  run_synced(st, [&] { (void)layer_norm(a, {4096}, w, b); });
}
// Causal self-attention forward, bf16: batch 8, 12 heads, 1024 tokens, head size 64 (GPT-2's shape).
void cuda_attention_bf16(benchmark::State& st) {
  Tensor q = gpu_randn({8, 12, 1024, 64}, kBF16), k = gpu_randn({8, 12, 1024, 64}, kBF16);
  Tensor v = gpu_randn({8, 12, 1024, 64}, kBF16);
  run_synced(st, [&] { (void)F::scaled_dot_product_attention(q, k, v, {}, 0.0, true); });
}
GPU_WORKLOAD(cuda_softmax_16384x4096);
GPU_WORKLOAD(cuda_layer_norm_16384x4096);
GPU_WORKLOAD(cuda_attention_bf16);
// The same shape forward + backward (the fused attention; issue goal >= 0.9x torch's sdpa): batch 8, 12
// heads, 1024 tokens, head dim 64, causal, bf16. Gradients of <out, g> for q, k and v. The default
// (Auto: cuDNN's fused attention where it takes the call), and each fused implementation on its own.
void attention_fwd_bwd(benchmark::State& st, SdpaBackend backend) {
  SdpaBackendGuard guard(backend);
  Tensor q = gpu_randn({8, 12, 1024, 64}, kBF16).requires_grad_();
  Tensor k = gpu_randn({8, 12, 1024, 64}, kBF16).requires_grad_();
  Tensor v = gpu_randn({8, 12, 1024, 64}, kBF16).requires_grad_(), g = gpu_randn({8, 12, 1024, 64}, kBF16);
  const int64_t fused = fused_attention_calls();
  run_synced(st, [&] {
    q.set_grad({});
    k.set_grad({});
    v.set_grad({});
    F::scaled_dot_product_attention(q, k, v, {}, 0.0, true).backward(g);
  });
  if (fused_attention_calls() == fused) st.SkipWithError("no fused attention kernel took the call");
  // FLOPs as FlashAttention counts them (causal: half of 4 L S E forward, 2.5x that for the backward).
  const double flops = 3.5 * 4.0 * 8 * 12 * 1024.0 * 1024.0 * 64 / 2;
  st.counters["TFLOP/s"] = benchmark::Counter(flops * st.iterations() / 1e12, benchmark::Counter::kIsRate);
}
void cuda_attention_fwd_bwd_bf16(benchmark::State& st) { attention_fwd_bwd(st, SdpaBackend::Auto); }
void cuda_attention_fwd_bwd_bf16_ember(benchmark::State& st) { attention_fwd_bwd(st, SdpaBackend::Blocked); }
void cuda_attention_fwd_bwd_bf16_cudnn(benchmark::State& st) { attention_fwd_bwd(st, SdpaBackend::Cudnn); }
GPU_WORKLOAD(cuda_attention_fwd_bwd_bf16);
GPU_WORKLOAD(cuda_attention_fwd_bwd_bf16_ember);
GPU_WORKLOAD(cuda_attention_fwd_bwd_bf16_cudnn);

// The bandwidth bound of the elementwise kernels (a device-to-device copy) and a cast (f32 -> bf16).
void cuda_copy_256M(benchmark::State& st) {
  Tensor a = gpu_randn({k256M}), c = empty({k256M}, {.device = kGpu});
  run_synced(st, [&] { c.copy_(a); });
}
void cuda_cast_bf16_256M(benchmark::State& st) {
  Tensor a = gpu_randn({k256M});
  run_synced(st, [&] { (void)a.to(kBF16); });
}
GPU_WORKLOAD(cuda_copy_256M);
GPU_WORKLOAD(cuda_cast_bf16_256M);

// Forward and backward of the fused row ops (the "at least as fast as PyTorch" set).
void fwd_bwd(benchmark::State& st, Tensor x, const std::function<Tensor(const Tensor&)>& f) {
  Tensor g = gpu_randn(x.shape());
  run_synced(st, [&] {
    x.set_grad({});
    (f(x) * g).sum().backward();
  });
}
void cuda_softmax_fwd_bwd_8192x4096(benchmark::State& st) {
  Tensor x = gpu_randn({8192, 4096}).requires_grad_();
  fwd_bwd(st, x, [](const Tensor& t) { return softmax(t, -1); });
}
void cuda_layer_norm_fwd_bwd_8192x4096(benchmark::State& st) {
  Tensor x = gpu_randn({8192, 4096}).requires_grad_();
  Tensor w = ones({4096}).to(kGpu).requires_grad_(), b = zeros({4096}).to(kGpu).requires_grad_();
  fwd_bwd(st, x, [&](const Tensor& t) { return layer_norm(t, {4096}, w, b); });
}
// GPT-2's logits: 8192 positions over a 50304-token vocabulary.
void cuda_cross_entropy_fwd_bwd_8192x50304(benchmark::State& st) {
  Tensor x = gpu_randn({8192, 50304}).requires_grad_();
  Tensor y = randint(0, 50304, {8192}).to(kGpu);
  run_synced(st, [&] {
    x.set_grad({});
    F::cross_entropy(x, y).backward();
  });
}
GPU_WORKLOAD(cuda_softmax_fwd_bwd_8192x4096);
GPU_WORKLOAD(cuda_layer_norm_fwd_bwd_8192x4096);
GPU_WORKLOAD(cuda_cross_entropy_fwd_bwd_8192x50304);

// Cross-entropy training step of `model` on the GPU.
template <class Model, class Opt>
void gpu_train(benchmark::State& st, Model& model, Opt& opt, const Tensor& x, const Tensor& y) {
  run_synced(st, [&] {
    Tensor loss = F::cross_entropy(model.forward(x).flatten(0, -2), y.flatten());
    opt.zero_grad();
    loss.backward();
    opt.step();
  });
}
// GPT-2 124M (12 layers, d 768, 12 heads, context 1024, tied head), batch 8, AdamW; bf16-mixed runs the
// forward and loss under Autocast (matmuls in bf16, f32 weights), as torch.autocast.
void gpt2_step(benchmark::State& st, bool bf16_mixed) {
  manual_seed(0);
  bench::Gpt m(bench::kGpt2);
  m.to(kGpu);
  optim::AdamW opt(m.parameters(), {.lr = 1e-4});
  Tensor x = randint(0, 50257, {8, 1024}).to(kGpu), y = randint(0, 50257, {8, 1024}).to(kGpu);
  run_synced(st, [&] {
    Tensor loss;
    {
      Autocast amp(kGpu, kBF16, bf16_mixed);
      loss = F::cross_entropy(m.forward(x).flatten(0, -2), y.flatten());
    }
    opt.zero_grad();
    loss.backward();
    opt.step();
  });
}
void cuda_gpt2_f32_step(benchmark::State& st) { gpt2_step(st, false); }
void cuda_gpt2_bf16_mixed_step(benchmark::State& st) { gpt2_step(st, true); }
GPU_WORKLOAD(cuda_gpt2_f32_step);
GPU_WORKLOAD(cuda_gpt2_bf16_mixed_step);

// examples/gpt2's GPT-2 124M (Hugging Face's layout, fused attention, tied head) as the example trains it:
// batch 8 x 1024 tokens, bf16-mixed, fused AdamW with weight decay on matrices, clipping at 1.0. Tokens
// per second = 8192 / time per step. Twin: torch eager and torch.compile on models.Gpt2.
void cuda_gpt2_124m_step(benchmark::State& st) {
  manual_seed(0);
  gpt2::GPT2Model m(gpt2::Config::gpt2_124m());
  m->to(kGpu);
  std::vector<Tensor> decay, rest;
  for (const Tensor& p : m->parameters()) (p.dim() >= 2 ? decay : rest).push_back(p);
  optim::AdamW opt({optim::ParamGroup{decay}, optim::ParamGroup{rest, {{"weight_decay", 0.0}}}},
                   {.lr = 6e-4, .betas = {0.9, 0.95}, .weight_decay = 0.1, .fused = true});
  Tensor x = randint(0, 50257, {8, 1024}).to(kGpu), y = randint(0, 50257, {8, 1024}).to(kGpu);
  const std::vector<Tensor> params = m->parameters();
  run_synced(st, [&] {
    Tensor loss;
    {
      Autocast amp(kGpu, kBF16);
      loss = F::cross_entropy(gpt2::lm_logits(*m, x).flatten(0, -2), y.flatten());
    }
    loss.backward();
    nn::clip_grad_norm_(params, 1.0);
    opt.step();
    opt.zero_grad();
  });
  st.counters["tokens_per_s"] =
      benchmark::Counter(8192.0 * static_cast<double>(st.iterations()), benchmark::Counter::kIsRate);
}
GPU_WORKLOAD(cuda_gpt2_124m_step);

void cuda_mlp_sgd_step(benchmark::State& st) {
  manual_seed(0);
  bench::Mlp m;
  m.to(kGpu);
  optim::SGD opt(m.parameters(), {.lr = 0.01, .momentum = 0.9});
  gpu_train(st, m, opt, randn({128, 784}).to(kGpu), randint(0, 10, {128}).to(kGpu));
}
void cuda_lenet_adam_step(benchmark::State& st) {
  manual_seed(0);
  bench::LeNet m;
  m.to(kGpu);
  optim::Adam opt(m.parameters(), {.lr = 1e-3});
  gpu_train(st, m, opt, rand({64, 1, 28, 28}).to(kGpu), randint(0, 10, {64}).to(kGpu));
}
void cuda_resnet_sgd_step(benchmark::State& st) {
  manual_seed(0);
  bench::ResNet m;
  m.to(kGpu);
  optim::SGD opt(m.parameters(), {.lr = 0.01, .momentum = 0.9});
  gpu_train(st, m, opt, randn({32, 3, 32, 32}).to(kGpu), randint(0, 10, {32}).to(kGpu));
}
void cuda_chargpt_adamw_step(benchmark::State& st) {
  manual_seed(0);
  bench::Gpt m;
  m.to(kGpu);
  optim::AdamW opt(m.parameters(), {.lr = 1e-3});
  gpu_train(st, m, opt, randint(0, 65, {32, 64}).to(kGpu), randint(0, 65, {32, 64}).to(kGpu));
}
GPU_WORKLOAD(cuda_mlp_sgd_step);
GPU_WORKLOAD(cuda_lenet_adam_step);
GPU_WORKLOAD(cuda_resnet_sgd_step);
GPU_WORKLOAD(cuda_chargpt_adamw_step);

// The same steps captured once into a CUDA graph (core/cuda_graph.hpp, what TrainerOptions::cuda_graphs
// does) and replayed: each step is the optimizer's host code re-run into the graph's slots and one
// launch, instead of one launch per kernel. Twin: PyTorch eager (the goal: at most 0.5x its step time).
// A step with a host read (a loss that reads to the host) cannot be captured: the workload is then
// skipped with the capture's error.
template <class Model, class Opt>
void gpu_train_graphed(benchmark::State& st, Model& model, Opt& opt, const Tensor& x, const Tensor& y) {
  auto step = [&] {
    opt.zero_grad(/*set_to_none=*/false);  // gradients stay allocated: the graph zeroes them in place
    Tensor loss = F::cross_entropy(model.forward(x).flatten(0, -2), y.flatten());
    loss.backward();
    opt.step();
  };
  for (int i = 0; i < 3; ++i) step();  // optimizer state, algorithm caches and gradients exist
  CudaGraph graph(kGpu);
  {
    CudaGraphCapture capture(graph);
    step();
  }
  run_synced(st, [&] {
    graph.rerun([&] { opt.step(); });
    graph.replay();
  });
}
void cuda_mlp_sgd_step_graph(benchmark::State& st) {
  manual_seed(0);
  bench::Mlp m;
  m.to(kGpu);
  optim::SGD opt(m.parameters(), {.lr = 0.01, .momentum = 0.9});
  gpu_train_graphed(st, m, opt, randn({128, 784}).to(kGpu), randint(0, 10, {128}).to(kGpu));
}
void cuda_lenet_adam_step_graph(benchmark::State& st) {
  manual_seed(0);
  bench::LeNet m;
  m.to(kGpu);
  optim::Adam opt(m.parameters(), {.lr = 1e-3});
  gpu_train_graphed(st, m, opt, rand({64, 1, 28, 28}).to(kGpu), randint(0, 10, {64}).to(kGpu));
}
void cuda_chargpt_adamw_step_graph(benchmark::State& st) {
  manual_seed(0);
  bench::Gpt m;
  m.to(kGpu);
  optim::AdamW opt(m.parameters(), {.lr = 1e-3});
  gpu_train_graphed(st, m, opt, randint(0, 65, {32, 64}).to(kGpu), randint(0, 65, {32, 64}).to(kGpu));
}
GPU_WORKLOAD(cuda_mlp_sgd_step_graph);
GPU_WORKLOAD(cuda_lenet_adam_step_graph);
GPU_WORKLOAD(cuda_chargpt_adamw_step_graph);

}  // namespace

int main(int argc, char** argv) {
  const int devices = kernels::cuda::device_count();
  if (argc > 1 && std::strcmp(argv[1], "--device-count") == 0) return std::printf("%d\n", devices), 0;
  if (devices == 0) {
    std::printf("no CUDA device: skipping the gpu suite\n");
    return 0;
  }
  // f32 products and convolutions on TF32 tensor cores, as the PyTorch twins (allow_tf32) run them.
  set_float32_matmul_precision("high");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
