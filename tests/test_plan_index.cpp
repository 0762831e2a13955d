// The host-side planning of the CUDA indexing kernels (kernels/index_plan.hpp), run on the CPU: the
// coalesced layouts reach every element once at its own offset, and each kernel's per-thread body,
// driven by its plan over every thread id, reproduces the CPU kernel (bitwise where the order is fixed).
#include <algorithm>
#include <bit>
#include <set>
#include <vector>

#include "kernels/index_plan.hpp"
#include "test_util.hpp"

using namespace ember;
using namespace ember::testing;
namespace ip = ember::kernels::index_plan;
namespace kc = ember::kernels::cpu;
using kernels::ScatterMode;

namespace {

// Row-major offset of linear id i in a tensor of `shape` and element `strides`: the plain reference.
int64_t rowmajor_offset(const Shape& shape, const Shape& strides, int64_t i) {
  int64_t off = 0;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    off += (i % shape[d]) * strides[d];
    i /= shape[d];
  }
  return off;
}

Tensor random_index(const Shape& shape, int64_t hi, DType dt, uint64_t seed) {
  manual_seed(seed);
  return randint(0, hi, shape, {.dtype = kI64}).to(dt);
}
Tensor values(const Shape& shape, DType dt, uint64_t seed) {
  manual_seed(seed);
  return randn(shape, {.dtype = kF64}).to(dt);
}

// The Lines kernel's grid on the host: every line, in any order (lines write disjoint elements). Returns
// the bad index values the lines report.
template <class T, class I>
std::vector<int64_t> run_lines(const ip::ScatterPlan& p, const Tensor& out, const Tensor& index, const Tensor& src,
                               const Scalar& alpha, bool add) {
  std::vector<int64_t> reports;
  for (int64_t line = p.lines.numel - 1; line >= 0; --line) {  // reversed: order must not matter
    int64_t base[ip::kOps];
    ip::offsets(p.lines, line, base);
    int64_t bad = 0;
    if (!ip::scatter_line(static_cast<T*>(out.raw_data()), static_cast<const T*>(src.raw_data()),
                          static_cast<const I*>(index.raw_data()), base, p, alpha.to<acc_t<T>>(), add, &bad))
      reports.push_back(bad);
  }
  return reports;
}

// The Elements kernel's grid on the host (f64 adds, in reverse order); returns the reported values.
std::vector<int64_t> run_elements(const ip::ScatterPlan& p, const Tensor& out, const Tensor& index, const Tensor& src,
                                  double alpha) {
  std::vector<int64_t> reports;
  double* o = static_cast<double*>(out.raw_data());
  const double* s = static_cast<const double*>(src.raw_data());
  for (int64_t e = p.elems.numel - 1; e >= 0; --e) {
    int64_t dst = 0, from = 0, bad = 0;
    if (ip::scatter_element(p, static_cast<const int64_t*>(index.raw_data()), e, &dst, &from, &bad))
      o[dst] += alpha * s[from];
    else
      reports.push_back(bad);
  }
  return reports;
}

}  // namespace

TEST_CASE("plan index: layouts reach every element once at its row-major offset") {
  struct Case {
    Shape shape;
    std::vector<Shape> strides;
  };
  const std::vector<Case> cases = {
      {{4, 5, 6}, {{30, 6, 1}, {1, 4, 20}, {0, 6, 1}}},  // contiguous, transposed, broadcast dim 0
      {{3, 1, 7}, {{7, 7, 1}, {14, 99, 2}, {0, 0, 0}}},  // size-1 dim with a junk stride, sliced
      {{2, 3}, {{3, 1}}},                                // one operand
      {{}, {{}, {}}},                                    // 0-dim
      {{5}, {{-1}, {2}, {1}}},                           // negative stride
      {{2, 2, 2, 2}, {{8, 4, 2, 1}, {1, 2, 4, 8}, {8, 0, 2, 0}}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.shape);
    const ip::Layout l = ip::make_layout(c.shape, c.strides);
    CHECK(l.numel == shape_numel(c.shape));
    CHECK(l.ndim >= 1);
    CHECK(l.ndim <= std::max<int64_t>(1, static_cast<int64_t>(c.shape.size())));
    int64_t prod = 1;
    for (int d = 0; d < l.ndim; ++d) prod *= l.size[d];
    CHECK(prod == l.numel);
    std::set<int64_t> seen;
    for (int64_t i = 0; i < l.numel; ++i) {
      int64_t off[ip::kOps];
      ip::offsets(l, i, off);
      for (size_t k = 0; k < c.strides.size(); ++k) CHECK(off[k] == rowmajor_offset(c.shape, c.strides[k], i));
      for (size_t k = c.strides.size(); k < ip::kOps; ++k) CHECK(off[k] == 0);
      seen.insert(off[0]);
    }
    if (c.strides[0] == contiguous_strides(c.shape)) CHECK(static_cast<int64_t>(seen.size()) == l.numel);
  }
  // Contiguous operands coalesce to one dim (the kernels' division-free path).
  CHECK(ip::make_layout({4, 5, 6}, {{30, 6, 1}, {30, 6, 1}}).ndim == 1);
  CHECK(ip::make_layout({4, 5, 6}, {{30, 6, 1}, {1, 4, 20}}).ndim == 3);
}

