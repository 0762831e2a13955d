// ember::nn::functional: the functional forms of the layers, scaled dot-product attention, group_norm
// and the losses, with torch.nn.functional's argument order, defaults and semantics.
// Losses take `reduction` as a string: "mean" (default), "sum" or "none" (kl_div also "batchmean");
// any other value raises ValueError.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <tuple>
#include <vector>

#include "core/ops/random.hpp"
#include "core/tensor.hpp"

namespace ember::nn::functional {

// (h, w) for kernel, stride, padding and dilation: one int fills both, as PyTorch's int-or-tuple
// arguments and the layer classes (F::max_pool2d(x, 3, 2, 1), F::conv2d(x, w, {}, 2, 1)).
struct Pair : std::array<int64_t, 2> {
  Pair(int64_t v) : std::array<int64_t, 2>{v, v} {}  // NOLINT: implicit by design
  Pair(int64_t h, int64_t w) : std::array<int64_t, 2>{h, w} {}
  Pair(const std::array<int64_t, 2>& a) : std::array<int64_t, 2>(a) {}  // NOLINT
};

// ------------------------------------------------------------------------------------- layers
// x [..., in] @ weight[out, in].T + bias[out]; x may be 1-D.
Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias = {});
// gelu(linear(input, weight, bias), "tanh") as one op, ember::addmm_gelu (one cuBLASLt GELU_AUX_BIAS call
// on CUDA); the bias is required.
Tensor linear_gelu(const Tensor& input, const Tensor& weight, const Tensor& bias);
// y[..., k] = x1[..., i] weight[k, i, j] x2[..., j] + bias[k]; x1 and x2 share their leading dims.
Tensor bilinear(const Tensor& input1, const Tensor& input2, const Tensor& weight, const Tensor& bias = {});

Tensor relu(const Tensor& input);
Tensor leaky_relu(const Tensor& input, double negative_slope = 0.01);
Tensor gelu(const Tensor& input, std::string_view approximate = "none");  // "none" or "tanh"
Tensor silu(const Tensor& input);
Tensor tanh(const Tensor& input);
Tensor sigmoid(const Tensor& input);
Tensor elu(const Tensor& input, double alpha = 1.0);
Tensor selu(const Tensor& input);
Tensor hardtanh(const Tensor& input, double min_val = -1.0, double max_val = 1.0);  // gradient 0 at the bounds
Tensor relu6(const Tensor& input);
Tensor mish(const Tensor& input);
Tensor logsigmoid(const Tensor& input);
Tensor softmax(const Tensor& input, int64_t dim);
Tensor log_softmax(const Tensor& input, int64_t dim);
Tensor dropout(const Tensor& input, double p = 0.5, bool training = true, Generator* gen = nullptr);

Tensor conv1d(const Tensor& input, const Tensor& weight, const Tensor& bias = {}, int64_t stride = 1,
              int64_t padding = 0, int64_t dilation = 1, int64_t groups = 1);
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias = {}, Pair stride = {1, 1},
              Pair padding = {0, 0}, Pair dilation = {1, 1}, int64_t groups = 1);
Tensor conv_transpose2d(const Tensor& input, const Tensor& weight, const Tensor& bias = {}, Pair stride = {1, 1},
                        Pair padding = {0, 0}, Pair output_padding = {0, 0}, int64_t groups = 1,
                        Pair dilation = {1, 1});
// stride {} (nullopt) means stride = kernel_size, as PyTorch's stride=None.
Tensor max_pool2d(const Tensor& input, Pair kernel_size, std::optional<Pair> stride = {}, Pair padding = {0, 0},
                  Pair dilation = {1, 1}, bool ceil_mode = false);
std::tuple<Tensor, Tensor> max_pool2d_with_indices(const Tensor& input, Pair kernel_size,
                                                   std::optional<Pair> stride = {}, Pair padding = {0, 0},
                                                   Pair dilation = {1, 1}, bool ceil_mode = false);
Tensor avg_pool2d(const Tensor& input, Pair kernel_size, std::optional<Pair> stride = {}, Pair padding = {0, 0},
                  bool ceil_mode = false, bool count_include_pad = true);
Tensor adaptive_avg_pool2d(const Tensor& input, Pair output_size);

Tensor batch_norm(const Tensor& input, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight = {},
                  const Tensor& bias = {}, bool training = false, double momentum = 0.1, double eps = 1e-5);
Tensor layer_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight = {},
                  const Tensor& bias = {}, double eps = 1e-5);
Tensor rms_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight = {},
                std::optional<double> eps = {});
