// libFuzzer target for the safetensors reader: any input must load or throw ember::Error, never crash
// or allocate without bound; whatever loads must survive a save/load round trip unchanged.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/io/safetensors.hpp"

namespace {

bool same(const ember::Tensor& a, const ember::Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         (a.nbytes() == 0 || std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  ember::Metadata meta;
  ember::TensorMap tensors;
  try {
    tensors = ember::load_from_bytes(bytes, &meta);
  } catch (const ember::Error&) {
    return 0;  // rejected cleanly
  }
  // Accepted input: names and metadata were validated, so saving it again must work and read back equal.
  ember::Metadata meta2;
  ember::TensorMap back = ember::load_from_bytes(ember::save_to_bytes(tensors, meta), &meta2);
  if (meta2 != meta || back.size() != tensors.size()) __builtin_trap();
  for (const auto& [name, t] : tensors) {
    auto it = back.find(name);
    if (it == back.end() || !same(t, it->second)) __builtin_trap();
  }
  return 0;
}
