// Samplers: the order in which a DataLoader visits a map-style dataset in one epoch. Sequential, Random,
// SubsetRandom, WeightedRandom and DistributedSampler (PyTorch's index arithmetic, padding by wrapping).
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "core/ops/random.hpp"

namespace ember::data {

// indices() must depend only on the sampler's state and epoch: a resumed DataLoader recomputes the
// interrupted epoch's order from them. The DataLoader calls set_epoch(e) before each pass.
class Sampler {
 public:
  virtual ~Sampler() = default;
  virtual int64_t size() const = 0;                  // indices per epoch
  virtual std::vector<int64_t> indices() const = 0;  // this epoch's order
  virtual void set_epoch(int64_t epoch) { epoch_ = epoch; }
  int64_t epoch() const { return epoch_; }
  // {"type": ..., "epoch": ..., plus the subclass's settings}; load_state_dict restores the epoch and
  // checks that the settings match (ValueError naming the first difference).
  virtual nlohmann::json state_dict() const;
  virtual void load_state_dict(const nlohmann::json& state);
  virtual std::string name() const = 0;
  // The seed of a random sampler (0 and unused for SequentialSampler); load_state_dict adopts a saved one.
  uint64_t seed() const { return seed_; }
  void set_seed(uint64_t seed) { seed_ = seed; }

 protected:
  int64_t epoch_ = 0;
  uint64_t seed_ = 0;
};

// The Philox generator for one epoch of a seeded sampler: key `seed`, counter offset epoch * 2^40 blocks,
// so different epochs (and different seeds) never share random numbers.
Generator epoch_generator(uint64_t seed, int64_t epoch);

// 0, 1, ..., n-1 every epoch.
class SequentialSampler : public Sampler {
 public:
  explicit SequentialSampler(int64_t n);
  int64_t size() const override { return n_; }
  std::vector<int64_t> indices() const override;
  nlohmann::json state_dict() const override;
  std::string name() const override { return "SequentialSampler"; }

 private:
  int64_t n_;
};

// A fresh permutation of 0..n-1 each epoch: randperm(n) from epoch_generator(seed, epoch). With
// replacement, num_samples uniform draws (default n).
class RandomSampler : public Sampler {
 public:
  explicit RandomSampler(int64_t n, uint64_t seed = 0, bool replacement = false,
                         std::optional<int64_t> num_samples = {});
  int64_t size() const override { return num_samples_; }
  std::vector<int64_t> indices() const override;
  nlohmann::json state_dict() const override;
  std::string name() const override { return "RandomSampler"; }

 private:
  int64_t n_, num_samples_;
  bool replacement_;
};

// A fresh permutation of the given indices each epoch.
class SubsetRandomSampler : public Sampler {
 public:
  explicit SubsetRandomSampler(std::vector<int64_t> indices, uint64_t seed = 0);
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  std::vector<int64_t> indices() const override;
  nlohmann::json state_dict() const override;
  std::string name() const override { return "SubsetRandomSampler"; }

 private:
  std::vector<int64_t> indices_;
};

// num_samples indices drawn with probability proportional to weights (torch's WeightedRandomSampler):
// with replacement by inverse-CDF lookup, without it by Efraimidis-Spirakis keys u^(1/w).
class WeightedRandomSampler : public Sampler {
 public:
  WeightedRandomSampler(std::vector<double> weights, int64_t num_samples, bool replacement = true, uint64_t seed = 0);
  int64_t size() const override { return num_samples_; }
  std::vector<int64_t> indices() const override;
  nlohmann::json state_dict() const override;
  std::string name() const override { return "WeightedRandomSampler"; }

 private:
  std::vector<double> weights_, cdf_;
  int64_t num_samples_;
  bool replacement_;
};

// Rank `rank`'s share of a dataset of `size` examples split over `num_replicas` processes, with
// torch.utils.data.DistributedSampler's arithmetic: every rank gets num_samples indices; without
// drop_last the order is padded by repeating its start up to num_samples * num_replicas, with drop_last
// its tail is cut to a multiple of num_replicas; rank r takes positions r, r + R, r + 2R, ...
// shuffle permutes with epoch_generator(seed, epoch) (all ranks agree; call set_epoch each epoch when
// used outside a DataLoader, as in PyTorch). The permutation is Ember's, not torch's.
class DistributedSampler : public Sampler {
 public:
  DistributedSampler(int64_t size, int64_t num_replicas, int64_t rank, bool shuffle = true, uint64_t seed = 0,
                     bool drop_last = false);
  int64_t size() const override { return num_samples_; }
  std::vector<int64_t> indices() const override;
  nlohmann::json state_dict() const override;
  std::string name() const override { return "DistributedSampler"; }
  int64_t total_size() const { return num_samples_ * num_replicas_; }

 private:
  int64_t dataset_size_, num_replicas_, rank_;
  bool shuffle_;
  bool drop_last_;
  int64_t num_samples_;
};

}  // namespace ember::data
