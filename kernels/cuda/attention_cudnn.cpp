// cuDNN's fused scaled dot-product attention (flash-style forward and backward, f16/bf16) through
// cuDNN's frontend graph API (NVIDIA's header-only C++ layer, fetched by tools/setup.sh). One graph per
// call signature (dtype, causal, scale, deterministic, every operand's dims and strides), built on first
// use and cached with its workspace size, or with the reason cuDNN refused it; run on the device's
// current stream with a workspace from the caching allocator, so CUDA-graph capture records it like
// any kernel. The forward writes each row's logsumexp (natural log, of the scaled scores) as Ember's
// own kernel does, so either backward can follow either forward. The operands' layouts come from
// kernels/attention_plan.hpp (sdpa_operand), which CPU tests cover. Host code. Without cuDNN's frontend
// (EMBER_CUDNN_FRONTEND unset) nothing is taken and the callers use Ember's kernel.
#include <cuda_runtime.h>

#include <atomic>
#include <string>

#include "core/error.hpp"
#include "kernels/attention.hpp"
#include "kernels/attention_plan.hpp"
#include "kernels/cuda/runtime.hpp"
#include "kernels/elementwise.hpp"

#ifdef EMBER_CUDNN_FRONTEND
// The frontend reaches cuDNN (already loaded: the convolutions link it) and NVRTC (only its own
// Blackwell engines use it) through dlopen, so that Ember does not link NVRTC.
#define NV_CUDNN_FRONTEND_USE_DYNAMIC_LOADING
#include <cudnn_frontend.h>
#include <dlfcn.h>

#include <bit>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/tensor.hpp"
#include "kernels/cuda/cudnn_handle.hpp"

// The handle through which the dynamically loading frontend finds cuDNN's symbols (its Python package
// sets it; here, the libcudnn that Ember links, or the global scope).
namespace cudnn_frontend {
void* cudnn_dlhandle = nullptr;
}
#endif

namespace ember::kernels::cuda {

int compute_capability(int device) {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> cache[kMaxDevices] = {};
  const bool cached = device >= 0 && device < kMaxDevices;
  if (cached && cache[device].load(std::memory_order_relaxed) > 0) return cache[device].load(std::memory_order_relaxed);
  int major = 0, minor = 0;
  EMBER_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  EMBER_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  if (cached) cache[device].store(major * 10 + minor, std::memory_order_relaxed);
  return major * 10 + minor;
}

#ifdef EMBER_CUDNN_FRONTEND
namespace {

namespace fe = cudnn_frontend;
constexpr const char* kOp = "scaled_dot_product_attention";

// The uids that bind the graphs' tensors to pointers at execution.
enum Uid : int64_t { kQ = 1, kK, kV, kO, kStats, kDO, kDQ, kDK, kDV };

struct Graph {
  std::shared_ptr<fe::graph::Graph> graph;  // null when cuDNN refused the signature
  int64_t workspace = 0;
  std::string error;
};

// Every graph built in this process, by signature; a refused signature keeps its reason so that it is
// not rebuilt. Executions take the lock too (a graph's execution is not documented as thread-safe).
struct Cache {
  std::mutex mu;
  std::map<std::vector<int64_t>, Graph> graphs;
};
Cache& cache() {
  static auto* c = new Cache;  // never destroyed: graphs must not be freed after the CUDA context
  return *c;
}

SdpaOperand operand(const Tensor& t, const char* name) {
  const auto op =
      sdpa_operand(t.shape(), t.strides(), reinterpret_cast<uint64_t>(dptr<const void>(t)), itemsize(t.dtype()));
  EMBER_CHECK(op.has_value() && t.dim() == 4, ValueError, "[", kOp, "] cuDNN's fused attention got ", name, " ",
              describe(t), " with strides ", t.strides(),
              ": it needs 4 dims, the last of stride 1, the others on 16 bytes (the caller copies such operands)");
  return *op;
}

std::shared_ptr<fe::graph::Tensor_attributes> input(fe::graph::Graph& g, const char* name, Uid uid,
                                                    const SdpaOperand& op) {
  return g.tensor(fe::graph::Tensor_attributes()
                      .set_name(name)
                      .set_uid(uid)
                      .set_dim({op.dim.begin(), op.dim.end()})
                      .set_stride({op.stride.begin(), op.stride.end()}));
}
void output(const std::shared_ptr<fe::graph::Tensor_attributes>& t, Uid uid, const SdpaOperand& op) {
  t->set_output(true)
      .set_uid(uid)
      .set_dim({op.dim.begin(), op.dim.end()})
      .set_stride({op.stride.begin(), op.stride.end()});
}
// The f32 [b, h, l, 1] row statistics (logsumexp), contiguous.
fe::graph::Tensor_attributes stats_attributes(const SdpaOperand& q) {
  const int64_t b = q.dim[0], h = q.dim[1], l = q.dim[2];
  return fe::graph::Tensor_attributes()
      .set_name("stats")
      .set_uid(kStats)
      .set_dim({b, h, l, 1})
      .set_stride({h * l, l, 1, 1})
      .set_data_type(fe::DataType_t::FLOAT);
}

// One call: the operands in uid order (absent ones zero) and the scalar parameters.
struct Call {
  bool backward = false;
  DType dtype = kBF16;
  AttentionParams p;
  SdpaOperand q, k, v, o, dout, dq, dk, dv;

