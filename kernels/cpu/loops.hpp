// The CPU elementwise engine: operands (out first) of one shape are coalesced into as few strided dims
// as possible, then the element range is cut into chunks (oneTBB above a 32K-element grain) and each
// chunk is walked row by row with an inner loop that the compiler vectorises on contiguous rows.
#pragma once
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <array>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "core/tensor.hpp"

namespace ember::kernels::cpu {

inline constexpr int64_t kGrain = 32768;
inline constexpr int kMaxDims = 16;

template <class T>
inline T convert(auto x) {
  if constexpr (std::is_same_v<T, bool>) return static_cast<bool>(x);
  else if constexpr (std::is_same_v<T, half> || std::is_same_v<T, bfloat16>) return T(static_cast<float>(x));
  else return static_cast<T>(x);
}
template <class T>
inline acc_t<T> load(const T& x) {
  return static_cast<acc_t<T>>(x);
}

template <int N>
struct Plan {
  int ndim = 0;
  int64_t numel = 0;
  int64_t size[kMaxDims];        // innermost dim last
  int64_t stride[N][kMaxDims];   // bytes
  char* ptr[N];
};

// ops[0] is the output; all operands must have its shape (inputs are broadcast views).
template <int N>
Plan<N> make_plan(const std::array<const Tensor*, N>& ops) {
  Plan<N> p;
  const Tensor& out = *ops[0];
  p.numel = out.numel();
  for (int k = 0; k < N; ++k) p.ptr[k] = static_cast<char*>(ops[k]->raw_data());
  // Drop size-1 dims, then merge a dim into the one inside it when every operand allows it.
  int nd = 0;
  for (int64_t d = 0; d < out.dim(); ++d) {
    int64_t sz = out.shape()[d];
    if (sz == 1) continue;
    bool merge = nd > 0;
    for (int k = 0; k < N && merge; ++k)
      merge = p.stride[k][nd - 1] == ops[k]->strides()[d] * sz * static_cast<int64_t>(ops[k]->element_size());
    if (merge) {
      p.size[nd - 1] *= sz;
      for (int k = 0; k < N; ++k) p.stride[k][nd - 1] = ops[k]->strides()[d] * static_cast<int64_t>(ops[k]->element_size());
    } else {
      EMBER_CHECK(nd < kMaxDims, ShapeError, "[elementwise] more than ", kMaxDims, " non-mergeable dims");
      p.size[nd] = sz;
      for (int k = 0; k < N; ++k) p.stride[k][nd] = ops[k]->strides()[d] * static_cast<int64_t>(ops[k]->element_size());
      ++nd;
    }
  }
  if (nd == 0) {  // scalar or all size-1: one element
    p.size[0] = 1;
    for (int k = 0; k < N; ++k) p.stride[k][0] = 0;
    nd = 1;
  }
  p.ndim = nd;
  return p;
}

// Calls inner(ptrs, inner_strides, n) over rows covering elements [begin, end) of the plan.
template <int N, class Inner>
void walk(const Plan<N>& p, int64_t begin, int64_t end, Inner&& inner) {
  const int last = p.ndim - 1;
  const int64_t row = p.size[last];
  int64_t idx[kMaxDims];
  int64_t rem = begin;
  for (int d = last; d >= 0; --d) {
    idx[d] = rem % p.size[d];
    rem /= p.size[d];
  }
  char* ptrs[N];
  int64_t inner_strides[N];
  for (int k = 0; k < N; ++k) {
    inner_strides[k] = p.stride[k][last];
    ptrs[k] = p.ptr[k];
    for (int d = 0; d <= last; ++d) ptrs[k] += idx[d] * p.stride[k][d];
  }
  int64_t pos = begin;
  while (pos < end) {
    int64_t n = std::min(row - idx[last], end - pos);
    inner(ptrs, inner_strides, n);
    pos += n;
    if (pos >= end) break;
    // advance the odometer past the finished row
    for (int k = 0; k < N; ++k) ptrs[k] += n * inner_strides[k];
    idx[last] += n;
    for (int d = last; d > 0 && idx[d] == p.size[d]; --d) {
      for (int k = 0; k < N; ++k) ptrs[k] -= p.size[d] * p.stride[k][d] - p.stride[k][d - 1];
      idx[d] = 0;
      ++idx[d - 1];
    }
  }
}

// Runs inner over the whole plan, in parallel chunks when large.
template <int N, class Inner>
void run(const Plan<N>& p, Inner&& inner, int64_t grain = kGrain) {
  if (p.numel == 0) return;
  if (p.numel <= grain) {
    walk(p, 0, p.numel, inner);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, p.numel, grain),
                    [&](const tbb::blocked_range<int64_t>& r) { walk(p, r.begin(), r.end(), inner); });
}

// The inner loop of an elementwise op: Out <- f(T...) over n elements. Contiguous and scalar-broadcast
// operands get loops with compile-time strides so the compiler can vectorise them.
template <class Out, class T, int NIn, class F>
struct ElementwiseInner {
  F f;
  template <int... Mode, size_t... I>
  void tight(char** p, int64_t n, std::index_sequence<I...>) const {
    Out* o = reinterpret_cast<Out*>(p[0]);
    const T* in[NIn] = {reinterpret_cast<const T*>(p[I + 1])...};
    constexpr int modes[NIn] = {Mode...};
    if constexpr (((Mode == 1) || ...)) {
      acc_t<T> sc[NIn] = {(modes[I] == 1 ? load(in[I][0]) : acc_t<T>{})...};
      for (int64_t i = 0; i < n; ++i)
        o[i] = convert<Out>(f((modes[I] == 1 ? sc[I] : load(in[I][i]))...));
    } else {
      for (int64_t i = 0; i < n; ++i) o[i] = convert<Out>(f(load(in[I][i])...));
    }
  }
  template <size_t... I>
  void strided(char** p, const int64_t* s, int64_t n, std::index_sequence<I...>) const {
    for (int64_t i = 0; i < n; ++i)
      *reinterpret_cast<Out*>(p[0] + i * s[0]) =
          convert<Out>(f(load(*reinterpret_cast<const T*>(p[I + 1] + i * s[I + 1]))...));
  }
  void operator()(char** p, const int64_t* s, int64_t n) const {
    constexpr auto seq = std::make_index_sequence<NIn>{};
    constexpr int64_t st = sizeof(T);
    if (s[0] == sizeof(Out)) {
      if constexpr (NIn == 1) {
        if (s[1] == st) return tight<0>(p, n, seq);
      } else if constexpr (NIn == 2) {
        if (s[1] == st && s[2] == st) return tight<0, 0>(p, n, seq);
        if (s[1] == st && s[2] == 0) return tight<0, 1>(p, n, seq);
        if (s[1] == 0 && s[2] == st) return tight<1, 0>(p, n, seq);
      } else {
        if (s[1] == st && s[2] == st && s[3] == st) return tight<0, 0, 0>(p, n, seq);
      }
    }
    strided(p, s, n, seq);
  }
};

}  // namespace ember::kernels::cpu
