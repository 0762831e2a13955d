// FlopCounter: counts the floating-point operations of the matrix products and convolutions that run on
// this thread while it lives, by torch.utils.flop_counter.FlopCounterMode's rules, in total, per op and
// per FlopScope (a module's forward: nn::ModuleHolder opens one around each layer call).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>

namespace ember {

// The rules (FlopCounterMode's "dense, naive" counts; one multiply-add is 2 FLOPs, bias adds are free):
//   mm, addmm, matmul on matrices   2 * M * N * K          (a 1-D operand is a matrix of one row/column)
//   addmm_gelu                      2 * M * N * K          (as addmm; the GELU is free)
//   bmm, baddbmm, batched matmul    2 * batch * M * N * K  (broadcast batch dims counted once each)
//   dot                             2 * K                  (PyTorch counts dot and mv as 0)
//   conv1d/2d/3d                    2 * output elements * (C_in / groups) * prod(kernel)
//   conv_transpose1d/2d             2 * input elements * (C_out / groups) * prod(kernel)
//   a conv's weight gradient        as its forward (PyTorch's overcounts by `groups` there)
// Everything else (elementwise, reductions, softmax, norms, pools) counts 0. Attention counts through
// its two matmuls, which equal PyTorch's sdpa formula. A backward run inside the counter adds what it
// runs: the products and convolutions it is written with.
//
// Counters nest (every live counter on the thread sees each op) and are thread-local: ops run by other
// threads (data loader workers) are not counted.
class FlopCounter {
 public:
  FlopCounter();
  ~FlopCounter();
  FlopCounter(const FlopCounter&) = delete;
  FlopCounter& operator=(const FlopCounter&) = delete;

  int64_t total() const { return total_; }
  // Per op name ("mm", "addmm", "bmm", "matmul", "conv2d", "conv_transpose2d", ...).
  const std::map<std::string, int64_t>& by_op() const { return by_op_; }
  // The FLOPs of the ops run while the FlopScope with this key was open (0 when it never was).
  int64_t flops_of(const void* key) const;
  void reset();

  // Whether a counter is live on this thread (ops skip their formulas otherwise).
  static bool active();

 private:
  friend void count_flops(const char* op, int64_t flops);
  FlopCounter* outer_;
  int64_t total_ = 0;
  std::map<std::string, int64_t> by_op_;
  std::unordered_map<const void*, int64_t> by_scope_;
};

// Attributes the FLOPs counted while it lives to `key` (and to every enclosing scope, each once). Cheap
// when no counter is live: nothing is recorded then.
class FlopScope {
 public:
  explicit FlopScope(const void* key);
  ~FlopScope();
  FlopScope(const FlopScope&) = delete;
  FlopScope& operator=(const FlopScope&) = delete;

 private:
  bool pushed_ = false;
};

// Called by the op builders after their checks: adds `flops` under `op` to every live counter.
void count_flops(const char* op, int64_t flops);

}  // namespace ember
