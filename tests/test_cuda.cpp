// CUDA backend: every elementwise op, copies, fills and random draws on the GPU against the CPU
// results, the caching allocator's statistics and OOM path, and device errors. Without a CUDA device
// (or in a CPU-only build) each case prints why it is skipped and returns.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>

#include "kernels/cuda_device.hpp"
#include "test_dir.hpp"
#include "test_util.hpp"

using namespace ember;
using ember::testing::allclose;
using ember::testing::equal;

namespace {

const Device kCuda{Device::Kind::CUDA, 0};
const std::vector<DType> kAll = {kF32, kF64, kF16, kBF16, kI32, kI64, kU8, kBool};

// GPU and CPU results agree to the accuracy of the result dtype (CUDA's math library and FMA
// contraction differ from glibc by a few ulps; 2-byte floats by one rounding of the float result).
bool close(const Tensor& gpu, const Tensor& cpu) {
  CHECK(gpu.device() == kCuda);
  CHECK(gpu.dtype() == cpu.dtype());
  Tensor g = gpu.cpu();
  DType dt = cpu.dtype();
  if (dt == kF64) return allclose(g, cpu, 1e-10, 1e-10);
  if (dt == kF32) return allclose(g, cpu, 2e-5, 1e-5);
  if (dt == kF16) return allclose(g, cpu, 2e-3, 1e-3);
  if (dt == kBF16) return allclose(g, cpu, 1.6e-2, 1e-2);
  return equal(g, cpu);
}

// Inputs of dtype dt: normal floats, or integers in a range every op accepts.
Tensor input(const Shape& shape, DType dt, bool positive = false) {
  if (dt == kBool) return randint(0, 2, shape).to(kBool);
  if (dt == kU8) return randint(positive ? 1 : 0, 40, shape).to(kU8);
  if (is_integral(dt)) return positive ? randint(1, 6, shape, {.dtype = dt}) : randint(-20, 20, shape, {.dtype = dt});
  Tensor x = randn(shape, {.dtype = kF64}) * 2.0;
  if (positive) x = abs(x) + 0.5;
  return x.to(dt);
}

using Unary = std::function<Tensor(const Tensor&)>;
using Binary = std::function<Tensor(const Tensor&, const Tensor&)>;

// Runs f on the CPU tensor and on its GPU copy; when the CPU rejects the dtype, so must the GPU.
void check_unary(const std::string& name, const Unary& f, const Tensor& cpu_in, const Tensor& gpu_in) {
  std::string what = name + " on " + describe(gpu_in);
  CAPTURE(what);
  Tensor want;
  try {
    want = f(cpu_in);
  } catch (const Error&) {
    CHECK_THROWS_AS(f(gpu_in), Error);
    return;
  }
  CHECK(close(f(gpu_in), want));
}

void check_binary(const std::string& name, const Binary& f, const Tensor& a, const Tensor& b, const Tensor& ga,
                  const Tensor& gb) {
  std::string what = name + " on " + describe(ga) + " and " + describe(gb);
  CAPTURE(what);
  Tensor want;
  try {
    want = f(a, b);
  } catch (const Error&) {
    CHECK_THROWS_AS(f(ga, gb), Error);
    return;
  }
  CHECK(close(f(ga, gb), want));
}

}  // namespace

TEST_CASE("sources: CUDA host code takes device addresses through dptr only") {
  // Tensor::data_ptr<T>() is for host memory (it raises DeviceError on a CUDA tensor). The CUDA backend
  // takes device addresses through kernels/cuda/runtime.hpp's dptr<T>, which raises for a tensor that is
  // not on a CUDA device or whose dtype is not T, instead of handing a kernel a host address. CPU tests
  // cannot run that code, so this reads it.
  namespace fs = std::filesystem;
  const fs::path root = fs::path(EMBER_TEST_DIR).parent_path();
  std::vector<fs::path> files{root / "dist" / "nccl.cpp"};
  for (const auto& e : fs::directory_iterator(root / "kernels" / "cuda")) files.push_back(e.path());
  REQUIRE(files.size() > 10);
  int with_dptr = 0;
  for (const fs::path& f : files) {
    std::ifstream in(f);
    REQUIRE_MESSAGE(in.good(), f);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK_MESSAGE(text.find("data_ptr<") == std::string::npos, f, " calls data_ptr");
    if (f.parent_path().filename() == "cuda" && f.filename() != "runtime.hpp")
      CHECK_MESSAGE(text.find("raw_data()") == std::string::npos, f, " calls raw_data() instead of dptr");
    with_dptr += text.find("dptr<") != std::string::npos;
  }
  CHECK(with_dptr >= 12);
}

