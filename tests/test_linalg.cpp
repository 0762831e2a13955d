// Matrix products: PyTorch fixtures, naive-loop references over dtypes and layouts (transposed, sliced,
// broadcast batches), the GEMM kernel's output layouts and beta = 0, zero-size inputs, threads, errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kernels/linalg.hpp"
#include "test_util.hpp"

using namespace ember;
using ember::testing::allclose;
using ember::testing::throws_with;
using ember::testing::tol;

namespace {
const double kNaN = std::numeric_limits<double>::quiet_NaN();

// A random operand: normal floats, or small integers (non-negative for u8).
Tensor operand(const Shape& s, DType dt) {
  if (is_floating(dt)) return randn(s).to(dt);
  if (dt == kU8) return randint(0, 2, s).to(dt);  // sums stay below 256
  return randint(-5, 6, s).to(dt);
}

// Naive reference for a [..., M, K] @ b [..., K, N] (batch dims broadcast), computed in double.
Tensor naive_matmul(const Tensor& a, const Tensor& b) {
  const int64_t m = a.shape()[a.dim() - 2], k = a.shape()[a.dim() - 1], n = b.shape()[b.dim() - 1];
  const int64_t nb = std::max(a.dim(), b.dim()) - 2;
  Shape batch(static_cast<size_t>(nb), 1);
  for (int64_t i = 0; i < nb; ++i) {
    int64_t ia = i - (nb - (a.dim() - 2)), ib = i - (nb - (b.dim() - 2));
    int64_t sa = ia >= 0 ? a.shape()[ia] : 1, sb = ib >= 0 ? b.shape()[ib] : 1;
    batch[i] = sa == 1 ? sb : sa;
  }
  Shape sa = batch, sb = batch, so = batch;
  sa.push_back(m), sa.push_back(k), sb.push_back(k), sb.push_back(n), so.push_back(m), so.push_back(n);
  auto va = a.expand(sa).contiguous().to_vector<double>(), vb = b.expand(sb).contiguous().to_vector<double>();
  int64_t nbatch = 1;
  for (int64_t s : batch) nbatch *= s;
  std::vector<double> out(static_cast<size_t>(nbatch * m * n), 0.0);
  for (int64_t p = 0; p < nbatch; ++p)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t q = 0; q < k; ++q) s += va[(p * m + i) * k + q] * vb[(p * k + q) * n + j];
        out[(p * m + i) * n + j] = s;
      }
  return tensor(out, so, {.dtype = kF64});
}

// The product rounded as the dtype stores it (integers wrap like int64 here; values stay small).
bool close_to(const Tensor& got, const Tensor& ref, DType dt) {
  if (got.dtype() != dt) {
    MESSAGE("dtype " << got.dtype() << " != " << dt);
    return false;
  }
  return allclose(got.to(kF64), ref, tol(dt), tol(dt));
}

}  // namespace

TEST_CASE("matmul matches PyTorch for 1-D, 2-D and broadcast batched operands in float dtypes") {
  auto fx = ember::testing::fixtures("linalg");
  for (int i = 0; fx.count("matmul." + std::to_string(i) + ".a"); ++i) {
    const std::string key = "matmul." + std::to_string(i);
    Tensor a = fx.at(key + ".a"), b = fx.at(key + ".b"), expect = fx.at(key + ".out");
    CAPTURE(key);
    CAPTURE(a.shape());
    CAPTURE(b.shape());
    CHECK(allclose(matmul(a, b), expect, 1e-12, 1e-12));
    for (DType dt : {kF32, kF16, kBF16}) {
      CAPTURE(dt);
      Tensor ad = a.to(dt), bd = b.to(dt);
      Tensor got = matmul(ad, bd);
      CHECK(got.shape() == expect.shape());
      // Against PyTorch's f64 result from the rounded inputs (the rounding of inputs is not ours).
      CHECK(close_to(got, matmul(ad.to(kF64), bd.to(kF64)), dt));
      if (dt == kF32) CHECK(allclose(got.to(kF64), expect, 1e-5, 1e-5));
    }
  }
}