TEST_CASE("plan index: index_select geometry picks the CPU kernel's rows") {
  for (int64_t dim : {0, 1, 2}) {
    CAPTURE(dim);
    Tensor self = values({3, 4, 5}, kF32, 1);
    Tensor index = random_index({7}, self.shape()[dim], kI64, 2 + dim);
    Shape shape = self.shape();
    shape[dim] = 7;
    Tensor want = zeros(shape, {.dtype = kF32});
    kc::index_select(want, self, dim, index);
    const ip::SelectGeom g = ip::plan_index_select(self, dim, index);
    CHECK(g.numel() == want.numel());
    CHECK(g.outer * g.n * g.inner == self.numel());
    auto sv = self.to_vector<float>();
    auto iv = index.to_vector<int64_t>();
    std::vector<float> got(static_cast<size_t>(g.numel()));
    for (int64_t i = 0; i < g.numel(); ++i) {
      const int64_t s = ip::select_source(g, iv.data(), i);
      REQUIRE(s >= 0);
      REQUIRE(s < self.numel());
      got[i] = sv[s];
    }
    CHECK(got == want.to_vector<float>());
  }
  // A strided 1-D index (every other element) and a 0-dim one.
  Tensor self = values({6, 3}, kF32, 3);
  Tensor wide = random_index({8}, 6, kI32, 4);
  Tensor strided = wide.slice(0, 0, std::nullopt, 2);
  const ip::SelectGeom g = ip::plan_index_select(self, 0, strided);
  CHECK(g.istride == 2);
  CHECK(g.m == 4);
  auto wv = wide.to_vector<int32_t>();
  for (int64_t i = 0; i < g.numel(); ++i) CHECK(ip::select_source(g, wv.data(), i) == wv[(i / 3) * 2] * 3 + i % 3);
  CHECK(ip::plan_index_select(self, 0, tensor(std::vector<int64_t>{5}).reshape({})).istride == 0);
}

TEST_CASE("plan index: exactly one output element per index position reports a bad index") {
  // The CUDA kernel reports a bad index from the output element select_index marks `first`: one per
  // index position, whatever the outer and inner extents.
  for (int64_t dim : {0, 1, 2}) {
    CAPTURE(dim);
    Tensor self = values({3, 4, 5}, kF32, 5);
    Tensor index = random_index({7}, self.size(dim), kI64, 6);
    const ip::SelectGeom g = ip::plan_index_select(self, dim, index);
    auto iv = index.to_vector<int64_t>();
    std::vector<int> firsts(iv.size(), 0);
    for (int64_t i = 0; i < g.numel(); ++i) {
      bool first = false;
      const int64_t v = ip::select_index(g, iv.data(), i, &first);
      CHECK(ip::select_offset(g, v, i) == ip::select_source(g, iv.data(), i));
      if (first) ++firsts[static_cast<size_t>((i / g.inner) % g.m)];
    }
    CHECK(firsts == std::vector<int>(iv.size(), 1));
  }
}

