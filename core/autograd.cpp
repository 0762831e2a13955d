// The autograd engine: grad mode, nodes and saved tensors, linking ops into the tape, in-place writes
// (with views), the Tensor autograd methods, and backward/grad over the reachable subgraph.
#include "core/autograd.hpp"

#include <algorithm>
#include <atomic>
#include <queue>

#include "core/autocast.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/index.hpp"
#include "core/ops/reduce.hpp"
#include "core/profiler.hpp"
#include "kernels/elementwise.hpp"

namespace ember::autograd {
namespace {

thread_local bool t_grad_enabled = true;
thread_local bool t_anomaly = false;
std::atomic<uint64_t> g_next_seq{1};
std::atomic<uint64_t> g_next_epoch{1};
std::atomic<int64_t> g_next_hook_id{1};

constexpr uint64_t kAccumulatorSeq = UINT64_MAX;  // leaves accumulate as soon as their gradient is complete

AutogradMeta& meta_of(const Tensor& t) {
  auto& m = t.impl().autograd;
  if (!m) m = std::make_unique<AutogradMeta>();
  return *m;
}

// Whether t is the only handle on its data: no other Tensor shares its impl or its storage, and it is
// no view. Such a gradient may be kept or added into in place without anyone else seeing the change.
bool sole_owner(const Tensor& t) {
  return t.impl_ptr().use_count() == 1 && t.impl().storage.use_count() == 1 && !t.impl().view_base;
}

// Accumulates the gradient of one leaf into its .grad.
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(Tensor leaf) : Node("accumulate_grad"), leaf_(std::move(leaf)) { seq_ = kAccumulatorSeq; }

  void run_pre_hooks(std::span<Tensor> grads) override {
    for (auto& [id, hook] : meta_of(leaf_).hooks)
      if (Tensor r = hook(grads[0]); r.defined()) grads[0] = r;
  }

  Grads apply(Ctx& ctx) override {
    const Tensor& g = ctx.grad();
    AutogradMeta& m = meta_of(leaf_);
    if (!m.grad.defined()) {
      // Keep the incoming tensor when nothing else can see it; a view or a shared buffer is copied.
      bool owned = !is_grad_enabled() && g.is_contiguous() && sole_owner(g);
      // An expanded g (sum's backward) is cloned, so later accumulation can add into it in place.
      bool shared = has_internal_overlap(g);
      m.grad = is_grad_enabled() ? (shared ? g.clone() : g) : owned ? g.detach() : g.detach().clone();
    } else if (is_grad_enabled() || m.grad.requires_grad() || has_internal_overlap(m.grad)) {
      m.grad = m.grad + g;  // create_graph: the sum stays differentiable; a user-set expanded grad is replaced
    } else {
      m.grad.add_(g);
    }
    for (auto& [id, hook] : m.post_accumulate_hooks) hook(leaf_);
    return {};
  }

 private:
  Tensor leaf_;
};

std::shared_ptr<Node> grad_accumulator(const Tensor& leaf) {
  AutogradMeta& m = meta_of(leaf);
  if (auto acc = m.grad_accumulator.lock()) return acc;
  auto acc = std::make_shared<AccumulateGrad>(leaf);
  m.grad_accumulator = acc;
  return acc;
}

// A view whose base was written in place after the view's grad_fn was made reads the base's new
// history through as_strided (views share the base's storage, so the version tells).
void refresh_view_history(const Tensor& t) {
  TensorImpl& ti = t.impl();
  if (!ti.view_base) return;
  AutogradMeta& m = *ti.autograd;
  uint32_t now = ti.storage->version();
  if (m.view_version == now) return;
  Tensor base(ti.view_base);
  m.view_version = now;
  if (!base.requires_grad()) return;
  Strided in(base), out(t);
  Tensor self = t;
  record("as_strided", {&self}, {&base}, {},
         [in, out](Ctx& c) { return Grads{as_strided_backward(c.grad(), in, out)}; });
}

}  // namespace

bool is_grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool on) { t_grad_enabled = on; }
bool is_anomaly_enabled() { return t_anomaly; }
void set_detect_anomaly(bool on) { t_anomaly = on; }

