// Tensor: a cheap value handle (shared_ptr<TensorImpl>) onto a strided view of a Storage.
// Views share storage; ops are free functions in core/ops/*.hpp and mirrored here as methods.
#pragma once
#include <concepts>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/allocator.hpp"
#include "core/device.hpp"
#include "core/dtype.hpp"
#include "core/error.hpp"
#include "core/scalar.hpp"
#include "core/shape.hpp"

namespace ember {

struct AutogradMeta;  // core/autograd.hpp
namespace autograd {
class Node;
}
class Tensor;
struct ValuesIndices;  // below: max/min along a dim, sort, topk
namespace indexing {
class TensorIndex;  // core/ops/indexing.hpp
}

// A tensor hook sees the gradient w.r.t. the tensor; returning a defined tensor replaces it.
using TensorHook = std::function<Tensor(const Tensor&)>;
// A post-accumulate hook sees the leaf after its .grad was updated (DDP starts its all-reduce here).
using PostAccumulateGradHook = std::function<void(const Tensor&)>;

// Returned by register_hook; remove() unregisters (idempotent, harmless once the graph is gone).
class HookHandle {
 public:
  HookHandle() = default;
  explicit HookHandle(std::function<void()> remover) : remover_(std::move(remover)) {}
  void remove() {
    if (remover_) std::exchange(remover_, nullptr)();
  }

 private:
  std::function<void()> remover_;
};

// Internal representation; users hold Tensor. Fields are public to the ops and kernels.
struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;       // in elements
  int64_t offset = 0;  // in elements
  int64_t numel = 0;
  DType dtype = kF32;
  bool wrapped_number = false;  // a Scalar turned into a 0-dim tensor: weakest in type promotion
  std::unique_ptr<AutogradMeta> autograd;
  // Views: the tensor that owns the storage (never itself a view). Autograd routes in-place writes
  // through a view to the base's history.
  std::shared_ptr<TensorImpl> view_base;

  TensorImpl();
  ~TensorImpl();
};

struct TensorOptions {
  DType dtype = kF32;
  Device device = kCPU;
  bool requires_grad = false;
};

