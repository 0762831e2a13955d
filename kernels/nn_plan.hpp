// Host-side launch planning of the CUDA pooling and normalisation kernels (kernels/cuda/pool.cu,
// norm.cu), plain C++ compiled in every build so that CPU tests (tests/test_plan_nn.cpp) check the
// grids, the rows per block, the per-channel chunking and the workspace sizes the kernels index.
#pragma once
#include <cstdint>

#include "kernels/nn.hpp"

namespace ember::kernels {

inline constexpr int64_t kNnMaxGridX = int64_t{1} << 30;  // larger problems grid-stride
inline constexpr int64_t kNnMaxGridY = 65535;

// A 1-d launch of one thread per element with a grid-stride loop.
struct FlatPlan {
  int threads;
  int64_t blocks;
};
FlatPlan plan_flat(int64_t n);

// The geometry of a 2-d pool in elements, passed by value to the kernels. in_s*: the input's strides
// (forward) or grad_out's (backward); the other side is contiguous.
struct PoolGeom {
  int64_t n, c, h, w, oh, ow;
  int64_t s0, s1, s2, s3;
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
  bool count_include_pad;
  int64_t planes() const { return n * c; }
};
// strided: [N, C, *, *] tensor whose strides go into s0..s3 (the forward's input, the backward's
// grad_out); in_h, in_w: the input's plane; out_h, out_w: the output's.
PoolGeom make_pool_geom(const Tensor& strided, int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w,
                        const Pool2dParams& p);

// layer_norm / rms_norm over [rows, cols]: a warp per row (several rows per block) for short rows, a
// block per row for long ones; blocks grid-stride over the rows.
struct RowPlan {
  bool block_per_row;
  int threads;         // per block, a multiple of 32, at most 1024
  int rows_per_block;  // threads / 32 for warps, 1 for blocks
  int64_t blocks;
};
inline constexpr int64_t kWarpRowMaxCols = 1024;
inline constexpr int kRowWarpThreads = 256;  // the launch bounds of the row kernels' two variants
inline constexpr int kRowMaxThreads = 1024;
RowPlan plan_rows(int64_t rows, int64_t cols);

// layer_norm's weight and bias gradients on CUDA, the sums over rows of g * xhat and of g: block
// (tile, chunk) of kParamTileCols x kParamTileRows threads takes columns [32 tile, 32 tile + 32) of rows
// [chunk * chunk_rows, ...) and writes its two partial rows to workspace[chunk][2][cols] (the computation
// dtype); a second kernel sums each column's chunks in order. Deterministic, no float atomics.
struct LayerNormParamPlan {
  int64_t tiles, chunks, chunk_rows;  // grid (tiles, chunks); chunks <= kNnMaxGridY, none empty
  int64_t workspace;                  // elements: chunks * 2 * cols
};
inline constexpr int kParamTileCols = 32, kParamTileRows = 8;
LayerNormParamPlan plan_layer_norm_params(int64_t rows, int64_t cols);

// A deterministic per-channel reduction over [N, C, S] (batch_norm's statistics and its backward's
// sums): each channel's count = N * S values are cut into `chunks` equal pieces of chunk_len (the
// last may be shorter, none empty); block (chunk, channel) writes `width` doubles of partials to
// workspace[(channel * chunks + chunk) * width], and a second kernel merges each channel's chunks in
// order. gridDim.y is capped: the kernels loop over channels with stride grid_y.
struct ChannelPlan {
  int threads;
  int64_t chunks, chunk_len;
  int64_t grid_x, grid_y;
  int width;
  int64_t workspace;  // doubles
};
inline constexpr int64_t kChannelMaxChunkLen = int64_t{1} << 24;  // float counts stay exact
ChannelPlan plan_channels(int64_t channels, int64_t count, int width);

}  // namespace ember::kernels