TEST_CASE("matmul by hand: dot, matrix-vector, vector-matrix, the method form") {
  Tensor v = tensor<double>({1, 2, 3}), w = tensor<double>({4, 5, 6});
  Tensor d = matmul(v, w);
  CHECK(d.dim() == 0);
  CHECK(d.item<double>() == 32.0);
  Tensor m = tensor<double>({{1, 2}, {3, 4}});
  Tensor x = tensor<double>({5, 6});
  CHECK(matmul(m, x).to_vector<double>() == std::vector<double>{17, 39});
  CHECK(matmul(x, m).to_vector<double>() == std::vector<double>{23, 34});
  CHECK(m.matmul(m).to_vector<double>() == std::vector<double>{7, 10, 15, 22});
  CHECK(m.mm(m.t()).to_vector<double>() == std::vector<double>{5, 11, 11, 25});
  Tensor mi = tensor<int64_t>({{1, 2}, {3, 4}});
  CHECK(matmul(mi, tensor<int64_t>({5, 6})).to_vector<int64_t>() == std::vector<int64_t>{17, 39});
}

TEST_CASE("matmul against a naive loop in every dtype, with transposed, sliced and broadcast operands") {
  manual_seed(1);
  for (DType dt : {kF32, kF64, kF16, kBF16, kI64, kI32, kU8}) {
    CAPTURE(dt);
    struct Case {
      const char* name;
      Tensor a, b;
    };
    std::vector<Case> cases = {
        {"contiguous", operand({7, 5}, dt), operand({5, 6}, dt)},
        {"a transposed", operand({5, 7}, dt).t(), operand({5, 6}, dt)},
        {"b transposed", operand({7, 5}, dt), operand({6, 5}, dt).t()},
        {"both transposed", operand({5, 7}, dt).t(), operand({6, 5}, dt).t()},
        {"a column-sliced", operand({7, 10}, dt).slice(1, 0, {}, 2), operand({5, 6}, dt)},
        {"b sliced both dims", operand({7, 5}, dt), operand({10, 12}, dt).slice(0, 1, {}, 2).slice(1, 0, {}, 2)},
        {"matrix-vector", operand({7, 5}, dt), operand({5, 1}, dt)},
        {"matrix-vector transposed", operand({5, 7}, dt).t(), operand({5, 1}, dt)},
        {"matrix-strided vector", operand({7, 5}, dt), operand({5, 3}, dt).slice(1, 1, 2)},
        {"vector-matrix", operand({1, 5}, dt), operand({5, 6}, dt)},
        {"vector-matrix transposed", operand({1, 5}, dt), operand({6, 5}, dt).t()},
        {"strided vector-matrix", operand({5, 3}, dt).t().slice(0, 2, 3), operand({5, 6}, dt)},
        {"batched", operand({3, 4, 5}, dt), operand({3, 5, 2}, dt)},
        {"batched transposed", operand({3, 5, 4}, dt).transpose(1, 2), operand({3, 2, 5}, dt).transpose(1, 2)},
        {"batch times matrix (folded)", operand({3, 4, 5}, dt), operand({5, 2}, dt)},
        {"transposed batch times matrix", operand({3, 5, 4}, dt).transpose(1, 2), operand({5, 2}, dt)},
        {"matrix times batch", operand({4, 5}, dt), operand({3, 5, 2}, dt)},
        {"broadcast batch dims", operand({2, 1, 4, 5}, dt), operand({3, 5, 2}, dt)},
        {"expanded batch", operand({1, 4, 5}, dt).expand({3, 4, 5}), operand({3, 5, 2}, dt)},
        {"permuted batch", operand({4, 3, 5}, dt).permute({1, 0, 2}), operand({3, 5, 2}, dt)},
        {"bigger (threaded BLAS)", operand({70, 90}, dt), operand({90, 80}, dt)},
        {"many small (batch-parallel)", operand({64, 16, 16}, dt), operand({64, 16, 16}, dt)},
    };
    for (auto& c : cases) {
      CAPTURE(c.name);
      CHECK(close_to(matmul(c.a, c.b), naive_matmul(c.a, c.b), dt));
    }
  }
}