class Tensor {
 public:
  Tensor() = default;  // undefined tensor
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- metadata ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& sizes() const { return impl().shape; }
  int64_t size(int64_t dim) const;
  const Shape& strides() const { return impl().strides; }
  int64_t stride(int64_t dim) const;
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t ndim() const { return dim(); }
  int64_t numel() const { return impl().numel; }
  int64_t storage_offset() const { return impl().offset; }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  size_t element_size() const { return itemsize(dtype()); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * element_size(); }
  bool is_contiguous() const;
  bool is_floating_point() const { return is_floating(dtype()); }
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }
  TensorImpl& impl() const;
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  std::string str() const;  // PyTorch-style printing

  // ---- data access (CPU) ----
  void* raw_data() const;  // address of the first element (storage + offset)
  template <class T>
  T* data_ptr() const {
    check_dtype_access(dtype_of<T>(), "data_ptr");
    return static_cast<T*>(raw_data());
  }
  template <class T>
  T item() const;
  Scalar item() const;
  template <class T>
  std::vector<T> to_vector() const;  // contiguous copy of all elements, converted to T

  // ---- conversion and copies ----
  Tensor to(DType dt, bool copy = false) const;
  // non_blocking: a copy between pinned host memory and a CUDA device is queued on the current stream
  // and not waited for (a CPU result is pinned and valid after Stream::synchronize); otherwise ignored.
  Tensor to(Device d, bool copy = false, bool non_blocking = false) const;
  Tensor to(Device d, DType dt, bool copy = false) const;
  Tensor cpu() const { return to(kCPU); }
  // A copy in page-locked host memory, which CUDA copies read asynchronously (needs a CUDA device).
  Tensor pin_memory() const;
  bool is_pinned() const;
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor& copy_(const Tensor& src);  // broadcasts src, converts dtype, crosses devices
  Tensor& fill_(const Scalar& v);
  Tensor& zero_() { return fill_(0); }
  Tensor detach() const;  // shares storage, no history
  Tensor& detach_();

  // ---- views and shape ----
  Tensor view(const Shape& shape) const;
  Tensor reshape(const Shape& shape) const;
  // x.view(-1), x.reshape(2, -1): sizes as separate ints, as PyTorch.
  template <std::integral I, std::integral... Is>
  Tensor view(I size, Is... sizes) const {
    return view(Shape{static_cast<int64_t>(size), static_cast<int64_t>(sizes)...});
  }
  template <std::integral I, std::integral... Is>
  Tensor reshape(I size, Is... sizes) const {
    return reshape(Shape{static_cast<int64_t>(size), static_cast<int64_t>(sizes)...});
  }
  Tensor view_as(const Tensor& o) const { return view(o.shape()); }
  Tensor reshape_as(const Tensor& o) const { return reshape(o.shape()); }
  Tensor permute(const Shape& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const;
  Tensor mT() const { return transpose(-2, -1); }
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor expand(const Shape& shape) const;
  Tensor expand_as(const Tensor& o) const { return expand(o.shape()); }
  Tensor broadcast_to(const Shape& shape) const { return expand(shape); }
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, std::optional<int64_t> start, std::optional<int64_t> end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor operator[](int64_t index) const { return select(0, index); }
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor unflatten(int64_t dim, const Shape& sizes) const;
  Tensor as_strided(const Shape& size, const Shape& stride, std::optional<int64_t> storage_offset = {}) const;
  Tensor flip(const Shape& dims) const;
  Tensor repeat(const Shape& repeats) const;
  std::vector<Tensor> split(int64_t split_size, int64_t dim = 0) const;
  std::vector<Tensor> split(const std::vector<int64_t>& sizes, int64_t dim = 0) const;
  std::vector<Tensor> chunk(int64_t chunks, int64_t dim = 0) const;
  std::vector<Tensor> unbind(int64_t dim = 0) const;
  Tensor tril(int64_t diagonal = 0) const;
  Tensor triu(int64_t diagonal = 0) const;

  // ---- indexing ----
  Tensor index_select(int64_t dim, const Tensor& index) const;
  Tensor gather(int64_t dim, const Tensor& index) const;
  Tensor scatter(int64_t dim, const Tensor& index, const Tensor& src) const;
  Tensor scatter(int64_t dim, const Tensor& index, const Scalar& value) const;
  Tensor scatter_add(int64_t dim, const Tensor& index, const Tensor& src) const;
  Tensor index_add(int64_t dim, const Tensor& index, const Tensor& src, const Scalar& alpha = 1) const;
  Tensor masked_fill(const Tensor& mask, const Scalar& value) const;
  Tensor& masked_fill_(const Tensor& mask, const Scalar& value);
  Tensor masked_select(const Tensor& mask) const;
  Tensor take_along_dim(const Tensor& indices, int64_t dim) const;
  // x[indices] and x[indices] = v with PyTorch's basic and advanced indexing: x.index({Slice(), idx}),
  // x.index_put_({mask}, 0.0) (ember::indexing; core/ops/indexing.hpp).
  Tensor index(const std::vector<indexing::TensorIndex>& indices) const;
  Tensor& index_put_(const std::vector<indexing::TensorIndex>& indices, const Tensor& values, bool accumulate = false);
  Tensor& index_put_(const std::vector<indexing::TensorIndex>& indices, const Scalar& value, bool accumulate = false);

  // ---- elementwise ----
  Tensor neg() const;
  Tensor abs() const;
  Tensor sign() const;
  Tensor exp() const;
  Tensor exp2() const;
  Tensor log() const;
  Tensor log2() const;
  Tensor log1p() const;
  Tensor expm1() const;
  Tensor sqrt() const;
  Tensor rsqrt() const;
  Tensor reciprocal() const;
  Tensor sin() const;
  Tensor cos() const;
  Tensor tan() const;
  Tensor tanh() const;
  Tensor sigmoid() const;
  Tensor relu() const;
  Tensor gelu(const std::string& approximate = "none") const;
  Tensor silu() const;
  Tensor softplus(double beta = 1.0, double threshold = 20.0) const;
  Tensor erf() const;
  Tensor floor() const;
  Tensor ceil() const;
  Tensor round() const;
  Tensor trunc() const;
  Tensor logical_not() const;
  Tensor isnan() const;
  Tensor isinf() const;
  Tensor isfinite() const;
  Tensor clamp(std::optional<Scalar> min, std::optional<Scalar> max = {}) const;
  Tensor clamp(const Tensor& min, const Tensor& max) const;
  Tensor clamp_min(const Scalar& min) const;
  Tensor clamp_max(const Scalar& max) const;
  Tensor nan_to_num(double nan = 0.0, std::optional<double> posinf = {}, std::optional<double> neginf = {}) const;
  Tensor pow(const Scalar& exponent) const;
  Tensor pow(const Tensor& exponent) const;
  Tensor add(const Tensor& o, const Scalar& alpha = 1) const;
  Tensor sub(const Tensor& o, const Scalar& alpha = 1) const;
  Tensor mul(const Tensor& o) const;
  Tensor div(const Tensor& o, const std::string& rounding_mode = "") const;
  Tensor remainder(const Tensor& o) const;
  Tensor fmod(const Tensor& o) const;
  Tensor fmod(const Scalar& o) const;
  Tensor atan2(const Tensor& o) const;
  Tensor maximum(const Tensor& o) const;
  Tensor minimum(const Tensor& o) const;
  Tensor eq(const Tensor& o) const;
  Tensor ne(const Tensor& o) const;
  Tensor lt(const Tensor& o) const;
  Tensor le(const Tensor& o) const;
  Tensor gt(const Tensor& o) const;
  Tensor ge(const Tensor& o) const;
  Tensor logical_and(const Tensor& o) const;
  Tensor logical_or(const Tensor& o) const;
  Tensor logical_xor(const Tensor& o) const;
  Tensor lerp(const Tensor& end, const Scalar& weight) const;
  Tensor lerp(const Tensor& end, const Tensor& weight) const;
  Tensor addcmul(const Tensor& t1, const Tensor& t2, const Scalar& value = 1) const;
  Tensor addcdiv(const Tensor& t1, const Tensor& t2, const Scalar& value = 1) const;
  // In place (bump the version counter).
  Tensor& neg_();
  Tensor& abs_();
  Tensor& exp_();
  Tensor& log_();
  Tensor& sqrt_();
  Tensor& tanh_();
  Tensor& sigmoid_();
  Tensor& relu_();
  Tensor& clamp_(std::optional<Scalar> min, std::optional<Scalar> max = {});
  Tensor& pow_(const Scalar& exponent);
  Tensor& add_(const Tensor& o, const Scalar& alpha = 1);
  Tensor& sub_(const Tensor& o, const Scalar& alpha = 1);
  Tensor& mul_(const Tensor& o);
  Tensor& div_(const Tensor& o);
  Tensor& add_(const Scalar& o);
  Tensor& mul_(const Scalar& o);
  Tensor& lerp_(const Tensor& end, const Scalar& weight);
  Tensor& addcmul_(const Tensor& t1, const Tensor& t2, const Scalar& value = 1);
  Tensor& addcdiv_(const Tensor& t1, const Tensor& t2, const Scalar& value = 1);

  // ---- reductions ----
  // dims (Dims): one int as PyTorch's x.sum(1), a list x.sum({0, 2}), or {} for all dims. var/std take
  // the dims first, so x.var(1) reduces dim 1; a correction over all dims is x.var({}, 0).
  Tensor sum(std::optional<DType> dtype = {}) const;
  Tensor sum(const Dims& dims, bool keepdim = false, std::optional<DType> dtype = {}) const;
  Tensor mean() const;
  Tensor mean(const Dims& dims, bool keepdim = false) const;
  Tensor prod() const;
  Tensor prod(int64_t dim, bool keepdim = false) const;
  Tensor var(const Dims& dims = {}, int64_t correction = 1, bool keepdim = false) const;
  Tensor std(const Dims& dims = {}, int64_t correction = 1, bool keepdim = false) const;
  Tensor max() const;
  Tensor min() const;
  ValuesIndices max(int64_t dim, bool keepdim = false) const;
  ValuesIndices min(int64_t dim, bool keepdim = false) const;
  Tensor amax(const Dims& dims = {}, bool keepdim = false) const;
  Tensor amin(const Dims& dims = {}, bool keepdim = false) const;
  Tensor argmax(std::optional<int64_t> dim = {}, bool keepdim = false) const;
  Tensor argmin(std::optional<int64_t> dim = {}, bool keepdim = false) const;
  Tensor norm(double p = 2.0) const;
  Tensor norm(double p, const Dims& dims, bool keepdim = false) const;
  Tensor logsumexp(const Dims& dims, bool keepdim = false) const;
  Tensor all() const;
  Tensor all(int64_t dim, bool keepdim = false) const;
  Tensor any() const;
  Tensor any(int64_t dim, bool keepdim = false) const;
  Tensor cumsum(int64_t dim) const;
  Tensor cumprod(int64_t dim) const;
  ValuesIndices topk(int64_t k, int64_t dim = -1, bool largest = true, bool sorted = true) const;
  ValuesIndices sort(int64_t dim = -1, bool descending = false, bool stable = false) const;
  Tensor argsort(int64_t dim = -1, bool descending = false, bool stable = false) const;

  // ---- linear algebra and nn ----
  Tensor matmul(const Tensor& o) const;
  Tensor mm(const Tensor& o) const;
  Tensor bmm(const Tensor& o) const;
  Tensor dot(const Tensor& o) const;
  Tensor softmax(int64_t dim) const;
  Tensor log_softmax(int64_t dim) const;

  // ---- autograd (core/autograd.cpp) ----
  bool requires_grad() const;
  Tensor& requires_grad_(bool on = true);
  Tensor grad() const;
  void set_grad(const Tensor& g);  // set_grad({}) is PyTorch's `t.grad = None`
  bool is_leaf() const;
  std::shared_ptr<autograd::Node> grad_fn() const;
  // Accumulates d(this)/d(leaf) into every leaf's grad(); gradient defaults to 1 for one-element tensors.
  void backward(const Tensor& gradient = {}, std::optional<bool> retain_graph = {}, bool create_graph = false) const;
  HookHandle register_hook(TensorHook hook) const;
  HookHandle register_post_accumulate_grad_hook(PostAccumulateGradHook hook) const;
  void retain_grad() const;  // a non-leaf keeps its grad() after backward
  bool retains_grad() const;

  // ---- random, in place ----
  Tensor& uniform_(double from = 0.0, double to = 1.0);
  Tensor& normal_(double mean = 0.0, double std = 1.0);
  Tensor& bernoulli_(double p = 0.5);

 private:
  void check_dtype_access(DType want, const char* what) const;
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// What max/min along a dim, sort and topk return, as torch.return_types: r.values, r.indices, or
// auto [values, indices] = x.max(1). Converts to std::tuple (and std::tie(v, i) = ... assigns) for
// code written against the old pair.
struct ValuesIndices {
  Tensor values;
  Tensor indices;
  operator std::tuple<Tensor, Tensor>() const { return {values, indices}; }
  operator std::tuple<Tensor&, Tensor&>() { return {values, indices}; }
};

// Describes a tensor for error messages: "[2, 3] float32 cpu".
std::string describe(const Tensor& t);

// A fresh contiguous tensor (uninitialised) and a strided view onto an existing storage.
Tensor make_tensor(const Shape& shape, DType dtype, Device device = kCPU);
Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset);
// A 0-dim tensor holding a Scalar, marked as a wrapped number for type promotion.
Tensor scalar_to_tensor(const Scalar& s, Device device = kCPU);

// True when two elements of t provably share memory: a zero stride over a dim of size > 1 (expand)
// or two dims whose strides alias (as_strided windows). Stride arithmetic only; a contiguous tensor
// answers at once. Layouts too hard to decide count as not overlapping, as PyTorch's MemOverlap::TooHard.
bool has_internal_overlap(const Tensor& t);
// The check every in-place writer makes before it writes into dst: ValueError "[op] ..." when
// has_internal_overlap(dst), since the result would depend on the order of the writes.
void check_no_internal_overlap(const Tensor& dst, const char* op);

// Type promotion across tensors (dimensioned > 0-dim > wrapped numbers), as torch.result_type.
DType result_type(std::initializer_list<const Tensor*> operands);
DType result_type(const Tensor& a, const Tensor& b);

}  // namespace ember
