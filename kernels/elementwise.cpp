// Device dispatch of the elementwise family.
#include "kernels/elementwise.hpp"

namespace ember::kernels {
namespace {
void check_cpu(const Tensor& t, const char* op) {
  EMBER_CHECK(t.device().is_cpu(), DeviceError, "[", op, "] device ", t.device(),
              " is not supported in this build");
}
}  // namespace

void unary(int op, const Tensor& out, const Tensor& a, const OpParams& p) {
  check_cpu(out, "unary");
  cpu::unary(op, out, a, p);
}
void binary(int op, const Tensor& out, const Tensor& a, const Tensor& b, const OpParams& p) {
  check_cpu(out, "binary");
  cpu::binary(op, out, a, b, p);
}
void ternary(int op, const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& c, const OpParams& p) {
  check_cpu(out, "ternary");
  cpu::ternary(op, out, a, b, c, p);
}
void copy(const Tensor& dst, const Tensor& src) {
  check_cpu(dst, "copy");
  check_cpu(src, "copy");
  cpu::copy(dst, src);
}
void fill(const Tensor& dst, const Scalar& v) {
  check_cpu(dst, "fill");
  cpu::fill(dst, v);
}

}  // namespace ember::kernels
