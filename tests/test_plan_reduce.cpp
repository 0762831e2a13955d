// Host planning of the CUDA reduction family (kernels/reduce_plan.hpp) and the math it shares with the
// CPU (kernels/reduce_math.hpp): the kept/reduced offsets visit every input element once, the launch
// geometry covers every (output, element) pair once within the hardware's limits, the bitonic network
// sorts as a stable sort with NaN largest, and the arg/softmax states merge in any order.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include "kernels/reduce_math.hpp"
#include "kernels/reduce_plan.hpp"
#include "test_util.hpp"

using namespace ember;
using namespace ember::kernels;

namespace {

// Sums `in` into the keepdim shape `keep` through the plan's offsets, checking that every input element
// is read exactly once, and compares with a naive multi-index loop.
void check_plan_offsets(const Tensor& in, const Shape& keep) {
  CAPTURE(describe(in));
  CAPTURE(keep);
  Tensor out = make_tensor(keep, kF64);
  const ReducePlan p = make_reduce_plan(out, in);
  const auto* base = static_cast<const char*>(in.raw_data());
  std::vector<double> got(static_cast<size_t>(out.numel()), 0.0);
  std::map<int64_t, int> reads;
  for (int64_t o = 0; o < p.M; ++o) {
    int64_t in_off = 0, out_off = 0;
    kept_offsets(p, o, in_off, out_off);
    REQUIRE(out_off >= 0);
    REQUIRE(out_off < out.numel());
    for (int64_t r = 0; r < p.N; ++r) {
      const int64_t off = in_off + reduced_offset(p, r);
      ++reads[off];
      got[out_off] += *reinterpret_cast<const double*>(base + off);
    }
  }
  int64_t total = 0;
  bool broadcast = false;
  for (int64_t st : in.strides()) broadcast = broadcast || st == 0;
  for (const auto& [off, n] : reads) {
    total += n;
    if (!broadcast) CHECK(n == 1);  // a broadcast input reads its elements once per broadcast copy
  }
  CHECK(total == in.numel());
  // Naive: every multi-index of in, its storage offset, its output (reduced dims at 0, contiguous).
  std::vector<double> want(got.size(), 0.0);
  std::vector<int64_t> idx(in.dim(), 0);
  const auto* data = static_cast<const double*>(in.raw_data());
  for (int64_t e = 0; e < in.numel(); ++e) {
    int64_t rem = e, off = 0, oo = 0, ostride = 1;
    for (int64_t d = in.dim() - 1; d >= 0; --d) {
      idx[d] = rem % in.shape()[d];
      rem /= in.shape()[d];
      off += idx[d] * in.strides()[d];
    }
    for (int64_t d = in.dim() - 1; d >= 0; --d) {
      oo += (keep[d] == 1 ? 0 : idx[d]) * ostride;
      ostride *= keep[d];
    }
    want[oo] += data[off];
  }
  CHECK(got == want);
}

Tensor iota(const Shape& s) { return arange(shape_numel(s)).to(kF64).reshape(s); }

// Runs the reduce kernel's loops on the host and counts the visits of each (output, element) pair.
void check_launch(int64_t M, int64_t N, bool col, int64_t state, int sms) {
  CAPTURE(M);
  CAPTURE(N);
  CAPTURE(col);
  CAPTURE(state);
  const ReduceLaunch l = plan_reduce_launch(M, N, col, state, sms);
  CHECK(l.col == col);
  CHECK(l.threads() >= 1);
  CHECK(l.threads() <= kReduceMaxThreads);  // reduce_kernel's __launch_bounds__
  CHECK((l.lanes & (l.lanes - 1)) == 0);
  CHECK(l.smem == l.threads() * state);
  CHECK(l.smem <= 48 * 1024);
  CHECK(l.grid_x >= 1);
  CHECK(l.grid_x <= kMaxGridX);
  CHECK(l.splits >= 1);
  CHECK(l.splits <= 65535);
  CHECK(l.chunk * l.splits >= N);
  CHECK((l.splits - 1) * l.chunk < std::max<int64_t>(N, 1));  // no empty chunk
  CHECK(l.workspace == (l.splits > 1 ? l.splits * M * state : 0));
  // Each thread of a block has its own (slot, lane) and shared-memory index.
  std::vector<int> seen(static_cast<size_t>(l.threads()), 0);
  for (int t = 0; t < l.threads(); ++t) {
    const int lane = l.lane_of(t), slot = l.slot_of(t);
    REQUIRE(lane < l.lanes);
    REQUIRE(slot < l.outs);
    ++seen[l.smem_index(slot, lane)];
  }
  for (int v : seen) CHECK(v == 1);
  std::vector<int> visits(static_cast<size_t>(M * N), 0);
  int64_t partial_writes = 0;
  for (int64_t bx = 0; bx < l.grid_x; ++bx)
    for (int64_t split = 0; split < l.splits; ++split) {
      const int64_t r0 = split * l.chunk, r1 = std::min(N, r0 + l.chunk);
      for (int64_t ob = bx * l.outs; ob < M; ob += l.grid_x * l.outs)
        for (int t = 0; t < l.threads(); ++t) {
          const int64_t o = ob + l.slot_of(t);
          if (o >= M) continue;
          for (int64_t r = r0 + l.lane_of(t); r < r1; r += l.lanes) ++visits[o * N + r];
          if (l.lane_of(t) == 0 && l.splits > 1) {
            REQUIRE((split * M + o + 1) * state <= l.workspace);  // the partial state's slot fits
            ++partial_writes;
          }
        }
    }
  for (int v : visits) REQUIRE(v == 1);
  if (l.splits > 1) CHECK(partial_writes == l.splits * M);
}

template <class K>
void check_bitonic(std::vector<K> keys, bool desc) {
  const int64_t n = static_cast<int64_t>(keys.size());
  CAPTURE(n);
  CAPTURE(desc);
  const SortLaunch s = plan_sort_launch(3, n, sizeof(K));
  CHECK(s.P >= n);
  CHECK(s.P < 2 * std::max<int64_t>(n, 1));
  CHECK((s.P & (s.P - 1)) == 0);
  CHECK(s.shared == (s.P <= kSortSharedMax));
  CHECK(s.threads <= 1024);
  if (s.shared) CHECK(s.smem == s.P * static_cast<int64_t>(sizeof(K) + 8));
  if (!s.shared) CHECK(s.workspace == 3 * s.P * static_cast<int64_t>(sizeof(K) + 8));
  std::vector<K> key(s.P, K(0));
  std::vector<int64_t> idx(s.P);
  for (int64_t i = 0; i < s.P; ++i) {
    idx[i] = i;
    if (i < n) key[i] = keys[i];
  }
  int64_t steps = 0;
  for (int64_t k = 2; k <= s.P; k *= 2)
    for (int64_t j = k / 2; j > 0; j /= 2, ++steps) {
      std::vector<int> touched(s.P, 0);
      for (int64_t t = 0; t < s.P / 2; ++t) {
        const int64_t a = bitonic_slot(t, j), b = a + j;
        REQUIRE(b < s.P);
        ++touched[a];
        ++touched[b];
        const bool asc = bitonic_ascending(a, k);
        const K ka = key[a], kb = key[b];
        if (asc ? padded_before<K>(kb, idx[b], ka, idx[a], n, desc)
                : padded_before<K>(ka, idx[a], kb, idx[b], n, desc)) {
          key[a] = kb;
          key[b] = ka;
          std::swap(idx[a], idx[b]);
        }
      }
      for (int v : touched) REQUIRE(v == 1);  // each step is a perfect matching of the slots
    }
  CHECK(steps == s.steps);
  std::vector<int64_t> want(n);
  for (int64_t i = 0; i < n; ++i) want[i] = i;
  std::stable_sort(want.begin(), want.end(), [&](int64_t a, int64_t b) {
    return desc ? key_less<K>(keys[b], keys[a]) : key_less<K>(keys[a], keys[b]);
  });
  for (int64_t i = 0; i < n; ++i) {
    CAPTURE(i);
    REQUIRE(idx[i] == want[i]);
  }
}

}  // namespace

