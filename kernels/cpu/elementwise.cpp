// CPU elementwise kernels: one table entry per functor of kernels/functors.hpp, each dispatching on
// the computation dtype to the vectorisable loops of loops.hpp.
#include "kernels/elementwise.hpp"

#include <array>
#include <cstring>

#include "kernels/cpu/loops.hpp"

namespace ember::kernels::cpu {
namespace {

template <int NIn, class F>
void run_functor(const std::array<const Tensor*, NIn + 1>& ops, const OpParams& p) {
  const Tensor& in0 = *ops[NIn];  // every input has the computation dtype
  visit_dtype<typename F::Types>(in0.dtype(), "[elementwise]", [&]<class T>() {
    using Out = std::conditional_t<F::kBoolOut, bool, T>;
    auto plan = make_plan<NIn + 1>(ops);
    run(plan, ElementwiseInner<Out, T, NIn, F>{make_functor<F>(p)});
  });
}

using UnaryFn = void (*)(const std::array<const Tensor*, 2>&, const OpParams&);
using BinaryFn = void (*)(const std::array<const Tensor*, 3>&, const OpParams&);
using TernaryFn = void (*)(const std::array<const Tensor*, 4>&, const OpParams&);

template <int NIn, class Fn, class... F>
constexpr auto make_table(TypeList<F...>) {
  return std::array<Fn, sizeof...(F)>{&run_functor<NIn, F>...};
}
constexpr auto kUnary = make_table<1, UnaryFn>(UnaryFunctors{});
constexpr auto kBinary = make_table<2, BinaryFn>(BinaryFunctors{});
constexpr auto kTernary = make_table<3, TernaryFn>(TernaryFunctors{});

struct Convert {
  template <class T>
  auto operator()(T x) const {
    return x;
  }
};

}  // namespace

void unary(int op, const Tensor& out, const Tensor& a, const OpParams& p) { kUnary.at(op)({&out, &a}, p); }
void binary(int op, const Tensor& out, const Tensor& a, const Tensor& b, const OpParams& p) {
  kBinary.at(op)({&out, &a, &b}, p);
}
void ternary(int op, const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& c, const OpParams& p) {
  kTernary.at(op)({&out, &a, &b, &c}, p);
}

void copy(const Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0) return;
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous()) {
    std::memcpy(dst.raw_data(), src.raw_data(), dst.nbytes());
    return;
  }
  visit_dtype<AllTypes>(dst.dtype(), "[copy]", [&]<class Out>() {
    visit_dtype<AllTypes>(src.dtype(), "[copy]", [&]<class In>() {
      auto plan = make_plan<2>({&dst, &src});
      run(plan, ElementwiseInner<Out, In, 1, Convert>{});
    });
  });
}

void fill(const Tensor& dst, const Scalar& v) {
  visit_dtype<AllTypes>(dst.dtype(), "[fill]", [&]<class T>() {
    const T value = v.to<T>();
    auto plan = make_plan<1>({&dst});
    run(plan, [&](char** p, const int64_t* s, int64_t n) {
      if (s[0] == sizeof(T)) {
        T* o = reinterpret_cast<T*>(p[0]);
        std::fill(o, o + n, value);
      } else {
        for (int64_t i = 0; i < n; ++i) *reinterpret_cast<T*>(p[0] + i * s[0]) = value;
      }
    });
  });
}

void arange(const Tensor& dst, const ArangeParams& p) {
  visit_dtype<NumericTypes>(dst.dtype(), "[arange]", [&]<class T>() {
    T* o = static_cast<T*>(dst.raw_data());
    for (int64_t i = 0, n = dst.numel(); i < n; ++i) o[i] = arange_value<T>(p, i);
  });
}

}  // namespace ember::kernels::cpu