// ---------------------------------------------------------------- nodes and saved tensors
Node::~Node() {
  // Freeing a long chain would recurse once per node and overflow the stack: the outermost destructor
  // takes the edges over and releases them in a loop.
  thread_local std::vector<std::shared_ptr<Node>>* pending = nullptr;
  std::vector<std::shared_ptr<Node>> local;
  bool outermost = pending == nullptr;
  if (outermost) pending = &local;
  for (NodeInput& in : inputs)
    if (in.edge.fn) pending->push_back(std::move(in.edge.fn));
  if (outermost) {
    while (!local.empty()) {
      std::shared_ptr<Node> n = std::move(local.back());
      local.pop_back();
      n.reset();
    }
    pending = nullptr;
  }
}

void Node::run_pre_hooks(std::span<Tensor> grads) {
  for (const PreHook& h : pre_hooks)
    if (Tensor r = h.fn(grads[h.output_nr]); r.defined()) grads[h.output_nr] = r;
}

void Node::release_saved() {
  for (SavedTensor& s : saved) s.release();
}

SavedTensor::SavedTensor(const Tensor& t, bool is_output, uint32_t output_nr)
    : output_nr_(output_nr), is_output_(is_output), defined_(t.defined()) {
  if (!defined_) return;
  version_ = t.impl().storage->version();
  data_ = is_output ? t.detach() : t;  // an output keeping its grad_fn would own its own node
}

Tensor SavedTensor::unpack(const Node& owner) const {
  if (!defined_) return Tensor();
  EMBER_CHECK(data_.defined(), AutogradError, "[autograd] trying to backward through the graph of ", owner.name(),
              " a second time, but its saved tensors were already freed; pass retain_graph=true to the first "
              "backward if you need to run it again");
  uint32_t now = data_.impl().storage->version();
  EMBER_CHECK(now == version_, AutogradError, "[autograd] a tensor of shape ", data_.shape(), " saved by ",
              owner.name(), " for its backward was modified in place by ", data_.impl().storage->last_writer(),
              " (version ", now, ", expected ", version_,
              "); compute out of place or clone() the tensor before writing into it");
  if (is_output_ && is_grad_enabled()) {  // create_graph: the output leads back to its node
    Tensor t = data_.detach();
    AutogradMeta& m = meta_of(t);
    m.grad_fn = const_cast<Node&>(owner).shared_from_this();
    m.output_nr = output_nr_;
    return t;
  }
  return data_;
}

// ---------------------------------------------------------------- recording
bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}
bool needs_grad(std::span<const Tensor* const> inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}
bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Edge gradient_edge(const Tensor& t) {
  AutogradMeta* m = t.impl().autograd.get();
  if (!m) return {};
  if (m->grad_fn) {
    refresh_view_history(t);
    return {m->grad_fn, m->output_nr};
  }
  if (m->requires_grad) return {grad_accumulator(t), 0};
  return {};
}

void attach(const std::shared_ptr<Node>& node, std::span<Tensor* const> outputs, std::span<const Tensor* const> inputs,
            std::span<const Tensor> saved) {
  node->inputs.reserve(inputs.size());
  for (const Tensor* in : inputs) {
    if (in && in->defined() && is_floating(in->dtype()))
      node->inputs.push_back({gradient_edge(*in), TensorGeometry(*in)});
    else
      node->inputs.emplace_back();
  }
  node->seq_ = g_next_seq.fetch_add(1, std::memory_order_relaxed);  // after the inputs' (view) nodes
  node->num_outputs = static_cast<uint32_t>(outputs.size());
  if (outputs.size() > 1) {
    node->outputs.reserve(outputs.size());
    for (Tensor* out : outputs) node->outputs.push_back(out->defined() ? TensorGeometry(*out) : TensorGeometry());
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    Tensor& out = *outputs[i];
    if (!out.defined() || !is_floating(out.dtype())) continue;  // indices and masks stay constants
    // An op that returns a view of a buffer it allocated (e.g. a reduction reshaping its result) makes a
    // new tensor as far as the tape is concerned: in-place writes into it must not be routed to a base
    // that has no history.
    if (const auto& base = out.impl().view_base; base && !Tensor(base).requires_grad()) out.impl().view_base.reset();
    AutogradMeta& m = meta_of(out);
    m.grad_fn = node;
    m.output_nr = static_cast<uint32_t>(i);
    m.view_version = out.impl().storage->version();
  }
  node->saved.reserve(saved.size());
  for (const Tensor& s : saved) {
    uint32_t nr = 0;
    bool is_output = false;
    for (size_t i = 0; i < outputs.size() && !is_output; ++i)
      if (s.defined() && outputs[i]->defined() && s.impl_ptr() == outputs[i]->impl_ptr()) {
        is_output = true;
        nr = static_cast<uint32_t>(i);
      }
    node->saved.emplace_back(s, is_output, nr);
  }
}