TEST_CASE("cuda: without a device, CUDA tensors raise DeviceError") {
  if (kernels::cuda::device_count() > 0) {
    MESSAGE("CUDA tests skipped: a device is present (this case checks the no-device path)");
    return;
  }
  CHECK(!kernels::cuda::is_available());
  CHECK_THROWS_AS(empty({2}, {.device = kCuda}), DeviceError);
  CHECK_THROWS_AS(ones({2}).to(kCuda), DeviceError);
  CHECK_THROWS_AS(memory_stats(kCuda), DeviceError);
}

TEST_CASE("cuda: unary ops match the CPU in every dtype, contiguous, strided and broadcast") {
  CUDA_OR_SKIP();
  manual_seed(1);
  std::vector<std::pair<std::string, Unary>> rows = {
      {"neg", [](auto& x) { return neg(x); }},
      {"abs", [](auto& x) { return abs(x); }},
      {"sign", [](auto& x) { return sign(x); }},
      {"exp", [](auto& x) { return exp(x); }},
      {"exp2", [](auto& x) { return exp2(x); }},
      {"log", [](auto& x) { return log(x); }},
      {"log2", [](auto& x) { return log2(x); }},
      {"log1p", [](auto& x) { return log1p(x); }},
      {"expm1", [](auto& x) { return expm1(x); }},
      {"sqrt", [](auto& x) { return sqrt(x); }},
      {"rsqrt", [](auto& x) { return rsqrt(x); }},
      {"reciprocal", [](auto& x) { return reciprocal(x); }},
      {"sin", [](auto& x) { return sin(x); }},
      {"cos", [](auto& x) { return cos(x); }},
      {"tan", [](auto& x) { return tan(x); }},
      {"tanh", [](auto& x) { return tanh(x); }},
      {"sigmoid", [](auto& x) { return sigmoid(x); }},
      {"relu", [](auto& x) { return relu(x); }},
      {"leaky_relu", [](auto& x) { return leaky_relu(x, 0.2); }},
      {"gelu", [](auto& x) { return gelu(x); }},
      {"gelu_tanh", [](auto& x) { return gelu(x, "tanh"); }},
      {"silu", [](auto& x) { return silu(x); }},
      {"softplus", [](auto& x) { return softplus(x, 2.0, 5.0); }},
      {"erf", [](auto& x) { return erf(x); }},
      {"floor", [](auto& x) { return floor(x); }},
      {"ceil", [](auto& x) { return ceil(x); }},
      {"round", [](auto& x) { return round(x); }},
      {"trunc", [](auto& x) { return trunc(x); }},
      {"logical_not", [](auto& x) { return logical_not(x); }},
      {"isnan", [](auto& x) { return isnan(x); }},
      {"isinf", [](auto& x) { return isinf(x); }},
      {"isfinite", [](auto& x) { return isfinite(x); }},
      {"clamp", [](auto& x) { return clamp(x, -1.0, 2.0); }},
      {"clamp_min", [](auto& x) { return clamp(x, 0.5); }},
      {"nan_to_num", [](auto& x) { return nan_to_num(x, 1.0, 5.0, -5.0); }},
      {"pow2", [](auto& x) { return pow(x, 2); }},
      {"pow3", [](auto& x) { return pow(x, 3); }},
      {"pow_half", [](auto& x) { return pow(x, 0.5); }},
  };
  for (DType dt : kAll) {
    Tensor x = input({6, 7}, dt);
    Tensor xg = x.to(kCuda);
    Tensor big = input({10007}, dt);  // several blocks, a vector tail; offset 1 breaks 16-byte alignment
    Tensor bigg = big.to(kCuda);
    for (auto& [name, f] : rows) {
      check_unary(name, f, x, xg);
      check_unary(name + " transposed", f, x.t(), xg.t());
      check_unary(name + " broadcast", f, x.unsqueeze(1).expand({6, 3, 7}), xg.unsqueeze(1).expand({6, 3, 7}));
      check_unary(name + " sliced", f, x.narrow(1, 1, 5), xg.narrow(1, 1, 5));
      check_unary(name + " large", f, big, bigg);
      check_unary(name + " large offset", f, big.narrow(0, 1, 10006), bigg.narrow(0, 1, 10006));
    }
  }
}

