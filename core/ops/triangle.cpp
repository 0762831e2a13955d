// tril / triu (the lower / upper triangle of the last two dims, the rest zeroed) and unbind. Both are
// compositions of public ops (where, select), so autograd and every device come for free.
#include "core/autograd.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/shape.hpp"

namespace ember {
namespace {

// keep[i, j] = j - i <= diagonal (lower) or j - i >= diagonal (upper), on the input's device.
Tensor triangle(const Tensor& t, int64_t diagonal, bool lower, const char* op) {
  EMBER_CHECK(t.dim() >= 2, ShapeError, "[", op, "] needs a tensor of at least 2 dims, got ", describe(t));
  int64_t rows = t.size(-2), cols = t.size(-1);
  Tensor offset = arange(cols, kI64, t.device()).unsqueeze(0) - arange(rows, kI64, t.device()).unsqueeze(1);
  Tensor keep = lower ? offset <= diagonal : offset >= diagonal;
  return where(keep, t, zeros_like(t));
}

}  // namespace

Tensor tril(const Tensor& t, int64_t diagonal) { return triangle(t, diagonal, true, "tril"); }
Tensor triu(const Tensor& t, int64_t diagonal) { return triangle(t, diagonal, false, "triu"); }

std::vector<Tensor> unbind(const Tensor& t, int64_t dim) {
  int64_t d = wrap_dim(dim, t.dim(), "[unbind]");
  std::vector<Tensor> out;
  out.reserve(static_cast<size_t>(t.size(d)));
  for (int64_t i = 0; i < t.size(d); ++i) out.push_back(t.select(d, i));
  return out;
}

}  // namespace ember