TEST_CASE("mm, bmm, addmm, baddbmm and outer") {
  auto fx = ember::testing::fixtures("linalg");
  SUBCASE("PyTorch fixtures") {
    for (DType dt : {kF64, kF32, kF16, kBF16}) {
      CAPTURE(dt);
      auto f = [&](const char* k) { return fx.at(k).to(dt); };
      auto ref = [&](const char* k) { return fx.at(k); };
      // f16/bf16 round the inputs and the scaled sum: compare loosely against PyTorch's f64 result.
      double t = dt == kF64 ? 1e-12 : dt == kF32 ? 1e-5 : dt == kF16 ? 1e-2 : 6e-2;
      CHECK(allclose(addmm(f("addmm.input"), f("addmm.a"), f("addmm.b"), 0.5, 2.0).to(kF64), ref("addmm.out"), t, t));
      CHECK(
          allclose(addmm(f("addmm.col"), f("addmm.a"), f("addmm.b"), -1.5, 0.25).to(kF64), ref("addmm.col_out"), t, t));
      CHECK(allclose(baddbmm(f("baddbmm.input"), f("baddbmm.a"), f("baddbmm.b"), 0.5, 2.0).to(kF64), ref("baddbmm.out"),
                     t, t));
      CHECK(allclose(baddbmm(f("baddbmm.row"), f("baddbmm.a"), f("baddbmm.b"), 1.0, -1.0).to(kF64),
                     ref("baddbmm.row_out"), t, t));
      CHECK(allclose(bmm(f("baddbmm.a"), f("baddbmm.b")).to(kF64), naive_matmul(f("baddbmm.a"), f("baddbmm.b")),
                     tol(dt), tol(dt)));
      CHECK(allclose(mm(f("addmm.a"), f("addmm.b")).to(kF64), naive_matmul(f("addmm.a"), f("addmm.b")), tol(dt),
                     tol(dt)));
    }
  }
  SUBCASE("integers: beta and alpha scale exactly") {
    Tensor in = randint(-5, 6, {4}), a = randint(-5, 6, {3, 2}), b = randint(-5, 6, {2, 4});
    Tensor expect = naive_matmul(a, b) * 3.0 + in.to(kF64) * 2.0;
    Tensor got = addmm(in, a, b, 2, 3);
    CHECK(got.dtype() == kI64);
    CHECK(allclose(got.to(kF64), expect, 0, 0));
    Tensor bi = randint(-5, 6, {2, 3, 4}), ba = randint(-5, 6, {2, 3, 5}), bb = randint(-5, 6, {2, 5, 4});
    CHECK(allclose(baddbmm(bi, ba, bb, -1, 2).to(kF64), naive_matmul(ba, bb) * 2.0 - bi.to(kF64), 0, 0));
  }
  SUBCASE("beta = 0 ignores NaN and infinity in input, as PyTorch") {
    for (DType dt : {kF32, kF64, kF16, kBF16}) {
      CAPTURE(dt);
      Tensor a = operand({3, 5}, dt), b = operand({5, 4}, dt);
      Tensor got = addmm(full({3, 4}, kNaN, {.dtype = dt}), a, b, 0, 2);
      CHECK(close_to(got, naive_matmul(a, b) * 2.0, dt));
      Tensor ba = operand({2, 3, 5}, dt), bb = operand({2, 5, 4}, dt);
      Tensor inf = full({4}, std::numeric_limits<double>::infinity(), {.dtype = dt});
      CHECK(close_to(baddbmm(inf, ba, bb, 0, 1), naive_matmul(ba, bb), dt));
    }
  }
  SUBCASE("outer and dot") {
    Tensor a = tensor<double>({1, 2, 3}), b = tensor<double>({4, 5});
    CHECK(outer(a, b).to_vector<double>() == std::vector<double>{4, 5, 8, 10, 12, 15});
    CHECK(outer(tensor<int64_t>({1, 2}), tensor<float>({0.5f})).dtype() == kF32);  // promotes like PyTorch
    for (DType dt : {kF32, kF64, kF16, kBF16, kI64, kI32}) {
      CAPTURE(dt);
      Tensor x = operand({9}, dt), y = operand({18}, dt).slice(0, 0, {}, 2);  // strided
      double ref = 0;
      auto vx = x.to_vector<double>(), vy = y.to_vector<double>();
      for (size_t i = 0; i < vx.size(); ++i) ref += vx[i] * vy[i];
      Tensor got = dot(x, y);
      CHECK(got.dim() == 0);
      CHECK(got.dtype() == dt);
      CHECK(got.item<double>() == doctest::Approx(ref).epsilon(std::max(tol(dt) * 4, 1e-12)).scale(1.0));
      CHECK(x.dot(y).item<double>() == got.item<double>());
    }
    CHECK(dot(zeros({0}), zeros({0})).item<float>() == 0.0f);
  }
}

