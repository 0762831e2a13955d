// The host-side planning of the cuBLASLt GEMMs (kernels/linalg_plan.hpp), run on the CPU: the chosen
// layouts, transposes, batch strides, copies, folding, types and epilogues; every plan obeys cuBLASLt's
// rules (ld >= max(1, rows)); D's layout writes each output element exactly once and A's and B's
// layouts read only elements of their operands; and the plan, evaluated element by element exactly as
// cuBLASLt reads it (linalg_plan::lt_element, also the CUDA reference kernel), equals cpu::gemm.
#include <map>
#include <random>
#include <set>

#include "kernels/elementwise.hpp"
#include "kernels/linalg.hpp"
#include "kernels/linalg_math.hpp"
#include "kernels/linalg_plan.hpp"
#include "test_util.hpp"

using namespace ember;
using namespace ember::testing;
namespace lp = ember::kernels::linalg_plan;
using lp::Epilogue;
using lp::Op;

namespace {

lp::Plan plan_of(const Tensor& out, const Tensor& a, const Tensor& b, Epilogue e = Epilogue::None, bool tf32 = false) {
  return lp::plan_gemm(lp::make_problem(out, a, b, e, tf32));
}

// Element offsets of a tensor (relative to its first element), each once per index.
std::multiset<int64_t> offsets(const Tensor& t) {
  std::multiset<int64_t> s;
  for_each_index(t.shape(), [&](const Shape& idx) {
    int64_t off = 0;
    for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * t.strides()[d];
    s.insert(off);
  });
  return s;
}

// cuBLASLt's rules and the plan's own consistency, then: D covers out exactly once; A and B read only
// elements of the operands they stand for.
void check_plan(const lp::Plan& p, const Tensor& out, const Tensor& a, const Tensor& b) {
  for (const lp::Layout* l : {&p.la, &p.lb, &p.lc}) {
    CHECK(l->ld >= std::max<int64_t>(1, l->rows));
    CHECK(l->rows >= 0);
    CHECK(l->cols >= 0);
  }
  CHECK((p.op_a == Op::N ? std::make_pair(p.la.rows, p.la.cols) : std::make_pair(p.la.cols, p.la.rows)) ==
        std::make_pair(p.m, p.k));
  CHECK((p.op_b == Op::N ? std::make_pair(p.lb.rows, p.lb.cols) : std::make_pair(p.lb.cols, p.lb.rows)) ==
        std::make_pair(p.k, p.n));
  CHECK(p.lc.rows == p.m);
  CHECK(p.lc.cols == p.n);
  CHECK(p.chunk == std::min(p.batch, lp::kMaxBatchChunk));
  CHECK(p.m * p.n * p.batch == out.numel());

  std::map<int64_t, int> hits;
  for (int64_t o : offsets(out)) hits[o] += 0;
  CHECK(hits.size() == static_cast<size_t>(out.numel()));  // a proper output: no element twice
  for (int64_t bi = 0; bi < p.batch; ++bi)
    for (int64_t j = 0; j < p.n; ++j)
      for (int64_t i = 0; i < p.m; ++i) {
        auto it = hits.find(bi * p.lc.batch_stride + i + j * p.lc.ld);
        REQUIRE(it != hits.end());
        ++it->second;
      }
  for (const auto& [off, n] : hits) CHECK(n == 1);

  const Tensor& ta = p.swap ? b : a;
  const Tensor& tb = p.swap ? a : b;
  const std::multiset<int64_t> oa = offsets(ta), ob = offsets(tb);
  for (int64_t bi = 0; bi < p.batch; ++bi)
    for (int64_t kk = 0; kk < p.k; ++kk) {
      for (int64_t i = 0; i < p.m; ++i)
        CHECK(oa.count(bi * p.la.batch_stride + (p.op_a == Op::N ? i + kk * p.la.ld : kk + i * p.la.ld)) > 0);
      for (int64_t j = 0; j < p.n; ++j)
        CHECK(ob.count(bi * p.lb.batch_stride + (p.op_b == Op::N ? kk + j * p.lb.ld : j + kk * p.lb.ld)) > 0);
    }
}

Tensor contiguous_copy(const Tensor& t) {
  Tensor d = make_tensor(t.shape(), t.dtype());
  kernels::copy(d, t);
  return d;
}

// gemm(out, a, b) as kernels/cuda/linalg.cu runs it: copies and a second plan, then every element of D
// by lt_element. Returns the plan that ran.
template <class T>
lp::Plan run_plan(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& bias, double alpha, double beta,
                  Epilogue e = Epilogue::None) {
  lp::Plan p = plan_of(out, a, b, e);
  if (p.empty) return p;
  const bool beta_zero = beta == 0.0;
  if (p.copy_a || p.copy_b || p.copy_c) {
    const Tensor a2 = p.copy_a ? contiguous_copy(a) : a, b2 = p.copy_b ? contiguous_copy(b) : b;
    const Tensor c2 = !p.copy_c ? out : beta_zero ? make_tensor(out.shape(), out.dtype()) : contiguous_copy(out);
    const lp::Plan again = run_plan<T>(c2, a2, b2, bias, alpha, beta, e);
    CHECK_FALSE((again.copy_a || again.copy_b || again.copy_c));  // one round of copies always suffices
    if (p.copy_c) kernels::copy(out, c2);
    return p;
  }
  check_plan(p, out, a, b);
  const T* A = (p.swap ? b : a).template data_ptr<T>();
  const T* B = (p.swap ? a : b).template data_ptr<T>();
  T* C = out.data_ptr<T>();
  const T* pbias = bias.defined() ? bias.data_ptr<T>() : nullptr;
  lp::Plan q = p;
  if (alpha == 0.0) q.k = 0;
  using R = lp::ref_acc_t<T>;
  const R ra = std::is_integral_v<T> ? R(static_cast<T>(alpha)) : R(alpha);
  const R rb = std::is_integral_v<T> ? R(static_cast<T>(beta)) : R(beta);
  for (int64_t bi = 0; bi < q.batch; ++bi)
    for (int64_t j = 0; j < q.n; ++j)
      for (int64_t i = 0; i < q.m; ++i)
        C[bi * q.lc.batch_stride + i + j * q.lc.ld] = lp::lt_element<T>(q, A, B, C, pbias, ra, rb, beta_zero, bi, i, j);
  return p;
}

// The same product by cpu::gemm into a contiguous copy of out, and by the plan into out; compared.
template <class T>
void check_against_cpu(const Tensor& out, const Tensor& a, const Tensor& b, double alpha, double beta,
                       double rtol = 1e-5) {
  const Tensor want = contiguous_copy(out);
  kernels::cpu::gemm(want, a, b, alpha, beta);
  run_plan<T>(out, a, b, Tensor(), alpha, beta);
  CHECK(allclose(out, want, rtol, rtol));
}

Tensor randn_t(const Shape& s, DType dt = kF32) { return randn(s, {.dtype = kF64}).to(dt); }

}  // namespace