TEST_CASE("plan index: gather over a transposed input matches cpu::gather") {
  Tensor base = values({6, 5}, kF64, 5);
  Tensor self = base.transpose(0, 1);  // [5, 6], strides (1, 5)
  for (int64_t dim : {0, 1}) {
    CAPTURE(dim);
    Tensor index = random_index({4, 3}, self.shape()[dim], kI64, 6 + dim);
    Tensor want = zeros({4, 3}, {.dtype = kF64});
    kc::gather(want, self, dim, index);
    Tensor got = zeros({4, 3}, {.dtype = kF64});
    const ip::GatherPlan p = ip::plan_gather(got, self, dim, index);
    CHECK(p.elems.numel == index.numel());
    CHECK(p.self_dim_stride == self.strides()[dim]);
    for (int64_t e = 0; e < p.elems.numel; ++e) {
      int64_t bad = 0;
      CHECK(ip::gather_element(static_cast<double*>(got.raw_data()), static_cast<const double*>(self.raw_data()),
                               static_cast<const int64_t*>(index.raw_data()), p, e, &bad));
    }
    CHECK(equal(got, want));
  }
}

TEST_CASE("plan index: the scatter kernel choice") {
  Tensor out = zeros({10, 4});
  // Few positions along dim: a thread per line, whatever else holds.
  Tensor small = random_index({8, 4}, 10, kI64, 7);
  CHECK(ip::plan_scatter(out, 0, small, zeros({8, 4}), ScatterMode::Add, false, true).kernel ==
        ip::ScatterKernel::Lines);
  // Many positions, few lines: atomics when allowed, else the sorted path for a shared index.
  Tensor big = random_index({100, 4}, 10, kI64, 8);
  Tensor src = zeros({100, 4});
  CHECK(ip::plan_scatter(out, 0, big, src, ScatterMode::Add, false, true).kernel == ip::ScatterKernel::Elements);
  CHECK(ip::plan_scatter(out, 0, big, src, ScatterMode::Add, false, false).kernel == ip::ScatterKernel::Lines);
  CHECK(ip::plan_scatter(out, 0, big, src, ScatterMode::Add, true, true).kernel == ip::ScatterKernel::Lines);
  Tensor shared = make_view(random_index({100}, 10, kI64, 9), {100, 4}, {1, 0}, 0);  // index_add's view
  const ip::ScatterPlan sp = ip::plan_scatter(out, 0, shared, src, ScatterMode::Add, true, true);
  CHECK(sp.shared_index);
  CHECK(sp.kernel == ip::ScatterKernel::SortedRows);
  CHECK(sp.k == 100);
  CHECK(sp.lines.numel == 4);
  CHECK(sp.elems.numel == 400);
  CHECK(sp.size == 10);
  CHECK((int64_t{1} << sp.key_bits) > 10);  // keys in [0, 10]: 10 stands for a bad index
  CHECK((int64_t{1} << (sp.key_bits - 1)) <= 10);
  CHECK(!ip::plan_scatter(out, 0, big, src, ScatterMode::Add, true, true).shared_index);
  // Enough lines to fill a GPU: Lines even for long dims.
  Tensor wide = make_view(random_index({40}, 10, kI64, 10), {40, ip::kBusyLines}, {1, 0}, 0);
  Tensor wide_out = zeros({10, ip::kBusyLines});
  CHECK(ip::plan_scatter(wide_out, 0, wide, zeros({40, ip::kBusyLines}), ScatterMode::Add, true, true).kernel ==
        ip::ScatterKernel::Lines);
  // The sort's buffers are disjoint and fill the workspace exactly.
  const ip::SortBuffers b = ip::plan_sort_buffers(100);
  std::vector<int64_t> starts = {b.keys_in, b.keys_out, b.pos_in, b.pos_out};
  std::sort(starts.begin(), starts.end());
  for (size_t i = 0; i + 1 < starts.size(); ++i) CHECK(starts[i + 1] - starts[i] >= 100);
  CHECK(starts.back() + 100 == b.total);
  // The reduction grid: at least one block, at most the cap, covering small inputs.
  CHECK(ip::reduce_blocks(0, 256) == 1);
  CHECK(ip::reduce_blocks(257, 256) == 2);
  CHECK(ip::reduce_blocks(int64_t{1} << 40, 256) == ip::kReduceMaxBlocks);
}

