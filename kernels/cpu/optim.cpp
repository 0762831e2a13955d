// CPU fused optimizer updates: one pass over contiguous memory per parameter, with the options that
// change the loop body as compile-time flags so the compiler vectorises a branch-free inner loop, and
// oneTBB chunks above the elementwise grain. The arithmetic is kernels/optim_math.hpp's (shared with
// CUDA): PyTorch's single-tensor updates op by op (f32 scalars for f32 tensors); f16/bf16 compute in f32
// and round only what is stored.
#include "kernels/optim.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <cmath>
#include <type_traits>

#include "kernels/cpu/loops.hpp"
#include "kernels/optim_math.hpp"

namespace ember::kernels {
namespace cpu {
namespace {
namespace om = optim_math;

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

// Each chunk passes its pointers and scalars by value (restrict, in registers): scalars reached through a
// reference could alias the stored elements and keep the compiler from vectorising.
template <class T, class F>
void sgd_loop(T* __restrict p, const T* __restrict g, T* __restrict b, int64_t lo, int64_t hi,
              om::SgdScalars<acc_t<T>> s, F f) {
  for (int64_t i = lo; i < hi; ++i) om::sgd_update<T>(p, g, b, i, s, f);
}
template <class T, class F>
void adam_loop(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, T* __restrict vmax, int64_t lo,
               int64_t hi, om::AdamScalars<acc_t<T>> s, F f) {
  for (int64_t i = lo; i < hi; ++i) om::adam_update<T>(p, g, m, v, vmax, i, s, f);
}
template <class T, class F>
void rmsprop_loop(T* __restrict p, const T* __restrict g, T* __restrict sq, T* __restrict ga, T* __restrict b,
                  int64_t lo, int64_t hi, om::RmspropScalars<acc_t<T>> s, F f) {
  for (int64_t i = lo; i < hi; ++i) om::rmsprop_update<T>(p, g, sq, ga, b, i, s, f);
}
template <class T, class F>
void adagrad_loop(T* __restrict p, const T* __restrict g, T* __restrict sm, int64_t lo, int64_t hi,
                  om::AdagradScalars<acc_t<T>> s, F f) {
  for (int64_t i = lo; i < hi; ++i) om::adagrad_update<T>(p, g, sm, i, s, f);
}

}  // namespace

void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& buf, const SgdStepArgs& h) {
  visit_dtype<FloatTypes>(param.dtype(), "[sgd_step_]", [&]<class T>() {
    T* p = ptr<T>(param);
    const T* g = ptr<T>(grad);
    T* b = ptr<T>(buf);
    const auto s = om::sgd_scalars<acc_t<T>>(h);
    const om::SgdFlags fl = om::sgd_flags(h);
    with_flags(
        [&](auto kWd, auto kMom, auto kNesterov, auto kFirst) {
          using F = om::SgdFlagsC<decltype(kWd)::value, decltype(kMom)::value, decltype(kNesterov)::value,
                                  decltype(kFirst)::value>;
          chunks(param.numel(), [=](int64_t lo, int64_t hi) { sgd_loop<T>(p, g, b, lo, hi, s, F{}); });
        },
        fl.wd, fl.mom, fl.nesterov, fl.first);
  });
}

void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const Tensor& max_exp_avg_sq, const AdamStepArgs& h) {
  visit_dtype<FloatTypes>(param.dtype(), "[adam_step_]", [&]<class T>() {
    T* p = ptr<T>(param);
    const T* g = ptr<T>(grad);
    T *m = ptr<T>(exp_avg), *v = ptr<T>(exp_avg_sq), *vmax = ptr<T>(max_exp_avg_sq);
    const auto s = om::adam_scalars<acc_t<T>>(h);
    const om::AdamFlags fl = om::adam_flags<acc_t<T>>(h);
    with_flags(
        [&](auto kCoupled, auto kDecoupled, auto kAmsgrad, auto kSmall) {
          using F = om::AdamFlagsC<decltype(kCoupled)::value, decltype(kDecoupled)::value, decltype(kAmsgrad)::value,
                                   decltype(kSmall)::value>;
          chunks(param.numel(), [=](int64_t lo, int64_t hi) { adam_loop<T>(p, g, m, v, vmax, lo, hi, s, F{}); });
        },
        fl.coupled, fl.decoupled, fl.amsgrad, fl.small);
  });
}