TEST_CASE("gemm kernel: output layouts, beta, NaN-filled outputs") {
  manual_seed(2);
  for (DType dt : {kF32, kF64, kF16, kI64}) {
    CAPTURE(dt);
    // (m, n, k): the GEMM, matrix-vector and vector-matrix paths.
    for (auto [m_, n_, k] : std::vector<std::array<int64_t, 3>>{{6, 5, 4}, {6, 1, 4}, {1, 5, 4}, {1, 1, 4}}) {
      // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
      const auto& m = m_;
      const auto& n = n_;
      CAPTURE(m);
      CAPTURE(n);
      Tensor a = operand({m, k}, dt), b = operand({k, n}, dt);
      Tensor ref = naive_matmul(a, b);
      if (is_floating(dt)) {
        // Row-major and column-major outputs, pre-filled with NaN: beta = 0 must not read them.
        Tensor row = full({m, n}, kNaN, {.dtype = dt});
        kernels::gemm(row, a, b, 1, 0);
        CHECK(close_to(row, ref, dt));
        Tensor col = full({n, m}, kNaN, {.dtype = dt}).t();
        kernels::gemm(col, a, b, 1, 0);
        CHECK(close_to(col, ref, dt));
      }
      // An output strided in both dims (a slice of a bigger buffer), accumulated into with beta = 2.
      Tensor big = operand({2 * m, 3 * n}, dt);
      Tensor view = big.slice(0, 0, {}, 2).slice(1, 1, {}, 3);
      Tensor before = view.to(kF64, /*copy=*/true), others = big.slice(0, 1, {}, 2).clone();
      kernels::gemm(view, a, b, 3, 2);
      CHECK(close_to(view, before * 2.0 + ref * 3.0, dt));
      CHECK(allclose(big.slice(0, 1, {}, 2).to(kF64), others.to(kF64), 0, 0));  // rows in between untouched
    }
  }
}

