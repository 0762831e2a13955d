// TrainerOptions::cuda_graphs: the whole training step (zero_grad, training_step, backward, clipping,
// optimizer step) captured once into a CUDA graph and replayed for every batch of the same shapes, so a
// small model's step costs one launch instead of hundreds.
//  - The first warmup_steps batches run eagerly (optimizer state, algorithm caches and gradients exist
//    by then); the next one is captured with its data copied into static input tensors, and replayed at
//    once; later batches of the same signature (field names, shapes, dtypes) are copied into the static
//    inputs and replayed. A batch of other shapes (the last partial batch) runs eagerly: it happens once
//    an epoch, so a second graph would double the graph memory for one step.
//  - Each replay first re-runs the optimizer's host code (Trainer strategy's optimizer_step under
//    CudaGraph::rerun): step counts advance and the scheduler's lr reaches the fused kernels through the
//    graph's slots. The optimizer must step every parameter with the fused kernels (fused = true).
//    A parameter the loss does not reach gets no gradient and is not stepped, as in an eager step; a
//    callback that freezes or unfreezes parameters makes the next steps warm up and capture again.
//  - Module and callback hooks inside the captured region (training_step, on_before_backward, ...) run
//    at capture only; log() calls made there are recorded and re-issued after every replay with the
//    step's static output tensors (GraphLogRecorder; log() must not read them to the host).
//  - Refused with a clear error: a CPU accelerator, manual optimisation, 16-mixed (its GradScaler decides
//    on the host whether to skip each step), gradient accumulation (also a GradientAccumulationScheduler's),
//    DDP and other multi-device strategies, detect_anomaly (it reads each loss to the host).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/cuda_graph.hpp"
#include "core/device.hpp"
#include "core/shape.hpp"
#include "core/tensor.hpp"
#include "nn/optim/optimizer.hpp"
#include "train/data/batch.hpp"
#include "train/module.hpp"

namespace ember::train {

class Trainer;

// The facts the option depends on, checked before fit starts.
struct CudaGraphSetup {
  Device device;
  bool automatic_optimization = true;
  std::string precision;
  int64_t accumulate_grad_batches = 1;
  std::string strategy;
  int world_size = 1;
  bool detect_anomaly = false;
};
// ValueError naming what cuda_graphs cannot take.
void check_cuda_graph_setup(const CudaGraphSetup& s);

// What a batch's step depends on for a graph: each field's name, shape, dtype and device.
struct BatchSignature {
  struct Field {
    std::string name;
    Shape shape;
    DType dtype;
    Device device;
    bool operator==(const Field&) const = default;
  };
  std::vector<Field> fields;
  bool operator==(const BatchSignature&) const = default;
  std::string str() const;
};
BatchSignature signature_of(const data::Batch& b);

// Which way each batch goes: warm-up steps eagerly, then one capture, then replays for batches of the
// captured signature and eager steps for others.
class GraphPlan {
 public:
  enum class Route { kEager, kCapture, kReplay };
  explicit GraphPlan(int64_t warmup_steps = 3) : warmup_(warmup_steps) {}
  Route next(const BatchSignature& sig);
  // The capture failed (its error reaches fit's caller): any later batch runs eagerly.
  void disable() { disabled_ = true; }
  // The captured step no longer fits the run (parameters frozen or unfrozen): warm up and capture anew.
  void restart() {
    seen_ = 0;
    captured_.reset();
  }
  int64_t eager_fallbacks() const { return fallbacks_; }
  int64_t replays() const { return replays_; }
  const std::optional<BatchSignature>& captured() const { return captured_; }

 private:
  int64_t warmup_;
  int64_t seen_ = 0;
  int64_t fallbacks_ = 0;
  int64_t replays_ = 0;
  bool disabled_ = false;
  std::optional<BatchSignature> captured_;
};

// log() calls made while a step is captured: recorded (not sent to the collector: their tensors hold
// no value until the replay) and re-issued after each replay. One per thread at a time.
class GraphLogRecorder {
 public:
  struct Call {
    std::string name;
    Tensor value;
    LogOptions options;
  };
  GraphLogRecorder();
  ~GraphLogRecorder();
  GraphLogRecorder(const GraphLogRecorder&) = delete;
  GraphLogRecorder& operator=(const GraphLogRecorder&) = delete;
  std::vector<Call> take() { return std::move(calls_); }
  // The recorder active on this thread, or null; TrainModule::log(name, tensor) records into it.
  static GraphLogRecorder* active();
  void record(const std::string& name, const Tensor& value, const LogOptions& options);

 private:
  std::vector<Call> calls_;
  GraphLogRecorder* prev_;
};
// For TrainModule::log(name, tensor): true when the call was recorded for a graph (and must not reach
// the collector now).
bool record_graph_log(const std::string& name, const Tensor& value, const LogOptions& options);
// Re-issues the recorded calls through the public log() after a replay.
void reissue_graph_logs(TrainModule& m, const std::vector<GraphLogRecorder::Call>& calls);

// The Trainer's graph step (a friend of Trainer).
class CudaGraphStep {
 public:
  explicit CudaGraphStep(Device device, int64_t warmup_steps = 3);
  ~CudaGraphStep();
  // Runs batch b's training step through the graph and returns its loss (a static tensor), or returns
  // false when b runs eagerly (warm-up, other shapes): the caller's eager path then runs it.
  bool run(Trainer& t, const data::Batch& b, int64_t batch_idx, Tensor& loss);
  // After a replay's bookkeeping: the parameters give their gradients back (zero_grad(set_to_none)).
  void drop_grads();
  const GraphPlan& plan() const { return plan_; }
  const CudaGraph& graph() const { return *graph_; }

 private:
  void capture(Trainer& t, const data::Batch& b, int64_t batch_idx);
  void restore_grads();
  static std::vector<const void*> trainable(const optim::Optimizer& opt);

  Device device_;
  GraphPlan plan_;
  std::unique_ptr<CudaGraph> graph_;
  data::Batch static_batch_;
  Tensor static_loss_;
  std::vector<Tensor> params_, static_grads_;  // the parameters the captured step trains, and their gradients
  std::vector<const void*> trainable_;         // trainable(opt) at the capture
  std::vector<GraphLogRecorder::Call> logs_;
};

}  // namespace ember::train