TEST_CASE("cuda: special values (nan, inf, -0) take the same paths as on the CPU") {
  CUDA_OR_SKIP();
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  Tensor x = tensor({nan, inf, -inf, 0.0, -0.0, 1.5, -2.5, 0.5, 2.5}, {.dtype = kF64});
  for (DType dt : {kF32, kF64, kF16, kBF16}) {
    Tensor c = x.to(dt), g = c.to(kCuda);
    CHECK(close(isnan(g), isnan(c)));
    CHECK(close(isinf(g), isinf(c)));
    CHECK(close(isfinite(g), isfinite(c)));
    CHECK(close(nan_to_num(g, 0.0, 7.0, -7.0), nan_to_num(c, 0.0, 7.0, -7.0)));
    CHECK(close(relu(g), relu(c)));
    CHECK(close(clamp(g, -1.0, 1.0), clamp(c, -1.0, 1.0)));
    CHECK(close(round(g), round(c)));  // half to even: 0.5 -> 0, 2.5 -> 2, -2.5 -> -2
    Tensor r = c.flip({0});            // reversed on the CPU, then moved
    CHECK(close(maximum(g, r.to(kCuda)), maximum(c, r)));
    CHECK(close(minimum(r.to(kCuda), g), minimum(r, c)));
    CHECK(close(sign(g), sign(c)));
  }
}

TEST_CASE("cuda: binary ops match the CPU in every dtype, broadcast and transposed") {
  CUDA_OR_SKIP();
  manual_seed(2);
  std::vector<std::pair<std::string, Binary>> rows = {
      {"add", [](auto& a, auto& b) { return add(a, b); }},
      {"add_alpha", [](auto& a, auto& b) { return add(a, b, 2); }},
      {"sub", [](auto& a, auto& b) { return sub(a, b); }},
      {"sub_alpha", [](auto& a, auto& b) { return sub(a, b, 3); }},
      {"mul", [](auto& a, auto& b) { return mul(a, b); }},
      {"div", [](auto& a, auto& b) { return div(a, b); }},
      {"div_floor", [](auto& a, auto& b) { return div(a, b, "floor"); }},
      {"div_trunc", [](auto& a, auto& b) { return div(a, b, "trunc"); }},
      {"remainder", [](auto& a, auto& b) { return remainder(a, b); }},
      {"maximum", [](auto& a, auto& b) { return maximum(a, b); }},
      {"minimum", [](auto& a, auto& b) { return minimum(a, b); }},
      {"pow", [](auto& a, auto& b) { return pow(a, b); }},
      {"eq", [](auto& a, auto& b) { return eq(a, b); }},
      {"ne", [](auto& a, auto& b) { return ne(a, b); }},
      {"lt", [](auto& a, auto& b) { return lt(a, b); }},
      {"le", [](auto& a, auto& b) { return le(a, b); }},
      {"gt", [](auto& a, auto& b) { return gt(a, b); }},
      {"ge", [](auto& a, auto& b) { return ge(a, b); }},
      {"logical_and", [](auto& a, auto& b) { return logical_and(a, b); }},
      {"logical_or", [](auto& a, auto& b) { return logical_or(a, b); }},
      {"logical_xor", [](auto& a, auto& b) { return logical_xor(a, b); }},
      {"lerp_scalar", [](auto& a, auto& b) { return lerp(a, b, 0.3); }},
      {"lerp_scalar_high", [](auto& a, auto& b) { return lerp(a, b, 0.8); }},
  };
  for (DType dt : kAll) {
    Tensor a = input({4, 1, 5}, dt), b = input({3, 1}, dt, /*positive=*/true);  // b: no integer zero divisors
    Tensor at = input({5, 4}, dt), bt = input({4, 5}, dt, true);
    Tensor big_a = input({9001}, dt), big_b = input({9001}, dt, true);
    Tensor ga = a.to(kCuda), gb = b.to(kCuda), gat = at.to(kCuda), gbt = bt.to(kCuda);
    Tensor gbig_a = big_a.to(kCuda), gbig_b = big_b.to(kCuda);
    for (auto& [name, f] : rows) {
      check_binary(name + " broadcast", f, a, b, ga, gb);
      check_binary(name + " transposed", f, at.t(), bt, gat.t(), gbt);
      check_binary(name + " large", f, big_a, big_b, gbig_a, gbig_b);
      check_binary(name + " scalar rhs", f, big_a, b[0][0], gbig_a, gb[0][0]);
    }
  }
}

