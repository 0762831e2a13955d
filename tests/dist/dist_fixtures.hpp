// What the MPI test files share: the world communicator, this rank, and checks that compare values
// across ranks (each is a collective: every rank must call it).
#pragma once
#include <vector>

#include "ember.hpp"
#include "test_util.hpp"

namespace ember::testing::dist_fixtures {

inline dist::Communicator& comm() { return dist::world(); }
inline int rank() { return comm().rank(); }
inline int world() { return comm().world_size(); }

// Whether `t` (any shape) holds the same values on every rank.
inline bool same_on_all_ranks(const Tensor& t) {
  Tensor g = comm().all_gather(t.detach().to(kF64).contiguous());
  bool same = true;
  for (int r = 1; r < world(); ++r) same = same && equal(g.select(0, 0), g.select(0, r));
  return same;
}

// A module's parameters as one f64 vector.
inline Tensor flat(const nn::Module& m) {
  std::vector<Tensor> parts;
  for (const Tensor& p : m.parameters()) parts.push_back(p.detach().to(kF64).reshape({-1}));
  return cat(parts, 0);
}

}  // namespace ember::testing::dist_fixtures
