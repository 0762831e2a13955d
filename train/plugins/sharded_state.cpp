// Consolidating and re-sharding optimizer state dicts: owners by parameter identity, the subset a rank
// owns, and the gather of every rank's entries to one rank (a description of each rank's entries in one
// string all-gather, then each rank's tensors packed per dtype and broadcast from it).
#include "train/plugins/sharded_state.hpp"

#include <algorithm>
#include <map>
#include <sstream>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/shape.hpp"

namespace ember::train {

namespace {
constexpr const char* kWhere = "[sharded optimizer state]";

// The parameter index of "state.<index>.<name>".
size_t state_index(const std::string& key) {
  const size_t dot = key.find('.', 6);
  const bool ok = key.starts_with("state.") && dot != std::string::npos && dot > 6 && dot - 6 <= 18 &&
                  std::all_of(key.begin() + 6, key.begin() + static_cast<std::ptrdiff_t>(dot),
                              [](char c) { return c >= '0' && c <= '9'; });
  EMBER_CHECK(ok, ValueError, kWhere, " state key '", key, "' is not of the form state.<param id>.<name>");
  return static_cast<size_t>(std::stoull(key.substr(6, dot - 6)));
}

struct Described {
  std::string key;
  DType dtype;
  Shape shape;
  int64_t numel;
};

std::string describe_entries(const std::map<std::string, Tensor>& state) {
  std::ostringstream out;
  for (const auto& [key, t] : state) {
    out << key << '\t' << static_cast<int>(t.dtype()) << '\t' << t.dim();
    for (int64_t d : t.shape()) out << '\t' << d;
    out << '\n';
  }
  return out.str();
}

std::vector<Described> parse_entries(const std::string& text) {
  std::vector<Described> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    Described d;
    std::string dtype, dim;
    std::getline(fields, d.key, '\t');
    std::getline(fields, dtype, '\t');
    std::getline(fields, dim, '\t');
    d.dtype = static_cast<DType>(std::stoi(dtype));
    const int n = std::stoi(dim);
    std::vector<int64_t> dims;
    for (int i = 0; i < n; ++i) {
      std::string v;
      std::getline(fields, v, '\t');
      dims.push_back(std::stoll(v));
    }
    d.shape = Shape(dims);
    d.numel = shape_numel(d.shape);
    out.push_back(std::move(d));
  }
  return out;
}
}  // namespace

std::vector<int> optimizer_owners(const optim::Optimizer& opt, const std::vector<Tensor>& sharded_params,
                                  const std::vector<int>& param_owners) {
  EMBER_CHECK(sharded_params.size() == param_owners.size(), ValueError, kWhere, " ", sharded_params.size(),
              " parameters but ", param_owners.size(), " owners");
  std::map<const void*, int> owner;
  for (size_t k = 0; k < sharded_params.size(); ++k) owner[sharded_params[k].impl_ptr().get()] = param_owners[k];
  std::vector<int> out;
  for (const Tensor& p : opt.parameters()) {
    auto it = owner.find(p.impl_ptr().get());
    out.push_back(it == owner.end() ? 0 : it->second);
  }
  return out;
}

std::vector<int> optimizer_owners(const optim::Optimizer& opt, const dist::ShardedDataParallel& sharded) {
  std::vector<int> owners;
  for (size_t k = 0; k < sharded.parameters().size(); ++k) owners.push_back(sharded.owner(k));
  return optimizer_owners(opt, sharded.parameters(), owners);
}

std::vector<int> optimizer_owners(const optim::Optimizer& opt, const std::vector<Tensor>& sharded_params,
                                  int world_size) {
  std::vector<int64_t> bytes;
  for (const Tensor& p : sharded_params) bytes.push_back(static_cast<int64_t>(p.nbytes()));
  return optimizer_owners(opt, sharded_params, dist::ShardedDataParallel::partition(bytes, world_size));
}

optim::StateDict shard_state_dict(const optim::StateDict& state, const std::vector<int>& owners, int rank) {
  optim::StateDict out;
  out.param_groups = state.param_groups;
  for (const auto& [key, t] : state.state) {
    const size_t index = state_index(key);
    EMBER_CHECK(index < owners.size(), ValueError, kWhere, " state key '", key, "' names parameter ", index,
                " but the optimizer has ", owners.size(), " parameters");
    if (owners[index] == rank) out.state.emplace(key, t);
  }
  return out;
}

optim::StateDict consolidate_state_dict(const optim::StateDict& local, const std::vector<int>& owners,
                                        dist::Communicator& comm, int root) {
  EMBER_CHECK(root >= 0 && root < comm.world_size(), ValueError, kWhere, " root rank ", root, " is not in [0, ",
              comm.world_size(), ")");
  EMBER_CHECK(comm.accepts(Device()), ValueError, kWhere,
              " consolidating needs a communicator that takes CPU tensors; ", comm.backend(),
              " does not (pass the CPU group)");
  autograd::NoGradGuard no_grad;
  const int me = comm.rank();
  optim::StateDict mine = shard_state_dict(local, owners, me);
  if (comm.world_size() == 1) return mine;
  const std::vector<std::string> texts = comm.all_gather_string(describe_entries(mine.state));
  optim::StateDict out;
  out.param_groups = local.param_groups;
  if (me == root) out.state = mine.state;
  for (int r = 0; r < comm.world_size(); ++r) {
    if (r == root) continue;
    const std::vector<Described> entries = parse_entries(texts[r]);
    std::map<DType, int64_t> numel;  // per dtype: one packed buffer each
    for (const Described& d : entries) numel[d.dtype] += d.numel;
    for (const auto& [dtype, n] : numel) {
      Tensor flat;
      if (me == r) {
        std::vector<Tensor> parts;
        for (const Described& d : entries)
          if (d.dtype == dtype) parts.push_back(mine.state.at(d.key).to(Device()).contiguous().reshape({d.numel}));
        flat = cat(parts, 0);
      } else {
        flat = empty({n}, {.dtype = dtype});
      }
      comm.broadcast(flat, r);
      if (me != root) continue;
      int64_t offset = 0;
      for (const Described& d : entries) {
        if (d.dtype != dtype) continue;
        out.state[d.key] = flat.narrow(0, offset, d.numel).view(d.shape).clone();
        offset += d.numel;
      }
    }
  }
  return out;
}

void drop_unowned_state(optim::Optimizer& opt, const std::vector<int>& owners, int rank) {
  opt.load_state_dict(shard_state_dict(opt.state_dict(), owners, rank));
}

int64_t state_bytes(const optim::StateDict& state) {
  int64_t bytes = 0;
  for (const auto& [key, t] : state.state) bytes += static_cast<int64_t>(t.nbytes());
  return bytes;
}

}  // namespace ember::train