// input [N, C, *] normalised over each group of C / num_groups channels (and all of *), then weight[C]
// and bias[C] per channel.
Tensor group_norm(const Tensor& input, int64_t num_groups, const Tensor& weight = {}, const Tensor& bias = {},
                  double eps = 1e-5);

// Rows of weight [num_embeddings, dim] picked by integer indices of any shape; the padding_idx row
// (negative counts from the end) gets no gradient.
Tensor embedding(const Tensor& input, const Tensor& weight, std::optional<int64_t> padding_idx = {});
Tensor one_hot(const Tensor& input, int64_t num_classes = -1);
// pad lists (before, after) pairs from the last dim backwards. mode: "constant" (negative amounts
// crop), "reflect", "replicate" or "circular" (these pad at most the trailing 3 dims, as PyTorch).
Tensor pad(const Tensor& input, const std::vector<int64_t>& pad, std::string_view mode = "constant",
           double value = 0.0);
// input / max(||input||_p over dim, eps).
Tensor normalize(const Tensor& input, double p = 2.0, int64_t dim = 1, double eps = 1e-12);

// ------------------------------------------------------------------------------------- attention
// softmax(q k^T * scale + mask) v with q [..., L, E], k [..., S, E], v [..., S, Ev] (batch dims
// broadcast); scale defaults to 1/sqrt(E). attn_mask broadcasts to [..., L, S]: bool (true = takes
// part) or floating (added to the scores). is_causal masks j > i (top-left aligned, as PyTorch) and
// excludes attn_mask. A query row that no key may attend gives zeros, as PyTorch 2.5+ (not NaN).
Tensor scaled_dot_product_attention(const Tensor& query, const Tensor& key, const Tensor& value,
                                    const Tensor& attn_mask = {}, double dropout_p = 0.0, bool is_causal = false,
                                    std::optional<double> scale = {}, Generator* gen = nullptr);

// ------------------------------------------------------------------------------------- losses
// Elementwise losses: input and target of one shape (PyTorch would broadcast with a warning; here a
// differing shape is an error).
Tensor mse_loss(const Tensor& input, const Tensor& target, std::string_view reduction = "mean");
Tensor l1_loss(const Tensor& input, const Tensor& target, std::string_view reduction = "mean");
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, std::string_view reduction = "mean",
                      double beta = 1.0);
Tensor huber_loss(const Tensor& input, const Tensor& target, std::string_view reduction = "mean", double delta = 1.0);

// input: logits [N, C], [N, C, d1, ...] or [C]. target: class indices (i64 or i32) [N], [N, d1, ...] or
// [], or class probabilities (floating, the input's shape). weight [C] rescales each class (no
// gradient, as PyTorch); "mean" divides by the summed weights of the non-ignored targets (by the
// number of samples for probability targets). Class-index targets on CPU take a fused kernel.
Tensor cross_entropy(const Tensor& input, const Tensor& target, const Tensor& weight = {}, int64_t ignore_index = -100,
                     std::string_view reduction = "mean", double label_smoothing = 0.0);
// input: log-probabilities with cross_entropy's shapes; class-index targets only.
Tensor nll_loss(const Tensor& input, const Tensor& target, const Tensor& weight = {}, int64_t ignore_index = -100,
                std::string_view reduction = "mean");
// input: probabilities in [0, 1]; the logs are clamped at -100 as PyTorch. weight broadcasts to input.
Tensor binary_cross_entropy(const Tensor& input, const Tensor& target, const Tensor& weight = {},
                            std::string_view reduction = "mean");
// sigmoid + binary_cross_entropy in the numerically stable form; pos_weight broadcasts against the
// target (typically [C] for the last dim) and weighs the positive term.
Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target, const Tensor& weight = {},
                                        std::string_view reduction = "mean", const Tensor& pos_weight = {});
// input: log-probabilities; target: probabilities (log-probabilities with log_target). reduction
// "batchmean" divides the sum by input.size(0), the true KL divergence per sample.
Tensor kl_div(const Tensor& input, const Tensor& target, std::string_view reduction = "mean", bool log_target = false);

// The composition cross_entropy replaces (log_softmax, then nll_loss or the smoothing terms): the
// test oracle and the benchmark baseline for the fused path.
Tensor cross_entropy_composite(const Tensor& input, const Tensor& target, const Tensor& weight = {},
                               int64_t ignore_index = -100, std::string_view reduction = "mean",
                               double label_smoothing = 0.0);

}  // namespace ember::nn::functional

#include "nn/functional_spatial.hpp"  // interpolate, conv3d, 1-D pools, conv_transpose1d