TEST_CASE("plan reduce: kept and reduced offsets visit every element once") {
  check_plan_offsets(iota({4, 5, 6}), {4, 1, 6});
  check_plan_offsets(iota({4, 5, 6}), {1, 5, 1});
  check_plan_offsets(iota({4, 5, 6}), {1, 1, 1});
  check_plan_offsets(iota({4, 5, 6}), {4, 5, 6});
  check_plan_offsets(iota({4, 5, 6}).permute({2, 0, 1}), {6, 1, 5});
  check_plan_offsets(iota({4, 5, 6}).permute({2, 0, 1}), {1, 4, 1});
  check_plan_offsets(iota({6, 10}).slice(1, 0, std::nullopt, 2), {6, 1});
  check_plan_offsets(iota({6, 10}).slice(1, 0, std::nullopt, 2).transpose(0, 1), {1, 6});
  check_plan_offsets(iota({1, 7}).expand({5, 7}), {5, 1});
  check_plan_offsets(iota({3, 1, 4, 2}), {3, 1, 1, 2});
  check_plan_offsets(iota({}), {});
}

TEST_CASE("plan reduce: the launch covers every (output, element) pair once") {
  for (bool col : {false, true})
    for (int64_t state : {1, 8, 16})
      for (int64_t M : {1, 3, 32, 257, 5000})
        for (int64_t N : {0, 1, 7, 64, 1000, 70000}) {
          if (M * N > 4'000'000) continue;
          check_launch(M, N, col, state, 132);
        }
  check_launch(2, 300000, false, 8, 132);
  check_launch(2, 300000, true, 16, 8);
}