  std::vector<int64_t> key(int device, cudnnHandle_t h) const {
    std::vector<int64_t> key{backward,
                             device,
                             static_cast<int64_t>(reinterpret_cast<uintptr_t>(h)),
                             static_cast<int64_t>(dtype),
                             p.causal,
                             backward && p.deterministic,
                             std::bit_cast<int32_t>(static_cast<float>(p.scale))};
    for (const SdpaOperand* op : {&q, &k, &v, &o, &dout, &dq, &dk, &dv}) {
      key.insert(key.end(), op->dim.begin(), op->dim.end());
      key.insert(key.end(), op->stride.begin(), op->stride.end());
    }
    return key;
  }
};

Graph build(const Call& c, cudnnHandle_t h) {
  auto g = std::make_shared<fe::graph::Graph>();
  g->set_io_data_type(c.dtype == kF16 ? fe::DataType_t::HALF : fe::DataType_t::BFLOAT16)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  auto q = input(*g, "q", kQ, c.q), k = input(*g, "k", kK, c.k), v = input(*g, "v", kV, c.v);
  const float scale = static_cast<float>(c.p.scale);
  if (!c.backward) {
    auto opts = fe::graph::SDPA_attributes().set_name("sdpa").set_generate_stats(true).set_attn_scale(scale);
    if (c.p.causal) opts.set_causal_mask(true);  // top-left: key j <= query i, as PyTorch's is_causal
    auto [o, stats] = g->sdpa(q, k, v, opts);
    output(o, kO, c.o);
    const auto sa = stats_attributes(c.q);
    stats->set_output(true)
        .set_uid(kStats)
        .set_data_type(fe::DataType_t::FLOAT)
        .set_dim(sa.get_dim())
        .set_stride(sa.get_stride());
  } else {
    auto o = input(*g, "o", kO, c.o), dout = input(*g, "dout", kDO, c.dout);
    auto stats = g->tensor(stats_attributes(c.q));
    auto opts = fe::graph::SDPA_backward_attributes().set_name("sdpa_backward").set_attn_scale(scale);
    if (c.p.causal) opts.set_causal_mask(true);
    if (c.p.deterministic) opts.set_deterministic_algorithm(true);
    auto [dq, dk, dv] = g->sdpa_backward(q, k, v, o, dout, stats, opts);
    output(dq, kDQ, c.dq);
    output(dk, kDK, c.dk);
    output(dv, kDV, c.dv);
  }
  Graph out;
  auto fail = [&](const char* step, fe::error_t e) {
    out.error = detail::cat_str(step, ": ", e.get_message());
    return out;
  };
  if (auto e = g->validate(); !e.is_good()) return fail("validate", e);
  if (auto e = g->build_operation_graph(h); !e.is_good()) return fail("build_operation_graph", e);
  if (auto e = g->create_execution_plans({fe::HeurMode_t::A}); !e.is_good()) return fail("create_execution_plans", e);
  if (auto e = g->check_support(); !e.is_good()) return fail("check_support", e);
  if (auto e = g->build_plans(); !e.is_good()) return fail("build_plans", e);
  if (auto e = g->get_workspace_size(out.workspace); !e.is_good()) return fail("get_workspace_size", e);
  out.graph = std::move(g);
  return out;
}

// Builds (or finds) the call's graph and runs it; false with `why` when cuDNN refuses the signature.
bool run(const Call& c, int device, std::unordered_map<int64_t, void*>& pack, std::string* why) {
  static const bool loaded = [] {
    fe::cudnn_dlhandle = dlopen("libcudnn.so.9", RTLD_NOW | RTLD_NOLOAD);
    if (fe::cudnn_dlhandle == nullptr) fe::cudnn_dlhandle = RTLD_DEFAULT;
    // The frontend would take the first of libcudart.so.12 and .13 on the path: the one Ember links.
    const std::string cudart = "libcudart.so." + std::to_string(CUDART_VERSION / 1000);
    setenv("CUDNN_FRONTEND_CUDART_LIB_NAME", cudart.c_str(), /*overwrite=*/0);
    return true;
  }();
  (void)loaded;
  DeviceGuard guard(device);
  CudnnHandle handle(device, kOp);
  const std::vector<int64_t> key = c.key(device, handle.get());
  Cache& cc = cache();
  std::lock_guard<std::mutex> lock(cc.mu);
  auto it = cc.graphs.find(key);
  if (it == cc.graphs.end()) {
    Graph built;
    try {
      built = build(c, handle.get());
    } catch (const std::exception& e) {  // the frontend throws for some malformed graphs
      built.error = e.what();
    }
    it = cc.graphs.emplace(key, std::move(built)).first;
  }
  const Graph& g = it->second;
  if (!g.graph) {
    if (why != nullptr) *why = "cuDNN refused the graph (" + g.error + ")";
    return false;
  }
  Tensor workspace;
  if (g.workspace > 0) workspace = make_tensor({g.workspace}, kU8, Device{Device::Kind::CUDA, device});
  auto e = g.graph->execute(handle.get(), pack, dptr<void>(workspace));
  EMBER_CHECK(e.is_good(), DeviceError, "[", kOp, "] cuDNN's fused attention failed to run on cuda:", device, ": ",
              e.get_message());
  return true;
}

void check_stats(const Tensor& stats, const SdpaOperand& q) {
  EMBER_CHECK(stats.dtype() == kF32 && stats.is_contiguous() && stats.shape() == Shape({q.dim[0], q.dim[1], q.dim[2]}),
              ValueError, "[", kOp, "] cuDNN's fused attention needs contiguous float32 stats [b, h, l], got ",
              describe(stats));
}

// The forward's operands (the backward adds its gradients' operands to them).
Call forward_call(const Tensor& out, const Tensor& stats, const Tensor& q, const Tensor& k, const Tensor& v,
                  const AttentionParams& p) {
  Call c;
  c.dtype = q.dtype();
  c.p = p;
  c.q = operand(q, "query");
  c.k = operand(k, "key");
  c.v = operand(v, "value");
  c.o = operand(out, "out");
  check_stats(stats, c.q);
  return c;
}

}  // namespace

bool cudnn_attention_available() { return true; }

bool cudnn_attention_forward(const Tensor& out, const Tensor& stats, const Tensor& q, const Tensor& k, const Tensor& v,
                             const AttentionParams& p, std::string* why) {
  const Call c = forward_call(out, stats, q, k, v, p);
  std::unordered_map<int64_t, void*> pack{{kQ, dptr<void>(q)},
                                          {kK, dptr<void>(k)},
                                          {kV, dptr<void>(v)},
                                          {kO, dptr<void>(out)},
                                          {kStats, dptr<void>(stats)}};
  return run(c, q.device().index, pack, why);
}

bool cudnn_attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout, const Tensor& q,
                              const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& stats,
                              const AttentionParams& p, std::string* why) {
  Call c = forward_call(out, stats, q, k, v, p);
  c.backward = true;
  // cuDNN before 9.5.1 reads dO with O's strides, whatever dO's own are: it then gets a copy in O's layout.
  Tensor d = dout;
  if (cudnnGetVersion() < 90501 && dout.strides() != out.strides()) {
    int64_t extent = 1;
    for (int64_t i = 0; i < out.dim(); ++i) extent += (out.size(i) - 1) * out.strides()[i];
    d = make_tensor({extent}, dout.dtype(), dout.device()).as_strided(out.shape(), out.strides());
    copy(d, dout);
  }
  c.dout = operand(d, "the output's gradient");
  c.dq = operand(dq, "dq");
  c.dk = operand(dk, "dk");
  c.dv = operand(dv, "dv");
  std::unordered_map<int64_t, void*> pack{{kQ, dptr<void>(q)},   {kK, dptr<void>(k)},   {kV, dptr<void>(v)},
                                          {kO, dptr<void>(out)}, {kDO, dptr<void>(d)},  {kStats, dptr<void>(stats)},
                                          {kDQ, dptr<void>(dq)}, {kDK, dptr<void>(dk)}, {kDV, dptr<void>(dv)}};
  return run(c, q.device().index, pack, why);
}

#else  // built without cuDNN's frontend: nothing is taken

bool cudnn_attention_available() { return false; }

bool cudnn_attention_forward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                             const AttentionParams&, std::string* why) {
  if (why != nullptr) *why = "Ember was built without cuDNN's frontend";
  return false;
}

bool cudnn_attention_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                              const Tensor&, const Tensor&, const Tensor&, const AttentionParams&, std::string* why) {
  if (why != nullptr) *why = "Ember was built without cuDNN's frontend";
  return false;
}

#endif

}  // namespace ember::kernels::cuda
