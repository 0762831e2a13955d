// Datasets: random-access Dataset (size + get), streaming IterableDataset, and the building blocks
// TensorDataset (the fast path: one index_select per field per batch), Subset, ConcatDataset, random_split.
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "core/tensor.hpp"
#include "train/data/batch.hpp"

namespace ember::data {

// A map-style dataset. get() and get_batch() are const and may be called from several loader worker
// threads at once: keep them free of unsynchronised mutable state.
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // Example i, 0 <= i < size(); out-of-range indices raise IndexError.
  virtual Example get(int64_t index) const = 0;
  // The examples at `indices`, collated. The default stacks get(i) with default_collate; datasets backed
  // by tensors override it with one gather per field.
  virtual Batch get_batch(std::span<const int64_t> indices) const;
};
using DatasetPtr = std::shared_ptr<const Dataset>;

// A stream of examples read front to back (a file too large for memory, a generator). The DataLoader
// calls reset(epoch) before each pass and then next() until it returns nullopt; with num_workers > 0 one
// background thread reads the stream, so these are never called concurrently.
class IterableDataset {
 public:
  virtual ~IterableDataset() = default;
  virtual void reset(int64_t epoch) = 0;
  virtual std::optional<Example> next() = 0;
  // Examples per pass when known (lets DataLoader::size() answer).
  virtual std::optional<int64_t> size() const { return std::nullopt; }
};

// An IterableDataset from a function: make(epoch) returns the pass's generator, which returns nullopt
// at the end.
class StreamDataset final : public IterableDataset {
 public:
  using Generator = std::function<std::optional<Example>()>;
  using Factory = std::function<Generator(int64_t epoch)>;
  explicit StreamDataset(Factory make, std::optional<int64_t> size = std::nullopt);
  void reset(int64_t epoch) override;
  std::optional<Example> next() override;
  std::optional<int64_t> size() const override { return size_; }

 private:
  Factory make_;
  Generator current_;
  std::optional<int64_t> size_;
};

// Tensors sharing dim 0: example i is (input[i], target[i], extra[name][i]). The target and extras are
// optional. Tensors are stored contiguous and detached; get() returns views, get_batch() one
// index_select per field.
class TensorDataset : public Dataset {
 public:
  explicit TensorDataset(Tensor input, Tensor target = {}, std::map<std::string, Tensor> extra = {});
  int64_t size() const override { return size_; }
  Example get(int64_t index) const override;
  Batch get_batch(std::span<const int64_t> indices) const override;
  const Tensor& input() const { return input_; }
  const Tensor& target() const { return target_; }
  const std::map<std::string, Tensor>& extra() const { return extra_; }

 private:
  Tensor input_, target_;
  std::map<std::string, Tensor> extra_;
  int64_t size_ = 0;
};

// The examples of `base` at `indices` (in that order; repeats allowed). Batches go through the base's
// get_batch, so a Subset of a TensorDataset keeps the fast path.
class Subset : public Dataset {
 public:
  Subset(DatasetPtr base, std::vector<int64_t> indices);
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  Example get(int64_t index) const override;
  Batch get_batch(std::span<const int64_t> indices) const override;
  const std::vector<int64_t>& indices() const { return indices_; }
  const DatasetPtr& base() const { return base_; }

 private:
  DatasetPtr base_;
  std::vector<int64_t> indices_;
};

// Datasets one after another. A batch spanning several parts is fetched part by part and concatenated.
class ConcatDataset : public Dataset {
 public:
  explicit ConcatDataset(std::vector<DatasetPtr> parts);
  int64_t size() const override { return offsets_.back(); }
  Example get(int64_t index) const override;
  Batch get_batch(std::span<const int64_t> indices) const override;
  const std::vector<DatasetPtr>& parts() const { return parts_; }

 private:
  size_t part_of(int64_t index) const;
  std::vector<DatasetPtr> parts_;
  std::vector<int64_t> offsets_;  // offsets_[p] = first index of part p; offsets_.back() = size()
};

// Splits `dataset` into disjoint random subsets, as torch.utils.data.random_split. `lengths` are either
// example counts summing to size(), or fractions summing to 1 (each gets floor(n * f), the remainder is
// dealt one by one from the first subset on). The order is randperm(size()) drawn from a Philox
// Generator seeded with `seed`: the same seed always gives the same split.
std::vector<std::shared_ptr<Subset>> random_split(DatasetPtr dataset, const std::vector<int64_t>& lengths,
                                                  uint64_t seed = 0);
std::vector<std::shared_ptr<Subset>> random_split(DatasetPtr dataset, const std::vector<double>& fractions,
                                                  uint64_t seed = 0);
// Lets random_split(ds, {800, 200}) and random_split(ds, {0.8, 0.2}) pick the right form.
template <class T>
requires std::is_arithmetic_v<T> std::vector<std::shared_ptr<Subset>> random_split(DatasetPtr dataset,
                                                                                   std::initializer_list<T> lengths,
                                                                                   uint64_t seed = 0) {
  if constexpr (std::is_integral_v<T>)
    return random_split(std::move(dataset), std::vector<int64_t>(lengths.begin(), lengths.end()), seed);
  else
    return random_split(std::move(dataset), std::vector<double>(lengths.begin(), lengths.end()), seed);
}

namespace detail {
// IndexError "[op] index i is out of range for a dataset of n examples" unless 0 <= i < n.
void check_index(const char* op, int64_t index, int64_t size);
// A batch's host-built index tensor moved to the data's device. To a GPU it goes through pinned memory
// as a non-blocking copy on the current stream: a plain copy from pageable memory would wait for the
// device's queued work (a training step) before every batch.
Tensor index_to(const Tensor& host_index, Device device);
}  // namespace detail

}  // namespace ember::data
