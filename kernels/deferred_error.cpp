// Deferred device errors (see deferred_error.hpp): the host side's messages, the same words as the
// immediate CPU checks.
#include "kernels/deferred_error.hpp"

#include <bit>
#include <iterator>
#include <string_view>

#include "core/error.hpp"

namespace ember::kernels {

namespace {
constexpr const char* kIndexOpNames[] = {"index_select", "embedding",   "gather",    "take_along_dim",
                                         "scatter",      "scatter_add", "index_add", "index",
                                         "index_put",    "index_put_",  "one_hot"};
}  // namespace

const char* index_op_name(IndexOp op) {
  const auto i = static_cast<size_t>(op);
  return i < std::size(kIndexOpNames) ? kIndexOpNames[i] : "index";
}

IndexOp index_op(const char* name) {
  for (size_t i = 0; i < std::size(kIndexOpNames); ++i)
    if (std::string_view(name) == kIndexOpNames[i]) return static_cast<IndexOp>(i);
  return IndexOp::kIndexSelect;
}

std::string deferred_error_message(const DeferredError& e) {
  switch (static_cast<DeferredCode>(e.code)) {
    case DeferredCode::kCrossEntropyTarget:
    case DeferredCode::kNllLossTarget:
      return detail::cat_str(
          "[", e.code == static_cast<int64_t>(DeferredCode::kNllLossTarget) ? "nll_loss" : "cross_entropy", "] target ",
          e.args[0], " is out of bounds for ", e.args[1], " classes (at flat target index ", e.args[2],
          "; ignore_index ", e.args[3], ")");
    case DeferredCode::kIndexOutOfRange:  // worded as core/ops/index.cpp's check_range (one_hot's own)
      if (e.args[3] == static_cast<int64_t>(IndexOp::kOneHot))
        return detail::cat_str("[one_hot] class value ", e.args[0], " is out of bounds for ", e.args[1], " classes");
      return detail::cat_str("[", index_op_name(static_cast<IndexOp>(e.args[3])), "] index ", e.args[0],
                             " is out of bounds for dim ", e.args[2], " with size ", e.args[1]);
    case DeferredCode::kProbabilityRange:  // worded as check_probabilities (core/ops/loss.cpp) and bernoulli's
      if (e.args[2] == static_cast<int64_t>(ProbabilityOp::kBernoulli))
        return detail::cat_str("[bernoulli] probabilities must be in [0, 1], got ", std::bit_cast<double>(e.args[3]),
                               " (element ", e.args[0], " of ", e.args[1], ")");
      return detail::cat_str("[binary_cross_entropy] all elements of input should be between 0 and 1 (element ",
                             e.args[0], " of ", e.args[1], " is not)");
    default:
      return detail::cat_str("[cuda] a kernel reported an unknown deferred error (code ", e.code, ")");
  }
}

void raise_deferred_error(const DeferredError& e) {
  switch (static_cast<DeferredCode>(e.code)) {
    case DeferredCode::kCrossEntropyTarget:
    case DeferredCode::kNllLossTarget:
    case DeferredCode::kIndexOutOfRange:
      throw IndexError(deferred_error_message(e));
    case DeferredCode::kProbabilityRange:
      throw ValueError(deferred_error_message(e));
    default:
      throw Error(deferred_error_message(e));
  }
}

}  // namespace ember::kernels