TEST_CASE("cuda: float32 add, sub and mul read a float16/bfloat16 operand as it is, as the CPU's cast") {
  CUDA_OR_SKIP();
  manual_seed(7);
  for (DType h : {kBF16, kF16}) {
    CAPTURE(h);
    Tensor f = input({9001}, kF32), l = input({9001}, h);
    Tensor gf = f.to(kCuda), gl = l.to(kCuda);
    CHECK(close(add(gf, gl), add(f, l)));
    CHECK(close(add(gl, gf, 2), add(l, f, 2)));
    CHECK(close(sub(gf, gl, 3), sub(f, l, 3)));
    CHECK(close(sub(gl, gf), sub(l, f)));
    CHECK(close(mul(gl, gf), mul(f, l)));
    CHECK(close(sub(gl, gf, 3), sub(l, f, 3)));  // alpha scales the second operand, the float32 one
    Tensor acc = gf.clone();
    acc.add_(gl);  // in place, the float32 residual stream += a block's output
    CHECK(close(acc, add(f, l)));
    acc.sub_(gl, 2);
    acc.mul_(gl);
    CHECK(close(acc, mul(sub(add(f, l), l, 2), l)));
    // Through autograd: the 2-byte operand's gradient comes back in its dtype.
    Tensor lf = gl.detach().requires_grad_(), ff = gf.detach().requires_grad_();
    (ff * lf).sum().backward();
    CHECK(lf.grad().dtype() == h);
    CHECK(close(lf.grad(), f.to(h)));
    CHECK(close(ff.grad(), l.to(kF32)));
    // Broadcast and strided operands take the cast path.
    Tensor m = input({3, 5}, kF32), r = input({5}, h), t = input({5, 3}, h);
    CHECK(close(add(m.to(kCuda), r.to(kCuda)), add(m, r)));
    CHECK(close(mul(m.to(kCuda), t.to(kCuda).t()), mul(m, t.t())));
  }
}

TEST_CASE("cuda: ternary ops, wrapped scalars and in-place ops match the CPU") {
  CUDA_OR_SKIP();
  manual_seed(3);
  for (DType dt : {kF32, kF64, kF16, kBF16}) {
    CAPTURE(dt);
    Tensor a = input({4, 5}, dt), b = input({5}, dt), w = rand({4, 1}, {.dtype = dt});
    Tensor c = input({4, 5}, dt, true).t().contiguous().t();  // column-major layout
    Tensor cond = input({4, 5}, kBool);
    Tensor ga = a.to(kCuda), gb = b.to(kCuda), gw = w.to(kCuda), gc = c.to(kCuda).t().contiguous().t();
    Tensor gcond = cond.to(kCuda);
    CHECK(close(lerp(ga, gb, gw), lerp(a, b, w)));
    CHECK(close(addcmul(ga, gb, gc, 0.5), addcmul(a, b, c, 0.5)));
    CHECK(close(addcdiv(ga, gb, gc, 2), addcdiv(a, b, c, 2)));
    CHECK(close(where(gcond, ga, gb), where(cond, a, b)));
    CHECK(close(where(gcond, ga, 1.5), where(cond, a, 1.5)));
    CHECK(close(ga * 2.0 + 1, a * 2.0 + 1));
    CHECK(close(1.0 - ga / 3, 1.0 - a / 3));
    Tensor gi = ga.clone(), ci = a.clone();
    gi += gb;
    ci += b;
    gi.mul_(2.5).relu_();
    ci.mul_(2.5).relu_();
    CHECK(close(gi, ci));
  }
  for (DType dt : {kI32, kI64}) {
    Tensor a = input({4, 5}, dt), b = input({4, 5}, dt), c = input({4, 5}, dt);
    Tensor cond = input({4, 5}, kBool);
    CHECK(close(addcmul(a.to(kCuda), b.to(kCuda), c.to(kCuda), 3), addcmul(a, b, c, 3)));
    CHECK(close(where(cond.to(kCuda), a.to(kCuda), b.to(kCuda)), where(cond, a, b)));
  }
}