TEST_CASE("float32 GEMM of a short A by W^T (a Linear layer's product): tile edges, strides, alpha and beta") {
  // A short A (m <= 48) against a wide W [n, k] with contiguous rows takes kernels/cpu/gemm.cpp's own
  // tile on AVX2 machines (OpenBLAS elsewhere): every edge of its 16-row panels and 6-row tiles, row
  // strides wider than k (slices), one thread and several.
  manual_seed(6);
  for (auto [m_, n_, k_] : std::vector<std::array<int64_t, 3>>{
           {2, 512, 16}, {17, 515, 33}, {16, 520, 100}, {32, 1024, 784}, {48, 601, 100}, {5, 1030, 1024}}) {
    // clang 14 cannot capture a structured binding in a lambda (CAPTURE and INFO are lambdas).
    const auto& k = k_;
    const auto& m = m_;
    const auto& n = n_;
    CAPTURE(m);
    CAPTURE(n);
    CAPTURE(k);
    // float32 rounding of k-term sums of unit normals grows with k; a wrong tile is off by O(1).
    auto near = [k](const Tensor& got, const Tensor& ref) { return allclose(got.to(kF64), ref, 1e-5, 4e-7 * k); };
    Tensor a = operand({m, k + 3}, kF32).slice(1, 0, k);  // row stride k + 3
    Tensor w = operand({n, k + 5}, kF32).slice(1, 0, k);
    Tensor ref = naive_matmul(a, w.t());
    CHECK(near(matmul(a, w.t()), ref));
    Tensor out = full({m, n}, kNaN);  // beta = 0 must not read it
    kernels::gemm(out, a, w.t(), 1, 0);
    CHECK(near(out, ref));
    Tensor acc = operand({m, n}, kF32), before = acc.to(kF64, /*copy=*/true);
    kernels::gemm(acc, a, w.t(), 3, 2);
    CHECK(near(acc, before * 2.0 + ref * 3.0));
  }
  const int threads = get_num_threads();
  set_num_threads(1);
  Tensor a = operand({32, 784}, kF32), w = operand({1024, 784}, kF32);
  Tensor one = matmul(a, w.t());
  set_num_threads(threads);
  CHECK(allclose(one.to(kF64), naive_matmul(a, w.t()), 1e-5, 4e-7 * 784));
}

TEST_CASE("matmul of zero-size operands") {
  for (DType dt : {kF32, kF64, kF16, kBF16, kI64}) {
    CAPTURE(dt);
    Tensor z = matmul(ones({3, 0}, {.dtype = dt}), ones({0, 4}, {.dtype = dt}));
    CHECK(z.shape() == Shape{3, 4});
    CHECK(allclose(z.to(kF64), zeros({3, 4}, {.dtype = kF64}), 0, 0));  // k = 0 sums nothing
    CHECK(matmul(ones({0, 3}, {.dtype = dt}), ones({3, 4}, {.dtype = dt})).shape() == Shape{0, 4});
    CHECK(matmul(ones({3, 2}, {.dtype = dt}), ones({2, 0}, {.dtype = dt})).shape() == Shape{3, 0});
    CHECK(bmm(ones({0, 2, 3}, {.dtype = dt}), ones({0, 3, 4}, {.dtype = dt})).shape() == Shape{0, 2, 4});
    CHECK(matmul(ones({2, 0, 3}, {.dtype = dt}), ones({3}, {.dtype = dt})).shape() == Shape{2, 0});
    Tensor bz = matmul(ones({2, 3, 0}, {.dtype = dt}), ones({2, 0, 4}, {.dtype = dt}));
    CHECK(allclose(bz.to(kF64), zeros({2, 3, 4}, {.dtype = kF64}), 0, 0));
    Tensor added = addmm(full({3, 4}, 2, {.dtype = dt}), ones({3, 0}, {.dtype = dt}), ones({0, 4}, {.dtype = dt}), 3);
    CHECK(allclose(added.to(kF64), full({3, 4}, 6.0, {.dtype = kF64}), 0, 0));  // beta * input
  }
}

TEST_CASE("set_num_threads limits the threads of every kernel") {
  const int original = get_num_threads();
  CHECK(original >= 1);
  set_num_threads(1);
  CHECK(get_num_threads() == 1);
  Tensor a = randn({64, 16, 16}), b = randn({64, 16, 16});
  CHECK(allclose(matmul(a, b).to(kF64), naive_matmul(a, b), 1e-5, 1e-5));
  Tensor big_a = randn({80, 90}), big_b = randn({90, 70});
  CHECK(allclose(matmul(big_a, big_b).to(kF64), naive_matmul(big_a, big_b), 1e-5, 1e-5));
  set_num_threads(original);
  CHECK(get_num_threads() == original);
  CHECK_THROWS_AS(set_num_threads(0), ValueError);
}