// ---------------------------------------------------------------- in-place writes
void check_inplace(const Tensor& self, const char* op) {
  if (!t_grad_enabled) return;
  EMBER_CHECK(!(self.is_leaf() && self.requires_grad()), AutogradError, "[", op, "] a leaf tensor ", describe(self),
              " that requires grad is used in an in-place operation; do it under NoGradGuard "
              "(as optimizers do) or on a clone()");
  if (const auto& base = self.impl().view_base) {
    Tensor b(base);
    EMBER_CHECK(!(b.is_leaf() && b.requires_grad()), AutogradError, "[", op, "] a view of a leaf tensor ", describe(b),
                " that requires grad is used in an in-place operation");
  }
}

Tensor& assign(Tensor& self, const Tensor& src, const char* op, bool idempotent) {
  EMBER_CHECK(src.device() == self.device(), DeviceError, "[", op, "] source ", describe(src), " and destination ",
              describe(self), " are on different devices");
  if (!idempotent) check_no_internal_overlap(self, op);
  bool record_it = needs_grad({&self, &src});
  if (record_it) check_inplace(self, op);
  if (record_it && self.impl().view_base)  // checked before the write: a refused op leaves the data alone
    EMBER_CHECK(Tensor(self.impl().view_base).is_contiguous(), AutogradError, "[", op,
                "] in-place write into a view of a non-contiguous base ", describe(Tensor(self.impl().view_base)),
                " is not supported under autograd");
  {
    NoGradGuard no_grad;
    Tensor s = src.expand(self.shape());
    if (s.impl().storage == self.impl().storage) s = s.clone();  // overlapping source and destination
    kernels::copy(self, s);
  }
  self.impl().storage->bump_version(op);
  if (!record_it) return self;

  if (!self.impl().view_base) {
    // Old values are overwritten: their history gets no gradient; src gets it all (summed to its shape).
    record(op, {&self}, {&self, &src}, {}, [](Ctx& c) { return Grads{Tensor(), c.grad()}; });
    return self;
  }
  // A write through a view: the base's new history takes the base's old gradient outside the view and
  // src's inside it; the view then reads the base's history again.
  Tensor base(self.impl().view_base);
  Strided view(self);
  view.offset -= base.storage_offset();
  Shape base_shape = base.shape();
  record(op, {&base}, {&base, &src}, {}, [view, base_shape](Ctx& c) {
    Tensor g = c.grad().contiguous();
    Tensor outside = ones(base_shape, {.dtype = g.dtype(), .device = g.device()});
    outside.as_strided(view.shape, view.strides, view.offset).zero_();
    return Grads{c.needs_grad(0) ? g * outside : Tensor(),
                 c.needs_grad(1) ? g.as_strided(view.shape, view.strides, g.storage_offset() + view.offset) : Tensor()};
  });
  meta_of(self).view_version = self.impl().storage->version() - 1;  // stale: refresh now
  refresh_view_history(self);
  return self;
}

Tensor as_strided_backward(const Tensor& g, const Strided& in, const Strided& out) {
  // Scatter g into a flat copy of the storage range both geometries touch, then read the input's
  // elements from it (overlapping output elements add up, as they should).
  auto extent = [](const Strided& s) {
    int64_t hi = s.offset;
    for (size_t d = 0; d < s.shape.size(); ++d) {
      if (s.shape[d] == 0) return s.offset;
      hi += (s.shape[d] - 1) * s.strides[d];
    }
    return hi + 1;
  };
  int64_t n = std::max(extent(in), extent(out));
  Tensor positions = arange(n, kI64, g.device()).as_strided(out.shape, out.strides, out.offset).reshape({-1});
  Tensor flat = zeros({n}, {.dtype = g.dtype(), .device = g.device()}).index_add(0, positions, g.reshape({-1}));
  return flat.as_strided(in.shape, in.strides, in.offset);
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  int64_t lead = g.dim() - static_cast<int64_t>(shape.size());
  Shape dims;
  for (int64_t d = 0; d < g.dim(); ++d)
    if (d < lead || (shape[d - lead] == 1 && g.shape()[d] != 1)) dims.push_back(d);
  if (dims.empty()) return g.reshape(shape);
  return sum(g, dims, true).reshape(shape);
}