TEST_CASE("cuda: to(device) round trips and dtype conversions for all dtypes") {
  CUDA_OR_SKIP();
  manual_seed(4);
  Tensor base = rand({7, 9}, {.dtype = kF64}) * 100.0;  // non-negative: float -> u8 stays defined
  for (DType src : kAll) {
    Tensor t = base.to(src);
    Tensor g = t.to(kCuda);
    CHECK(g.device() == kCuda);
    CHECK(g.dtype() == src);
    CHECK(equal(g.cpu(), t));
    CHECK(equal(g.t().cpu(), t.t()));            // non-contiguous source: made contiguous on the GPU
    CHECK(equal(t.t().to(kCuda).cpu(), t.t()));  // non-contiguous source on the CPU
    CHECK(equal(g.to(kCuda, true).cpu(), t));    // CUDA -> CUDA copy
    CHECK(g.to(kCuda).is_same(g));               // same device, no copy
    for (DType dst : kAll) {
      CAPTURE(src);
      CAPTURE(dst);
      CHECK(equal(g.to(dst).cpu(), t.to(dst)));
      CHECK(equal(g.t().to(dst).cpu(), t.t().to(dst)));  // strided copy with conversion
      CHECK(equal(t.to(kCuda, dst).cpu(), t.to(dst)));
      // Long enough for the vectorised conversion (16 bytes of the wider dtype per access), its tail,
      // and an operand one element off its vector alignment (the scalar kernel).
      Tensor long_t = (rand({9001}, {.dtype = kF64}) * 100.0).to(src), long_g = long_t.to(kCuda);
      CHECK(equal(long_g.to(dst).cpu(), long_t.to(dst)));
      CHECK(equal(long_g.narrow(0, 1, 9000).to(dst).cpu(), long_t.narrow(0, 1, 9000).to(dst)));
    }
  }
  Tensor empty_t = zeros({0, 3}).to(kCuda);
  CHECK(empty_t.numel() == 0);
  CHECK(empty_t.cpu().shape() == Shape{0, 3});
  CHECK(ones({1}).to(kCuda).item<float>() == 1.0f);
  if (kernels::cuda::device_count() > 1) {
    Device d1{Device::Kind::CUDA, 1};
    CHECK(equal(base.to(d1).to(kCuda).cpu(), base));
  }
}

TEST_CASE("cuda: fill and copy_ into views") {
  CUDA_OR_SKIP();
  for (DType dt : kAll) {
    CAPTURE(dt);
    Scalar v = is_floating(dt) ? Scalar(2.5) : dt == kBool ? Scalar(true) : Scalar(7);
    CHECK(equal(full({5, 6}, v, {.dtype = dt, .device = kCuda}).cpu(), full({5, 6}, v, {.dtype = dt})));
    Tensor g = zeros({6, 5}, {.dtype = dt, .device = kCuda}), c = zeros({6, 5}, {.dtype = dt});
    g.narrow(1, 1, 3).fill_(v);
    c.narrow(1, 1, 3).fill_(v);
    CHECK(equal(g.cpu(), c));
    g.t().narrow(0, 0, 2).copy_(ones({2, 6}, {.dtype = dt, .device = kCuda}));
    c.t().narrow(0, 0, 2).copy_(ones({2, 6}, {.dtype = dt}));
    CHECK(equal(g.cpu(), c));
  }
}

