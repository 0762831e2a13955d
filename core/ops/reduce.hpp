// Reductions over any set of dims (Dims: one int, a braced list or {} = all) with keepdim, scans, sorting, and the
// normalising reductions softmax / log_softmax. Float sums accumulate in at least f32.
#pragma once
#include <optional>
#include <tuple>

#include "core/tensor.hpp"

namespace ember {

// sum of bool/integer tensors gives i64, as PyTorch; dtype overrides the accumulation/result dtype.
Tensor sum(const Tensor& t, const Dims& dims = {}, bool keepdim = false, std::optional<DType> dtype = {});
Tensor mean(const Tensor& t, const Dims& dims = {}, bool keepdim = false);
Tensor prod(const Tensor& t, const Dims& dims = {}, bool keepdim = false);
Tensor var(const Tensor& t, const Dims& dims = {}, int64_t correction = 1, bool keepdim = false);
// With `using namespace ember`, a bare std(x) is ambiguous with namespace std (a C++ rule): write
// x.std(...) or ember::std(x, ...).
Tensor std(const Tensor& t, const Dims& dims = {}, int64_t correction = 1, bool keepdim = false);
// (var, mean) and (std, mean): plain pairs, as torch.var_mean / torch.std_mean.
std::tuple<Tensor, Tensor> var_mean(const Tensor& t, const Dims& dims = {}, int64_t correction = 1,
                                    bool keepdim = false);
std::tuple<Tensor, Tensor> std_mean(const Tensor& t, const Dims& dims = {}, int64_t correction = 1,
                                    bool keepdim = false);
Tensor amax(const Tensor& t, const Dims& dims = {}, bool keepdim = false);
Tensor amin(const Tensor& t, const Dims& dims = {}, bool keepdim = false);
// Values and (first) indices along one dim: auto [v, i] = max(x, 1), or .values / .indices.
ValuesIndices max(const Tensor& t, int64_t dim, bool keepdim = false);
ValuesIndices min(const Tensor& t, int64_t dim, bool keepdim = false);
Tensor max(const Tensor& t);
Tensor min(const Tensor& t);
Tensor argmax(const Tensor& t, std::optional<int64_t> dim = {}, bool keepdim = false);
Tensor argmin(const Tensor& t, std::optional<int64_t> dim = {}, bool keepdim = false);
// p = 1, 2, any positive p, or INFINITY / -INFINITY.
Tensor norm(const Tensor& t, double p = 2.0, const Dims& dims = {}, bool keepdim = false);
Tensor logsumexp(const Tensor& t, const Dims& dims, bool keepdim = false);
Tensor all(const Tensor& t, const Dims& dims = {}, bool keepdim = false);
Tensor any(const Tensor& t, const Dims& dims = {}, bool keepdim = false);
Tensor cumsum(const Tensor& t, int64_t dim);
Tensor cumprod(const Tensor& t, int64_t dim);
ValuesIndices topk(const Tensor& t, int64_t k, int64_t dim = -1, bool largest = true, bool sorted = true);
ValuesIndices sort(const Tensor& t, int64_t dim = -1, bool descending = false, bool stable = false);
Tensor argsort(const Tensor& t, int64_t dim = -1, bool descending = false, bool stable = false);
Tensor softmax(const Tensor& t, int64_t dim);
Tensor log_softmax(const Tensor& t, int64_t dim);

}  // namespace ember
