// CPU fused optimizer updates: one pass over contiguous memory per parameter, with the options that
// change the loop body as template flags so the compiler vectorises a branch-free inner loop, and oneTBB
// chunks above the elementwise grain. The arithmetic follows PyTorch's single-tensor updates op by op
// (f32 scalars for f32 tensors); f16/bf16 compute in f32 and round only what is stored.
#include "kernels/optim.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <cmath>
#include <type_traits>

#include "kernels/cpu/loops.hpp"

namespace ember::kernels {
namespace {
void check_cpu(const Tensor& t, const char* op) {
  EMBER_CHECK(t.device().is_cpu(), DeviceError, "[", op, "] device ", t.device(), " is not supported in this build");
}
}  // namespace

void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& buf, const SgdHyper& h) {
  check_cpu(param, "sgd_step_");
  cpu::sgd_step(param, grad, buf, h);
}
void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const Tensor& max_exp_avg_sq, const AdamHyper& h) {
  check_cpu(param, "adam_step_");
  cpu::adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, h);
}
void rmsprop_step(const Tensor& param, const Tensor& grad, const Tensor& square_avg, const Tensor& grad_avg,
                  const Tensor& buf, const RmspropHyper& h) {
  check_cpu(param, "rmsprop_step_");
  cpu::rmsprop_step(param, grad, square_avg, grad_avg, buf, h);
}
void adagrad_step(const Tensor& param, const Tensor& grad, const Tensor& sum, const AdagradHyper& h) {
  check_cpu(param, "adagrad_step_");
  cpu::adagrad_step(param, grad, sum, h);
}

namespace cpu {
namespace {

// Runs body(begin, end) over [0, n), in parallel chunks when large.
template <class F>
void chunks(int64_t n, F&& body) {
  if (n <= kGrain) return body(int64_t{0}, n);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, kGrain),
                    [&](const tbb::blocked_range<int64_t>& r) { body(r.begin(), r.end()); });
}

template <class T>
T* ptr(const Tensor& t) {
  return t.defined() ? static_cast<T*>(t.raw_data()) : nullptr;
}

// A stored value as the next op reads it back (rounds to f16/bf16; identity for f32/f64).
template <class T>
inline acc_t<T> stored(acc_t<T> x) {
  return load(convert<T>(x));
}

// PyTorch's lerp(start, end, w); kSmall: w < 0.5 (fixed over a loop).
template <class A, bool kSmall>
inline A lerp(A start, A end, A w) {
  if constexpr (kSmall)
    return start + w * (end - start);
  else
    return end - (end - start) * (A(1) - w);
}

// NaN-propagating max, as torch.maximum.
template <class A>
inline A nan_max(A a, A b) {
  return (a != a || a > b) ? a : b;
}

// Calls f(std::bool_constant<b0>{}, std::bool_constant<b1>{}, ...) for runtime flags.
template <class F>
void with_flags(F&& f) {
  f();
}
template <class F, class... Bools>
void with_flags(F&& f, bool b, Bools... rest) {
  if (b)
    with_flags([&](auto... c) { f(std::true_type{}, c...); }, rest...);
  else
    with_flags([&](auto... c) { f(std::false_type{}, c...); }, rest...);
}

// Each loop takes its pointers and scalars by value (restrict, in registers): scalars captured by
// reference could alias the stored elements and keep the compiler from vectorising.
template <class T, bool kWd, bool kMom, bool kNesterov, bool kFirst>
void sgd_loop(T* __restrict p, const T* __restrict g, T* __restrict b, int64_t lo, int64_t hi, acc_t<T> neg_lr,
              acc_t<T> wd, acc_t<T> mom, acc_t<T> damp, acc_t<T> sign) {
  using A = acc_t<T>;
  for (int64_t i = lo; i < hi; ++i) {
    A gi = sign * load(g[i]);
    const A pi = load(p[i]);
    if constexpr (kWd) gi = gi + wd * pi;
    if constexpr (kMom) {
      A bi;
      if constexpr (kFirst)
        bi = gi;
      else
        bi = load(b[i]) * mom + damp * gi;  // damp == 1 multiplies exactly, as add_(alpha=1)
      b[i] = convert<T>(bi);
      bi = stored<T>(bi);
      if constexpr (kNesterov)
        gi = gi + mom * bi;
      else
        gi = bi;
    }
    p[i] = convert<T>(pi + neg_lr * gi);
  }
}

