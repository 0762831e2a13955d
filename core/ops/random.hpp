// Random numbers: a counter-based Philox generator (CPU and CUDA draw the same numbers for the same
// seed and offset; the state is two integers), and the random creation and in-place ops.
#pragma once
#include <cstdint>

#include "core/tensor.hpp"

namespace ember {

struct GeneratorState {
  uint64_t seed = 0;
  uint64_t offset = 0;  // Philox blocks consumed so far
};

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : state_{seed, 0} {}
  void manual_seed(uint64_t seed) { state_ = {seed, 0}; }
  GeneratorState state() const { return state_; }
  void set_state(GeneratorState s) { state_ = s; }
  // Reserves n Philox blocks (4 x 32 bits each) and returns the first block's counter.
  uint64_t advance(uint64_t blocks) {
    uint64_t o = state_.offset;
    state_.offset += blocks;
    return o;
  }
  uint64_t seed() const { return state_.seed; }

 private:
  GeneratorState state_;
};

Generator& default_generator();
void manual_seed(uint64_t seed);

namespace graph {
class SlotTable;
// The {seed, offset} slot of a draw of `blocks` Philox blocks from `base` while a CUDA graph captures
// (random ops call it; plain C++ for the tests). A generator's draws in one capture form one range of
// its blocks, from the lowest base to the highest end. The first replay draws what the capture drew;
// before each later one the generator advances once by the range's length, as the eager step would,
// and every draw keeps its place in the new range. So a draw that repeats another on purpose
// (nn::checkpoint's recompute rewinds the generator) repeats it in every replay. Returns the slot's
// byte offset. The generator must outlive the table.
size_t add_philox_slot(SlotTable& slots, Generator& gen, uint64_t base, uint64_t blocks);
}  // namespace graph

Tensor rand(const Shape& shape, const TensorOptions& o = {}, Generator* gen = nullptr);
Tensor randn(const Shape& shape, const TensorOptions& o = {}, Generator* gen = nullptr);
// Integers uniformly in [low, high); i64 by default.
Tensor randint(int64_t low, int64_t high, const Shape& shape, const TensorOptions& o = {.dtype = kI64},
               Generator* gen = nullptr);
Tensor rand_like(const Tensor& t, Generator* gen = nullptr);
Tensor randn_like(const Tensor& t, Generator* gen = nullptr);
// Draws 0/1 with probability p (a tensor of probabilities, broadcast to its own shape).
Tensor bernoulli(const Tensor& p, Generator* gen = nullptr);
Tensor randperm(int64_t n, const TensorOptions& o = {.dtype = kI64}, Generator* gen = nullptr);
// Zeroes each element with probability p and scales the rest by 1/(1-p) when training.
Tensor dropout(const Tensor& x, double p, bool training = true, Generator* gen = nullptr);

void uniform_(Tensor& t, double from, double to, Generator* gen = nullptr);
void normal_(Tensor& t, double mean, double std, Generator* gen = nullptr);
void bernoulli_(Tensor& t, double p, Generator* gen = nullptr);

}  // namespace ember
