// Shared pieces of the DataLoader tests (test_data.cpp, test_data_errors.cpp): a range data set whose
// targets name the examples, and helpers that read back which examples each batch held.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "ember.hpp"

namespace data_test {

using namespace ember;

inline std::vector<int64_t> ids(const Tensor& t) { return t.to_vector<int64_t>(); }

// Every batch's targets for `epochs` passes over the loader.
inline std::vector<std::vector<int64_t>> drain(data::DataLoader& loader, int epochs = 1) {
  std::vector<std::vector<int64_t>> out;
  for (int e = 0; e < epochs; ++e)
    for (const data::Batch& b : loader) out.push_back(ids(b.target));
  return out;
}

// Example i: input [i] (f32), target i (i64).
inline std::shared_ptr<data::TensorDataset> range_dataset(int64_t n) {
  return std::make_shared<data::TensorDataset>(arange(0, n, 1, kF32).unsqueeze(1), arange(0, n));
}

inline bool has_text(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace data_test
