// Samplers: per-epoch orders drawn from a seeded Philox stream, and DistributedSampler's sharding.
#include "train/data/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/io/json_read.hpp"
#include "core/ops/creation.hpp"

namespace ember::data {
namespace {

using json = nlohmann::json;

std::vector<int64_t> permutation(int64_t n, uint64_t seed, int64_t epoch) {
  Generator gen = epoch_generator(seed, epoch);
  return randperm(n, {.dtype = kI64}, &gen).to_vector<int64_t>();
}

}  // namespace

Generator epoch_generator(uint64_t seed, int64_t epoch) {
  Generator gen(seed);
  gen.set_state({seed, static_cast<uint64_t>(epoch) << 40});
  return gen;
}

// ---- Sampler ----

json Sampler::state_dict() const { return json{{"type", name()}, {"epoch", epoch_}}; }

void Sampler::load_state_dict(const json& state) {
  EMBER_CHECK(state.is_object(), ValueError, "[", name(), "::load_state_dict] expected a JSON object, got ",
              state.dump());
  // Every saved setting must match this sampler's (a different size or rank would resume a wrong order).
  const json mine = state_dict();
  for (const auto& [key, value] : mine.items()) {
    if (key == "epoch" || key == "seed" || !state.contains(key)) continue;
    EMBER_CHECK(state.at(key) == value, ValueError, "[", name(), "::load_state_dict] the state was saved with ", key,
                " = ", state.at(key).dump(), " but this sampler has ", value.dump());
  }
  if (state.contains("epoch")) {
    EMBER_CHECK(state.at("epoch").is_number_integer(), ValueError, "[", name(),
                "::load_state_dict] 'epoch' must be an integer, got ", state.at("epoch").dump());
    set_epoch(json_int64(state.at("epoch"), "[Sampler] epoch"));
  }
  if (state.contains("seed")) {
    EMBER_CHECK(state.at("seed").is_number_unsigned() || state.at("seed").is_number_integer(), ValueError, "[", name(),
                "::load_state_dict] 'seed' must be an integer, got ", state.at("seed").dump());
    seed_ = json_uint64(state.at("seed"), "[Sampler] seed");
  }
}

// ---- SequentialSampler ----

SequentialSampler::SequentialSampler(int64_t n) : n_(n) {
  EMBER_CHECK(n >= 0, ValueError, "[SequentialSampler] size must be non-negative, got ", n);
}

std::vector<int64_t> SequentialSampler::indices() const {
  std::vector<int64_t> out(static_cast<size_t>(n_));
  std::iota(out.begin(), out.end(), int64_t{0});
  return out;
}

json SequentialSampler::state_dict() const {
  json s = Sampler::state_dict();
  s["size"] = n_;
  return s;
}

// ---- RandomSampler ----

RandomSampler::RandomSampler(int64_t n, uint64_t seed, bool replacement, std::optional<int64_t> num_samples)
    : n_(n), num_samples_(num_samples.value_or(n)), replacement_(replacement) {
  seed_ = seed;
  EMBER_CHECK(n >= 0, ValueError, "[RandomSampler] size must be non-negative, got ", n);
  EMBER_CHECK(num_samples_ >= 0, ValueError, "[RandomSampler] num_samples must be non-negative, got ", num_samples_);
  EMBER_CHECK(replacement || num_samples_ == n, ValueError, "[RandomSampler] num_samples (", num_samples_,
              ") differs from the size (", n, ") without replacement; use replacement = true or a Subset");
  EMBER_CHECK(!replacement || n > 0 || num_samples_ == 0, ValueError,
              "[RandomSampler] cannot draw with replacement from an empty dataset");
}

std::vector<int64_t> RandomSampler::indices() const {
  if (!replacement_) return permutation(n_, seed_, epoch_);
  if (num_samples_ == 0) return {};
  Generator gen = epoch_generator(seed_, epoch_);
  return randint(0, n_, {num_samples_}, {.dtype = kI64}, &gen).to_vector<int64_t>();
}

json RandomSampler::state_dict() const {
  json s = Sampler::state_dict();
  s["size"] = n_;
  s["num_samples"] = num_samples_;
  s["replacement"] = replacement_;
  s["seed"] = seed_;
  return s;
}

// ---- SubsetRandomSampler ----

SubsetRandomSampler::SubsetRandomSampler(std::vector<int64_t> indices, uint64_t seed) : indices_(std::move(indices)) {
  seed_ = seed;
}

std::vector<int64_t> SubsetRandomSampler::indices() const {
  std::vector<int64_t> perm = permutation(size(), seed_, epoch_), out(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) out[i] = indices_[static_cast<size_t>(perm[i])];
  return out;
}

json SubsetRandomSampler::state_dict() const {
  json s = Sampler::state_dict();
  s["size"] = size();
  s["seed"] = seed_;
  return s;
}

// ---- WeightedRandomSampler ----

WeightedRandomSampler::WeightedRandomSampler(std::vector<double> weights, int64_t num_samples, bool replacement,
                                             uint64_t seed)
    : weights_(std::move(weights)), num_samples_(num_samples), replacement_(replacement) {
  seed_ = seed;
  EMBER_CHECK(!weights_.empty(), ValueError, "[WeightedRandomSampler] needs at least one weight");
  EMBER_CHECK(num_samples >= 0, ValueError, "[WeightedRandomSampler] num_samples must be non-negative, got ",
              num_samples);
  double total = 0;
  int64_t positive = 0;
  for (size_t i = 0; i < weights_.size(); ++i) {
    EMBER_CHECK(std::isfinite(weights_[i]) && weights_[i] >= 0, ValueError,
                "[WeightedRandomSampler] weights must be finite and non-negative, got ", weights_[i], " at ", i);
    total += weights_[i];
    positive += weights_[i] > 0;
    cdf_.push_back(total);
  }
  EMBER_CHECK(total > 0, ValueError, "[WeightedRandomSampler] the weights sum to zero");
  EMBER_CHECK(replacement || num_samples <= positive, ValueError, "[WeightedRandomSampler] cannot draw ", num_samples,
              " samples without replacement from ", positive, " indices of positive weight");
}

std::vector<int64_t> WeightedRandomSampler::indices() const {
  if (num_samples_ == 0) return {};
  const int64_t n = static_cast<int64_t>(weights_.size());
  Generator gen = epoch_generator(seed_, epoch_);
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(num_samples_));
  if (replacement_) {
    std::vector<double> u = rand({num_samples_}, {.dtype = kF64}, &gen).to_vector<double>();
    for (double x : u) {
      auto it = std::upper_bound(cdf_.begin(), cdf_.end(), x * cdf_.back());
      // Zero-weight entries have empty CDF steps, so upper_bound never lands on one (x < 1).
      out.push_back(std::min<int64_t>(it - cdf_.begin(), n - 1));
    }
    return out;
  }
  std::vector<double> u = rand({n}, {.dtype = kF64}, &gen).to_vector<double>();
  std::vector<std::pair<double, int64_t>> keys;
  for (int64_t i = 0; i < n; ++i) {
    double w = weights_[static_cast<size_t>(i)];
    if (w > 0) keys.emplace_back(std::log(u[static_cast<size_t>(i)] + 1e-300) / w, i);  // log(u^(1/w))
  }
  std::partial_sort(keys.begin(), keys.begin() + num_samples_, keys.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  for (int64_t i = 0; i < num_samples_; ++i) out.push_back(keys[static_cast<size_t>(i)].second);
  return out;
}

json WeightedRandomSampler::state_dict() const {
  json s = Sampler::state_dict();
  s["size"] = static_cast<int64_t>(weights_.size());
  s["num_samples"] = num_samples_;
  s["replacement"] = replacement_;
  s["seed"] = seed_;
  return s;
}

// ---- DistributedSampler ----

DistributedSampler::DistributedSampler(int64_t size, int64_t num_replicas, int64_t rank, bool shuffle, uint64_t seed,
                                       bool drop_last)
    : dataset_size_(size), num_replicas_(num_replicas), rank_(rank), shuffle_(shuffle), drop_last_(drop_last) {
  seed_ = seed;
  EMBER_CHECK(size >= 0, ValueError, "[DistributedSampler] dataset size must be non-negative, got ", size);
  EMBER_CHECK(num_replicas >= 1, ValueError, "[DistributedSampler] num_replicas must be >= 1, got ", num_replicas);
  EMBER_CHECK(rank >= 0 && rank < num_replicas, ValueError, "[DistributedSampler] invalid rank ", rank,
              ", rank should be in the interval [0, ", num_replicas - 1, "]");
  // torch: ceil((n - R) / R) with drop_last when R does not divide n (that is floor(n / R)), else ceil(n / R).
  if (drop_last && size % num_replicas != 0)
    num_samples_ = size / num_replicas;
  else
    num_samples_ = (size + num_replicas - 1) / num_replicas;
}

std::vector<int64_t> DistributedSampler::indices() const {
  std::vector<int64_t> order;
  if (shuffle_) {
    order = permutation(dataset_size_, seed_, epoch_);
  } else {
    order.resize(static_cast<size_t>(dataset_size_));
    std::iota(order.begin(), order.end(), int64_t{0});
  }
  const size_t total = static_cast<size_t>(total_size());
  if (!drop_last_) {
    // Pad by repeating the order from its start (as often as needed when the padding exceeds it).
    const size_t n = order.size();
    for (size_t i = 0; order.size() < total && n > 0; ++i) order.push_back(order[i % n]);
  } else {
    order.resize(total);
  }
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(num_samples_));
  for (size_t i = static_cast<size_t>(rank_); i < order.size() && out.size() < static_cast<size_t>(num_samples_);
       i += static_cast<size_t>(num_replicas_))
    out.push_back(order[i]);
  return out;
}

json DistributedSampler::state_dict() const {
  json s = Sampler::state_dict();
  s["size"] = dataset_size_;
  s["num_replicas"] = num_replicas_;
  s["rank"] = rank_;
  s["shuffle"] = shuffle_;
  s["seed"] = seed_;
  s["drop_last"] = drop_last_;
  return s;
}

}  // namespace ember::data