TEST_CASE("matrix product errors name the op and the operands") {
  Tensor a = ones({2, 3}), b = ones({4, 5});
  CHECK(throws_with<ShapeError>([&] { matmul(a, b); }, "[matmul] shapes [2, 3] and [4, 5] cannot be multiplied"));
  CHECK(throws_with<ShapeError>([&] { mm(a, b); }, "[mm] shapes [2, 3] and [4, 5] cannot be multiplied"));
  CHECK(throws_with<ShapeError>([&] { matmul(ones({3}), ones({4})); }, "[matmul] shapes [3] and [4]"));
  CHECK(throws_with<ShapeError>([&] { matmul(ones({3}), ones({4, 5})); }, "[matmul]"));
  CHECK(throws_with<ShapeError>([&] { matmul(ones({}), ones({3})); }, "at least 1 dim"));
  CHECK_THROWS_AS(matmul(ones({3}), ones({})), ShapeError);
  CHECK_THROWS_AS(matmul(ones({2, 2, 3}), ones({3, 3, 4})), ShapeError);  // batch dims do not broadcast
  CHECK(throws_with<DTypeError>([&] { matmul(ones({2, 3}), ones({3, 4}, {.dtype = kF64})); }, "float64"));
  CHECK_THROWS_AS(matmul(ones({2, 3}), ones({3, 4}, {.dtype = kI64})), DTypeError);
  CHECK_THROWS_AS(matmul(ones({2, 3}, {.dtype = kBool}), ones({3, 4}, {.dtype = kBool})), DTypeError);
  CHECK_THROWS_AS(mm(ones({2, 2, 3}), ones({3, 4})), ShapeError);
  CHECK_THROWS_AS(mm(ones({3}), ones({3, 4})), ShapeError);
  CHECK_THROWS_AS(bmm(ones({2, 3}), ones({3, 4})), ShapeError);
  CHECK_THROWS_AS(bmm(ones({2, 2, 3}), ones({1, 3, 4})), ShapeError);  // bmm does not broadcast
  CHECK_THROWS_AS(bmm(ones({2, 2, 3}), ones({2, 4, 4})), ShapeError);
  CHECK_THROWS_AS(addmm(ones({5}), ones({3, 2}), ones({2, 4})), ShapeError);
  CHECK_THROWS_AS(addmm(ones({2, 3, 4}), ones({3, 2}), ones({2, 4})), ShapeError);
  CHECK_THROWS_AS(addmm(ones({4}, {.dtype = kF64}), ones({3, 2}), ones({2, 4})), DTypeError);
  CHECK_THROWS_AS(addmm(ones({4}), ones({3, 2}), ones({3, 4})), ShapeError);
  CHECK_THROWS_AS(baddbmm(ones({3, 3, 4}), ones({2, 3, 2}), ones({2, 2, 4})), ShapeError);
  CHECK_THROWS_AS(baddbmm(ones({4}), ones({3, 2}), ones({2, 4})), ShapeError);
  CHECK_THROWS_AS(dot(ones({2, 2}), ones({2})), ShapeError);
  CHECK_THROWS_AS(dot(ones({2}), ones({3})), ShapeError);
  CHECK_THROWS_AS(dot(ones({2}, {.dtype = kI64}), ones({2})), DTypeError);
  CHECK_THROWS_AS(outer(ones({2, 1}), ones({2})), ShapeError);
  CHECK_THROWS_AS(matmul(Tensor(), ones({2})), ValueError);
}

extern "C" char* openblas_get_corename(void);

TEST_CASE("OpenBLAS runs its AVX kernels on CPUs newer than itself (not the SSE3 fallback)") {
  // Debian's OpenBLAS 0.3.21 picks "Prescott" on Sapphire/Emerald Rapids: sgemm about 6x slower.
  (void)matmul(ones({2, 2}), ones({2, 2}));
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (std::getenv("OPENBLAS_CORETYPE") == nullptr && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    CHECK(std::string(openblas_get_corename()) != "Prescott");
#endif
}