TEST_CASE("linalg plan: contiguous row-major product is column-major C^T = B^T A^T, no transposes") {
  Tensor a = randn_t({4, 6}), b = randn_t({6, 5}), out = zeros({4, 5});
  const lp::Plan p = plan_of(out, a, b);
  CHECK(p.swap);
  CHECK_FALSE((p.copy_a || p.copy_b || p.copy_c || p.folded));
  CHECK((p.m == 5 && p.n == 4 && p.k == 6));
  CHECK((p.op_a == Op::N && p.op_b == Op::N));
  CHECK((p.la.rows == 5 && p.la.cols == 6 && p.la.ld == 5));  // b [6, 5] row-major = B^T column-major
  CHECK((p.lb.rows == 6 && p.lb.cols == 4 && p.lb.ld == 6));
  CHECK((p.lc.rows == 5 && p.lc.cols == 4 && p.lc.ld == 5));
  CHECK(p.batch == 1);
  CHECK((p.data == lp::DataType::F32 && p.compute == lp::ComputeType::F32 && p.scale == lp::DataType::F32));
  CHECK(lp::describe(p) == "m=5 n=4 k=6 batch=1 float32, A op N, B op N, epilogue none");  // for error messages
  check_against_cpu<float>(out, a, b, 1, 0);
}