template <class T, bool kCoupled, bool kDecoupled, bool kAmsgrad, bool kSmall>
void adam_loop(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, T* __restrict vmax, int64_t lo,
               int64_t hi, acc_t<T> neg_step_size, acc_t<T> bc2_sqrt, acc_t<T> w1, acc_t<T> beta2, acc_t<T> w2,
               acc_t<T> eps, acc_t<T> wd, acc_t<T> decay, acc_t<T> sign) {
  using A = acc_t<T>;
  for (int64_t i = lo; i < hi; ++i) {
    A gi = sign * load(g[i]);
    A pi = load(p[i]);
    if constexpr (kDecoupled) pi = stored<T>(pi * decay);
    if constexpr (kCoupled) gi = gi + wd * pi;
    const A mi = stored<T>(lerp<A, kSmall>(load(m[i]), gi, w1));
    const A vi = stored<T>(load(v[i]) * beta2 + w2 * gi * gi);
    m[i] = convert<T>(mi);
    v[i] = convert<T>(vi);
    A denom;
    if constexpr (kAmsgrad) {
      const A vm = stored<T>(nan_max(load(vmax[i]), vi));
      vmax[i] = convert<T>(vm);
      denom = std::sqrt(vm) / bc2_sqrt + eps;
    } else {
      denom = std::sqrt(vi) / bc2_sqrt + eps;
    }
    p[i] = convert<T>(pi + neg_step_size * mi / denom);
  }
}

template <class T, bool kWd, bool kCentered, bool kMom, bool kSmall>
void rmsprop_loop(T* __restrict p, const T* __restrict g, T* __restrict sq, T* __restrict ga, T* __restrict b,
                  int64_t lo, int64_t hi, acc_t<T> neg_lr, acc_t<T> alpha, acc_t<T> w, acc_t<T> eps, acc_t<T> wd,
                  acc_t<T> mom, acc_t<T> sign) {
  using A = acc_t<T>;
  for (int64_t i = lo; i < hi; ++i) {
    A gi = sign * load(g[i]);
    const A pi = load(p[i]);
    if constexpr (kWd) gi = gi + wd * pi;
    const A si = stored<T>(load(sq[i]) * alpha + w * gi * gi);
    sq[i] = convert<T>(si);
    A avg;
    if constexpr (kCentered) {
      const A gai = stored<T>(lerp<A, kSmall>(load(ga[i]), gi, w));
      ga[i] = convert<T>(gai);
      avg = std::sqrt(stored<T>(si + A(-1) * gai * gai));
    } else {
      avg = std::sqrt(si);
    }
    avg = stored<T>(avg) + eps;
    if constexpr (kMom) {
      const A bi = stored<T>(load(b[i]) * mom + gi / avg);
      b[i] = convert<T>(bi);
      p[i] = convert<T>(pi + neg_lr * bi);
    } else {
      p[i] = convert<T>(pi + neg_lr * gi / avg);
    }
  }
}

template <class T, bool kWd>
void adagrad_loop(T* __restrict p, const T* __restrict g, T* __restrict s, int64_t lo, int64_t hi, acc_t<T> neg_clr,
                  acc_t<T> eps, acc_t<T> wd, acc_t<T> sign) {
  using A = acc_t<T>;
  for (int64_t i = lo; i < hi; ++i) {
    A gi = sign * load(g[i]);
    const A pi = load(p[i]);
    if constexpr (kWd) gi = gi + wd * pi;
    const A si = stored<T>(load(s[i]) + A(1) * gi * gi);
    s[i] = convert<T>(si);
    p[i] = convert<T>(pi + neg_clr * gi / (std::sqrt(si) + eps));
  }
}

}  // namespace

void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& buf, const SgdHyper& h) {
  visit_dtype<FloatTypes>(param.dtype(), "[sgd_step_]", [&]<class T>() {
    using A = acc_t<T>;
    T* p = ptr<T>(param);
    const T* g = ptr<T>(grad);
    T* b = ptr<T>(buf);
    const A neg_lr = static_cast<A>(-h.lr), wd = static_cast<A>(h.weight_decay), mom = static_cast<A>(h.momentum),
            damp = static_cast<A>(1 - h.dampening), sign = h.maximize ? A(-1) : A(1);
    with_flags(
        [&](auto kWd, auto kMom, auto kNesterov, auto kFirst) {
          chunks(param.numel(), [=](int64_t lo, int64_t hi) {
            sgd_loop<T, decltype(kWd)::value, decltype(kMom)::value, decltype(kNesterov)::value,
                     decltype(kFirst)::value>(p, g, b, lo, hi, neg_lr, wd, mom, damp, sign);
          });
        },
        h.weight_decay != 0, h.momentum != 0, h.nesterov, h.first);
  });
}

