// Dataset building blocks: TensorDataset's batched gather, Subset, ConcatDataset, StreamDataset and
// random_split.
#include "train/data/dataset.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/ops/creation.hpp"
#include "core/ops/index.hpp"
#include "core/ops/random.hpp"

namespace ember::data {

namespace detail {
void check_index(const char* op, int64_t index, int64_t size) {
  EMBER_CHECK(index >= 0 && index < size, IndexError, "[", op, "] index ", index, " is out of range for a dataset of ",
              size, " examples");
}

Tensor index_to(const Tensor& host_index, Device device) {
  if (device.is_cpu()) return host_index;
  // The pinned source is held until the copy is done (the pinned allocator waits for it).
  return host_index.pin_memory().to(device, /*copy=*/false, /*non_blocking=*/true);
}
}  // namespace detail

// ---- Dataset ----

Batch Dataset::get_batch(std::span<const int64_t> indices) const {
  EMBER_CHECK(!indices.empty(), ValueError, "[Dataset::get_batch] needs at least one index");
  std::vector<Example> examples;
  examples.reserve(indices.size());
  for (int64_t i : indices) examples.push_back(get(i));
  return default_collate(examples);
}

// ---- StreamDataset ----

StreamDataset::StreamDataset(Factory make, std::optional<int64_t> size) : make_(std::move(make)), size_(size) {
  EMBER_CHECK(make_ != nullptr, ValueError, "[StreamDataset] needs a factory function");
  EMBER_CHECK(!size_ || *size_ >= 0, ValueError, "[StreamDataset] size must be non-negative, got ", *size_);
}

void StreamDataset::reset(int64_t epoch) {
  current_ = make_(epoch);
  EMBER_CHECK(current_ != nullptr, ValueError, "[StreamDataset] the factory returned an empty generator for epoch ",
              epoch);
}

std::optional<Example> StreamDataset::next() {
  EMBER_CHECK(current_ != nullptr, ValueError, "[StreamDataset] next() before reset()");
  return current_();
}

// ---- TensorDataset ----

namespace {
Tensor prepare_field(const char* what, const Tensor& t, int64_t n, const Tensor& first) {
  if (!t.defined()) return t;
  EMBER_CHECK(t.dim() >= 1, ShapeError, "[TensorDataset] ", what, " must have a leading example dim, got ",
              describe(t));
  EMBER_CHECK(t.size(0) == n, ShapeError, "[TensorDataset] ", what, " has ", t.size(0),
              " examples (dim 0) but input has ", n, ": ", describe(t), " vs ", describe(first));
  EMBER_CHECK(t.device() == first.device(), DeviceError, "[TensorDataset] ", what, " is ", describe(t),
              " but input is ", describe(first));
  return t.detach().contiguous();
}

// An i64 index tensor on `device`, after checking every index against the dataset size.
Tensor index_tensor(const char* op, std::span<const int64_t> indices, int64_t size, Device device) {
  EMBER_CHECK(!indices.empty(), ValueError, "[", op, "] needs at least one index");
  auto [lo, hi] = std::minmax_element(indices.begin(), indices.end());
  detail::check_index(op, *lo, size);
  detail::check_index(op, *hi, size);
  Tensor idx = make_tensor(Shape{static_cast<int64_t>(indices.size())}, kI64);
  std::copy(indices.begin(), indices.end(), idx.data_ptr<int64_t>());
  return detail::index_to(idx, device);
}
}  // namespace

TensorDataset::TensorDataset(Tensor input, Tensor target, std::map<std::string, Tensor> extra) {
  EMBER_CHECK(input.defined(), ValueError, "[TensorDataset] input must be a defined tensor");
  EMBER_CHECK(input.dim() >= 1, ShapeError, "[TensorDataset] input must have a leading example dim, got ",
              describe(input));
  size_ = input.size(0);
  input_ = input.detach().contiguous();
  target_ = prepare_field("target", target, size_, input_);
  for (auto& [name, t] : extra) {
    EMBER_CHECK(t.defined(), ValueError, "[TensorDataset] extra field '", name, "' is an undefined tensor");
    EMBER_CHECK(name != "input" && name != "target", ValueError, "[TensorDataset] extra field may not be named '", name,
                "'");
    extra_[name] = prepare_field(("extra field '" + name + "'").c_str(), t, size_, input_);
  }
}

Example TensorDataset::get(int64_t index) const {
  detail::check_index("TensorDataset", index, size_);
  Example e;
  e.input = input_.select(0, index);
  if (target_.defined()) e.target = target_.select(0, index);
  for (const auto& [name, t] : extra_) e.extra[name] = t.select(0, index);
  return e;
}

Batch TensorDataset::get_batch(std::span<const int64_t> indices) const {
  Tensor idx = index_tensor("TensorDataset", indices, size_, input_.device());
  Batch b;
  b.input = index_select(input_, 0, idx);
  if (target_.defined()) b.target = index_select(target_, 0, idx);
  for (const auto& [name, t] : extra_) b.extra[name] = index_select(t, 0, idx);
  return b;
}

// ---- Subset ----

Subset::Subset(DatasetPtr base, std::vector<int64_t> indices) : base_(std::move(base)), indices_(std::move(indices)) {
  EMBER_CHECK(base_ != nullptr, ValueError, "[Subset] needs a dataset");
  const int64_t n = base_->size();
  for (size_t i = 0; i < indices_.size(); ++i)
    EMBER_CHECK(indices_[i] >= 0 && indices_[i] < n, IndexError, "[Subset] index ", indices_[i], " (entry ", i,
                ") is out of range for a dataset of ", n, " examples");
}

Example Subset::get(int64_t index) const {
  detail::check_index("Subset", index, size());
  return base_->get(indices_[static_cast<size_t>(index)]);
}

Batch Subset::get_batch(std::span<const int64_t> indices) const {
  std::vector<int64_t> mapped(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) {
    detail::check_index("Subset", indices[i], size());
    mapped[i] = indices_[static_cast<size_t>(indices[i])];
  }
  return base_->get_batch(mapped);
}

// ---- ConcatDataset ----

ConcatDataset::ConcatDataset(std::vector<DatasetPtr> parts) : parts_(std::move(parts)) {
  EMBER_CHECK(!parts_.empty(), ValueError, "[ConcatDataset] needs at least one dataset");
  offsets_.push_back(0);
  for (size_t p = 0; p < parts_.size(); ++p) {
    EMBER_CHECK(parts_[p] != nullptr, ValueError, "[ConcatDataset] dataset ", p, " is null");
    offsets_.push_back(offsets_.back() + parts_[p]->size());
  }
}

size_t ConcatDataset::part_of(int64_t index) const {
  detail::check_index("ConcatDataset", index, size());
  // The last part whose first index is <= index (empty parts are skipped by upper_bound).
  auto it = std::upper_bound(offsets_.begin(), offsets_.end(), index);
  return static_cast<size_t>(it - offsets_.begin()) - 1;
}

Example ConcatDataset::get(int64_t index) const {
  size_t p = part_of(index);
  return parts_[p]->get(index - offsets_[p]);
}

Batch ConcatDataset::get_batch(std::span<const int64_t> indices) const {
  EMBER_CHECK(!indices.empty(), ValueError, "[ConcatDataset] get_batch needs at least one index");
  // Runs of consecutive indices from one part become one get_batch call each.
  std::vector<Batch> pieces;
  std::vector<int64_t> run;
  size_t run_part = part_of(indices[0]);
  for (int64_t i : indices) {
    size_t p = part_of(i);
    if (p != run_part) {
      pieces.push_back(parts_[run_part]->get_batch(run));
      run.clear();
      run_part = p;
    }
    run.push_back(i - offsets_[p]);
  }
  pieces.push_back(parts_[run_part]->get_batch(run));
  return pieces.size() == 1 ? std::move(pieces[0]) : cat_batches(pieces);
}

// ---- random_split ----

std::vector<std::shared_ptr<Subset>> random_split(DatasetPtr dataset, const std::vector<int64_t>& lengths,
                                                  uint64_t seed) {
  EMBER_CHECK(dataset != nullptr, ValueError, "[random_split] needs a dataset");
  EMBER_CHECK(!lengths.empty(), ValueError, "[random_split] needs at least one length");
  const int64_t n = dataset->size();
  int64_t total = 0;
  for (int64_t len : lengths) {
    EMBER_CHECK(len >= 0, ValueError, "[random_split] lengths must be non-negative, got ", len);
    total += len;
  }
  EMBER_CHECK(total == n, ValueError, "[random_split] lengths sum to ", total, " but the dataset has ", n, " examples");
  Generator gen(seed);
  std::vector<int64_t> perm = randperm(n, {.dtype = kI64}, &gen).to_vector<int64_t>();
  std::vector<std::shared_ptr<Subset>> out;
  int64_t start = 0;
  for (int64_t len : lengths) {
    out.push_back(
        std::make_shared<Subset>(dataset, std::vector<int64_t>(perm.begin() + start, perm.begin() + start + len)));
    start += len;
  }
  return out;
}

std::vector<std::shared_ptr<Subset>> random_split(DatasetPtr dataset, const std::vector<double>& fractions,
                                                  uint64_t seed) {
  EMBER_CHECK(dataset != nullptr, ValueError, "[random_split] needs a dataset");
  EMBER_CHECK(!fractions.empty(), ValueError, "[random_split] needs at least one fraction");
  const int64_t n = dataset->size();
  double sum = 0;
  for (double f : fractions) {
    EMBER_CHECK(f >= 0 && f <= 1, ValueError, "[random_split] fractions must lie in [0, 1], got ", f);
    sum += f;
  }
  EMBER_CHECK(std::abs(sum - 1.0) <= 1e-9, ValueError, "[random_split] fractions sum to ", sum,
              ", not 1 (give example counts as integers)");
  std::vector<int64_t> lengths;
  int64_t assigned = 0;
  for (double f : fractions) {
    lengths.push_back(static_cast<int64_t>(std::floor(static_cast<double>(n) * f)));
    assigned += lengths.back();
  }
  for (int64_t i = 0; i < n - assigned; ++i) lengths[static_cast<size_t>(i) % lengths.size()] += 1;
  return random_split(std::move(dataset), lengths, seed);
}

}  // namespace ember::data
