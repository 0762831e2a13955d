// nn::init: in-place initialisers with PyTorch's formulas (fans, gains, kaiming/xavier), used by the
// layers' reset_parameters(). Each writes without recording history and returns its argument.
#pragma once
#include <string>
#include <utility>

#include "core/ops/random.hpp"
#include "core/tensor.hpp"

namespace ember::nn::init {

// The recommended gain for a nonlinearity ("linear", "conv*", "sigmoid", "tanh", "relu", "leaky_relu"
// (param = negative slope, default 0.01), "selu").
double calculate_gain(const std::string& nonlinearity, double param = 0.01);
// (fan_in, fan_out) of a weight [out, in, *kernel]; needs at least 2 dims.
std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& t);

Tensor& uniform_(Tensor& t, double a = 0.0, double b = 1.0, Generator* gen = nullptr);
Tensor& normal_(Tensor& t, double mean = 0.0, double std = 1.0, Generator* gen = nullptr);
// Normal(mean, std) redrawn until inside [a, b] (inverse-CDF method, as PyTorch).
Tensor& trunc_normal_(Tensor& t, double mean = 0.0, double std = 1.0, double a = -2.0, double b = 2.0,
                      Generator* gen = nullptr);
Tensor& constant_(Tensor& t, double value);
Tensor& zeros_(Tensor& t);
Tensor& ones_(Tensor& t);
Tensor& xavier_uniform_(Tensor& t, double gain = 1.0, Generator* gen = nullptr);
Tensor& xavier_normal_(Tensor& t, double gain = 1.0, Generator* gen = nullptr);
// mode "fan_in" or "fan_out"; a is leaky_relu's negative slope.
Tensor& kaiming_uniform_(Tensor& t, double a = 0.0, const std::string& mode = "fan_in",
                         const std::string& nonlinearity = "leaky_relu", Generator* gen = nullptr);
Tensor& kaiming_normal_(Tensor& t, double a = 0.0, const std::string& mode = "fan_in",
                        const std::string& nonlinearity = "leaky_relu", Generator* gen = nullptr);

}  // namespace ember::nn::init
