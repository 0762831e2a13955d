// Per-row math of the blocked (flash-style) attention, EMBER_HD so that the CPU kernel
// (kernels/cpu/attention.cpp) and the fused CUDA kernel (kernels/cuda/attention.cu) share it: the
// key and query ranges a causal (top-left aligned) block visits, the online softmax state of one query
// row (running max and sum, the rescale of the partial output, the final 1/sum and logsumexp), and the
// backward's probability and score-gradient elements recomputed from the saved logsumexp. CPU tests
// cover all of it (tests/test_attention.cpp, tests/test_plan_attention.cpp).
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/half.hpp"

namespace ember::kernels {

// ------------------------------------------------------------------------------------ block ranges

// Causal top-left: query row i sees keys j <= i. The keys a query block [i0, i1) needs: [0, end).
EMBER_HD int64_t attn_key_end(int64_t i1, int64_t s, bool causal) { return causal && i1 < s ? i1 : s; }
// The keys query row i sees within a key tile [j0, j1): [j0, end) (end <= j0: none).
EMBER_HD int64_t attn_row_key_end(int64_t i, int64_t j1, bool causal) { return causal && i + 1 < j1 ? i + 1 : j1; }
// The first query row that sees any key of a tile starting at j0 (the rows before see none of it).
EMBER_HD int64_t attn_first_row(int64_t j0, bool causal) { return causal ? j0 : 0; }

// Whether query row i may attend key j of s keys: keys past the end (a tile's padding) never, and under
// causal only j <= i. The CUDA kernel masks every score with it; the CPU's tile bounds agree (tested).
EMBER_HD bool attn_visible(int64_t i, int64_t j, int64_t s, bool causal) { return j < s && (!causal || j <= i); }
// The key tiles of width bc that a query tile [i0, i1) visits: [0, n).
EMBER_HD int64_t attn_key_tiles(int64_t i1, int64_t s, int64_t bc, bool causal) {
  return (attn_key_end(i1, s, causal) + bc - 1) / bc;
}
// The first query tile (of height br) that sees any key of the tile starting at j0.
EMBER_HD int64_t attn_first_query_tile(int64_t j0, int64_t br, bool causal) { return attn_first_row(j0, causal) / br; }

// ------------------------------------------------------------------------------------ forward

// Running max m and sum l of exp(score - m) of one query row over the key tiles seen so far. A row
// whose scores are all -inf (masked) keeps m = -inf: it has no keys and its output is zero.
template <class A>
struct OnlineSoftmax {
  A m = -std::numeric_limits<A>::infinity();
  A l = 0;

  // Takes a tile's row max; returns the factor that rescales the sum and the partial output
  // accumulated so far (1 while the row has seen no key: l and the output are still zero).
  EMBER_HD A advance(A tile_max) {
    if (!(tile_max > m)) return A(1);  // no new max (or an all -inf tile)
    const A alpha = m == -std::numeric_limits<A>::infinity() ? A(0) : std::exp(m - tile_max);
    m = tile_max;
    l *= alpha;
    return alpha;
  }
  // The max that this tile's exponentials subtract (finite for any row that has a key).
  EMBER_HD A shift() const { return m; }
  EMBER_HD void add(A tile_sum) { l += tile_sum; }
  // 1 / sum, or 0 for a row with no key: its output (all zeros so far) stays zero.
  EMBER_HD A inv_sum() const { return m == -std::numeric_limits<A>::infinity() ? A(0) : A(1) / l; }
  // The row's logsumexp, which the backward recomputes the probabilities from; -inf marks no key.
  EMBER_HD A lse() const { return m == -std::numeric_limits<A>::infinity() ? m : m + std::log(l); }
};

// A masked score: -inf where a bool mask says no, the float mask added otherwise (bias 0 without one).
template <class A>
EMBER_HD A attn_masked(A score, bool keep, A bias) {
  return keep ? score + bias : -std::numeric_limits<A>::infinity();
}

// ------------------------------------------------------------------------------------ backward

// P_ij from a recomputed score and the row's logsumexp: 0 for a masked score or a row with no key.
template <class A, class Exp>
EMBER_HD A attn_prob(A score, A lse, Exp exp_fn) {
  return lse == -std::numeric_limits<A>::infinity() ? A(0) : exp_fn(score - lse);
}
// D_i = rowsum(dO_i * O_i) over n values, accumulated in A (f32 for f16/bf16 rows).
template <class A, class T>
EMBER_HD A attn_row_delta(const T* dout, const T* out, int64_t n) {
  A acc = 0;
  for (int64_t x = 0; x < n; ++x) acc += static_cast<A>(dout[x]) * static_cast<A>(out[x]);
  return acc;
}
// d loss / d score_ij (times the scale the scores carry): P (dP - D_i), D_i = rowsum(dO_i * O_i).
template <class A>
EMBER_HD A attn_dscore(A p, A dp, A d, A scale) {
  return p * (dp - d) * scale;
}

}  // namespace ember::kernels