// ---------------------------------------------------------------- the engine
class Engine {
 public:
  struct Capture {
    uint32_t output_nr;
    size_t index;
  };

  // Runs backward from roots. Without captures, leaves accumulate into .grad; with captures (grad()),
  // only the nodes leading to the captured edges run and the captured gradients are returned.
  static std::vector<Tensor> run(const std::vector<Edge>& roots, std::vector<Tensor> root_grads, bool keep_graph,
                                 bool create_graph, const std::vector<Edge>* captures) {
    struct Slot {
      Node* node;
      size_t grads;  // offset of the node's output gradients in `grads`
      int64_t deps = 0;
      bool needed = true;   // runs (or is captured) in this pass
      bool execute = true;  // its backward runs
      std::vector<Capture> captures;
    };
    std::vector<Slot> slots;
    size_t n_grads = 0;
    uint64_t epoch = g_next_epoch.fetch_add(1, std::memory_order_relaxed);
    // A backward run from inside a node's backward (activation checkpointing) visits nodes the outer
    // run also holds (the weights' accumulators): their scratch is put back when this run ends.
    struct Scratch {
      Node* node;
      uint64_t epoch;
      int64_t slot;
    };
    thread_local int t_depth = 0;
    struct RestoreScratch {
      std::vector<Scratch> saved;
      bool nested = t_depth++ > 0;
      ~RestoreScratch() {
        --t_depth;
        for (const Scratch& s : saved) s.node->epoch_ = s.epoch, s.node->slot_ = s.slot;
      }
    } restore;
    auto visit = [&](Node* n) {
      if (n->epoch_ == epoch) return false;
      if (restore.nested && n->epoch_ != 0) restore.saved.push_back({n, n->epoch_, n->slot_});
      n->epoch_ = epoch;
      n->slot_ = static_cast<int64_t>(slots.size());
      slots.push_back({n, n_grads, 0, true, true, {}});
      n_grads += std::max<uint32_t>(n->num_outputs, 1);
      return true;
    };

    // Gather the reachable subgraph.
    std::vector<Node*> stack;
    for (const Edge& e : roots)
      if (visit(e.fn.get())) stack.push_back(e.fn.get());
    while (!stack.empty()) {
      Node* n = stack.back();
      stack.pop_back();
      for (const NodeInput& in : n->inputs)
        if (in.edge.fn && visit(in.edge.fn.get())) stack.push_back(in.edge.fn.get());
    }
    std::vector<Tensor> grads(n_grads);
    auto grads_of = [&](const Slot& s) {
      return std::span<Tensor>(grads).subspan(s.grads, std::max<uint32_t>(s.node->num_outputs, 1));
    };

    std::vector<Tensor> results;
    if (captures) {
      results.resize(captures->size());
      for (Slot& s : slots) s.needed = s.execute = false;
      for (size_t i = 0; i < captures->size(); ++i) {
        Node* n = (*captures)[i].fn.get();
        if (n->epoch_ == epoch) {
          slots[n->slot_].needed = true;
          slots[n->slot_].captures.push_back({(*captures)[i].input_nr, i});
        }
      }
      // Children before parents: accumulators have no children; other nodes are younger than theirs.
      std::vector<Slot*> order;
      for (Slot& s : slots) order.push_back(&s);
      std::sort(order.begin(), order.end(), [](Slot* a, Slot* b) { return a->node->seq_ < b->node->seq_; });
      for (Slot* s : order)
        for (const NodeInput& in : s->node->inputs)
          if (in.edge.fn && slots[in.edge.fn->slot_].needed) s->needed = s->execute = true;
    }
    for (Slot& s : slots)
      if (s.execute)
        for (const NodeInput& in : s.node->inputs)
          if (in.edge.fn) ++slots[in.edge.fn->slot_].deps;

    // A second gradient for the same input is added into the first in place when nothing else can see
    // that buffer (as PyTorch's engine does), so a residual stream's junctions allocate nothing.
    auto add_grad = [](Tensor& buf, Tensor g) {
      if (!buf.defined())
        buf = std::move(g);
      else if (!is_grad_enabled() && sole_owner(buf) && !has_internal_overlap(buf) && buf.shape() == g.shape() &&
               buf.device() == g.device() && promote_types(buf.dtype(), g.dtype()) == buf.dtype())
        buf.add_(g);
      else
        buf = buf + g;
    };
    for (size_t i = 0; i < roots.size(); ++i)
      add_grad(grads[slots[roots[i].fn->slot_].grads + roots[i].input_nr], root_grads[i]);

    auto later = [](Slot* a, Slot* b) { return a->node->seq_ < b->node->seq_; };
    std::priority_queue<Slot*, std::vector<Slot*>, decltype(later)> ready(later);
    for (Slot& s : slots)
      if (s.needed && s.deps == 0) ready.push(&s);

    GradModeGuard mode(create_graph);
    autocast::DisableGuard no_autocast;  // gradients take their forward ops' dtypes
    while (!ready.empty()) {
      Slot& s = *ready.top();
      ready.pop();
      Node& node = *s.node;
      std::span<Tensor> in_grads = grads_of(s);
      bool any = std::any_of(in_grads.begin(), in_grads.end(), [](const Tensor& g) { return g.defined(); });
      if (any) node.run_pre_hooks(in_grads);
      for (const Capture& c : s.captures) results[c.index] = in_grads[c.output_nr];
      if (!s.execute && captures) continue;

      Grads out;
      if (any) {
        for (size_t i = 0; i < node.outputs.size(); ++i)
          if (!in_grads[i].defined())
            in_grads[i] =
                zeros(node.outputs[i].shape, {.dtype = node.outputs[i].dtype, .device = node.outputs[i].device});
        Ctx ctx(node, in_grads);
        profiler::OpRecord prof(node.name(), "_backward", in_grads);
        out = node.apply(ctx);
        if (!keep_graph) node.release_saved();
      }
      for (Tensor& g : in_grads) g = Tensor();  // free as we go
      for (size_t i = 0; i < node.inputs.size(); ++i) {
        const Edge& e = node.inputs[i].edge;
        if (!e.fn) continue;
        Slot& child = slots[e.fn->slot_];
        if (!child.needed) continue;
        if (i < out.size() && out[i].defined()) add_grad(grads[child.grads + e.input_nr], validate(node, i, out[i]));
        if (--child.deps == 0) ready.push(&child);
      }
    }
    return results;
  }

