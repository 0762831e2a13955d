// The Trainer's CUDA graph step (see cuda_graph_step.hpp): option checks, batch signatures and routing
// (plain C++, CPU-tested), the log() recorder, and the capture and replay of a training step.
#include "train/cuda_graph_step.hpp"

#include <sstream>

#include "core/error.hpp"
#include "core/profiler.hpp"
#include "train/trainer.hpp"

namespace ember::train {

void check_cuda_graph_setup(const CudaGraphSetup& s) {
  EMBER_CHECK(s.device.is_cuda(), ValueError, "[Trainer] cuda_graphs needs accelerator=cuda (the run is on ", s.device,
              "): CUDA graphs replay GPU work");
  EMBER_CHECK(s.automatic_optimization, ValueError,
              "[Trainer] cuda_graphs needs automatic optimisation: under manual optimisation training_step steps the "
              "optimizers itself, and the graph cannot tell which steps it would take");
  EMBER_CHECK(s.precision != "16-mixed", ValueError,
              "[Trainer] cuda_graphs does not take precision \"16-mixed\": its GradScaler reads the gradients' "
              "overflow flag on the host every step to decide whether to skip it. Use \"bf16-mixed\" (no scaler)");
  EMBER_CHECK(s.accumulate_grad_batches == 1, ValueError, "[Trainer] cuda_graphs needs accumulate_grad_batches=1, got ",
              s.accumulate_grad_batches,
              ": the captured step is one whole step (forward, backward, optimizer); raise the batch size instead");
  EMBER_CHECK(s.world_size == 1 && s.strategy != "ddp" && s.strategy != "ddp_sharded", ValueError,
              "[Trainer] cuda_graphs runs on one device only; strategy \"", s.strategy, "\" with ", s.world_size,
              " processes is not supported (its gradient all-reduce is launched from backward hooks and "
              "synchronises with the host)");
  EMBER_CHECK(!s.detect_anomaly, ValueError,
              "[Trainer] cuda_graphs does not take detect_anomaly: it reads every step's loss and checks every "
              "backward on the host, which a replayed step cannot do");
}

std::string BatchSignature::str() const {
  std::ostringstream os;
  os << "{";
  for (size_t i = 0; i < fields.size(); ++i) {
    const Field& f = fields[i];
    os << (i ? ", " : "") << f.name << ": " << f.shape << " " << f.dtype << " " << f.device;
  }
  os << "}";
  return os.str();
}

BatchSignature signature_of(const data::Batch& b) {
  BatchSignature s;
  auto add = [&](const std::string& name, const Tensor& t) {
    if (t.defined()) s.fields.push_back({name, t.shape(), t.dtype(), t.device()});
  };
  add("input", b.input);
  add("target", b.target);
  for (const auto& [name, t] : b.extra) add(name, t);
  return s;
}

GraphPlan::Route GraphPlan::next(const BatchSignature& sig) {
  ++seen_;
  if (disabled_ || seen_ <= warmup_) return Route::kEager;
  if (!captured_) {
    captured_ = sig;
    return Route::kCapture;
  }
  if (sig == *captured_) {
    ++replays_;
    return Route::kReplay;
  }
  ++fallbacks_;
  return Route::kEager;
}

namespace {
thread_local GraphLogRecorder* tl_recorder = nullptr;
}  // namespace

GraphLogRecorder::GraphLogRecorder() : prev_(tl_recorder) { tl_recorder = this; }
GraphLogRecorder::~GraphLogRecorder() { tl_recorder = prev_; }
GraphLogRecorder* GraphLogRecorder::active() { return tl_recorder; }
void GraphLogRecorder::record(const std::string& name, const Tensor& value, const LogOptions& options) {
  calls_.push_back({name, value.detach(), options});
}

bool record_graph_log(const std::string& name, const Tensor& value, const LogOptions& options) {
  GraphLogRecorder* r = GraphLogRecorder::active();
  if (r == nullptr) return false;
  r->record(name, value, options);
  return true;
}

void reissue_graph_logs(TrainModule& m, const std::vector<GraphLogRecorder::Call>& calls) {
  for (const GraphLogRecorder::Call& c : calls) m.log(c.name, c.value, c.options);
}

CudaGraphStep::CudaGraphStep(Device device, int64_t warmup_steps) : device_(device), plan_(warmup_steps) {}
CudaGraphStep::~CudaGraphStep() = default;

// The parameters the optimizer would train now: a callback that freezes or unfreezes some (fine-tuning)
// changes which ones a step must touch.
std::vector<const void*> CudaGraphStep::trainable(const optim::Optimizer& opt) {
  std::vector<const void*> out;
  for (const Tensor& p : opt.parameters())
    if (p.requires_grad()) out.push_back(&p.impl());
  return out;
}

// Between steps the parameters hold no gradients (as after the eager step's zero_grad); the graph
// writes the buffers it captured, so they go back before each replay.
void CudaGraphStep::restore_grads() {
  for (size_t i = 0; i < params_.size(); ++i)
    if (!params_[i].grad().defined() || params_[i].grad().impl().storage != static_grads_[i].impl().storage)
      params_[i].set_grad(static_grads_[i]);
}

void CudaGraphStep::capture(Trainer& t, const data::Batch& b, int64_t batch_idx) {
  TrainModule& m = *t.model_;
  optim::Optimizer& opt = *t.optimizers_.front();
  // Static inputs: each later batch is copied into these before its replay.
  auto clone = [](const Tensor& x) { return x.defined() ? x.detach().clone() : x; };
  static_batch_.input = clone(b.input);
  static_batch_.target = clone(b.target);
  for (const auto& [name, x] : b.extra) static_batch_.extra[name] = clone(x);
  // Backward makes the gradients inside the capture (graph memory that every replay rewrites), so a
  // parameter the loss does not reach has none and the optimizer skips it, as in an eager step.
  for (Tensor p : opt.parameters()) p.set_grad(Tensor());
  trainable_ = trainable(opt);
  graph_ = std::make_unique<CudaGraph>(device_);
  GraphLogRecorder recorder;
  {
    CudaGraphCapture cap(*graph_);
    {
      const std::shared_ptr<void> amp = t.precision_->forward_context(device_);
      profiler::RecordFunction step_range("[TrainModule] training_step");
      static_loss_ = m.training_step(static_batch_, batch_idx);
    }
    EMBER_CHECK(static_loss_.defined() && static_loss_.numel() == 1, ValueError,
                "[Trainer] cuda_graphs: training_step must return a one-element loss every step, got ",
                static_loss_.defined() ? describe(static_loss_) : std::string("none"));
    EMBER_CHECK(static_loss_.requires_grad(), AutogradError,
                "[Trainer] training_step's loss does not require grad (computed under no_grad, or from detached "
                "tensors?)");
    t.backward(static_loss_);
    params_.clear();
    static_grads_.clear();
    for (const Tensor& p : opt.parameters())
      if (p.requires_grad() && p.grad().defined()) {
        params_.push_back(p);
        static_grads_.push_back(p.grad());
      }
    t.unscale_once(opt);
    m.on_before_optimizer_step(opt);
    t.call_hook("on_before_optimizer_step", [&](Callback& c) { c.on_before_optimizer_step(t, m, opt); });
    if (t.options_.gradient_clip_val && *t.options_.gradient_clip_val > 0)
      t.clip_gradients(opt, *t.options_.gradient_clip_val, t.options_.gradient_clip_algorithm);
    t.strategy_->optimizer_step(opt, *t.precision_);
    cap.finish();
  }
  logs_ = recorder.take();
  // A parameter stepped outside the fused kernels would keep the capture's lr forever.
  EMBER_CHECK(graph_->slots().rerun_tensors() == static_cast<int64_t>(params_.size()), ValueError,
              "[Trainer] cuda_graphs: the optimizer stepped ", graph_->slots().rerun_tensors(), " of ", params_.size(),
              " parameters with its fused kernels; the rest would keep the captured learning rate in every replay. "
              "Use an optimizer with fused=true (SGD, Adam, AdamW, RMSprop, Adagrad) and contiguous float parameters");
  for (size_t i = 0; i < params_.size(); ++i)
    EMBER_CHECK(params_[i].grad().defined() && params_[i].grad().impl().storage == static_grads_[i].impl().storage,
                ValueError,
                "[Trainer] cuda_graphs: a gradient buffer was replaced during the captured step (a hook that sets "
                ".grad?); the graph needs gradients accumulated in place");
}

bool CudaGraphStep::run(Trainer& t, const data::Batch& b, int64_t batch_idx, Tensor& loss) {
  TrainModule& m = *t.model_;
  optim::Optimizer& opt = *t.optimizers_.front();
  if (graph_ != nullptr && trainable(opt) != trainable_) {  // frozen or unfrozen: warm up and capture again
    graph_.reset();
    params_.clear();
    static_grads_.clear();
    plan_.restart();
  }
  const GraphPlan::Route route = plan_.next(signature_of(b));
  if (route == GraphPlan::Route::kEager) return false;
  if (route == GraphPlan::Route::kCapture) {
    try {
      capture(t, b, batch_idx);
    } catch (...) {
      plan_.disable();
      graph_.reset();
      throw;
    }
  } else {
    if (static_batch_.input.defined()) static_batch_.input.copy_(b.input);
    if (static_batch_.target.defined()) static_batch_.target.copy_(b.target);
    for (auto& [name, x] : static_batch_.extra) x.copy_(b.extra.at(name));
    restore_grads();
    // The optimizer's host code: step counts and the current lr go to the graph's slots.
    graph_->rerun([&] { t.strategy_->optimizer_step(opt, *t.precision_); });
  }
  {
    profiler::RecordFunction range("[Trainer] cuda_graph_replay");
    graph_->replay();
  }
  reissue_graph_logs(m, logs_);
  loss = static_loss_.detach().clone();  // the next replay overwrites static_loss_; a callback may keep this
  return true;
}

// As the eager step's zero_grad(set_to_none): an eager step in between (other shapes) starts from no
// gradients instead of adding to the replay's; restore_grads puts the buffers back before a replay.
void CudaGraphStep::drop_grads() {
  for (Tensor& p : params_) p.set_grad(Tensor());
}

int64_t Trainer::cuda_graph_replays() const { return graph_step_ ? graph_step_->plan().replays() : 0; }

// The hook in Trainer::training_batch: the graph step and its bookkeeping (the parts of optimizer_step
// that stay on the host), or false for the eager path.
bool Trainer::cuda_graph_step(const data::Batch& b, int64_t batch_idx, Tensor& loss) {
  if (!options_.cuda_graphs) return false;
  // At every step: a callback may change what the graph depends on (set_accumulate_grad_batches).
  check_cuda_graph_setup({.device = device_,
                          .automatic_optimization = model_->automatic_optimization,
                          .precision = precision_->name(),
                          .accumulate_grad_batches = accumulate_,
                          .strategy = strategy_->name(),
                          .world_size = strategy_->world_size(),
                          .detect_anomaly = options_.detect_anomaly});
  if (graph_step_ == nullptr) {
    EMBER_CHECK(optimizers_.size() == 1, ValueError, "[Trainer] cuda_graphs takes one optimizer, got ",
                optimizers_.size());
    graph_step_ = std::make_shared<CudaGraphStep>(device_);
  }
  if (!graph_step_->run(*this, b, batch_idx, loss)) return false;
  update_precision();
  ++global_step_;
  optim::Optimizer& opt = *optimizers_.front();  // the eager optimizer_step's ending
  model_->on_before_zero_grad(opt);
  call_hook("on_before_zero_grad", [&](Callback& c) { c.on_before_zero_grad(*this, *model_, opt); });
  graph_step_->drop_grads();
  grads_pending_ = false;
  step_schedulers("step");
  return true;
}

}  // namespace ember::train
