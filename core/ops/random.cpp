// Random ops over the Philox generator. Each call reserves philox_blocks(numel) blocks of the
// generator, so a generator's state (seed, offset) fully determines every later draw.
#include "core/ops/random.hpp"

#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>
#include <numeric>
#include <utility>

#include "core/autograd.hpp"
#include "core/graph_capture.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/profiler.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/loss.hpp"
#include "kernels/philox.hpp"
#include "kernels/random.hpp"

namespace ember {
namespace {

using kernels::Distribution;

Generator& gen_or_default(Generator* g) { return g ? *g : default_generator(); }

// While a CUDA graph captures: the draw's {seed, base} go to a slot of the graph (graph::add_philox_slot).
const uint64_t* graph_philox_slot(const Tensor& t, Generator& gen, uint64_t base, uint64_t blocks) {
  if (!t.device().is_cuda() || !graph::is_capturing(t.device().index)) return nullptr;
  graph::CaptureContext* ctx = graph::active(t.device().index);
  const size_t offset = graph::add_philox_slot(*ctx->slots, gen, base, blocks);
  return reinterpret_cast<const uint64_t*>(ctx->device_base + offset);
}

// Fills t (any layout) by drawing into a contiguous buffer and copying when needed.
void draw(Tensor& t, kernels::RandomParams p, Generator* g, const char* op = "random fill") {
  autograd::check_inplace(t, op);    // e.g. uniform_ on a parameter outside NoGradGuard
  check_no_internal_overlap(t, op);  // draws differ per element: aliases cannot hold them all
  Generator& gen = gen_or_default(g);
  const uint64_t blocks = kernels::philox_blocks(t.numel());
  uint64_t base = gen.advance(blocks);
  p.philox_slot = graph_philox_slot(t, gen, base, blocks);
  if (t.is_contiguous()) {
    kernels::random_fill(t, p, gen.seed(), base);
  } else {
    Tensor tmp = make_tensor(t.shape(), t.dtype(), t.device());
    kernels::random_fill(tmp, p, gen.seed(), base);
    kernels::copy(t, tmp);
  }
  t.impl().storage->bump_version(op);
}

void check_float(const char* op, const TensorOptions& o) {
  EMBER_CHECK(is_floating(o.dtype), DTypeError, "[", op, "] needs a floating dtype, got ", o.dtype);
}

}  // namespace

namespace graph {

size_t add_philox_slot(SlotTable& slots, Generator& gen, uint64_t base, uint64_t blocks) {
  struct Range {  // one generator's draws in this capture: blocks [lo, hi); start of the current replay's
    uint64_t lo, hi, start;
  };
  std::shared_ptr<void>& shared = slots.shared(&gen);
  const bool leader = shared == nullptr;  // the generator's first slot: refreshed before its others
  if (leader) shared = std::make_shared<Range>(Range{base, base + blocks, base});
  auto range = std::static_pointer_cast<Range>(shared);
  range->lo = std::min(range->lo, base);
  range->hi = std::max(range->hi, base + blocks);
  const uint64_t init[2] = {gen.seed(), base};
  auto first = std::make_shared<bool>(true);
  Generator* gp = &gen;
  return slots.add(init, sizeof init, [gp, range, base, leader, first](void* dst) {
    if (std::exchange(*first, false)) return;  // the first replay draws what the capture drew
    if (leader) range->start = gp->advance(range->hi - range->lo);
    const uint64_t v[2] = {gp->seed(), range->start + (base - range->lo)};
    std::memcpy(dst, v, sizeof v);
  });
}

}  // namespace graph

Generator& default_generator() {
  static Generator g(0);
  return g;
}
void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

void uniform_(Tensor& t, double from, double to, Generator* g) {
  EMBER_CHECK(from <= to, ValueError, "[uniform_] expects from <= to, got from=", from, " to=", to);
  EMBER_CHECK(is_floating(t.dtype()), DTypeError, "[uniform_] needs a floating tensor, got ", describe(t));
  draw(t, {.dist = Distribution::Uniform, .a = from, .b = to}, g, "uniform_");
}
void normal_(Tensor& t, double mean, double std, Generator* g) {
  EMBER_CHECK(std >= 0, ValueError, "[normal_] expects std >= 0, got ", std);
  EMBER_CHECK(is_floating(t.dtype()), DTypeError, "[normal_] needs a floating tensor, got ", describe(t));
  draw(t, {.dist = Distribution::Normal, .a = mean, .b = std}, g, "normal_");
}
void bernoulli_(Tensor& t, double p, Generator* g) {
  EMBER_CHECK(p >= 0 && p <= 1, ValueError, "[bernoulli_] expects 0 <= p <= 1, got ", p);
  draw(t, {.dist = Distribution::Bernoulli, .a = p}, g, "bernoulli_");
}

Tensor rand(const Shape& shape, const TensorOptions& o, Generator* g) {
  profiler::OpRecord prof("rand");
  check_float("rand", o);
  Tensor t = empty(shape, {.dtype = o.dtype, .device = o.device});
  uniform_(t, 0, 1, g);
  return o.requires_grad ? t.requires_grad_(true) : t;
}
Tensor randn(const Shape& shape, const TensorOptions& o, Generator* g) {
  profiler::OpRecord prof("randn");
  check_float("randn", o);
  Tensor t = empty(shape, {.dtype = o.dtype, .device = o.device});
  normal_(t, 0, 1, g);
  return o.requires_grad ? t.requires_grad_(true) : t;
}
Tensor randint(int64_t low, int64_t high, const Shape& shape, const TensorOptions& o, Generator* g) {
  profiler::OpRecord prof("randint");
  EMBER_CHECK(low < high, ValueError, "[randint] expects low < high, got low=", low, " high=", high);
  // Integer dtypes must hold every value of [low, high) (a negative draw into uint8 would not convert).
  if (!is_floating(o.dtype) && o.dtype != kI64) {
    const auto [lo, hi] = o.dtype == kBool ? std::pair<int64_t, int64_t>{0, 1}
                          : o.dtype == kU8 ? std::pair<int64_t, int64_t>{0, 255}
                                           : std::pair<int64_t, int64_t>{INT32_MIN, INT32_MAX};
    EMBER_CHECK(low >= lo && high - 1 <= hi, ValueError, "[randint] [", low, ", ", high, ") does not fit ",
                dtype_name(o.dtype), " (values ", lo, " to ", hi, ")");
  }
  Tensor t = empty(shape, {.dtype = o.dtype, .device = o.device});
  draw(t, {.dist = Distribution::RandInt, .a = static_cast<double>(low), .b = static_cast<double>(high)}, g);
  return t;
}
Tensor rand_like(const Tensor& t, Generator* g) {
  return rand(t.shape(), {.dtype = t.dtype(), .device = t.device()}, g);
}
Tensor randn_like(const Tensor& t, Generator* g) {
  return randn(t.shape(), {.dtype = t.dtype(), .device = t.device()}, g);
}

Tensor bernoulli(const Tensor& p, Generator* g) {
  profiler::OpRecord prof("bernoulli", {&p});
  EMBER_CHECK(is_floating(p.dtype()), DTypeError, "[bernoulli] needs floating probabilities, got ", describe(p));
  Tensor probs = p.to(kF64).contiguous();
  if (probs.device().is_cuda())  // no host read: a bad p is a deferred ValueError, raised at the next read
    kernels::cuda::check_probabilities(probs, kernels::ProbabilityOp::kBernoulli);
  else
    for (double v : probs.to_vector<double>())
      EMBER_CHECK(v >= 0 && v <= 1, ValueError, "[bernoulli] probabilities must be in [0, 1], got ", v);
  Tensor out = make_tensor(p.shape(), p.dtype(), p.device());
  draw(out, {.dist = Distribution::Bernoulli, .probs = &probs}, g);
  return out;
}

Tensor randperm(int64_t n, const TensorOptions& o, Generator* g) {
  profiler::OpRecord prof("randperm");
  EMBER_CHECK(n >= 0, ValueError, "[randperm] n must be non-negative, got ", n);
  // A tensor, not a std::vector: an n too large gets Ember's size and out-of-memory errors (before
  // the generator advances).
  Tensor out = make_tensor({n}, kI64);
  Generator& gen = gen_or_default(g);
  uint64_t base = gen.advance(kernels::philox_blocks(n));
  int64_t* perm = out.data_ptr<int64_t>();
  std::iota(perm, perm + n, int64_t{0});
  for (int64_t i = n - 1; i > 0; --i) {  // Fisher-Yates, draw i picks from [0, i]
    kernels::DrawAt d(gen.seed(), base, i);
    std::swap(perm[i], perm[d.bits64() % static_cast<uint64_t>(i + 1)]);
  }
  return out.to(o.device, o.dtype);
}

Tensor dropout(const Tensor& x, double p, bool training, Generator* g) {
  profiler::OpRecord prof("dropout", {&x});
  EMBER_CHECK(p >= 0 && p <= 1, ValueError, "[dropout] probability has to be between 0 and 1, got ", p);
  EMBER_CHECK(is_floating(x.dtype()), DTypeError, "[dropout] needs a floating tensor, got ", describe(x));
  if (!training || p == 0) return x;
  if (p == 1) return x * 0.0;  // zeros that still carry a (zero) gradient
  // One multiply by the scaled keep-mask (drawn as 1/(1-p) or 0 directly): the backward is g * mask.
  Tensor mask = empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  draw(mask, {.dist = Distribution::Bernoulli, .a = 1 - p, .b = 1.0 / (1 - p)}, g);
  return x * mask;
}

Tensor& Tensor::uniform_(double from, double to) {
  ember::uniform_(*this, from, to);
  return *this;
}
Tensor& Tensor::normal_(double mean, double std) {
  ember::normal_(*this, mean, std);
  return *this;
}
Tensor& Tensor::bernoulli_(double p) {
  ember::bernoulli_(*this, p);
  return *this;
}

}  // namespace ember