 private:
  // Brings gradient i of node to its input's dtype and shape (summing broadcast dims), or says why not.
  static Tensor validate(const Node& node, size_t i, Tensor g) {
    const TensorGeometry& m = node.inputs[i].geometry;
    EMBER_CHECK(g.device() == m.device, AutogradError, "[autograd] the backward of ", node.name(),
                " returned a gradient on ", g.device(), " for input ", i, " on ", m.device);
    if (t_anomaly && is_floating(g.dtype())) {
      bool finite = isfinite(g).all().item<bool>();
      EMBER_CHECK(finite, AutogradError, "[autograd] detect_anomaly: the backward of ", node.name(), " (forward op #",
                  node.sequence_nr(), ") returned NaN or Inf in its gradient for input ", i, " of shape ", m.shape);
    }
    if (g.shape() != m.shape) {
      bool ok = g.dim() >= static_cast<int64_t>(m.shape.size());
      for (size_t d = 0; ok && d < m.shape.size(); ++d) {
        int64_t gd = g.shape()[g.dim() - m.shape.size() + d];
        ok = gd == m.shape[d] || m.shape[d] == 1;
      }
      EMBER_CHECK(ok, AutogradError, "[autograd] the backward of ", node.name(), " returned a gradient of shape ",
                  g.shape(), " for input ", i, " of shape ", m.shape);
      g = sum_to(g, m.shape);
    }
    if (g.dtype() != m.dtype) g = g.to(m.dtype);
    return g;
  }
};