void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const Tensor& max_exp_avg_sq, const AdamHyper& h) {
  visit_dtype<FloatTypes>(param.dtype(), "[adam_step_]", [&]<class T>() {
    using A = acc_t<T>;
    T* p = ptr<T>(param);
    const T* g = ptr<T>(grad);
    T *m = ptr<T>(exp_avg), *v = ptr<T>(exp_avg_sq), *vmax = ptr<T>(max_exp_avg_sq);
    const double bc1 = 1 - std::pow(h.beta1, h.step), bc2 = 1 - std::pow(h.beta2, h.step);
    const A neg_step_size = static_cast<A>(-(h.lr / bc1)), bc2_sqrt = static_cast<A>(std::pow(bc2, 0.5));
    const A w1 = static_cast<A>(1 - h.beta1), beta2 = static_cast<A>(h.beta2), w2 = static_cast<A>(1 - h.beta2);
    const A eps = static_cast<A>(h.eps), wd = static_cast<A>(h.weight_decay), sign = h.maximize ? A(-1) : A(1);
    const A decay = static_cast<A>(1 - h.lr * h.weight_decay);
    with_flags(
        [&](auto kCoupled, auto kDecoupled, auto kAmsgrad, auto kSmall) {
          chunks(param.numel(), [=](int64_t lo, int64_t hi) {
            adam_loop<T, decltype(kCoupled)::value, decltype(kDecoupled)::value, decltype(kAmsgrad)::value,
                      decltype(kSmall)::value>(p, g, m, v, vmax, lo, hi, neg_step_size, bc2_sqrt, w1, beta2, w2, eps,
                                               wd, decay, sign);
          });
        },
        h.weight_decay != 0 && !h.decoupled, h.weight_decay != 0 && h.decoupled, h.amsgrad, w1 < A(0.5));
  });
}

void rmsprop_step(const Tensor& param, const Tensor& grad, const Tensor& square_avg, const Tensor& grad_avg,
                  const Tensor& buf, const RmspropHyper& h) {
  visit_dtype<FloatTypes>(param.dtype(), "[rmsprop_step_]", [&]<class T>() {
    using A = acc_t<T>;
    T* p = ptr<T>(param);
    const T* g = ptr<T>(grad);
    T *sq = ptr<T>(square_avg), *ga = ptr<T>(grad_avg), *b = ptr<T>(buf);
    const A neg_lr = static_cast<A>(-h.lr), alpha = static_cast<A>(h.alpha), w = static_cast<A>(1 - h.alpha);
    const A eps = static_cast<A>(h.eps), wd = static_cast<A>(h.weight_decay), mom = static_cast<A>(h.momentum);
    const A sign = h.maximize ? A(-1) : A(1);
    with_flags(
        [&](auto kWd, auto kCentered, auto kMom, auto kSmall) {
          chunks(param.numel(), [=](int64_t lo, int64_t hi) {
            rmsprop_loop<T, decltype(kWd)::value, decltype(kCentered)::value, decltype(kMom)::value,
                         decltype(kSmall)::value>(p, g, sq, ga, b, lo, hi, neg_lr, alpha, w, eps, wd, mom, sign);
          });
        },
        h.weight_decay != 0, h.centered, h.momentum > 0, w < A(0.5));
  });
}

void adagrad_step(const Tensor& param, const Tensor& grad, const Tensor& sum, const AdagradHyper& h) {
  visit_dtype<FloatTypes>(param.dtype(), "[adagrad_step_]", [&]<class T>() {
    using A = acc_t<T>;
    T* p = ptr<T>(param);
    const T* g = ptr<T>(grad);
    T* s = ptr<T>(sum);
    const A neg_clr = static_cast<A>(-(h.lr / (1 + (h.step - 1) * h.lr_decay)));
    const A eps = static_cast<A>(h.eps), wd = static_cast<A>(h.weight_decay), sign = h.maximize ? A(-1) : A(1);
    with_flags(
        [&](auto kWd) {
          chunks(param.numel(), [=](int64_t lo, int64_t hi) {
            adagrad_loop<T, decltype(kWd)::value>(p, g, s, lo, hi, neg_clr, eps, wd, sign);
          });
        },
        h.weight_decay != 0);
  });
}

}  // namespace cpu
}  // namespace ember::kernels