TEST_CASE("linalg plan: transposed operands go by transpose flag, sliced ones by leading dim") {
  Tensor a = randn_t({6, 4}).t(), b = randn_t({5, 6}).t(), out = zeros({4, 5});  // Linear's x @ w.t()
  lp::Plan p = plan_of(out, a, b);
  CHECK_FALSE((p.copy_a || p.copy_b));
  CHECK((p.op_a == Op::T && p.la.ld == 6));  // b = w.t(): B^T = w row-major, read transposed
  CHECK((p.op_b == Op::T && p.lb.ld == 4));
  check_against_cpu<float>(out, a, b, 1, 0);

  Tensor wide_a = randn_t({4, 9}).narrow(1, 0, 6), wide_b = randn_t({6, 8}).narrow(1, 0, 5);
  p = plan_of(out, wide_a, wide_b);
  CHECK_FALSE((p.copy_a || p.copy_b));
  CHECK((p.op_a == Op::N && p.la.ld == 8 && p.op_b == Op::N && p.lb.ld == 9));
  check_against_cpu<float>(out, wide_a, wide_b, 2, 0);

  // Every other column: strided in both dims, cuBLASLt cannot read it; a copy, then no copy.
  Tensor step = randn_t({4, 12}).slice(1, 0, std::nullopt, 2);
  p = plan_of(out, step, b);
  CHECK(p.copy_a);
  CHECK_FALSE(p.copy_b);
  check_against_cpu<float>(out, step, b, 1, 0);
}

TEST_CASE("linalg plan: the output's layout picks the orientation; an epilogue needs a row-major output") {
  Tensor a = randn_t({4, 6}), b = randn_t({6, 5});
  Tensor out_t = zeros({5, 4}).t();  // column-major output
  lp::Plan p = plan_of(out_t, a, b);
  CHECK_FALSE(p.swap);
  CHECK_FALSE(p.copy_c);
  CHECK((p.m == 4 && p.n == 5 && p.lc.ld == 4));
  CHECK((p.op_a == Op::T && p.op_b == Op::T));
  check_against_cpu<float>(out_t, a, b, 1.5, 0);
  CHECK(plan_of(out_t, a, b, Epilogue::Bias).copy_c);  // the bias runs along D's rows: Ember's columns

  Tensor out_wide = randn_t({4, 9}).narrow(1, 0, 5);
  p = plan_of(out_wide, a, b);
  CHECK((p.swap && p.lc.ld == 9 && !p.copy_c));
  check_against_cpu<float>(out_wide, a, b, 1, 0.5);

  Tensor out_step = randn_t({4, 10}).slice(1, 0, std::nullopt, 2);
  CHECK(plan_of(out_step, a, b).copy_c);
  check_against_cpu<float>(out_step, a, b, 1, 0.5);  // beta != 0: the copy carries out's values in
}

TEST_CASE("linalg plan: batch dims that collapse, broadcast batches, folding, and batch dims that do not collapse") {
  // [2, 3] batch, contiguous: one batch stride.
  Tensor a = randn_t({2, 3, 4, 6}), b = randn_t({2, 3, 6, 5}), out = zeros({2, 3, 4, 5});
  lp::Plan p = plan_of(out, a, b);
  CHECK((p.batch == 6 && !p.folded && p.la.batch_stride == 30 && p.lb.batch_stride == 24 && p.lc.batch_stride == 20));
  check_against_cpu<float>(out, a, b, 1, 0);

  // b shared by the batch: a's and out's batches stack onto the rows of one GEMM.
  Tensor w = randn_t({6, 5}).expand({2, 3, 6, 5});
  p = plan_of(out, a, w);
  CHECK((p.folded && p.batch == 1 && p.n == 24 && p.m == 5));
  check_against_cpu<float>(out, a, w, 1, 0);

  // a shared (stride 0) and b batched: a batch stride of 0, no fold.
  Tensor a0 = randn_t({4, 6}).expand({2, 3, 4, 6});
  p = plan_of(out, a0, b);
  CHECK((!p.folded && !p.copy_a && p.batch == 6 && p.swap && p.lb.batch_stride == 0));
  check_against_cpu<float>(out, a0, b, 1, 0);

  // Broadcast over one batch dim only, and permuted batch dims: no single stride, so copied.
  Tensor half_b = randn_t({2, 1, 4, 6}).expand({2, 3, 4, 6});
  CHECK(plan_of(out, half_b, b).copy_a);
  check_against_cpu<float>(out, half_b, b, 1, 0);
  Tensor perm = randn_t({3, 2, 6, 5}).transpose(0, 1);
  CHECK(plan_of(out, a, perm).copy_b);
  check_against_cpu<float>(out, a, perm, 1, 0);
  Tensor out_perm = zeros({3, 2, 4, 5}).transpose(0, 1);
  CHECK(plan_of(out_perm, a, b).copy_c);
  check_against_cpu<float>(out_perm, a, b, 1, 0);

  // Size-1 batch dims do not break collapsing, whatever their strides.
  Tensor a1 = randn_t({2, 1, 3, 4, 6}), b1 = randn_t({2, 1, 3, 6, 5}), out1 = zeros({2, 1, 3, 4, 5});
  p = plan_of(out1, a1, b1);
  CHECK((!p.copy_a && !p.copy_b && !p.copy_c && p.batch == 6));
}

