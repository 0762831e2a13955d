// Shape: a small inline vector of int64_t (no heap for <= 6 dims), used for sizes and strides.
#pragma once
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

namespace ember {

class Shape {
 public:
  static constexpr int kInline = 6;
  Shape() = default;
  Shape(std::initializer_list<int64_t> v) { assign(v.begin(), v.end()); }
  explicit Shape(const std::vector<int64_t>& v) { assign(v.begin(), v.end()); }
  Shape(size_t n, int64_t value) {
    resize(n);
    std::fill(begin(), end(), value);
  }
  template <class It>
  Shape(It first, It last) {
    assign(first, last);
  }
  Shape(const Shape& o) { assign(o.begin(), o.end()); }
  Shape& operator=(const Shape& o) {
    if (this != &o) assign(o.begin(), o.end());
    return *this;
  }
  Shape(Shape&& o) noexcept { *this = std::move(o); }
  Shape& operator=(Shape&& o) noexcept {
    if (this == &o) return *this;
    if (o.heap_) {
      heap_ = std::move(o.heap_);
      cap_ = o.cap_;
      size_ = o.size_;
      o.cap_ = kInline;
      o.size_ = 0;
    } else {
      heap_.reset();
      cap_ = kInline;
      size_ = o.size_;
      std::copy(o.inline_, o.inline_ + o.size_, inline_);
    }
    return *this;
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  int64_t* data() { return heap_ ? heap_.get() : inline_; }
  const int64_t* data() const { return heap_ ? heap_.get() : inline_; }
  int64_t* begin() { return data(); }
  int64_t* end() { return data() + size_; }
  const int64_t* begin() const { return data(); }
  const int64_t* end() const { return data() + size_; }
  int64_t& operator[](size_t i) { return data()[i]; }
  int64_t operator[](size_t i) const { return data()[i]; }
  int64_t& back() { return data()[size_ - 1]; }
  int64_t back() const { return data()[size_ - 1]; }

  void resize(size_t n, int64_t value = 0) {
    reserve(n);
    for (size_t i = size_; i < n; ++i) data()[i] = value;
    size_ = n;
  }
  void push_back(int64_t v) {
    reserve(size_ + 1);
    data()[size_++] = v;
  }
  void insert(size_t pos, int64_t v) {
    reserve(size_ + 1);
    int64_t* d = data();
    for (size_t i = size_; i > pos; --i) d[i] = d[i - 1];
    d[pos] = v;
    ++size_;
  }
  void erase(size_t pos) {
    int64_t* d = data();
    for (size_t i = pos; i + 1 < size_; ++i) d[i] = d[i + 1];
    --size_;
  }
  void pop_back() { --size_; }
  void clear() { size_ = 0; }

  bool operator==(const Shape& o) const { return std::equal(begin(), end(), o.begin(), o.end()); }
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::vector<int64_t> vec() const { return {begin(), end()}; }
  std::string str() const;  // "[2, 3]"

 private:
  template <class It>
  void assign(It first, It last) {
    size_t n = static_cast<size_t>(std::distance(first, last));
    size_ = 0;
    reserve(n);
    std::copy(first, last, data());
    size_ = n;
  }
  void reserve(size_t n) {
    if (n <= cap_) return;
    size_t cap = std::max(n, 2 * cap_);
    std::unique_ptr<int64_t[]> h(new int64_t[cap]);
    std::copy(begin(), end(), h.get());
    heap_ = std::move(h);
    cap_ = cap;
  }
  int64_t inline_[kInline] = {};
  std::unique_ptr<int64_t[]> heap_;
  size_t size_ = 0;
  size_t cap_ = kInline;
};

std::ostream& operator<<(std::ostream& os, const Shape& s);

// The dims a reduction reduces: one int (x.sum(1), as PyTorch), a braced list (x.sum({0, 2})), a Shape,
// or {} for all dims. A type of its own so that {} never means dim 0 and a single int is always a dim.
class Dims {
 public:
  Dims() = default;
  Dims(int64_t dim) : dims_{dim} {}  // NOLINT: implicit by design, as PyTorch's `dim=1`
  Dims(std::initializer_list<int64_t> dims) : dims_(dims) {}
  Dims(const Shape& dims) : dims_(dims) {}  // NOLINT
  operator const Shape&() const { return dims_; }
  const Shape& shape() const { return dims_; }
  bool empty() const { return dims_.empty(); }

 private:
  Shape dims_;
};

// Number of elements; throws ShapeError on negative sizes or int64 overflow.
int64_t shape_numel(const Shape& s);
// Row-major contiguous strides for a shape.
Shape contiguous_strides(const Shape& s);
// Wraps a possibly negative dim into [0, ndim); throws IndexError naming op otherwise.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);
// Broadcasts two shapes by NumPy's rules; throws ShapeError naming op.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace ember
