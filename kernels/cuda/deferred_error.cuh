// Device side of the deferred errors (kernels/deferred_error.hpp): one thread reports; the first error
// stays until the host raises it.
#pragma once
#include "kernels/deferred_error.hpp"

namespace ember::kernels::cuda {

// From one thread (not per element: the slot is host memory, written over the bus). Two kernels on two
// streams reporting at once may mix their arguments; the error is raised either way.
__device__ inline void report_deferred_error(DeferredError* slot, DeferredCode code, int64_t a0, int64_t a1, int64_t a2,
                                             int64_t a3) {
  volatile DeferredError* s = slot;
  if (s->code != 0) return;
  s->args[0] = a0;
  s->args[1] = a1;
  s->args[2] = a2;
  s->args[3] = a3;
  __threadfence_system();  // the arguments before the code, as the host sees them
  s->code = static_cast<int64_t>(code);
}

}  // namespace ember::kernels::cuda