TEST_CASE("cuda: random draws equal the CPU's for the same seed") {
  CUDA_OR_SKIP();
  auto both = [](auto make) {
    manual_seed(1234);
    Tensor c = make(kCPU);
    manual_seed(1234);
    Tensor g = make(kCuda);
    CHECK(g.device() == kCuda);
    return std::make_pair(g.cpu(), c);
  };
  for (DType dt : {kF32, kF64, kF16, kBF16}) {
    CAPTURE(dt);
    auto [gu, cu] = both([&](Device d) { return rand({1001}, {.dtype = dt, .device = d}); });
    CHECK(equal(gu, cu));
    auto [gr, cr] = both([&](Device d) {
      Tensor t = empty({10, 20}, {.dtype = dt, .device = d}).t();  // non-contiguous target
      return t.uniform_(-2.0, 3.0);
    });
    CHECK(equal(gr, cr));
    // normal uses log and cos, whose last double bit may differ between CUDA and glibc
    auto [gn, cn] = both([&](Device d) { return randn({1001}, {.dtype = dt, .device = d}); });
    CHECK(allclose(gn, cn, dt == kF64 ? 1e-13 : dt == kF32 ? 2.5e-7 : 8e-3, 1e-12));
    auto [gb, cb] = both([&](Device d) { return empty({999}, {.dtype = dt, .device = d}).bernoulli_(0.3); });
    CHECK(equal(gb, cb));
  }
  for (DType dt : {kI32, kI64, kU8}) {
    auto [g, c] = both([&](Device d) { return randint(-3 * (dt != kU8), 50, {777}, {.dtype = dt, .device = d}); });
    CHECK(equal(g, c));
  }
  Tensor probs = rand({500}, {.dtype = kF64});
  auto [gp, cp] = both([&](Device d) { return bernoulli(probs.to(d)); });
  CHECK(equal(gp, cp));
}

TEST_CASE("cuda: arange and linspace are made on the device, bit for bit the CPU's") {
  CUDA_OR_SKIP();
  // Both round the product and the sum separately on the device too (no FMA), so no last bit differs.
  auto both = [](auto make) {
    Tensor g = make(kCuda);
    CHECK(g.device() == kCuda);
    return std::make_pair(g.cpu(), make(kCPU));
  };
  for (DType dt : {kF64, kF32, kBF16, kI64}) {
    CAPTURE(dt);
    if (dt != kI64) {
      auto [ga, ca] = both([&](Device d) { return arange(0.1, 50.0, 0.037, dt, d); });
      CHECK(equal(ga, ca));
    }
    auto [gi, ci] = both([&](Device d) { return arange(-7, 1000, 3, dt, d); });
    CHECK(equal(gi, ci));
    for (int64_t steps : {0, 1, 2, 1000, 1001}) {
      CAPTURE(steps);
      auto [gl, cl] = both([&](Device d) { return linspace(0.1, 7.3, steps, {.dtype = dt, .device = d}); });
      CHECK(equal(gl, cl));
    }
  }
  Tensor l = linspace(-1e308, 1e308, 3, {.dtype = kF64, .device = kCuda});
  CHECK(l.device() == kCuda);
  CHECK(l.cpu().to_vector<double>() == std::vector<double>{-1e308, 0, 1e308});
}

TEST_CASE("cuda: caching allocator statistics, reuse and empty_cache") {
  CUDA_OR_SKIP();
  empty_cache(kCuda);
  MemoryStats s0 = memory_stats(kCuda);  // cached: only the free parts of segments still in use
  CHECK(s0.reserved_bytes == s0.current_bytes + s0.cached_bytes);
  {
    Tensor t = empty({3000}, {.device = kCuda});  // 12000 bytes -> 12288 (512-byte multiples)
    MemoryStats s1 = memory_stats(kCuda);
    CHECK(s1.current_bytes - s0.current_bytes == 12288);
    CHECK(s1.allocations == s0.allocations + 1);
    CHECK(s1.peak_bytes >= s1.current_bytes);
  }
  MemoryStats s2 = memory_stats(kCuda);
  CHECK(s2.current_bytes == s0.current_bytes);
  CHECK(s2.cached_bytes >= 12288);
  {
    Tensor t = empty({2999}, {.device = kCuda});  // served from the cache, no cudaMalloc
    MemoryStats s3 = memory_stats(kCuda);
    CHECK(s3.system_allocations == s2.system_allocations);
    CHECK(s3.allocations == s2.allocations + 1);
    CHECK(s3.cached_bytes == s2.cached_bytes - 12288);
  }
  {
    Tensor t = empty({(int64_t{3} << 20) + 1}, {.dtype = kU8, .device = kCuda});  // 3 MiB + 1 -> 3 MiB + 512
    CHECK(memory_stats(kCuda).current_bytes - s0.current_bytes == (int64_t{3} << 20) + 512);
  }
  empty_cache(kCuda);  // gives back every wholly free segment: what is left is as at the start
  MemoryStats s4 = memory_stats(kCuda);
  CHECK(s4.cached_bytes == s0.cached_bytes);
  CHECK(s4.reserved_bytes == s0.reserved_bytes);
  reset_peak_memory_stats(kCuda);
  CHECK(memory_stats(kCuda).peak_bytes == memory_stats(kCuda).current_bytes);
}

