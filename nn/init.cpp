// nn::init: PyTorch's initialisation formulas over Ember's random ops.
#include "nn/init.hpp"

#include <algorithm>
#include <cmath>

#include "core/autograd.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"

namespace ember::nn::init {

namespace {

// Writes through a detached alias so a leaf that requires grad can be initialised in place.
template <class F>
Tensor& fill(Tensor& t, const char* op, F&& f) {
  EMBER_CHECK(t.defined(), ValueError, "[init.", op, "] undefined tensor");
  EMBER_CHECK(t.is_floating_point(), DTypeError, "[init.", op, "] needs a floating tensor, got ", describe(t));
  autograd::NoGradGuard no_grad;
  Tensor alias = t.detach();
  f(alias);
  return t;
}

double fan(const Tensor& t, const std::string& mode, const char* op) {
  auto [in, out] = calculate_fan_in_and_fan_out(t);
  EMBER_CHECK(mode == "fan_in" || mode == "fan_out", ValueError, "[init.", op,
              "] mode must be fan_in or fan_out, got '", mode, "'");
  return static_cast<double>(mode == "fan_in" ? in : out);
}

}  // namespace

double calculate_gain(const std::string& nl, double param) {
  if (nl == "linear" || nl == "sigmoid" || nl.starts_with("conv")) return 1.0;
  if (nl == "tanh") return 5.0 / 3.0;
  if (nl == "relu") return std::sqrt(2.0);
  if (nl == "leaky_relu") return std::sqrt(2.0 / (1.0 + param * param));
  if (nl == "selu") return 3.0 / 4.0;
  throw ValueError("[init.calculate_gain] unsupported nonlinearity '" + nl + "'");
}

std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& t) {
  EMBER_CHECK(t.dim() >= 2, ShapeError, "[init] fan in and fan out need at least 2 dims, got ", describe(t));
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

Tensor& uniform_(Tensor& t, double a, double b, Generator* gen) {
  return fill(t, "uniform_", [&](Tensor& x) { ember::uniform_(x, a, b, gen); });
}

Tensor& normal_(Tensor& t, double mean, double std, Generator* gen) {
  return fill(t, "normal_", [&](Tensor& x) { ember::normal_(x, mean, std, gen); });
}

Tensor& trunc_normal_(Tensor& t, double mean, double std, double a, double b, Generator* gen) {
  return fill(t, "trunc_normal_", [&](Tensor& x) {
    auto cdf = [](double v) { return (1.0 + std::erf(v / std::sqrt(2.0))) / 2.0; };
    double l = cdf((a - mean) / std), u = cdf((b - mean) / std);
    // Uniform on [2l-1, 2u-1], then the inverse CDF through erfinv (computed in f64 for accuracy).
    Tensor v = empty(x.shape(), {.dtype = kF64});
    ember::uniform_(v, 2 * l - 1, 2 * u - 1, gen);
    std::vector<double> vals = v.to_vector<double>();
    for (double& e : vals) {
      // erfinv by Newton iterations on erf, from a rational first guess (enough for init).
      double w = -std::log((1.0 - e) * (1.0 + e)), y;
      if (w < 5.0) {
        w -= 2.5;
        y = 2.81022636e-08;
        for (double c : {3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503, -0.00417768164,
                         0.246640727, 1.50140941})
          y = c + y * w;
      } else {
        w = std::sqrt(w) - 3.0;
        y = -0.000200214257;
        for (double c : {0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613, 0.00943887047,
                         1.00167406, 2.83297682})
          y = c + y * w;
      }
      y *= e;
      for (int it = 0; it < 2; ++it) y -= (std::erf(y) - e) / (2.0 / std::sqrt(M_PI) * std::exp(-y * y));
      e = std::clamp(mean + std * std::sqrt(2.0) * y, a, b);
    }
    x.copy_(tensor(vals, x.shape(), TensorOptions{kF64}));
  });
}

Tensor& constant_(Tensor& t, double value) {
  return fill(t, "constant_", [&](Tensor& x) { x.fill_(value); });
}
Tensor& zeros_(Tensor& t) { return constant_(t, 0.0); }
Tensor& ones_(Tensor& t) { return constant_(t, 1.0); }

Tensor& xavier_uniform_(Tensor& t, double gain, Generator* gen) {
  auto [in, out] = calculate_fan_in_and_fan_out(t);
  double a = gain * std::sqrt(6.0 / static_cast<double>(in + out));
  return init::uniform_(t, -a, a, gen);
}

Tensor& xavier_normal_(Tensor& t, double gain, Generator* gen) {
  auto [in, out] = calculate_fan_in_and_fan_out(t);
  return init::normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(in + out)), gen);
}

Tensor& kaiming_uniform_(Tensor& t, double a, const std::string& mode, const std::string& nonlinearity,
                         Generator* gen) {
  double bound = std::sqrt(3.0) * calculate_gain(nonlinearity, a) / std::sqrt(fan(t, mode, "kaiming_uniform_"));
  return init::uniform_(t, -bound, bound, gen);
}

Tensor& kaiming_normal_(Tensor& t, double a, const std::string& mode, const std::string& nonlinearity, Generator* gen) {
  return init::normal_(t, 0.0, calculate_gain(nonlinearity, a) / std::sqrt(fan(t, mode, "kaiming_normal_")), gen);
}

}  // namespace ember::nn::init
