// Kernel entries of the pooling and normalisation forwards and backwards. The builders (core/ops/pool.cpp,
// core/ops/norm.cpp) have checked every argument; outputs are fresh contiguous tensors. The entries in
// namespace kernels (kernels/nn.cpp) dispatch on the device to cpu:: or cuda:: (identical signatures).
#pragma once
#include "core/tensor.hpp"

namespace ember::kernels {

// Window geometry of a 2-d pool, (h, w) pairs; stride already defaulted to the kernel.
struct Pool2dParams {
  int64_t kernel[2];
  int64_t stride[2];
  int64_t padding[2];
  int64_t dilation[2] = {1, 1};
  bool count_include_pad = true;  // avg_pool2d only
};

// in: [N, C, H, W] of any strides; out (and indices, i64, when defined): contiguous [N, C, OH, OW].
void max_pool2d(const Tensor& out, const Tensor& indices, const Tensor& in, const Pool2dParams& p);
void avg_pool2d(const Tensor& out, const Tensor& in, const Pool2dParams& p);
void adaptive_avg_pool2d(const Tensor& out, const Tensor& in);
// Pool backwards: grad_in contiguous [N, C, H, W] (overwritten); grad_out [N, C, OH, OW] of any strides,
// of grad_in's dtype (floating); indices: contiguous i64 [N, C, OH, OW] from max_pool2d with window p (the
// CUDA kernel gathers, each input position from the windows that can hold it).
void max_pool2d_backward(const Tensor& grad_in, const Tensor& grad_out, const Tensor& indices, const Pool2dParams& p);
void avg_pool2d_backward(const Tensor& grad_in, const Tensor& grad_out, const Pool2dParams& p);
void adaptive_avg_pool2d_backward(const Tensor& grad_in, const Tensor& grad_out);

// in, out: contiguous [rows, cols]; weight and bias: contiguous [cols] in the computation dtype
// (f64 for f64 input, f32 otherwise) or undefined when absent.
void layer_norm(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias, double eps);
// grad_in <- d(layer_norm)/d(in) given grad_out (all contiguous [rows, cols], the input's dtype), and when
// defined grad_weight and grad_bias (contiguous [cols], the computation dtype) <- the sums over rows of
// grad_out * xhat and of grad_out (zeros without rows), in a fixed order. weight as for layer_norm.
void layer_norm_backward(const Tensor& grad_in, const Tensor& grad_weight, const Tensor& grad_bias, const Tensor& in,
                         const Tensor& grad_out, const Tensor& weight, double eps);
void rms_norm(const Tensor& out, const Tensor& in, const Tensor& weight, double eps);

// in: [N, C, S] of any strides. Writes each channel's mean and biased variance into f64 [C] tensors.
void batch_norm_stats(const Tensor& mean, const Tensor& var, const Tensor& in);
// out (contiguous [N, C, S]) <- in * scale[c] + shift[c]; scale and shift are contiguous f64 [C].
void batch_norm_apply(const Tensor& out, const Tensor& in, const Tensor& scale, const Tensor& shift);
// First-order backward of batch_norm over contiguous [N, C, S] in and grad_out: grad_in (contiguous,
// the input's dtype) and per channel (f64 [C]) the sums of g and of g * (x - mean). mean, rstd and
// scale (the weight, or ones) are f64 [C]; training differentiates through the batch statistics.
void batch_norm_backward(const Tensor& grad_in, const Tensor& sum_g, const Tensor& sum_gxm, const Tensor& in,
                         const Tensor& grad_out, const Tensor& mean, const Tensor& rstd, const Tensor& scale,
                         bool training);

namespace cpu {
void max_pool2d(const Tensor& out, const Tensor& indices, const Tensor& in, const Pool2dParams& p);
void avg_pool2d(const Tensor& out, const Tensor& in, const Pool2dParams& p);
void adaptive_avg_pool2d(const Tensor& out, const Tensor& in);
void max_pool2d_backward(const Tensor& grad_in, const Tensor& grad_out, const Tensor& indices, const Pool2dParams& p);
void avg_pool2d_backward(const Tensor& grad_in, const Tensor& grad_out, const Pool2dParams& p);
void adaptive_avg_pool2d_backward(const Tensor& grad_in, const Tensor& grad_out);
void layer_norm(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias, double eps);
void layer_norm_backward(const Tensor& grad_in, const Tensor& grad_weight, const Tensor& grad_bias, const Tensor& in,
                         const Tensor& grad_out, const Tensor& weight, double eps);
void rms_norm(const Tensor& out, const Tensor& in, const Tensor& weight, double eps);
void batch_norm_stats(const Tensor& mean, const Tensor& var, const Tensor& in);
void batch_norm_apply(const Tensor& out, const Tensor& in, const Tensor& scale, const Tensor& shift);
void batch_norm_backward(const Tensor& grad_in, const Tensor& sum_g, const Tensor& sum_gxm, const Tensor& in,
                         const Tensor& grad_out, const Tensor& mean, const Tensor& rstd, const Tensor& scale,
                         bool training);
}  // namespace cpu

namespace cuda {
void max_pool2d(const Tensor& out, const Tensor& indices, const Tensor& in, const Pool2dParams& p);
void avg_pool2d(const Tensor& out, const Tensor& in, const Pool2dParams& p);
void adaptive_avg_pool2d(const Tensor& out, const Tensor& in);
void max_pool2d_backward(const Tensor& grad_in, const Tensor& grad_out, const Tensor& indices, const Pool2dParams& p);
void avg_pool2d_backward(const Tensor& grad_in, const Tensor& grad_out, const Pool2dParams& p);
void adaptive_avg_pool2d_backward(const Tensor& grad_in, const Tensor& grad_out);
void layer_norm(const Tensor& out, const Tensor& in, const Tensor& weight, const Tensor& bias, double eps);
void layer_norm_backward(const Tensor& grad_in, const Tensor& grad_weight, const Tensor& grad_bias, const Tensor& in,
                         const Tensor& grad_out, const Tensor& weight, double eps);
void rms_norm(const Tensor& out, const Tensor& in, const Tensor& weight, double eps);
void batch_norm_stats(const Tensor& mean, const Tensor& var, const Tensor& in);
void batch_norm_apply(const Tensor& out, const Tensor& in, const Tensor& scale, const Tensor& shift);
void batch_norm_backward(const Tensor& grad_in, const Tensor& sum_g, const Tensor& sum_gxm, const Tensor& in,
                         const Tensor& grad_out, const Tensor& mean, const Tensor& rstd, const Tensor& scale,
                         bool training);
}  // namespace cuda

}  // namespace ember::kernels