TEST_CASE_TEMPLATE("plan index: the Lines body matches cpu::scatter bit for bit", T, float, double, half, int64_t) {
  const DType dt = dtype_of<T>();
  for (ScatterMode mode : {ScatterMode::Assign, ScatterMode::Add}) {
    for (int64_t dim : {0, 1}) {
      CAPTURE(dim);
      Tensor out0 = (values({6, 7}, kF64, 11) * 4.0).to(dt);
      Shape ishape = dim == 0 ? Shape{9, 5} : Shape{4, 12};
      Tensor index = random_index(ishape, out0.shape()[dim], kI32, 12 + dim);  // duplicates
      Tensor src = (values({9, 12}, kF64, 13) * 4.0).to(dt).transpose(0, 1).contiguous().transpose(0, 1);
      Tensor want = out0.clone(), got = out0.clone();
      kc::scatter(want, dim, index, src, mode, 1.5);
      const ip::ScatterPlan p = ip::plan_scatter(got, dim, index, src, mode, false, true);
      CHECK(p.lines.numel * p.k == index.numel());
      run_lines<T, int32_t>(p, got, index, src, 1.5, mode == ScatterMode::Add);
      CHECK(equal(got, want));
    }
  }
}

TEST_CASE("plan index: the Elements body reaches every element once") {
  // Integer-valued f64 adds are exact in any order, so the racing kernel's sum equals the CPU's.
  Tensor out0 = zeros({5, 6}, {.dtype = kF64});
  Tensor index = random_index({40, 6}, 5, kI64, 14);
  manual_seed(15);
  Tensor src = randint(-8, 8, {40, 6}, {.dtype = kI64}).to(kF64);
  Tensor want = out0.clone(), got = out0.clone();
  kc::scatter(want, 0, index, src, ScatterMode::Add, 2);
  const ip::ScatterPlan p = ip::plan_scatter(got, 0, index, src, ScatterMode::Add, false, true);
  REQUIRE(p.kernel == ip::ScatterKernel::Elements);
  CHECK(run_elements(p, got, index, src, 2).empty());
  CHECK(equal(got, want));
}

TEST_CASE("plan index: a bad index reads and writes nothing and is reported (the CUDA kernels' checks)") {
  // Positions 3 and 17 of every column hold 5 (one past the end) and -1.
  Tensor good = random_index({40, 6}, 5, kI64, 20);
  Tensor index = good.clone();
  index[3].fill_(5);
  index[17].fill_(-1);
  manual_seed(21);
  Tensor src = randint(-8, 8, {40, 6}, {.dtype = kI64}).to(kF64);
  // What a scatter_add of the good entries gives: the bad ones' src zeroed at a valid index.
  Tensor zeroed = src.clone();
  zeroed[3].fill_(0.0);
  zeroed[17].fill_(0.0);
  Tensor want = zeros({5, 6}, {.dtype = kF64});
  kc::scatter(want, 0, good, zeroed, ScatterMode::Add, 2);
  auto bad_values = [](const std::vector<int64_t>& r) {
    std::vector<int64_t> v = r;
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
  };
  const std::vector<int64_t> both = {-1, 5};
  {  // Elements: each bad element reports
    Tensor got = zeros({5, 6}, {.dtype = kF64});
    const ip::ScatterPlan p = ip::plan_scatter(got, 0, index, src, ScatterMode::Add, false, true);
    REQUIRE(p.kernel == ip::ScatterKernel::Elements);
    const std::vector<int64_t> r = run_elements(p, got, index, src, 2);
    CHECK(r.size() == 12);
    CHECK(bad_values(r) == both);
    CHECK(equal(got, want));
  }
  {  // Lines: each line reports its first bad value
    Tensor got = zeros({5, 6}, {.dtype = kF64});
    const ip::ScatterPlan p = ip::plan_scatter(got, 0, index, src, ScatterMode::Add, true, false);
    REQUIRE(p.kernel == ip::ScatterKernel::Lines);
    const std::vector<int64_t> r = run_lines<double, int64_t>(p, got, index, src, 2, true);
    CHECK(r == std::vector<int64_t>(6, 5));
    CHECK(equal(got, want));
  }
  {  // SortedRows (index_add's shared index): a bad key sorts last and writes nothing
    Tensor vec = good.select(1, 0).contiguous(), bad_vec = index.select(1, 0).contiguous();
    Tensor shared = make_view(bad_vec, {40, 6}, {1, 0}, 0);
    Tensor got = zeros({5, 6}, {.dtype = kF64}), want_rows = zeros({5, 6}, {.dtype = kF64});
    const ip::ScatterPlan p = ip::plan_scatter(got, 0, shared, src, ScatterMode::Add, true, true);
    REQUIRE(p.kernel == ip::ScatterKernel::SortedRows);
    CHECK(ip::sort_key(5, p.size) == 5);
    CHECK(ip::sort_key(-1, p.size) == 5);
    CHECK(ip::sort_key(4, p.size) == 4);
    CHECK(std::bit_width(uint64_t{5}) <= p.key_bits);  // the bad key fits the sort's bits
    ip::scatter_sorted_reference(p, got, shared, src, ScatterMode::Add, 2);
    kc::scatter(want_rows, 0, make_view(vec, {40, 6}, {1, 0}, 0), zeroed, ScatterMode::Add, 2);
    CHECK(equal(got, want_rows));
  }
  {  // gather: a bad index reads nothing and writes 0
    Tensor self = values({5, 6}, kF64, 22), got = full({40, 6}, 9.0, {.dtype = kF64});
    const ip::GatherPlan p = ip::plan_gather(got, self, 0, index);
    CHECK(p.size == 5);
    std::vector<int64_t> r;
    for (int64_t e = 0; e < p.elems.numel; ++e) {
      int64_t bad = 0;
      if (!ip::gather_element(static_cast<double*>(got.raw_data()), static_cast<const double*>(self.raw_data()),
                              static_cast<const int64_t*>(index.raw_data()), p, e, &bad))
        r.push_back(bad);
    }
    CHECK(r.size() == 12);
    CHECK(bad_values(r) == both);
    Tensor want_g = self.gather(0, good);
    want_g[3].fill_(0.0);
    want_g[17].fill_(0.0);
    CHECK(equal(got, want_g));
  }
}

