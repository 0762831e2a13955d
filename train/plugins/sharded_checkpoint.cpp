// Sharded checkpoints: the per-rank shard files, their index in the main file, and reading them back
// (see sharded_checkpoint.hpp).
#include "train/plugins/sharded_checkpoint.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <random>

#include "core/error.hpp"

namespace ember::train {

namespace {
constexpr const char* kWhere = "[sharded checkpoint]";
constexpr const char* kOptPrefix = "optimizer_states.";

// 64 random bits in hex.
std::string new_save_id() {
  std::random_device rd;
  const uint64_t v = (uint64_t{rd()} << 32) ^ rd();
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// "optimizer_states.<i>.state.<p>.<name>" -> {i, p}; false for any other key.
bool parse_key(const std::string& key, size_t& opt, size_t& param) {
  if (!key.starts_with(kOptPrefix)) return false;
  size_t pos = std::string(kOptPrefix).size();
  auto number = [&](size_t& out) {
    const size_t end = key.find('.', pos);
    if (end == std::string::npos || end == pos || end - pos > 18) return false;
    for (size_t i = pos; i < end; ++i)
      if (key[i] < '0' || key[i] > '9') return false;
    out = static_cast<size_t>(std::stoull(key.substr(pos, end - pos)));
    pos = end + 1;
    return true;
  };
  if (!number(opt) || key.compare(pos, 6, "state.") != 0) return false;
  pos += 6;
  return number(param);
}
}  // namespace

std::string shard_suffix(int rank, int world_size) {
  return ".shard-" + std::to_string(rank) + "-of-" + std::to_string(world_size) + ".safetensors";
}

void save_sharded_checkpoint(const Checkpoint& checkpoint, const std::string& path,
                             const std::vector<std::vector<int>>& owners, dist::Communicator& comm,
                             const std::function<void(const Checkpoint&, const std::string&)>& write) {
  const int rank = comm.rank(), n = comm.world_size();
  Checkpoint shard, index;
  for (const auto& [key, t] : checkpoint.tensors) (key.starts_with(kOptPrefix) ? shard : index).tensors.emplace(key, t);
  // One id for this save in the shards and the index: a crash between the shard writes and the index's
  // leaves an older index beside newer shards, which loading then refuses instead of mixing two saves.
  const std::string save_id = comm.broadcast_string(rank == 0 ? new_save_id() : std::string());
  shard.state = {{"format", "ember-optimizer-shard"}, {"rank", rank}, {"world_size", n}, {"save_id", save_id}};
  write(shard, path + shard_suffix(rank, n));
  comm.barrier();  // every shard is written before the index that names them
  if (rank == 0) {
    index.state = checkpoint.state;
    nlohmann::json files = nlohmann::json::array();
    for (int r = 0; r < n; ++r) files.push_back(shard_suffix(r, n));
    index.state[kOptimizerShardsKey] = {{"world_size", n}, {"files", files}, {"owners", owners}, {"save_id", save_id}};
    write(index, path);
  }
  comm.barrier();
}

void complete_sharded_checkpoint(Checkpoint& checkpoint, CheckpointIO& io) {
  auto it = checkpoint.state.find(kOptimizerShardsKey);
  if (it == checkpoint.state.end()) return;
  const StateReader r(checkpoint.path, checkpoint.state);
  const std::string k = kOptimizerShardsKey;
  const int64_t n = r.integer(k + ".world_size", 1, int64_t(1) << 20);
  const nlohmann::json& files = r.array(k + ".files");
  const nlohmann::json& owners = r.array(k + ".owners");
  if (static_cast<int64_t>(files.size()) != n) r.fail(k + ".files", detail::cat_str("expected ", n, " shard files"));
  for (const auto& o : owners)
    if (!o.is_array() || !std::all_of(o.begin(), o.end(), [&](const nlohmann::json& v) {
          return v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < n;
        }))
      r.fail(k + ".owners", "each optimizer's owners must be ranks below world_size");
  for (int64_t rank = 0; rank < n; ++rank) {
    const nlohmann::json& f = files[static_cast<size_t>(rank)];
    if (!f.is_string() || f.get<std::string>().find('/') != std::string::npos)
      r.fail(detail::cat_str(k, ".files.", rank), "must be a file-name suffix");
    const std::string file = checkpoint.path + f.get<std::string>();
    Checkpoint shard;
    try {
      shard = io.load_checkpoint(file);
    } catch (const Error& e) {
      throw IOError(detail::cat_str(kWhere, " ", checkpoint.path, " needs its shard ", file, " (rank ", rank, " of ", n,
                                    "), which cannot be read: ", e.what()));
    }
    auto bad = [&](const std::string& what) {
      return FormatError(detail::cat_str(kWhere, " shard ", file, ": ", what));
    };
    const nlohmann::json& s = shard.state;
    if (!s.is_object() || s.value("rank", nlohmann::json()) != nlohmann::json(rank) ||
        s.value("world_size", nlohmann::json()) != nlohmann::json(n))
      throw bad(detail::cat_str("is not the shard of rank ", rank, " of ", n, " (its metadata: ", s.dump(), ")"));
    // Files written before save ids carry none.
    if (it->contains("save_id") && s.value("save_id", nlohmann::json()) != it->at("save_id"))
      throw bad(detail::cat_str("belongs to another save than its index (save id ",
                                s.value("save_id", nlohmann::json()).dump(), ", the index's ", it->at("save_id").dump(),
                                "): the run may have stopped between writing the shards and the index"));
    for (auto& [key, t] : shard.tensors) {
      size_t opt = 0, param = 0;
      if (!parse_key(key, opt, param)) throw bad("holds '" + key + "', which is no optimizer state entry");
      if (opt >= owners.size() || param >= owners[opt].size() || owners[opt][param].get<int64_t>() != rank)
        throw bad("holds '" + key + "', whose parameter the index does not give to rank " + std::to_string(rank));
      if (!checkpoint.tensors.emplace(key, t).second) throw bad("'" + key + "' is in the index file too");
    }
  }
}

void remove_sharded_checkpoint(const std::string& path, int world_size, CheckpointIO& io) {
  io.remove_checkpoint(path);
  for (int r = 0; r < world_size; ++r) io.remove_checkpoint(path + shard_suffix(r, world_size));
}

void copy_sharded_checkpoint(const std::string& from, const std::string& to, int world_size, CheckpointIO& io) {
  for (int r = 0; r < world_size; ++r)
    io.copy_checkpoint(from + shard_suffix(r, world_size), to + shard_suffix(r, world_size));
  io.copy_checkpoint(from, to);
}

}  // namespace ember::train
