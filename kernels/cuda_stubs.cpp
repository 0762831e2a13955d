// The CUDA entry points of a build without CUDA: no devices, and every kernel raises DeviceError, so a
// CPU-only build links and says clearly what is missing when a CUDA tensor is asked for.
#include "core/error.hpp"
#include "kernels/attention.hpp"
#include "kernels/conv.hpp"
#include "kernels/cuda_device.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/index.hpp"
#include "kernels/linalg.hpp"
#include "kernels/loss.hpp"
#include "kernels/nn.hpp"
#include "kernels/optim.hpp"
#include "kernels/random.hpp"
#include "kernels/reduce.hpp"

namespace ember::kernels::cuda {
namespace {
[[noreturn]] void no_cuda(const char* op) {
  throw DeviceError(detail::cat_str("[", op, "] built without CUDA support"));
}
}  // namespace

int device_count() { return 0; }
bool is_available() { return false; }
void set_device(int) { no_cuda("set_device"); }
int current_device() { return 0; }
void synchronize(int) {}
Allocator& allocator(int) { no_cuda("cuda allocator"); }
void copy_bytes(void*, Device, const void*, Device, size_t) { no_cuda("to"); }
void copy_bytes_async(void*, Device, const void*, Device, size_t) { no_cuda("to"); }
Allocator& pinned_allocator() { no_cuda("pin_memory"); }
bool is_pinned(const void*) { return false; }
void* stream_create(int, int) { no_cuda("Stream"); }
void stream_destroy(int, void*) {}
void* current_stream_handle(int) { no_cuda("Stream"); }
void set_current_stream_handle(int, void*) { no_cuda("StreamGuard"); }
void stream_synchronize(int, void*) { no_cuda("Stream"); }
bool stream_query(int, void*) { no_cuda("Stream"); }
void stream_wait_event(int, void*, void*) { no_cuda("Stream"); }
void* event_create(int, bool) { no_cuda("Event"); }
void event_destroy(int, void*) {}
void event_record(int, void*, void*) { no_cuda("Event"); }
void event_synchronize(int, void*) { no_cuda("Event"); }
bool event_query(int, void*) { no_cuda("Event"); }
float event_elapsed_ms(int, void*, void*) { no_cuda("Event"); }
void record_stream(int, void*, void*) { no_cuda("record_stream"); }
void graph_capture_begin(int, void*) { no_cuda("cuda graph"); }
void* graph_capture_end(int, void*) { no_cuda("cuda graph"); }
void graph_capture_abort(int, void*) {}
void graph_launch(int, void*, void*) { no_cuda("cuda graph"); }
void graph_destroy(int, void*) {}
bool stream_is_capturing(int, void*) { return false; }
void* device_malloc_raw(int, size_t) { no_cuda("cuda graph"); }
void device_free_raw(int, void*) {}
void* pinned_malloc_raw(size_t) { no_cuda("cuda graph"); }
void pinned_free_raw(void*) {}
void copy_to_device_async(int, void*, const void*, size_t, void*) { no_cuda("cuda graph"); }
void begin_graph_pool(int, uint64_t, void*) { no_cuda("cuda graph"); }
void end_graph_pool(int, void*) {}
void release_graph_pool(int, uint64_t) {}

void unary(int, const Tensor&, const Tensor&, const OpParams&) { no_cuda("unary"); }
void binary(int, const Tensor&, const Tensor&, const Tensor&, const OpParams&) { no_cuda("binary"); }
void ternary(int, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const OpParams&) { no_cuda("ternary"); }
void copy(const Tensor&, const Tensor&) { no_cuda("copy"); }
void fill(const Tensor&, const Scalar&) { no_cuda("fill"); }
void arange(const Tensor&, const ArangeParams&) { no_cuda("arange"); }
void random_fill(const Tensor&, const RandomParams&, uint64_t, uint64_t) { no_cuda("random"); }
void reduce(ReduceKind, const Tensor&, const Tensor&, const ReduceParams&) { no_cuda("reduce"); }
void var_mean(const Tensor&, const Tensor&, const Tensor&, int64_t, bool) { no_cuda("var"); }
void logsumexp(const Tensor&, const Tensor&) { no_cuda("logsumexp"); }
void arg_reduce(bool, const Tensor&, const Tensor&, const Tensor&) { no_cuda("argmax"); }
void cumulative(bool, const Tensor&, const Tensor&, int64_t) { no_cuda("cumsum"); }
void sort(const Tensor&, const Tensor&, const Tensor&, int64_t, bool) { no_cuda("sort"); }
void topk(const Tensor&, const Tensor&, const Tensor&, int64_t, int64_t, bool, bool) { no_cuda("topk"); }
void softmax(const Tensor&, const Tensor&, int64_t, bool) { no_cuda("softmax"); }
void softmax_backward(const Tensor&, const Tensor&, const Tensor&, bool) { no_cuda("softmax_backward"); }
void check_probabilities(const Tensor&, ProbabilityOp) { no_cuda("check_probabilities"); }
void cross_entropy_forward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                           const CrossEntropyParams&, const Tensor&, const Tensor&, CeReduce) {
  no_cuda("cross_entropy");
}
void cross_entropy_backward(const Tensor&, const Tensor&, double, const Tensor&, const Tensor&, const Tensor&,
                            const Tensor&, const CrossEntropyParams&, const Tensor&) {
  no_cuda("cross_entropy");
}
int64_t flash_max_smem(int) { return 0; }
void attention_forward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                       const AttentionParams&) {
  no_cuda("scaled_dot_product_attention");
}
void attention_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                        const Tensor&, const Tensor&, const Tensor&, const Tensor&, const AttentionParams&) {
  no_cuda("scaled_dot_product_attention");
}
bool cudnn_attention_available() { return false; }
bool cudnn_attention_forward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                             const AttentionParams&, std::string* why) {
  if (why != nullptr) *why = "Ember was built without CUDA support";
  return false;
}
bool cudnn_attention_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                              const Tensor&, const Tensor&, const Tensor&, const AttentionParams&, std::string* why) {
  if (why != nullptr) *why = "Ember was built without CUDA support";
  return false;
}
int compute_capability(int) { return 0; }
void sgd_step(const Tensor&, const Tensor&, const Tensor&, const SgdStepArgs&) { no_cuda("sgd_step_"); }
void adam_step(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const AdamStepArgs&) {
  no_cuda("adam_step_");
}
void rmsprop_step(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const RmspropStepArgs&) {
  no_cuda("rmsprop_step_");
}
void adagrad_step(const Tensor&, const Tensor&, const Tensor&, const AdagradStepArgs&) { no_cuda("adagrad_step_"); }
void sgd_step_multi(const TensorList&, const TensorList&, const TensorList&, const SgdStepArgs&) {
  no_cuda("sgd_step_");
}
void adam_step_multi(const TensorList&, const TensorList&, const TensorList&, const TensorList&, const TensorList&,
                     const AdamStepArgs&) {
  no_cuda("adam_step_");
}
void rmsprop_step_multi(const TensorList&, const TensorList&, const TensorList&, const TensorList&, const TensorList&,
                        const RmspropStepArgs&) {
  no_cuda("rmsprop_step_");
}
void adagrad_step_multi(const TensorList&, const TensorList&, const TensorList&, const AdagradStepArgs&) {
  no_cuda("adagrad_step_");
}
Tensor multi_tensor_norm(const TensorList&, double, DType) { no_cuda("clip_grad_norm_"); }
void gemm(const Tensor&, const Tensor&, const Tensor&, const Scalar&, const Scalar&) { no_cuda("matmul"); }
void gemm_bias(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Scalar&, bool) { no_cuda("linear"); }
void gemm_bias_gelu(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  no_cuda("addmm_gelu");
}
bool gemm_bgrad(const Tensor&, const Tensor&, const Tensor&, const Tensor&, bool) { no_cuda("matmul"); }
void dot(const Tensor&, const Tensor&, const Tensor&) { no_cuda("dot"); }
void conv2d(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Conv2dParams&) { no_cuda("conv2d"); }
void conv_transpose2d(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Conv2dParams&) {
  no_cuda("conv_transpose2d");
}
void conv2d_weight_backward(const Tensor&, const Tensor&, const Tensor&, const Conv2dParams&) {
  no_cuda("conv2d_backward");
}

