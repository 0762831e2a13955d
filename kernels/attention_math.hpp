// Per-row math of the blocked (flash-style) attention, EMBER_HD so that the CPU kernel
// (kernels/cpu/attention.cpp) and a future CUDA kernel share it: the key and query ranges a causal
// (top-left aligned) block visits, the online softmax state of one query row (running max and sum,
// the rescale of the partial output, the final 1/sum and logsumexp), and the backward's probability
// and score-gradient elements recomputed from the saved logsumexp. CPU tests cover all of it.
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
// d loss / d score_ij (times the scale the scores carry): P (dP - D_i), D_i = rowsum(dO_i * O_i).
template <class A>
EMBER_HD A attn_dscore(A p, A dp, A d, A scale) {
  return p * (dp - d) * scale;
}

}  // namespace ember::kernels
