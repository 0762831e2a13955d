// Trains the digits MLP for half its epochs with checkpoints kept in memory (memory_checkpoint_io.hpp),
// resumes from the store in a second Trainer, and checks the result against an uninterrupted run.
// Usage: memory_checkpoint_io [epochs]
#include "memory_checkpoint_io.hpp"

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) try {
  const auto r = extending::train_resumed_from_memory(argc > 1 ? std::atoll(argv[1]) : 6);
  const bool same = r.resumed_step == r.full_step && r.resumed_weights == r.full_weights;
  std::printf("first fit: step %lld; resumed from memory: step %lld; uninterrupted: step %lld; %s\n",
              static_cast<long long>(r.first_step), static_cast<long long>(r.resumed_step),
              static_cast<long long>(r.full_step), same ? "the same weights" : "DIFFERENT weights");
  return same ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "memory_checkpoint_io: %s\n", e.what());
  return 2;
}
