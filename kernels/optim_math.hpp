// The per-element arithmetic of the fused optimizer updates, written once for the CPU loops
// (kernels/cpu/optim.cpp) and the CUDA multi-tensor kernels (kernels/cuda/optim.cu). It follows
// PyTorch's single-tensor updates op by op; f16/bf16 compute in f32 and round what is stored (and what
// the next op reads back). Options that change the body come as a flags object: the CPU passes
// compile-time constants (a branch-free loop the compiler vectorises), CUDA passes runtime bools (one
// kernel per dtype; the branches are uniform over the launch).
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/dtype.hpp"
#include "core/half.hpp"
#include "kernels/optim.hpp"

namespace ember::kernels::optim_math {

template <class T>
EMBER_HD acc_t<T> ld(const T& x) {
  return static_cast<acc_t<T>>(x);
}
template <class T>
EMBER_HD T st(acc_t<T> x) {
  if constexpr (std::is_same_v<T, half> || std::is_same_v<T, bfloat16>)
    return T(static_cast<float>(x));
  else
    return static_cast<T>(x);
}
// A stored value as the next op reads it back (rounds to f16/bf16; identity for f32/f64).
template <class T>
EMBER_HD acc_t<T> stored(acc_t<T> x) {
  return ld(st<T>(x));
}
// PyTorch's lerp(start, end, w); small: w < 0.5 (fixed over a step).
template <class A>
EMBER_HD A lerp(A start, A end, A w, bool small) {
  return small ? start + w * (end - start) : end - (end - start) * (A(1) - w);
}
// NaN-propagating max, as torch.maximum.
template <class A>
EMBER_HD A nan_max(A a, A b) {
  return (a != a || a > b) ? a : b;
}

// Runtime flags (CUDA) and their compile-time twins with the same member names (the CPU's loops).
struct SgdFlags {
  bool wd, mom, nesterov, first;
};
struct AdamFlags {
  bool coupled, decoupled, amsgrad, small;
};
struct RmspropFlags {
  bool wd, centered, mom, small;
};
struct AdagradFlags {
  bool wd;
};
template <bool W, bool M, bool N, bool F>
struct SgdFlagsC {
  static constexpr bool wd = W, mom = M, nesterov = N, first = F;
};
template <bool C, bool D, bool M, bool S>
struct AdamFlagsC {
  static constexpr bool coupled = C, decoupled = D, amsgrad = M, small = S;
};
template <bool W, bool C, bool M, bool S>
struct RmspropFlagsC {
  static constexpr bool wd = W, centered = C, mom = M, small = S;
};
template <bool W>
struct AdagradFlagsC {
  static constexpr bool wd = W;
};

template <class A>
struct SgdScalars {
  A neg_lr, wd, mom, damp, sign;  // damp = 1 - dampening
};
template <class A>
struct AdamScalars {
  A neg_step_size, bc2_sqrt, w1, beta2, w2, eps, wd, decay, sign;
};
template <class A>
struct RmspropScalars {
  A neg_lr, alpha, w, eps, wd, mom, sign;
};
template <class A>
struct AdagradScalars {
  A neg_clr, eps, wd, sign;
};

// Element i of an SGD step (b: momentum buffer, unused without momentum).
template <class T, class F>
EMBER_HD void sgd_update(T* __restrict p, const T* __restrict g, T* __restrict b, int64_t i, SgdScalars<acc_t<T>> s,
                         F f) {
  using A = acc_t<T>;
  A gi = s.sign * ld(g[i]);
  const A pi = ld(p[i]);
  if (f.wd) gi = gi + s.wd * pi;
  if (f.mom) {
    A bi;
    if (f.first)
      bi = gi;
    else
      bi = ld(b[i]) * s.mom + s.damp * gi;  // damp == 1 multiplies exactly, as add_(alpha=1)
    b[i] = st<T>(bi);
    bi = stored<T>(bi);
    if (f.nesterov)
      gi = gi + s.mom * bi;
    else
      gi = bi;
  }
  p[i] = st<T>(pi + s.neg_lr * gi);
}

// Element i of an Adam/AdamW step (vmax unused without amsgrad).
template <class T, class F>
EMBER_HD void adam_update(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, T* __restrict vmax,
                          int64_t i, AdamScalars<acc_t<T>> s, F f) {
  using A = acc_t<T>;
  A gi = s.sign * ld(g[i]);
  A pi = ld(p[i]);
  if (f.decoupled) pi = stored<T>(pi * s.decay);
  if (f.coupled) gi = gi + s.wd * pi;
  const A mi = stored<T>(lerp<A>(ld(m[i]), gi, s.w1, f.small));
  const A vi = stored<T>(ld(v[i]) * s.beta2 + s.w2 * gi * gi);
  m[i] = st<T>(mi);
  v[i] = st<T>(vi);
  A denom;
  if (f.amsgrad) {
    const A vm = stored<T>(nan_max(ld(vmax[i]), vi));
    vmax[i] = st<T>(vm);
    denom = std::sqrt(vm) / s.bc2_sqrt + s.eps;
  } else {
    denom = std::sqrt(vi) / s.bc2_sqrt + s.eps;
  }
  p[i] = st<T>(pi + s.neg_step_size * mi / denom);
}

// Element i of an RMSprop step (ga unused unless centered, b unused without momentum).
template <class T, class F>
EMBER_HD void rmsprop_update(T* __restrict p, const T* __restrict g, T* __restrict sq, T* __restrict ga,
                             T* __restrict b, int64_t i, RmspropScalars<acc_t<T>> s, F f) {
  using A = acc_t<T>;
  A gi = s.sign * ld(g[i]);
  const A pi = ld(p[i]);
  if (f.wd) gi = gi + s.wd * pi;
  const A si = stored<T>(ld(sq[i]) * s.alpha + s.w * gi * gi);
  sq[i] = st<T>(si);
  A avg;
  if (f.centered) {
    const A gai = stored<T>(lerp<A>(ld(ga[i]), gi, s.w, f.small));
    ga[i] = st<T>(gai);
    avg = std::sqrt(stored<T>(si + A(-1) * gai * gai));
  } else {
    avg = std::sqrt(si);
  }
  avg = stored<T>(avg) + s.eps;
  if (f.mom) {
    const A bi = stored<T>(ld(b[i]) * s.mom + gi / avg);
    b[i] = st<T>(bi);
    p[i] = st<T>(pi + s.neg_lr * bi);
  } else {
    p[i] = st<T>(pi + s.neg_lr * gi / avg);
  }
}

// Element i of an Adagrad step (sm: the running sum of squares).
template <class T, class F>
EMBER_HD void adagrad_update(T* __restrict p, const T* __restrict g, T* __restrict sm, int64_t i,
                             AdagradScalars<acc_t<T>> s, F f) {
  using A = acc_t<T>;
  A gi = s.sign * ld(g[i]);
  const A pi = ld(p[i]);
  if (f.wd) gi = gi + s.wd * pi;
  const A si = stored<T>(ld(sm[i]) + A(1) * gi * gi);
  sm[i] = st<T>(si);
  p[i] = st<T>(pi + s.neg_clr * gi / (std::sqrt(si) + s.eps));
}

// A step's scalars and flags as one value: what a CUDA graph's slot holds (core/graph_capture.hpp),
// rewritten by the host before each replay and read by the kernel when it runs, so a captured step
// follows the lr schedule and the step count. by_value is the eager path's copy.
template <class S, class F>
struct StepParams {
  S s;
  F f;
};
template <class P>
EMBER_HD P resolve_params(const P& by_value, const P* slot) {
  return slot != nullptr ? *slot : by_value;
}

// ---- host side: each step's scalars (computed in double, rounded once to the computation type) and flags

template <class A>
SgdScalars<A> sgd_scalars(const SgdStepArgs& h) {
  return {static_cast<A>(-h.lr), static_cast<A>(h.weight_decay), static_cast<A>(h.momentum),
          static_cast<A>(1 - h.dampening), h.maximize ? A(-1) : A(1)};
}
inline SgdFlags sgd_flags(const SgdStepArgs& h) { return {h.weight_decay != 0, h.momentum != 0, h.nesterov, h.first}; }

template <class A>
AdamScalars<A> adam_scalars(const AdamStepArgs& h) {
  const double bc1 = 1 - std::pow(h.beta1, h.step), bc2 = 1 - std::pow(h.beta2, h.step);
  return {static_cast<A>(-(h.lr / bc1)),  static_cast<A>(std::pow(bc2, 0.5)),
          static_cast<A>(1 - h.beta1),    static_cast<A>(h.beta2),
          static_cast<A>(1 - h.beta2),    static_cast<A>(h.eps),
          static_cast<A>(h.weight_decay), static_cast<A>(1 - h.lr * h.weight_decay),
          h.maximize ? A(-1) : A(1)};
}
template <class A>
AdamFlags adam_flags(const AdamStepArgs& h) {
  return {h.weight_decay != 0 && !h.decoupled, h.weight_decay != 0 && h.decoupled, h.amsgrad,
          static_cast<A>(1 - h.beta1) < A(0.5)};
}

template <class A>
RmspropScalars<A> rmsprop_scalars(const RmspropStepArgs& h) {
  return {static_cast<A>(-h.lr),    static_cast<A>(h.alpha),        static_cast<A>(1 - h.alpha),
          static_cast<A>(h.eps),    static_cast<A>(h.weight_decay), static_cast<A>(h.momentum),
          h.maximize ? A(-1) : A(1)};
}
template <class A>
RmspropFlags rmsprop_flags(const RmspropStepArgs& h) {
  return {h.weight_decay != 0, h.centered, h.momentum > 0, static_cast<A>(1 - h.alpha) < A(0.5)};
}

template <class A>
AdagradScalars<A> adagrad_scalars(const AdagradStepArgs& h) {
  return {static_cast<A>(-(h.lr / (1 + (h.step - 1) * h.lr_decay))), static_cast<A>(h.eps),
          static_cast<A>(h.weight_decay), h.maximize ? A(-1) : A(1)};
}
inline AdagradFlags adagrad_flags(const AdagradStepArgs& h) { return {h.weight_decay != 0}; }

}  // namespace ember::kernels::optim_math