TEST_CASE_TEMPLATE("plan index: the deterministic sorted path matches cpu::scatter", T, float, double, bfloat16,
                   int32_t) {
  const DType dt = dtype_of<T>();
  // index_add / embedding backward: one index vector of heavy duplicates shared by every line.
  for (int64_t dim : {0, 1}) {
    CAPTURE(dim);
    Shape out_shape = dim == 0 ? Shape{7, 5} : Shape{5, 7};
    Shape src_shape = dim == 0 ? Shape{200, 5} : Shape{5, 200};
    Tensor vec = random_index({400}, 7, kI64, 16 + dim).slice(0, 0, std::nullopt, 2);  // strided
    Shape istrides = dim == 0 ? Shape{vec.strides()[0], 0} : Shape{0, vec.strides()[0]};
    Tensor index = make_view(vec, src_shape, istrides, vec.storage_offset());
    Tensor src = (values(src_shape, kF64, 18) * 3.0).to(dt);
    const Scalar alpha = is_floating(dt) ? Scalar(0.5) : Scalar(3);
    for (ScatterMode mode : {ScatterMode::Assign, ScatterMode::Add}) {
      Tensor out0 = values(out_shape, kF64, 19).to(dt);
      Tensor want = out0.clone(), got = out0.clone();
      kc::scatter(want, dim, index, src, mode, alpha);
      const ip::ScatterPlan p = ip::plan_scatter(got, dim, index, src, mode, true, true);
      REQUIRE(p.kernel == ip::ScatterKernel::SortedRows);
      ip::scatter_sorted_reference(p, got, index, src, mode, alpha);
      // Add sums each run in the CPU's order: bitwise for the 4- and 8-byte types. bf16 accumulates in
      // float and rounds once (the CPU rounds after every add): within a rounding of the exact sum.
      if (dt == kBF16 && mode == ScatterMode::Add) {
        Tensor exact = out0.to(kF64);
        kc::scatter(exact, dim, index, src.to(kF64), mode, alpha);
        CHECK(allclose(got.to(kF64), exact, 1.0 / 128, 1e-3));
      } else {
        CHECK(equal(got, want));
      }
    }
  }
}

TEST_CASE("plan index: the deterministic switch and its guard") {
  const bool before = deterministic();
  {
    DeterministicGuard on(true);
    CHECK(deterministic());
    {
      DeterministicGuard off(false);
      CHECK(!deterministic());
    }
    CHECK(deterministic());
  }
  CHECK(deterministic() == before);
}
