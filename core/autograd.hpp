// Tape autograd (DESIGN.md section 3): the node a differentiable op records, grad mode, hooks, and the
// engine entry points. An op records itself with `autograd::record(name, outputs, inputs, saved, fn)`,
// where fn maps the outputs' gradients to the inputs' gradients with public ops (so it runs on any
// device and, under create_graph, is itself recorded). Nodes are owned by the tensors they produced:
// an unreferenced graph frees itself. The engine runs the reachable nodes in decreasing sequence order.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "core/tensor.hpp"

namespace ember {

struct AutogradMeta {
  bool requires_grad = false;  // a leaf the user asked gradients for
  bool retains_grad = false;   // a non-leaf keeping its .grad (retain_grad())
  Tensor grad;
  std::shared_ptr<autograd::Node> grad_fn;  // null for leaves
  uint32_t output_nr = 0;                   // which output of grad_fn this tensor is
  uint32_t view_version = 0;  // for views: the storage version grad_fn was made for (regenerated when stale)
  std::weak_ptr<autograd::Node> grad_accumulator;     // leaves: the node accumulating into .grad
  std::vector<std::pair<int64_t, TensorHook>> hooks;  // leaves (non-leaf hooks live on grad_fn)
  std::vector<std::pair<int64_t, PostAccumulateGradHook>> post_accumulate_hooks;
};

namespace autograd {

// ---------------------------------------------------------------- grad mode
bool is_grad_enabled();
void set_grad_enabled(bool on);

class GradModeGuard {
 public:
  explicit GradModeGuard(bool on) : prev_(is_grad_enabled()) { set_grad_enabled(on); }
  ~GradModeGuard() { set_grad_enabled(prev_); }
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool prev_;
};
struct NoGradGuard : GradModeGuard {
  NoGradGuard() : GradModeGuard(false) {}
};
struct EnableGradGuard : GradModeGuard {
  EnableGradGuard() : GradModeGuard(true) {}
};

// Anomaly detection: a backward that produces NaN or Inf raises an error naming the forward op.
bool is_anomaly_enabled();
void set_detect_anomaly(bool on);
class DetectAnomalyGuard {
 public:
  DetectAnomalyGuard() : prev_(is_anomaly_enabled()) { set_detect_anomaly(true); }
  ~DetectAnomalyGuard() { set_detect_anomaly(prev_); }
  DetectAnomalyGuard(const DetectAnomalyGuard&) = delete;
  DetectAnomalyGuard& operator=(const DetectAnomalyGuard&) = delete;

 private:
  bool prev_;
};

// ---------------------------------------------------------------- the graph
struct Edge {
  std::shared_ptr<Node> fn;  // null: the input takes no gradient
  uint32_t input_nr = 0;     // which of fn's outputs the gradient is for
  bool valid() const { return fn != nullptr; }
};

// What a gradient must look like: the engine casts to dtype and sums broadcast dims down to shape.
struct TensorGeometry {
  Shape shape;
  DType dtype = kF32;
  Device device = kCPU;
  explicit TensorGeometry(const Tensor& t) : shape(t.shape()), dtype(t.dtype()), device(t.device()) {}
  TensorGeometry() = default;
};

// A tensor a node keeps for its backward, with the version it had; unpacking after an in-place write
// is an error. Outputs are kept without their autograd link (which would be a cycle through the node).
class SavedTensor {
 public:
  SavedTensor(const Tensor& t, bool is_output, uint32_t output_nr);
  Tensor unpack(const Node& owner) const;
  void release() { data_ = Tensor(); }

 private:
  Tensor data_;
  uint32_t version_ = 0;
  uint32_t output_nr_ = 0;
  bool is_output_ = false;
  bool defined_ = false;
};

class Ctx;
using Grads = std::vector<Tensor>;  // one gradient per input; undefined = none

// One input of a node: where its gradient goes and what it must look like.
struct NodeInput {
  Edge edge;
  TensorGeometry geometry;
};

class Node : public std::enable_shared_from_this<Node> {
 public:
  explicit Node(const char* name) : name_(name) {}
  virtual ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  const char* name() const { return name_; }  // the forward op
  uint64_t sequence_nr() const { return seq_; }
  virtual Grads apply(Ctx& ctx) = 0;
  virtual void run_pre_hooks(std::span<Tensor> grads);  // tensor hooks of the outputs, before apply
  void release_saved();                                 // after a backward without retain_graph

  std::vector<NodeInput> inputs;
  uint32_t num_outputs = 1;
  std::vector<TensorGeometry> outputs;  // kept only for nodes with several outputs (to fill in zeros)
  std::vector<SavedTensor> saved;
  struct PreHook {
    int64_t id;
    uint32_t output_nr;
    TensorHook fn;
  };
  std::vector<PreHook> pre_hooks;  // hooks of non-leaf outputs

 protected:
  uint64_t seq_ = 0;  // set when linked into the graph (attach)

