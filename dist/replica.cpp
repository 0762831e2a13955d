// The shared pieces of the data-parallel wrappers: the model check (a signature line per tensor, hashed,
// the whole text exchanged only when the hashes differ), the trainable filter, the bucket plan, the
// replica broadcast and the end-of-backward callback.
#include "dist/replica.hpp"

#include <algorithm>
#include <memory>
#include <sstream>

#include "core/autograd.hpp"
#include "core/error.hpp"

namespace ember::dist::detail {

namespace {

// A model's signature: a line per parameter, then per buffer: "parameter|buffer \t name \t shape dtype".
std::string signature_line(const char* kind, const std::string& name, const Tensor& t, bool parameter) {
  std::string n = name;
  for (char& c : n)
    if (c == '\t' || c == '\n') c = ' ';
  std::string what = t.defined() ? ember::detail::cat_str(t.shape(), " ", t.dtype()) : std::string("undefined");
  if (parameter && t.defined() && !t.requires_grad()) what += " (requires_grad false)";
  return ember::detail::cat_str(kind, "\t", n, "\t", what, "\n");
}

struct Entry {
  std::string name, what;
};
// The parameters' and the buffers' entries of a signature.
std::pair<std::vector<Entry>, std::vector<Entry>> parse_signature(const std::string& sig) {
  std::pair<std::vector<Entry>, std::vector<Entry>> out;
  std::istringstream in(sig);
  std::string line;
  while (std::getline(in, line)) {
    const size_t a = line.find('\t'), b = line.find('\t', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    Entry e{line.substr(a + 1, b - a - 1), line.substr(b + 1)};
    (line.compare(0, a, "parameter") == 0 ? out.first : out.second).push_back(std::move(e));
  }
  return out;
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Where the entries of two ranks first differ: "parameter 2 is "fc.weight" [3, 4] float32 on rank 0 but ...".
std::string first_difference(const char* kind, const std::vector<Entry>& a, int ra, const std::vector<Entry>& b,
                             int rb) {
  auto text = [&](const std::vector<Entry>& v, size_t i) {
    if (i >= v.size()) return ember::detail::cat_str("missing (", v.size(), " ", kind, "s)");
    return v[i].name.empty() ? v[i].what : ember::detail::cat_str("\"", v[i].name, "\" ", v[i].what);
  };
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    if (i < a.size() && i < b.size() && a[i].name == b[i].name && a[i].what == b[i].what) continue;
    return ember::detail::cat_str(kind, " ", i, " is ", text(a, i), " on rank ", ra, " but ", text(b, i), " on rank ",
                                  rb);
  }
  return {};
}

}  // namespace

void check_same_model(Communicator& comm, const NamedTensors& parameters, const NamedTensors& buffers,
                      const char* who) {
  if (comm.world_size() == 1) return;
  std::string sig;
  for (const auto& [name, t] : parameters) sig += signature_line("parameter", name, t, true);
  for (const auto& [name, t] : buffers) sig += signature_line("buffer", name, t, false);
  // One small all-gather of (hash, length); only when they differ do the ranks exchange the whole text.
  const std::vector<int64_t> all =
      comm.all_gather_int64({static_cast<int64_t>(fnv1a(sig)), static_cast<int64_t>(sig.size())});
  bool same = true;
  for (int r = 1; r < comm.world_size(); ++r) same = same && all[2 * r] == all[0] && all[2 * r + 1] == all[1];
  if (same) return;
  const std::vector<std::string> sigs = comm.all_gather_string(sig);
  int other = 1;
  while (other + 1 < comm.world_size() && sigs[other] == sigs[0]) ++other;
  const auto [p0, b0] = parse_signature(sigs[0]);
  const auto [pr, br] = parse_signature(sigs[other]);
  std::string where = first_difference("parameter", p0, 0, pr, other);
  if (where.empty()) where = first_difference("buffer", b0, 0, br, other);
  if (where.empty()) where = "their descriptions differ";
  throw DistError(ember::detail::cat_str("[", who, "] the ranks hold different models: rank 0 has ", p0.size(),
                                         " parameters and ", b0.size(), " buffers, rank ", other, " has ", pr.size(),
                                         " parameters and ", br.size(), " buffers; ", where,
                                         ". Every rank must build the same model (layers, shapes, dtypes) before ", who,
                                         ", which starts them all from rank 0's weights"));
}

std::vector<Tensor> trainable(NamedTensors parameters, const Communicator& comm, const char* who) {
  std::vector<Tensor> params;
  for (auto& [name, t] : parameters)
    if (t.requires_grad()) params.push_back(std::move(t));
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& p = params[i];
    EMBER_CHECK(p.is_leaf() && p.is_contiguous() && comm.accepts(p.device()), ValueError, "[", who, "] parameter ", i,
                " (", describe(p), ") must be a contiguous leaf on a device the ", comm.backend(),
                " communicator takes");
  }
  return params;
}

std::vector<std::vector<size_t>> plan_buckets(const std::vector<Tensor>& params, double cap_bytes) {
  std::vector<std::vector<size_t>> buckets;
  double bytes = 0;
  for (size_t k = params.size(); k-- > 0;) {
    const Tensor& p = params[k];
    if (buckets.empty() || bytes >= cap_bytes || params[buckets.back().front()].dtype() != p.dtype() ||
        params[buckets.back().front()].device() != p.device()) {
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().push_back(k);
    bytes += static_cast<double>(p.nbytes());
  }
  return buckets;
}

void broadcast_replica(Communicator& comm, const std::vector<Tensor>& params, const std::vector<Tensor>& buffers) {
  if (comm.world_size() == 1) return;
  autograd::NoGradGuard no_grad;
  for (const Tensor& p : params) comm.broadcast(p, 0);
  for (const Tensor& b : buffers) comm.broadcast(b, 0);
}

void queue_end_of_backward(bool& in_backward, std::function<void()> finish) {
  in_backward = true;
  struct Clear {
    explicit Clear(bool& f) : flag(f) {}
    ~Clear() { flag = false; }
    bool& flag;
  };
  autograd::queue_callback([finish = std::move(finish), clear = std::make_shared<Clear>(in_backward)] { finish(); });
}

}  // namespace ember::dist::detail
