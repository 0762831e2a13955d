// Mapping a DataLoader state across world sizes (see loader_resume.hpp).
#include "train/loader_resume.hpp"

#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace ember::train {

namespace {
using nlohmann::json;
constexpr const char* kWhere = "[Trainer] resuming the data loader with another number of ranks: ";

bool is_distributed(const json& s) {
  return s.contains("sampler") && s["sampler"].is_object() && s["sampler"].value("type", "") == "DistributedSampler";
}

int64_t replicas(const json& s) {
  if (!is_distributed(s)) return 1;
  const json& r = s["sampler"].value("num_replicas", json());
  return r.is_number_integer() ? r.get<int64_t>() : 1;
}

int64_t integer(const json& s, const char* key) {
  EMBER_CHECK(s.contains(key) && s.at(key).is_number_integer(), ValueError, kWhere, "the saved state's '", key,
              "' must be an integer, got ", s.value(key, json()).dump());
  return s.at(key).get<int64_t>();
}

// The examples of one epoch's global order and whether it is shuffled.
std::pair<int64_t, bool> order_of(const json& s, const char* who) {
  if (is_distributed(s)) return {integer(s["sampler"], "size"), s["sampler"].value("shuffle", false)};
  const json& sampler = s.value("sampler", json());
  const std::string type = sampler.is_object() ? sampler.value("type", "") : "SequentialSampler";
  const bool random = type == "RandomSampler" && !sampler.value("replacement", false);
  EMBER_CHECK(type == "SequentialSampler" || random, ValueError, kWhere, who, " loader's ", type,
              " has no order that maps onto a DistributedSampler's");
  return {integer(s, "examples_per_epoch"), random};
}
}  // namespace

json map_loader_state(const json& saved, const data::DataLoader& loader) {
  json state = saved;
  const json mine = loader.state_dict();
  if (!saved.is_object()) return state;  // load_state_dict reports it
  const int64_t n = replicas(saved), m = replicas(mine);
  if (n == m) {
    // The same split: each rank stands at the same batch of its own share.
    if (is_distributed(mine) && is_distributed(saved)) state["sampler"]["rank"] = mine["sampler"]["rank"];
    return state;
  }
  const auto [size, shuffle] = order_of(saved, "the saved");
  const auto [my_size, my_shuffle] = order_of(mine, "this run's");
  EMBER_CHECK(size == my_size, ValueError, kWhere, "the checkpoint's epochs had ", size,
              " examples but this run's have ", my_size);
  EMBER_CHECK(shuffle == my_shuffle, ValueError, kWhere, "the checkpoint's order was ",
              shuffle ? "shuffled" : "sequential", " but this run's is ", my_shuffle ? "shuffled" : "sequential");
  const int64_t k = integer(saved, "batches_yielded"), batch = integer(saved, "batch_size");
  const int64_t my_batch = integer(mine, "batch_size");
  // Mid-epoch, the same global batch keeps both the examples consumed and the Trainer's batch count.
  EMBER_CHECK(k == 0 || batch * n == my_batch * m, ValueError, kWhere, "the checkpoint stands at batch ", k,
              " of an epoch with a global batch of ", batch, " x ", n, " ranks = ", batch * n, " but this run's is ",
              my_batch, " x ", m, " = ", my_batch * m,
              ": resume from a checkpoint at an epoch boundary, or keep batch_size x ranks the same");
  // The order's seed is the sampler's (a DistributedSampler's or RandomSampler's), else the loader's.
  const json& saved_sampler = saved.value("sampler", json());
  const json seed = saved_sampler.is_object() && saved_sampler.contains("seed") ? saved_sampler["seed"]
                                                                                : saved.value("seed", json(0));
  const json epoch = saved.value("epoch", json(0));
  json out = mine;
  out["epoch"] = epoch;
  out["batches_yielded"] = k;
  out["seed"] = seed;
  if (out["sampler"].is_object()) {
    out["sampler"]["epoch"] =
        saved.contains("sampler") && saved["sampler"].is_object() ? saved["sampler"].value("epoch", epoch) : epoch;
    if (out["sampler"].contains("seed")) out["sampler"]["seed"] = seed;
  }
  return out;
}

}  // namespace ember::train
