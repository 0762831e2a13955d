// Example (one sample) and Batch (what a DataLoader yields): an input, a target and named extra fields,
// plus the collate functions that turn examples into a batch.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.hpp"

namespace ember::data {

// One sample. `target` and the extra fields are optional (undefined tensors / an empty map).
struct Example {
  Tensor input = {};
  Tensor target = {};
  std::map<std::string, Tensor> extra = {};
};

// Examples stacked along a new leading dimension: input [B, ...], target [B, ...], extra[name] [B, ...].
struct Batch {
  Tensor input = {};
  Tensor target = {};
  std::map<std::string, Tensor> extra = {};

  // Number of examples: dim 0 of the first defined field (input, target, then extra in name order).
  int64_t size() const;
  // Every defined field moved to `device` (a no-op for fields already there).
  // non_blocking: pinned fields copy to a CUDA device asynchronously (Tensor::to).
  Batch to(Device device, bool non_blocking = false) const;
  Batch pin_memory() const;  // every field in page-locked host memory
  // "input", "target" or an extra field's name; IndexError naming the fields present when absent.
  const Tensor& operator[](const std::string& name) const;
  bool has(const std::string& name) const;
  // Example i (views into the batch's tensors).
  Example example(int64_t i) const;
};

// Turns the examples of one batch into a Batch. DataLoaderOptions::collate takes one of these.
using CollateFn = std::function<Batch(const std::vector<Example>&)>;

// Stacks each field (torch.utils.data.default_collate for tensors). Every example must define the same
// fields with the same shapes and dtypes; a mismatch is a ShapeError/DTypeError naming the example.
Batch default_collate(const std::vector<Example>& examples);

// Concatenates batches field by field along dim 0 (they must define the same fields).
Batch cat_batches(const std::vector<Batch>& parts);

}  // namespace ember::data