std::pair<int64_t, int64_t> index_range(const Tensor&) { no_cuda("index_range"); }
void index_select(const Tensor&, const Tensor&, int64_t, const Tensor&, IndexOp) { no_cuda("index_select"); }
void gather(const Tensor&, const Tensor&, int64_t, const Tensor&, IndexOp) { no_cuda("gather"); }
void scatter(const Tensor&, int64_t, const Tensor&, const Tensor&, ScatterMode, const Scalar&, IndexOp) {
  no_cuda("scatter");
}
void check_index_range(const Tensor&, int64_t, int64_t, std::optional<int64_t>, const RangeReport&) {
  no_cuda("check_index_range");
}
void masked_fill(const Tensor&, const Tensor&, const Tensor&, const Scalar&) { no_cuda("masked_fill"); }
int64_t count_true(const Tensor&) { no_cuda("count_true"); }
void masked_select(const Tensor&, const Tensor&, const Tensor&) { no_cuda("masked_select"); }

void max_pool2d(const Tensor&, const Tensor&, const Tensor&, const Pool2dParams&) { no_cuda("max_pool2d"); }
void avg_pool2d(const Tensor&, const Tensor&, const Pool2dParams&) { no_cuda("avg_pool2d"); }
void adaptive_avg_pool2d(const Tensor&, const Tensor&) { no_cuda("adaptive_avg_pool2d"); }
void max_pool2d_backward(const Tensor&, const Tensor&, const Tensor&, const Pool2dParams&) {
  no_cuda("max_pool2d_backward");
}
void avg_pool2d_backward(const Tensor&, const Tensor&, const Pool2dParams&) { no_cuda("avg_pool2d_backward"); }
void adaptive_avg_pool2d_backward(const Tensor&, const Tensor&) { no_cuda("adaptive_avg_pool2d_backward"); }
void layer_norm(const Tensor&, const Tensor&, const Tensor&, const Tensor&, double) { no_cuda("layer_norm"); }
void layer_norm_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                         double) {
  no_cuda("layer_norm_backward");
}
void rms_norm(const Tensor&, const Tensor&, const Tensor&, double) { no_cuda("rms_norm"); }
void batch_norm_stats(const Tensor&, const Tensor&, const Tensor&) { no_cuda("batch_norm"); }
void batch_norm_apply(const Tensor&, const Tensor&, const Tensor&, const Tensor&) { no_cuda("batch_norm"); }
void batch_norm_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                         const Tensor&, const Tensor&, bool) {
  no_cuda("batch_norm_backward");
}

}  // namespace ember::kernels::cuda