namespace {
// The root edges and their seed gradients (ones for one-element roots).
std::vector<Edge> root_edges(const std::vector<Tensor>& roots, const std::vector<Tensor>& grad_roots,
                             std::vector<Tensor>& seeds, const char* op) {
  EMBER_CHECK(grad_roots.empty() || grad_roots.size() == roots.size(), ValueError, "[", op, "] got ", roots.size(),
              " tensors but ", grad_roots.size(), " gradients");
  std::vector<Edge> edges;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    EMBER_CHECK(r.defined() && r.requires_grad(), AutogradError, "[", op, "] element ", i, " of the tensors (",
                describe(r), ") does not require grad and has no grad_fn");
    Tensor g = grad_roots.empty() ? Tensor() : grad_roots[i];
    if (!g.defined()) {
      EMBER_CHECK(r.numel() == 1, AutogradError, "[", op,
                  "] a gradient can be implied only for one-element "
                  "outputs, got ",
                  describe(r), "; pass the gradient explicitly");
      g = ones_like(r);
    }
    EMBER_CHECK(g.shape() == r.shape(), ShapeError, "[", op, "] gradient of shape ", g.shape(),
                " does not match the output ", describe(r));
    EMBER_CHECK(g.device() == r.device(), DeviceError, "[", op, "] gradient ", describe(g),
                " is not on the output's device ", describe(r));
    seeds.push_back(g.dtype() == r.dtype() ? g : g.to(r.dtype()));
    edges.push_back(gradient_edge(r));
  }
  return edges;
}
}  // namespace

namespace {
thread_local std::vector<std::function<void()>>* t_final_callbacks = nullptr;  // of the innermost backward()
}

void queue_callback(std::function<void()> fn) {
  EMBER_CHECK(t_final_callbacks != nullptr, AutogradError,
              "[autograd::queue_callback] called outside a backward(): only a hook can queue a callback");
  t_final_callbacks->push_back(std::move(fn));
}

void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grad_roots, bool retain_graph,
              bool create_graph) {
  std::vector<Tensor> seeds;
  std::vector<Edge> edges = root_edges(roots, grad_roots, seeds, "backward");
  if (t_final_callbacks != nullptr) {
    // A backward inside a node's backward (a checkpoint's recompute) is part of the outer one: its
    // callbacks (DDP's end-of-backward wait) run when the outermost backward has every gradient.
    Engine::run(edges, std::move(seeds), retain_graph || create_graph, create_graph, nullptr);
    return;
  }
  std::vector<std::function<void()>> callbacks;
  struct Frame {  // restores the enclosing backward's list, also when the engine throws
    std::vector<std::function<void()>>* prev;
    ~Frame() { t_final_callbacks = prev; }
  } frame{std::exchange(t_final_callbacks, &callbacks)};
  Engine::run(edges, std::move(seeds), retain_graph || create_graph, create_graph, nullptr);
  for (size_t i = 0; i < callbacks.size(); ++i) {  // a callback may queue another
    auto fn = std::move(callbacks[i]);
    fn();
  }
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, std::optional<bool> retain_graph, bool create_graph,
                         bool allow_unused) {
  std::vector<Tensor> seeds;
  std::vector<Edge> edges = root_edges(outputs, grad_outputs, seeds, "autograd::grad");
  std::vector<Edge> targets;
  for (size_t i = 0; i < inputs.size(); ++i) {
    EMBER_CHECK(inputs[i].defined() && inputs[i].requires_grad(), AutogradError, "[autograd::grad] input ", i, " (",
                describe(inputs[i]), ") does not require grad");
    targets.push_back(gradient_edge(inputs[i]));
  }
  std::vector<Tensor> r =
      Engine::run(edges, std::move(seeds), retain_graph.value_or(create_graph), create_graph, &targets);
  for (size_t i = 0; i < r.size(); ++i) {
    EMBER_CHECK(r[i].defined() || allow_unused, AutogradError, "[autograd::grad] input ", i, " (", describe(inputs[i]),
                ") is not used by the outputs' graph; pass allow_unused=true to get an "
                "undefined gradient for it");
    if (r[i].defined() && r[i].dtype() != inputs[i].dtype()) r[i] = r[i].to(inputs[i].dtype());
  }
  return r;
}

}  // namespace ember::autograd

