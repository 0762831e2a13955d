// DataLoader: batches of a Dataset (in a sampler's order) or of an IterableDataset, optionally prefetched
// by worker threads, in the same order for any number of workers, with a resumable position.
#pragma once
#include <concepts>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>

#include "train/data/batch.hpp"
#include "train/data/dataset.hpp"
#include "train/data/sampler.hpp"

namespace ember::data {

// Applied to each batch after collation, in the worker. `gen` is seeded from (seed, epoch, batch index)
// alone, so random augmentation is reproducible and independent of num_workers.
using BatchTransform = std::function<Batch(Batch batch, Generator& gen)>;

struct DataLoaderOptions {
  int64_t batch_size = 1;
  bool shuffle = false;    // a fresh permutation each epoch (RandomSampler(size, seed))
  bool drop_last = false;  // drop the last batch when it is smaller than batch_size
  // Seed of the shuffle order and of the transform's generators. Unset: drawn from the default generator
  // when the loader is made, so manual_seed(s) makes it reproducible.
  std::optional<uint64_t> seed = std::nullopt;
  int64_t num_workers = 0;                     // 0: batches are made on the consuming thread when asked for
  int64_t prefetch_factor = 2;                 // batches in flight per worker (the queue holds num_workers * this)
  CollateFn collate = nullptr;                 // set: get(i) per example then collate; unset: Dataset::get_batch
  std::shared_ptr<Sampler> sampler = nullptr;  // the epoch's order (excludes shuffle); unset: sequential
  BatchTransform transform = nullptr;
  // Batches come in page-locked memory, so the Trainer's copy to a CUDA device is asynchronous and
  // overlaps compute (torch's pin_memory). Ignored when no CUDA device is present.
  bool pin_memory = false;
};

namespace detail {
class Pass;
}

// for (const data::Batch& b : loader) { ... } is one epoch. Each pass over the loader starts the next
// epoch (the first is 0, or what set_epoch / load_state_dict chose); the order of epoch e depends only on
// (seed, e). Starting a pass ends the one before it. An exception making a batch reaches the consumer as
// the same class (rethrow_with_context: an IOError stays an IOError) with "[DataLoader] worker 1, batch 7
// of epoch 0 (examples ...): " in front of its message; the original is nested (std::rethrow_if_nested).
// Workers that cannot be started raise ember::Error naming which ("could not start worker 3 of 4: ...").
// Breaking out of the loop or destroying the loader stops and joins the workers.
class DataLoader {
 public:
  using Options = DataLoaderOptions;

  DataLoader(DatasetPtr dataset, DataLoaderOptions options = {});
  // Takes a dataset by value (TensorDataset copies are cheap: tensor handles).
  template <class D>
  requires std::derived_from<std::remove_cvref_t<D>, Dataset> DataLoader(D&& dataset, DataLoaderOptions options = {})
      : DataLoader(DatasetPtr(std::make_shared<std::remove_cvref_t<D>>(std::forward<D>(dataset))), std::move(options)) {
  }
  DataLoader(std::shared_ptr<IterableDataset> dataset, DataLoaderOptions options = {});
  ~DataLoader();
  DataLoader(DataLoader&&) noexcept;
  DataLoader& operator=(DataLoader&&) noexcept;

  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    using reference = const Batch&;
    using pointer = const Batch*;

    // *it refers to a batch owned by the iterator: valid until ++it or the iterator's end.
    Iterator(Iterator&&) noexcept;
    Iterator& operator=(Iterator&&) noexcept;
    ~Iterator();
    const Batch& operator*() const;
    const Batch* operator->() const { return &**this; }
    Iterator& operator++();
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const;

   private:
    friend class DataLoader;
    explicit Iterator(std::shared_ptr<detail::Pass> pass);
    std::shared_ptr<detail::Pass> pass_;
  };

  Iterator begin();
  std::default_sentinel_t end() const { return {}; }

  // Batches per epoch; ValueError for an IterableDataset that does not know its size.
  int64_t size() const;
  // The epoch of the pass in progress, else of the next pass.
  int64_t epoch() const;
  // The next pass runs epoch `epoch` from its start.
  void set_epoch(int64_t epoch);
  uint64_t seed() const;

  // {"epoch", "batches_yielded", "seed", "batch_size", "drop_last", "examples_per_epoch", "sampler"}:
  // where the current pass stands (a finished pass reads as the next epoch at batch 0; a pass left by
  // `break` as its interrupted position). A loader given this state yields exactly the rest of that
  // epoch on its next pass, then the same epochs as the original. Settings that would change the order
  // (batch_size, drop_last, examples per epoch, the sampler's) must match; the seed is adopted.
  nlohmann::json state_dict() const;
  void load_state_dict(const nlohmann::json& state);

  const DataLoaderOptions& options() const;
  DatasetPtr dataset() const;
  std::shared_ptr<IterableDataset> iterable_dataset() const;
  std::shared_ptr<Sampler> sampler() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ember::data