TEST_CASE("linalg plan: 1-row and 1-column matrices keep ld >= max(1, rows)") {
  for (auto [m_, n_, k_] : {std::tuple{1, 5, 6}, {4, 1, 6}, {4, 5, 1}, {1, 1, 6}, {1, 1, 1}, {1, 5, 1}}) {
    // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
    const auto& k = k_;
    const auto& m = m_;
    const auto& n = n_;
    CAPTURE(m);
    CAPTURE(n);
    CAPTURE(k);
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        Tensor a = ta ? randn_t({k, m}).t() : randn_t({m, k});
        Tensor b = tb ? randn_t({n, k}).t() : randn_t({k, n});
        Tensor out = zeros({m, n});
        const lp::Plan p = plan_of(out, a, b);
        CHECK_FALSE((p.copy_a || p.copy_b || p.copy_c));
        check_against_cpu<float>(out, a, b, 1, 0);  // check_plan asserts the ld rule
      }
  }
  // A matrix-vector product whose vector is a column of a wider matrix (stride != 1 down the column).
  Tensor x = randn_t({6, 3}).narrow(1, 1, 1);
  Tensor a = randn_t({4, 6}), out = zeros({4, 1});
  check_against_cpu<float>(out, a, x, 1, 0);
}

TEST_CASE("linalg plan: dtypes map to cuBLASLt data, compute and scale types; TF32 only when allowed") {
  Tensor out = zeros({4, 5});
  auto plan_dt = [&](DType dt, bool tf32 = false) {
    return plan_of(out.to(dt), randn_t({4, 6}, dt), randn_t({6, 5}, dt), Epilogue::None, tf32);
  };
  CHECK(plan_dt(kF32, true).compute == lp::ComputeType::F32FastTF32);
  CHECK(plan_dt(kF32).compute == lp::ComputeType::F32);
  const lp::Plan d = plan_dt(kF64, true);
  CHECK((d.data == lp::DataType::F64 && d.compute == lp::ComputeType::F64 && d.scale == lp::DataType::F64));
  for (DType dt : {kF16, kBF16}) {
    const lp::Plan h = plan_dt(dt, true);  // f32 accumulation and scale, never TF32 (not an f32 product)
    CHECK(h.data == (dt == kF16 ? lp::DataType::F16 : lp::DataType::BF16));
    CHECK((h.compute == lp::ComputeType::F32 && h.scale == lp::DataType::F32 && h.lt_types));
  }
  CHECK_FALSE(plan_dt(kI64).lt_types);  // integers: the reference kernel
  CHECK(lp::supports_epilogue(kF32));
  CHECK(lp::supports_epilogue(kBF16));
  CHECK_FALSE(lp::supports_epilogue(kF64));
  CHECK(plan_of(out.to(kF64), randn_t({4, 6}, kF64), randn_t({6, 5}, kF64), Epilogue::Bias).epilogue == Epilogue::None);
}