void rmsprop_step(const Tensor& param, const Tensor& grad, const Tensor& square_avg, const Tensor& grad_avg,
                  const Tensor& buf, const RmspropStepArgs& h) {
  visit_dtype<FloatTypes>(param.dtype(), "[rmsprop_step_]", [&]<class T>() {
    T* p = ptr<T>(param);
    const T* g = ptr<T>(grad);
    T *sq = ptr<T>(square_avg), *ga = ptr<T>(grad_avg), *b = ptr<T>(buf);
    const auto s = om::rmsprop_scalars<acc_t<T>>(h);
    const om::RmspropFlags fl = om::rmsprop_flags<acc_t<T>>(h);
    with_flags(
        [&](auto kWd, auto kCentered, auto kMom, auto kSmall) {
          using F = om::RmspropFlagsC<decltype(kWd)::value, decltype(kCentered)::value, decltype(kMom)::value,
                                      decltype(kSmall)::value>;
          chunks(param.numel(), [=](int64_t lo, int64_t hi) { rmsprop_loop<T>(p, g, sq, ga, b, lo, hi, s, F{}); });
        },
        fl.wd, fl.centered, fl.mom, fl.small);
  });
}

void adagrad_step(const Tensor& param, const Tensor& grad, const Tensor& sum, const AdagradStepArgs& h) {
  visit_dtype<FloatTypes>(param.dtype(), "[adagrad_step_]", [&]<class T>() {
    T* p = ptr<T>(param);
    const T* g = ptr<T>(grad);
    T* sm = ptr<T>(sum);
    const auto s = om::adagrad_scalars<acc_t<T>>(h);
    with_flags(
        [&](auto kWd) {
          using F = om::AdagradFlagsC<decltype(kWd)::value>;
          chunks(param.numel(), [=](int64_t lo, int64_t hi) { adagrad_loop<T>(p, g, sm, lo, hi, s, F{}); });
        },
        om::adagrad_flags(h).wd);
  });
}

// The lists: the single-tensor loop per parameter (the same results as stepping them one by one).
namespace {
const Tensor& at(const TensorList& l, size_t j) {
  static const Tensor none;
  return l.empty() ? none : l[j];
}
}  // namespace

void sgd_step_multi(const TensorList& params, const TensorList& grads, const TensorList& bufs, const SgdStepArgs& h) {
  for (size_t j = 0; j < params.size(); ++j) cpu::sgd_step(params[j], grads[j], at(bufs, j), h);
}
void adam_step_multi(const TensorList& params, const TensorList& grads, const TensorList& exp_avgs,
                     const TensorList& exp_avg_sqs, const TensorList& max_exp_avg_sqs, const AdamStepArgs& h) {
  for (size_t j = 0; j < params.size(); ++j)
    cpu::adam_step(params[j], grads[j], exp_avgs[j], exp_avg_sqs[j], at(max_exp_avg_sqs, j), h);
}
void rmsprop_step_multi(const TensorList& params, const TensorList& grads, const TensorList& square_avgs,
                        const TensorList& grad_avgs, const TensorList& bufs, const RmspropStepArgs& h) {
  for (size_t j = 0; j < params.size(); ++j)
    cpu::rmsprop_step(params[j], grads[j], square_avgs[j], at(grad_avgs, j), at(bufs, j), h);
}
void adagrad_step_multi(const TensorList& params, const TensorList& grads, const TensorList& sums,
                        const AdagradStepArgs& h) {
  for (size_t j = 0; j < params.size(); ++j) cpu::adagrad_step(params[j], grads[j], sums[j], h);
}

Tensor multi_tensor_norm(const TensorList& tensors, double p, DType out_dtype) {
  const bool inf = std::isinf(p);
  double acc = 0;
  for (const Tensor& t : tensors)
    visit_dtype<FloatTypes>(t.dtype(), "[multi_tensor_norm]", [&]<class T>() {
      const T* x = ptr<T>(t);
      for (int64_t i = 0, n = t.numel(); i < n; ++i) {
        const double a = std::abs(static_cast<double>(om::ld(x[i])));
        if (inf)
          acc = om::nan_max(a, acc);
        else
          acc += p == 2 ? a * a : std::pow(a, p);
      }
    });
  const double v = inf ? acc : p == 2 ? std::sqrt(acc) : std::pow(acc, 1 / p);
  Tensor out = make_tensor({}, kF64, kCPU);
  *out.data_ptr<double>() = v;
  return out.to(out_dtype);
}

}  // namespace cpu
}  // namespace ember::kernels