// ---------------------------------------------------------------- Tensor's autograd methods
namespace ember {
using autograd::meta_of;

bool Tensor::requires_grad() const {
  const auto& m = impl().autograd;
  return m && (m->requires_grad || m->grad_fn);
}

Tensor& Tensor::requires_grad_(bool on) {
  EMBER_CHECK(!on || is_floating(dtype()), DTypeError,
              "[requires_grad_] only floating tensors can require gradients, got ", describe(*this));
  EMBER_CHECK(is_leaf() || on, AutogradError,
              "[requires_grad_] only a leaf's flag can be turned off; use detach() "
              "on ",
              describe(*this));
  if (is_leaf()) meta_of(*this).requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const { return impl().autograd ? impl().autograd->grad : Tensor(); }

void Tensor::set_grad(const Tensor& g) {
  EMBER_CHECK(!g.defined() || (g.shape() == shape() && g.dtype() == dtype() && g.device() == device()), ValueError,
              "[set_grad] gradient ", describe(g), " does not match the tensor ", describe(*this));
  meta_of(*this).grad = g;
}

bool Tensor::is_leaf() const { return !impl().autograd || !impl().autograd->grad_fn; }

std::shared_ptr<autograd::Node> Tensor::grad_fn() const { return impl().autograd ? impl().autograd->grad_fn : nullptr; }

void Tensor::backward(const Tensor& gradient, std::optional<bool> retain_graph, bool create_graph) const {
  autograd::backward({*this}, {gradient}, retain_graph.value_or(create_graph), create_graph);
}

HookHandle Tensor::register_hook(TensorHook hook) const {
  EMBER_CHECK(requires_grad(), AutogradError, "[register_hook] the tensor ", describe(*this),
              " does not require grad, so no gradient will reach a hook");
  int64_t id = autograd::g_next_hook_id.fetch_add(1);
  AutogradMeta& m = meta_of(*this);
  if (!m.grad_fn) {
    m.hooks.emplace_back(id, std::move(hook));
    std::weak_ptr<TensorImpl> weak = impl_ptr();
    return HookHandle([weak, id] {
      if (auto t = weak.lock()) std::erase_if(t->autograd->hooks, [id](const auto& h) { return h.first == id; });
    });
  }
  m.grad_fn->pre_hooks.push_back({id, m.output_nr, std::move(hook)});
  std::weak_ptr<autograd::Node> weak = m.grad_fn;
  return HookHandle([weak, id] {
    if (auto n = weak.lock()) std::erase_if(n->pre_hooks, [id](const auto& h) { return h.id == id; });
  });
}

HookHandle Tensor::register_post_accumulate_grad_hook(PostAccumulateGradHook hook) const {
  EMBER_CHECK(is_leaf() && requires_grad(), AutogradError,
              "[register_post_accumulate_grad_hook] needs a leaf "
              "that requires grad, got ",
              describe(*this));
  int64_t id = autograd::g_next_hook_id.fetch_add(1);
  meta_of(*this).post_accumulate_hooks.emplace_back(id, std::move(hook));
  std::weak_ptr<TensorImpl> weak = impl_ptr();
  return HookHandle([weak, id] {
    if (auto t = weak.lock())
      std::erase_if(t->autograd->post_accumulate_hooks, [id](const auto& h) { return h.first == id; });
  });
}

void Tensor::retain_grad() const {
  EMBER_CHECK(requires_grad(), AutogradError, "[retain_grad] the tensor ", describe(*this), " does not require grad");
  AutogradMeta& m = meta_of(*this);
  if (is_leaf() || m.retains_grad) return;
  m.retains_grad = true;
  std::weak_ptr<TensorImpl> weak = impl_ptr();  // the node must not own its output
  register_hook([weak](const Tensor& g) {
    if (auto t = weak.lock()) {
      Tensor& grad = t->autograd->grad;
      autograd::NoGradGuard no_grad;
      grad = grad.defined() ? grad + g : g.detach().clone();
    }
    return Tensor();
  });
}

bool Tensor::retains_grad() const { return impl().autograd && impl().autograd->retains_grad; }

Tensor Tensor::detach() const {
  auto t = std::make_shared<TensorImpl>();
  const TensorImpl& s = impl();
  t->storage = s.storage;
  t->shape = s.shape;
  t->strides = s.strides;
  t->offset = s.offset;
  t->numel = s.numel;
  t->dtype = s.dtype;
  return Tensor(std::move(t));
}

Tensor& Tensor::detach_() {
  EMBER_CHECK(!impl().view_base, AutogradError, "[detach_] cannot detach a view in place (", describe(*this),
              "); use detach()");
  if (impl().autograd) {
    impl().autograd->grad_fn.reset();
    impl().autograd->requires_grad = false;
  }
  return *this;
}

}  // namespace ember
