// Deferred device errors. A CUDA kernel that finds bad input (a target index out of range) cannot throw,
// and copying a flag back after each launch would make every call a host sync. Instead the kernel writes
// a record into its device's slot (mapped pinned host memory, so reading it costs no copy) and the host
// raises it at the next synchronisation point (a copy to the host, so item()/to_vector(), or
// synchronize()) with the message the op would have raised at once. CPU kernels keep checking at once.
// A new kind of error is one code here, one case in deferred_error_message(), and a report from its kernel.
#pragma once
#include <cstdint>
#include <string>

namespace ember::kernels {

enum class DeferredCode : int64_t {
  kNone = 0,
  kCrossEntropyTarget = 1,  // args: target, classes, flat target index, ignore_index
  kIndexOutOfRange = 2,     // args: index, size along dim, dim, IndexOp
  kNllLossTarget = 3,       // args as kCrossEntropyTarget
  kProbabilityRange = 4,    // a probability outside [0, 1]; args: flat index, numel, ProbabilityOp, value's bits
};

// The op whose indices a CUDA indexing kernel checks (the message names it).
enum class IndexOp : int64_t {
  kIndexSelect = 0,
  kEmbedding = 1,
  kGather = 2,
  kTakeAlongDim = 3,
  kScatter = 4,
  kScatterAdd = 5,
  kIndexAdd = 6,
  kIndex = 7,      // advanced indexing (x.index)
  kIndexPut = 8,   // index_put
  kIndexPut_ = 9,  // index_put_
  kOneHot = 10,    // one_hot with num_classes given (worded as its class-value check)
};
// The op whose probabilities a kProbabilityRange error is about.
enum class ProbabilityOp : int64_t {
  kBinaryCrossEntropy = 0,  // its input (NaN passes, as on the CPU)
  kBernoulli = 1,           // bernoulli(p)'s p (NaN fails, as on the CPU)
};

// The op's public name ("index_select", "embedding", "gather", ...), and back (kIndexSelect for a name
// that is none of them).
const char* index_op_name(IndexOp op);
IndexOp index_op(const char* name);

// One error; written by one device thread (args first, then code), read by the host after a sync.
struct DeferredError {
  int64_t code = 0;
  int64_t args[4] = {0, 0, 0, 0};
};

// The message of a record, as the op's immediate check words it.
std::string deferred_error_message(const DeferredError& e);
// Throws the exception the record stands for (IndexError for an index out of range).
[[noreturn]] void raise_deferred_error(const DeferredError& e);

namespace cuda {
// The slot of `device` as the device addresses it (allocated on first use: call it before capturing a
// CUDA graph that may report).
DeferredError* deferred_error_slot(int device);
// After a synchronisation with `device` (-1: every device with a slot): a recorded error is cleared and
// thrown. Cheap: a read of host memory.
void check_deferred_errors(int device = -1);
// Marks the results of `device` untrustworthy for the rest of the process: a collective on it was aborted
// (dist/nccl.cpp's timeout or a peer's failure), so the streams that waited for it went on with partial
// data. From then on every check_deferred_errors of the device (each host read: item(), a checkpoint's
// copy of the weights, synchronize()) raises DistError(why), so no such result is reported or saved.
void poison_device(int device, const std::string& why);
void clear_poisoned_devices();  // tests only
}  // namespace cuda

}  // namespace ember::kernels