TEST_CASE("cuda: out of memory and bad devices raise the documented errors") {
  CUDA_OR_SKIP();
  const int64_t absurd = int64_t{1} << 45;  // 128 TiB of floats
  std::string msg;
  try {
    (void)empty({absurd}, {.device = kCuda});
  } catch (const OutOfMemoryError& e) {
    msg = e.what();
  }
  CHECK(msg.find(std::to_string(absurd * 4)) != std::string::npos);
  CHECK(msg.find("in use") != std::string::npos);
  CHECK(equal(ones({4}, {.device = kCuda}).cpu(), ones({4})));  // the allocator still works afterwards
  CHECK_THROWS_AS(empty({2}, {.device = Device(Device::Kind::CUDA, 64)}), DeviceError);
  CHECK_THROWS_AS(ones({3}, {.device = kCuda}) + ones({3}), DeviceError);
  CHECK_THROWS_AS(ones({3}) * ones({3}, {.device = kCuda}), DeviceError);
  CHECK_THROWS_AS(where(ones({3}, {.dtype = kBool}), ones({3}, {.device = kCuda}), ones({3}, {.device = kCuda})),
                  DeviceError);
  Tensor g = ones({3}, {.device = kCuda});
  g.copy_(full({3}, 2.0, {.dtype = kF64}));  // copy_ crosses devices and converts, as PyTorch's
  CHECK(equal(g.cpu(), full({3}, 2.0)));
  CHECK_THROWS_AS(g.data_ptr<float>(), DeviceError);
}

#ifdef EMBER_NCCL
#include "dist/nccl.hpp"

// A one-rank NCCL group on the GPU (two ranks need two GPUs): every collective's data path, stream
// ordering against the device's kernels, and the CPU-tensor refusal.
TEST_CASE("cuda: the NCCL communicator of one rank") {
  CUDA_OR_SKIP();
  auto bootstrap = dist::make_single_process_communicator();
  auto nccl = dist::make_nccl_communicator(0, *bootstrap);
  CHECK(nccl->backend() == "nccl");
  for (DType dt : {kF32, kF64, kF16, kBF16, kI32, kI64, kU8}) {
    CAPTURE(dt);
    Tensor t = full({1000}, 3, {.dtype = dt, .device = kCuda}) * 2;  // a kernel the collective must follow
    for (auto op : {dist::ReduceOp::kSum, dist::ReduceOp::kMax, dist::ReduceOp::kMin, dist::ReduceOp::kProduct})
      nccl->all_reduce(t, op);
    if (is_floating(dt)) nccl->all_reduce(t, dist::ReduceOp::kAvg);
    CHECK(equal(t.cpu(), full({1000}, 6, {.dtype = dt})));
  }
  Tensor x = arange(12, kF32).reshape({3, 4}).to(kCuda);
  CHECK(equal(nccl->all_gather(x).cpu(), arange(12, kF32).reshape({1, 3, 4})));
  CHECK(equal(nccl->reduce_scatter(x.unsqueeze(0)).cpu(), arange(12, kF32).reshape({3, 4})));
  nccl->broadcast(x, 0);
  nccl->barrier();
  std::vector<dist::Work> works;
  std::vector<Tensor> ts;
  for (int k = 0; k < 8; ++k) {
    ts.push_back(full({1 << 20}, k, {.device = kCuda}));
    works.push_back(nccl->all_reduce_async(ts.back()));
  }
  for (int k = 7; k >= 0; --k) {
    works[k].wait();
    CHECK(equal((ts[k] + 1).cpu(), full({1 << 20}, k + 1)));  // the kernel after wait() sees the result
  }
  CHECK(nccl->all_reduce_scalar(2.5, dist::ReduceOp::kSum) == 2.5);
  CHECK_THROWS_AS(nccl->all_reduce(ones({3})), DeviceError);
}
#endif
