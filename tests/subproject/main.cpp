// A consumer of Ember as a Meson subproject: computes a small least-squares fit and checks it.
#include <cmath>
#include <cstdio>
#include <ember.hpp>

int main() {
  using namespace ember;
  // y = 2x + 1 sampled exactly; the normal equations (X^T X) w = X^T y for X = [x, 1] give w = (2, 1).
  Tensor x = linspace(0, 1, 5).unsqueeze(1);
  Tensor design = cat({x, ones({5, 1})}, 1);
  Tensor y = x * 2 + 1;
  Tensor xtx = matmul(design.t(), design);
  Tensor xty = matmul(design.t(), y);
  // Solve the 2x2 system by Cramer's rule.
  auto m = xtx.to_vector<double>();
  auto v = xty.to_vector<double>();
  double det = m[0] * m[3] - m[1] * m[2];
  double slope = (v[0] * m[3] - m[1] * v[1]) / det;
  double intercept = (m[0] * v[1] - m[2] * v[0]) / det;
  std::printf("slope %.6f intercept %.6f\n", slope, intercept);
  bool ok = std::abs(slope - 2.0) < 1e-5 && std::abs(intercept - 1.0) < 1e-5;
  std::printf("%s\n", ok ? "consumer ok" : "consumer FAILED");
  return ok ? 0 : 1;
}
