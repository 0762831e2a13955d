// Named tensors in the safetensors format: an 8-byte little-endian header length, a JSON header
// ({"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {...}}), then the raw data.
// The reader treats its input as untrusted: every length, offset, dtype and shape is validated.
#pragma once
#include <map>
#include <string>

#include "core/tensor.hpp"

namespace ember {

using TensorMap = std::map<std::string, Tensor>;
using Metadata = std::map<std::string, std::string>;

// Writes atomically (temporary file, fsync, rename); IOError on failure, leaving any old file intact.
void save(const std::string& path, const TensorMap& tensors, const Metadata& metadata = {});
TensorMap load(const std::string& path, Metadata* metadata = nullptr);
// The same format in memory.
std::string save_to_bytes(const TensorMap& tensors, const Metadata& metadata = {});
TensorMap load_from_bytes(const std::string& bytes, Metadata* metadata = nullptr);

}  // namespace ember
