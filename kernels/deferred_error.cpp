// Deferred device errors (see deferred_error.hpp): the host side's messages, the same words as the
// immediate CPU checks.
#include "kernels/deferred_error.hpp"

#include "core/error.hpp"

namespace ember::kernels {

std::string deferred_error_message(const DeferredError& e) {
  switch (static_cast<DeferredCode>(e.code)) {
    case DeferredCode::kCrossEntropyTarget:
      return detail::cat_str("[cross_entropy] target ", e.args[0], " is out of bounds for ", e.args[1],
                             " classes (at flat target index ", e.args[2], "; ignore_index ", e.args[3], ")");
    case DeferredCode::kIndexOutOfRange:  // worded as core/ops/index.cpp's check_range
      return detail::cat_str("[", e.args[3] == static_cast<int64_t>(IndexOp::kEmbedding) ? "embedding" : "index_select",
                             "] index ", e.args[0], " is out of bounds for dim ", e.args[2], " with size ", e.args[1]);
    default:
      return detail::cat_str("[cuda] a kernel reported an unknown deferred error (code ", e.code, ")");
  }
}

void raise_deferred_error(const DeferredError& e) {
  switch (static_cast<DeferredCode>(e.code)) {
    case DeferredCode::kCrossEntropyTarget:
    case DeferredCode::kIndexOutOfRange:
      throw IndexError(deferred_error_message(e));
    default:
      throw Error(deferred_error_message(e));
  }
}

}  // namespace ember::kernels
