// Printing tensors the way PyTorch does: a common width and format for all elements (integer mode
// "1.", fixed "0.1000", or scientific "1.0000e-05"), nested brackets, summarised above 1000 elements.
#include <cmath>
#include <cstdio>
#include <ostream>
#include <sstream>

#include "core/tensor.hpp"

namespace ember {
namespace {

struct Formatter {
  enum class Mode { Int, Bool, FloatInt, Fixed, Sci } mode = Mode::Fixed;
  int width = 1;

  std::string fmt(double v) const {
    char buf[64];
    if (mode == Mode::Bool) return v != 0 ? "True" : "False";
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    switch (mode) {
      case Mode::Int: std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v)); break;
      case Mode::FloatInt: std::snprintf(buf, sizeof buf, "%.0f.", v); break;
      case Mode::Fixed: std::snprintf(buf, sizeof buf, "%.4f", v); break;
      default: std::snprintf(buf, sizeof buf, "%.4e", v); break;
    }
    return buf;
  }
};

void print_rec(std::ostream& os, const std::vector<double>& v, const Shape& shape, const Shape& strides, size_t dim,
               int64_t off, const Formatter& f, int indent, bool summarize) {
  if (dim == shape.size()) {
    std::string s = f.fmt(v[off]);
    os << std::string(std::max<int>(0, f.width - static_cast<int>(s.size())), ' ') << s;
    return;
  }
  int64_t n = shape[dim];
  os << '[';
  bool last = dim + 1 == shape.size();
  for (int64_t i = 0; i < n; ++i) {
    if (summarize && n > 6 && i == 3) {
      os << "...";
      os << (last ? ", " : ",\n" + std::string(static_cast<size_t>(indent + dim + 1), ' '));
      i = n - 3;
    }
    print_rec(os, v, shape, strides, dim + 1, off + i * strides[dim], f, indent, summarize);
    if (i + 1 < n) {
      if (last) os << ", ";
      else os << ',' << std::string(shape.size() - dim - 1, '\n') << std::string(static_cast<size_t>(indent + dim + 1), ' ');
    }
  }
  os << ']';
}

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  std::ostringstream os;
  Tensor c = to(kCPU).contiguous();
  std::vector<double> v = c.to_vector<double>();
  bool summarize = numel() > 1000;
  Formatter f;
  if (dtype() == kBool) {
    f.mode = Formatter::Mode::Bool;
  } else if (!is_floating(dtype())) {
    f.mode = Formatter::Mode::Int;
  } else {
    double amax = 0, amin = INFINITY;
    bool all_int = true;
    for (double x : v) {
      if (!std::isfinite(x)) continue;
      amax = std::max(amax, std::abs(x));
      if (x != 0) amin = std::min(amin, std::abs(x));
      all_int &= x == std::nearbyint(x);
    }
    if (all_int) f.mode = amax > 1e8 ? Formatter::Mode::Sci : Formatter::Mode::FloatInt;
    else if (amax > 1e8 || (amin < 1e-4) || (std::isfinite(amin) && amax / amin > 1000)) f.mode = Formatter::Mode::Sci;
    else f.mode = Formatter::Mode::Fixed;
  }
  for (double x : v) f.width = std::max<int>(f.width, static_cast<int>(f.fmt(x).size()));
  os << "tensor(";
  if (numel() == 0) os << "[]";
  else print_rec(os, v, shape(), c.strides(), 0, 0, f, 7, summarize);
  if (numel() == 0 && dim() != 1) os << ", size=(" << shape().str().substr(1, shape().str().size() - 2) << (dim() == 1 ? ",)" : ")");
  if (dtype() != kF32 && dtype() != kI64 && dtype() != kBool) os << ", dtype=torch." << dtype_name(dtype());
  if (device().is_cuda()) os << ", device='" << device() << "'";
  if (requires_grad()) os << ", requires_grad=True";
  os << ')';
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

std::ostream& operator<<(std::ostream& os, const Scalar& s) {
  if (s.is_floating()) return os << s.to_double();
  if (s.is_bool()) return os << (s.to_int() ? "True" : "False");
  return os << s.to_int();
}

}  // namespace ember