TEST_CASE("linalg plan: the bias-gradient epilogues come only with the transposes cuBLASLt takes") {
  // The weight gradient of a [M, k] @ [k, n] product with its bias gradient, as core/ops/linalg.cpp asks
  // for it: gw = a^T @ g (BGRADB) for a row-major weight, (g^T @ a)^T (BGRADA) for a column-major one.
  for (int64_t rows : {1, 4, 64}) {
    CAPTURE(rows);
    const Tensor a = randn_t({rows, 8}, kF32), g = randn_t({rows, 16}, kF32);
    const lp::Plan b = plan_of(empty({8, 16}), a.mT(), g, Epilogue::BgradB);
    const lp::Plan t = plan_of(empty({16, 8}), g.mT(), a, Epilogue::BgradA);
    for (const lp::Plan& p : {b, t}) {
      CHECK(((p.epilogue == Epilogue::BgradA && p.op_a == Op::N) ||
             (p.epilogue == Epilogue::BgradB && p.op_b == Op::T) ||
             (p.epilogue == Epilogue::None && p.epilogue_refused != nullptr)));
      if (rows > 1) CHECK(p.epilogue != Epilogue::None);  // the usual case stays fused
    }
  }
  // A gradient stored transposed ([16, 4] memory read as [4, 16]) makes cuBLASLt's B untransposed under
  // BGRADB: refused, and said why.
  const Tensor a = randn_t({4, 8}, kF32), g = randn_t({16, 4}, kF32).mT();
  const lp::Plan s = plan_of(empty({16, 8}), g.mT(), a, Epilogue::BgradA);
  CHECK((s.epilogue == Epilogue::None && s.epilogue_refused != nullptr && !s.copy_a && !s.copy_b));
}

TEST_CASE("linalg plan: alignment, batch chunks and the heuristic cache key") {
  CHECK(lp::alignment(0) == 16);
  CHECK(lp::alignment(256) == 16);
  CHECK(lp::alignment(24) == 8);
  CHECK(lp::alignment(6) == 2);
  CHECK(lp::alignment(3) == 1);

  lp::Problem pr;
  pr.batch = {70000};
  pr.m = 2, pr.n = 3, pr.k = 4;
  pr.a = {{8}, 4, 1, 0};
  pr.b = {{12}, 3, 1, 0};
  pr.c = {{6}, 3, 1, 2};  // 2-byte aligned output
  pr.dtype = kF16;
  lp::Plan p = lp::plan_gemm(pr);
  CHECK((p.batch == 70000 && p.chunk == lp::kMaxBatchChunk && p.align_c == 2 && p.align_a == 16));

  const lp::Key base = lp::cache_key(p);
  auto differs = [&](auto edit) {
    lp::Plan q = p;
    edit(q);
    return lp::cache_key(q) != base;
  };
  CHECK(differs([](lp::Plan& q) { q.la.ld += 1; }));
  CHECK(differs([](lp::Plan& q) { q.op_b = Op::T; }));
  CHECK(differs([](lp::Plan& q) { q.chunk = 5; }));
  CHECK(differs([](lp::Plan& q) { q.epilogue = Epilogue::GeluBias; }));
  CHECK(differs([](lp::Plan& q) { q.compute = lp::ComputeType::F32FastTF32; }));
  CHECK(differs([](lp::Plan& q) { q.align_b = 4; }));
  CHECK(differs([](lp::Plan& q) { q.lc.batch_stride = 7; }));
  CHECK_FALSE(differs([](lp::Plan&) {}));
}

TEST_CASE("linalg plan: bias and GELU epilogues evaluated from the plan match cpu::gemm_bias") {
  for (bool gelu : {false, true}) {
    Tensor a = randn_t({2, 4, 6}), b = randn_t({6, 5}).expand({2, 6, 5}), bias = randn_t({5});
    Tensor out = zeros({2, 4, 5}), want = zeros({2, 4, 5});
    kernels::cpu::gemm_bias(want, a, b, bias, 0.5, gelu);
    const lp::Plan p = run_plan<float>(out, a, b, bias, 0.5, 0, gelu ? Epilogue::GeluBias : Epilogue::Bias);
    CHECK(p.epilogue == (gelu ? Epilogue::GeluBias : Epilogue::Bias));
    CHECK(p.folded);
    CHECK(allclose(out, want, 1e-5, 1e-5));
  }
}

