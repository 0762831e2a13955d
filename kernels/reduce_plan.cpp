// Host planning of the reduction family (see reduce_plan.hpp): the kept/reduced split of a tensor, the
// CUDA launch geometry of reductions and sorts. Plain C++ in every build, so CPU tests cover it.
#include "kernels/reduce_plan.hpp"

#include <algorithm>
#include <cstdlib>
#include <vector>

namespace ember::kernels {
namespace {
int64_t next_pow2(int64_t n) {
  int64_t p = 1;
  while (p < n) p *= 2;
  return p;
}
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
}  // namespace

ReducePlan make_reduce_plan(const Tensor& out, const Tensor& in) {
  struct Dim {
    int64_t size, sin, sout;
  };
  std::vector<Dim> kept, red;
  const int64_t es = static_cast<int64_t>(in.element_size());
  for (int64_t d = 0; d < in.dim(); ++d) {
    int64_t sz = in.shape()[d];
    if (sz == 1) continue;
    if (out.shape()[d] == 1)
      red.push_back({sz, in.strides()[d] * es, 0});
    else
      kept.push_back({sz, in.strides()[d] * es, out.strides()[d]});
  }
  // Memory order (largest input stride outermost), then merge neighbours that form one stride.
  auto by_stride = [](const Dim& a, const Dim& b) { return std::abs(a.sin) > std::abs(b.sin); };
  std::stable_sort(kept.begin(), kept.end(), by_stride);
  std::stable_sort(red.begin(), red.end(), by_stride);
  auto coalesce = [](std::vector<Dim>& v) {
    std::vector<Dim> r;
    for (const Dim& d : v) {
      if (!r.empty() && r.back().sin == d.sin * d.size && r.back().sout == d.sout * d.size) {
        r.back() = {r.back().size * d.size, d.sin, d.sout};
      } else {
        r.push_back(d);
      }
    }
    v = std::move(r);
  };
  coalesce(kept);
  coalesce(red);
  EMBER_CHECK(kept.size() <= kReduceMaxDims && red.size() <= kReduceMaxDims, ShapeError, "[reduce] input ",
              describe(in), " has more than ", kReduceMaxDims, " non-mergeable dims");
  ReducePlan p;
  p.in = static_cast<const char*>(in.raw_data());
  for (const Dim& d : kept) {
    p.ksize[p.nk] = d.size;
    p.kin[p.nk] = d.sin;
    p.kout[p.nk++] = d.sout;
    p.M *= d.size;
  }
  for (const Dim& d : red) {
    p.rsize[p.nr] = d.size;
    p.rin[p.nr++] = d.sin;
    p.N *= d.size;
  }
  p.outer = p.nk > 0 && (p.nr == 0 || std::abs(p.kin[p.nk - 1]) < std::abs(p.rin[p.nr - 1]));
  if (p.nr == 0) {  // nothing to reduce: one element per output
    p.rsize[0] = 1;
    p.rin[0] = 0;
    p.nr = 1;
  }
  return p;
}

ReduceLaunch plan_reduce_launch(int64_t M, int64_t N, bool col, int64_t state_size, int sm_count, int64_t max_splits) {
  constexpr int64_t kBlock = 256, kMaxLanes = kReduceMaxThreads, kMinPerLane = 64;
  ReduceLaunch l;
  l.col = col;
  const int64_t m = std::max<int64_t>(M, 1), n = std::max<int64_t>(N, 1);
  if (!col) {  // lanes along the reduced elements, as many outputs as fill the block
    l.lanes = static_cast<int>(std::min(kMaxLanes, next_pow2(n)));
    l.outs = static_cast<int>(std::min(std::max<int64_t>(1, kBlock / l.lanes), next_pow2(m)));
  } else {  // adjacent threads on adjacent outputs; spare threads of a narrow block split the reduction
    l.outs = static_cast<int>(std::min(kBlock, next_pow2(m)));
    l.lanes = static_cast<int>(std::min(std::max<int64_t>(1, kBlock / l.outs), next_pow2(n)));
  }
  const int64_t blocks = ceil_div(m, l.outs);
  l.grid_x = std::min(blocks, kMaxGridX);
  // Few blocks and long reductions: cut the reduced range so that about 4 blocks per SM run.
  const int64_t want = ceil_div(4 * std::max(sm_count, 1), blocks);
  const int64_t by_work = n / (static_cast<int64_t>(l.lanes) * kMinPerLane);
  const int64_t splits = std::max<int64_t>(1, std::min({want, by_work, max_splits, kMaxSplits}));
  l.chunk = ceil_div(n, splits);
  l.splits = ceil_div(n, l.chunk);
  l.smem = static_cast<int64_t>(l.threads()) * state_size;
  l.workspace = l.splits > 1 ? l.splits * M * state_size : 0;
  return l;
}

SortLaunch plan_sort_launch(int64_t rows, int64_t n, int64_t key_size) {
  SortLaunch s;
  s.P = next_pow2(std::max<int64_t>(n, 1));
  int64_t logp = 0;
  while ((int64_t{1} << logp) < s.P) ++logp;
  s.steps = logp * (logp + 1) / 2;
  s.shared = s.P <= kSortSharedMax;
  const int64_t item = key_size + static_cast<int64_t>(sizeof(int64_t));
  if (s.shared) {
    s.threads = static_cast<int>(std::max<int64_t>(1, s.P / 2));
    s.smem = s.P * item;
  } else {
    s.threads = 256;
    s.workspace = rows * s.P * item;
  }
  return s;
}

}  // namespace ember::kernels