 private:
  friend class Engine;
  friend void attach(const std::shared_ptr<Node>&, std::span<Tensor* const>, std::span<const Tensor* const>,
                     std::span<const Tensor>);
  const char* name_;
  uint64_t epoch_ = 0;  // engine scratch: the run that last visited this node, and its slot there
  int64_t slot_ = -1;
};

// What a backward formula sees.
class Ctx {
 public:
  Ctx(const Node& node, std::span<Tensor> grads) : node_(node), grads_(grads) {}
  // Gradient w.r.t. output i (zeros when none arrived for it).
  const Tensor& grad(size_t i = 0) const { return grads_[i]; }
  // Saved tensor i (in the order given to record), checked against in-place writes since.
  Tensor saved(size_t i) const { return node_.saved.at(i).unpack(node_); }
  // Whether input i takes a gradient (skip work for the others: return an undefined tensor).
  bool needs_grad(size_t i) const { return node_.inputs.at(i).edge.valid(); }
  const TensorGeometry& input(size_t i) const { return node_.inputs.at(i).geometry; }

 private:
  const Node& node_;
  std::span<Tensor> grads_;
};

template <class F>
class FnNode final : public Node {
 public:
  FnNode(const char* name, F fn) : Node(name), fn_(std::move(fn)) {}
  Grads apply(Ctx& ctx) override { return fn_(ctx); }

 private:
  F fn_;
};

// ---------------------------------------------------------------- recording
// Whether an op over these inputs must be recorded: grad mode is on and an input requires grad.
bool needs_grad(std::initializer_list<const Tensor*> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);
bool needs_grad(std::span<const Tensor* const> inputs);
inline bool needs_grad(const Tensor& t) { return needs_grad({&t}); }

// The edge a gradient for t travels along (grad_fn, or the leaf's accumulator), or an invalid edge.
Edge gradient_edge(const Tensor& t);

// Links `node` into the graph: edges to the inputs, outputs' grad_fn, saved tensors.
void attach(const std::shared_ptr<Node>& node, std::span<Tensor* const> outputs, std::span<const Tensor* const> inputs,
            std::span<const Tensor> saved);

// Records `outputs = op(inputs)`; call only when needs_grad(inputs). backward(Ctx&) returns one
// gradient per input. Floating outputs get the node as grad_fn; others stay constants.
template <class F>
void record(const char* name, std::initializer_list<Tensor*> outputs, std::initializer_list<const Tensor*> inputs,
            std::initializer_list<Tensor> saved, F backward) {
  attach(std::make_shared<FnNode<F>>(name, std::move(backward)), {outputs.begin(), outputs.size()},
         {inputs.begin(), inputs.size()}, {saved.begin(), saved.size()});
}
template <class F>
void record(const char* name, const std::vector<Tensor*>& outputs, const std::vector<const Tensor*>& inputs,
            const std::vector<Tensor>& saved, F backward) {
  attach(std::make_shared<FnNode<F>>(name, std::move(backward)), outputs, inputs, saved);
}

// In-place ops: raise the error PyTorch gives for writing into a leaf (or a view of a leaf) that
// requires grad while grad mode is on; op names the in-place op.
void check_inplace(const Tensor& self, const char* op);
// self <- src (broadcast, converted), recorded when needed: the one place in-place writes enter the
// tape. Under grad mode, in-place ops compute out of place and assign, so a tensor a node saved is
// never silently overwritten (its version check fails instead). Writes through a view rewrite the
// base's history. A self whose elements share memory is refused (check_no_internal_overlap) unless
// the write is idempotent (fill_: every alias gets the same value, as PyTorch allows).
Tensor& assign(Tensor& self, const Tensor& src, const char* op, bool idempotent = false);

// Storage geometry of a strided tensor, for as_strided's backward.
struct Strided {
  Shape shape, strides;
  int64_t offset = 0;
  explicit Strided(const Tensor& t) : shape(t.shape()), strides(t.strides()), offset(t.storage_offset()) {}
};
// Gradient w.r.t. a tensor of geometry `in` of the view `out` (both over one storage) given g for out.
Tensor as_strided_backward(const Tensor& g, const Strided& in, const Strided& out);

// ---------------------------------------------------------------- running backward
// Gradients of roots w.r.t. every leaf they depend on, accumulated into the leaves' .grad.
void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grad_roots = {}, bool retain_graph = false,
              bool create_graph = false);

// Runs fn once the backward() in progress on this thread has accumulated every gradient (before it
// returns), as torch's queue_callback: DDP waits for its gradient reductions there. AutogradError when
// no backward() runs on this thread. A backward that throws drops its callbacks.
void queue_callback(std::function<void()> fn);

// Gradients of outputs w.r.t. inputs, returned rather than accumulated. retain_graph defaults to
// create_graph. An input the outputs do not depend on is an error unless allow_unused (then undefined).
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, std::optional<bool> retain_graph = {},
                         bool create_graph = false, bool allow_unused = false);

// Sums g over the dims that were broadcast to reach g's shape from `shape` (the gradient of expand).
Tensor sum_to(const Tensor& g, const Shape& shape);

}  // namespace autograd
}  // namespace ember