TEST_CASE("linalg plan: random layouts, batches and dtypes evaluate to cpu::gemm") {
  std::mt19937 rng(1234);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  const int64_t dims[] = {1, 2, 3, 5};
  const std::vector<Shape> batches = {{}, {3}, {2, 3}};
  // 0 contiguous, 1 transposed, 2 wide rows (ld > cols), 3 every other column (copy), 4 broadcast batch,
  // 5 broadcast over one batch dim, 6 permuted batch dims.
  auto make = [&](const Shape& batch, int64_t r, int64_t c, int kind, DType dt) {
    auto full = [&](Shape tail) {
      Shape s = batch;
      for (int64_t d : tail) s.push_back(d);
      return s;
    };
    auto vals = [&](const Shape& s) {
      return dt == kI64 ? randint(-4, 5, s, {.dtype = kI64}) : randn(s, {.dtype = kF64}).to(dt);
    };
    if (kind == 1) return vals(full({c, r})).transpose(-1, -2);
    if (kind == 2) return vals(full({r, c + 3})).narrow(-1, 0, c);
    if (kind == 3) return vals(full({r, 2 * c})).slice(-1, 0, std::nullopt, 2);
    if (kind == 4) return vals({r, c}).expand(full({r, c}));
    if (kind == 5 && batch.size() == 2) return vals({batch[0], 1, r, c}).expand(full({r, c}));
    if (kind == 6 && batch.size() == 2) return vals({batch[1], batch[0], r, c}).transpose(0, 1);
    return vals(full({r, c}));
  };
  int copies = 0, folds = 0;
  for (int it = 0; it < 300; ++it) {
    const DType dt = it % 3 == 0 ? kF64 : it % 3 == 1 ? kF32 : kI64;
    const Shape batch = batches[pick(3)];
    const int64_t m = dims[pick(4)], n = dims[pick(4)], k = dims[pick(4)];
    const int ka = pick(7), kb = pick(7), kc = std::vector<int>{0, 1, 2, 3, 6}[pick(5)];
    const double alpha = std::vector<double>{1, 2, 0}[pick(3)], beta = std::vector<double>{0, 1, -3}[pick(3)];
    CAPTURE(it);
    Tensor a = make(batch, m, k, ka, dt), b = make(batch, k, n, kb, dt), out = make(batch, m, n, kc, dt);
    const lp::Plan p = plan_of(out, a, b);
    copies += p.copy_a || p.copy_b || p.copy_c;
    folds += p.folded;
    if (dt == kI64)
      check_against_cpu<int64_t>(out, a, b, alpha, beta, 0);
    else if (dt == kF32)
      check_against_cpu<float>(out, a, b, alpha, beta, 1e-5);
    else
      check_against_cpu<double>(out, a, b, alpha, beta, 1e-12);
  }
  CHECK(copies > 20);  // the cases reach the copy paths and the fold
  CHECK(folds > 5);
}

TEST_CASE("linalg plan: half and bfloat16 plans accumulate in f32 like cpu::gemm") {
  for (DType dt : {kF16, kBF16}) {
    Tensor a = randn_t({3, 4, 6}, dt), b = randn_t({3, 5, 6}, dt).transpose(-1, -2),
           out = zeros({3, 4, 5}, {.dtype = dt});
    const Tensor want = contiguous_copy(out);
    kernels::cpu::gemm(want, a, b, 1, 0);
    if (dt == kF16)
      run_plan<half>(out, a, b, Tensor(), 1, 0);
    else
      run_plan<bfloat16>(out, a, b, Tensor(), 1, 0);
    CHECK(allclose(out.to(kF32), want.to(kF32), 1e-2, 1e-2));
  }
}

TEST_CASE("linalg: set_float32_matmul_precision takes highest, high and medium") {
  CHECK(get_float32_matmul_precision() == "highest");
  CHECK_FALSE(float32_matmul_allows_tf32());
  set_float32_matmul_precision("high");
  CHECK(get_float32_matmul_precision() == "high");
  CHECK(float32_matmul_allows_tf32());
  set_float32_matmul_precision("medium");
  CHECK(float32_matmul_allows_tf32());
  CHECK_THROWS_AS(set_float32_matmul_precision("fast"), ValueError);
  CHECK_THROWS_WITH(set_float32_matmul_precision("HIGH"), doctest::Contains("set_float32_matmul_precision"));
  CHECK(get_float32_matmul_precision() == "medium");  // a refused value leaves the setting alone
  set_float32_matmul_precision("highest");
  CHECK_FALSE(float32_matmul_allows_tf32());
  // The CPU ignores it: f32 products stay exact to f32 rounding.
  set_float32_matmul_precision("medium");
  Tensor a = randn_t({8, 8}), b = randn_t({8, 8});
  CHECK(allclose(matmul(a, b), matmul(a.to(kF64), b.to(kF64)).to(kF32), 1e-5, 1e-5));
  set_float32_matmul_precision("highest");
}