TEST_CASE("plan reduce: long reductions split, wide ones do not") {
  const ReduceLaunch one = plan_reduce_launch(1, 10'000'000, false, 8, 132);
  CHECK(one.splits > 1);
  CHECK(one.splits * one.chunk >= 10'000'000);
  CHECK(one.workspace == one.splits * 8);
  const ReduceLaunch wide = plan_reduce_launch(1'000'000, 512, false, 8, 132);
  CHECK(wide.splits == 1);
  CHECK(wide.workspace == 0);
  CHECK(wide.grid_x <= kMaxGridX);
  const ReduceLaunch forbidden = plan_reduce_launch(1, 10'000'000, false, 8, 132, 1);
  CHECK(forbidden.splits == 1);
  // Column kernel: adjacent threads on adjacent outputs (a warp reads 32 adjacent elements).
  const ReduceLaunch col = plan_reduce_launch(4096, 100, true, 8, 132);
  CHECK(col.outs >= 32);
  CHECK(col.slot_of(1) == col.slot_of(0) + 1);
  // Row kernel: adjacent threads on adjacent reduced elements of one output.
  const ReduceLaunch row = plan_reduce_launch(100, 4096, false, 8, 132);
  CHECK(row.lanes >= 32);
  CHECK(row.lane_of(1) == row.lane_of(0) + 1);
}

TEST_CASE("plan reduce: the bitonic network is a stable sort with NaN largest") {
  std::mt19937 rng(7);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t n : {1, 2, 3, 5, 17, 100, 2048, 3000}) {
    std::vector<float> keys(n);
    for (auto& k : keys) k = static_cast<float>(static_cast<int>(rng() % 9) - 4);  // many ties
    if (n > 3) {
      keys[1] = nan;
      keys[n - 1] = nan;
      keys[2] = -0.0f;
      keys[n / 2] = -std::numeric_limits<float>::infinity();
    }
    check_bitonic(keys, false);
    check_bitonic(keys, true);
  }
  check_bitonic(std::vector<int64_t>{5, -3, 5, 0, 9, -3, 5}, false);
  check_bitonic(std::vector<bool>{true, false, true, false, false}, true);
}

TEST_CASE("plan reduce: arg and softmax states merge in any order") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> v = {1, 4, 2, 4, -1, 4, 0};
  const std::vector<double> with_nan = {1, nan, 2, nan, 9};
  auto first_of = [](const std::vector<double>& x, bool is_max, std::vector<int> order) {
    double best = 0;
    int64_t at = -1;
    for (int i : order)
      is_max ? arg_merge<true>(best, at, x[i], int64_t{i}) : arg_merge<false>(best, at, x[i], int64_t{i});
    return at;
  };
  std::vector<int> order(v.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::mt19937 rng(3);
  for (int rep = 0; rep < 20; ++rep) {
    std::shuffle(order.begin(), order.end(), rng);
    CHECK(first_of(v, true, order) == 1);
    CHECK(first_of(v, false, order) == 4);
    std::vector<int> o2 = {0, 1, 2, 3, 4};
    std::shuffle(o2.begin(), o2.end(), rng);
    CHECK(first_of(with_nan, true, o2) == 1);
    CHECK(first_of(with_nan, false, o2) == 1);
  }
  // Online softmax: sequential fold, or chunks folded and merged, give max and sum(exp(x - max)).
  const double inf = std::numeric_limits<double>::infinity();
  auto ex = [](double x) { return std::exp(x); };
  const std::vector<double> row = {-inf, 0.5, 3.0, -2.0, 3.0, 1.25, -inf, 0.0};
  double want_s = 0;
  for (double x : row) want_s += std::exp(x - 3.0);
  for (size_t cut = 0; cut <= row.size(); ++cut) {
    double m1 = -inf, s1 = 0, m2 = -inf, s2 = 0;
    for (size_t i = 0; i < cut; ++i) softmax_fold(m1, s1, row[i], ex);
    for (size_t i = cut; i < row.size(); ++i) softmax_fold(m2, s2, row[i], ex);
    softmax_merge(m1, s1, m2, s2, ex);
    CHECK(m1 == 3.0);
    CHECK(s1 == doctest::Approx(want_s));
  }
  double m = -inf, s = 0;
  for (double x : {-inf, -inf}) softmax_fold(m, s, x, ex);
  CHECK(s == 0.0);  // a row of -inf: 0 / 0 downstream, NaN as the CPU
  softmax_fold(m, s, nan, ex);
  softmax_fold(m, s, 1.0, ex);
  CHECK(std::isnan(m));
  CHECK(lse_shift(inf) == 0.0);
  CHECK(lse_shift(-2.5) == -2.5);
}
