// Host-side launch planning of the CUDA pooling and normalisation kernels; see nn_plan.hpp.
#include "kernels/nn_plan.hpp"

#include <algorithm>

namespace ember::kernels {
namespace {
constexpr int kBlock = 256;
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
}  // namespace

FlatPlan plan_flat(int64_t n) { return {kBlock, std::clamp<int64_t>(ceil_div(n, kBlock), 1, kNnMaxGridX)}; }

PoolGeom make_pool_geom(const Tensor& strided, int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w,
                        const Pool2dParams& p) {
  PoolGeom g{};
  g.n = strided.size(0);
  g.c = strided.size(1);
  g.h = in_h;
  g.w = in_w;
  g.oh = out_h;
  g.ow = out_w;
  g.s0 = strided.stride(0);
  g.s1 = strided.stride(1);
  g.s2 = strided.stride(2);
  g.s3 = strided.stride(3);
  g.kh = p.kernel[0];
  g.kw = p.kernel[1];
  g.sh = p.stride[0];
  g.sw = p.stride[1];
  g.ph = p.padding[0];
  g.pw = p.padding[1];
  g.dh = p.dilation[0];
  g.dw = p.dilation[1];
  g.count_include_pad = p.count_include_pad;
  return g;
}

RowPlan plan_rows(int64_t rows, int64_t cols) {
  rows = std::max<int64_t>(rows, 1);
  if (cols <= kWarpRowMaxCols) {
    constexpr int kRowsPerBlock = kRowWarpThreads / 32;
    return {false, kRowWarpThreads, kRowsPerBlock, std::min(ceil_div(rows, kRowsPerBlock), kNnMaxGridX)};
  }
  // About eight elements per thread, between 128 and 1024 threads.
  const int64_t threads = std::clamp<int64_t>(ceil_div(ceil_div(cols, 8), 32) * 32, 128, kRowMaxThreads);
  return {true, static_cast<int>(threads), 1, std::min(rows, kNnMaxGridX)};
}

LayerNormParamPlan plan_layer_norm_params(int64_t rows, int64_t cols) {
  LayerNormParamPlan p{};
  p.tiles = std::max<int64_t>(1, ceil_div(cols, kParamTileCols));
  // About 1024 blocks in all (a large GPU's fill), each with at least four rows per thread.
  const int64_t by_fill = std::max<int64_t>(1, ceil_div(1024, p.tiles));
  const int64_t by_rows = std::max<int64_t>(1, rows / (int64_t{4} * kParamTileRows));
  const int64_t chunks = std::min({by_fill, by_rows, kNnMaxGridY});
  p.chunk_rows = std::max<int64_t>(1, ceil_div(rows, chunks));
  p.chunks = std::max<int64_t>(1, ceil_div(rows, p.chunk_rows));  // no empty chunk
  p.workspace = p.chunks * 2 * cols;
  return p;
}

ChannelPlan plan_channels(int64_t channels, int64_t count, int width) {
  ChannelPlan p{};
  p.threads = kBlock;
  p.width = width;
  channels = std::max<int64_t>(channels, 1);
  // Enough blocks in all to fill a large GPU (about 1024), each with at least four values per
  // thread, and no chunk longer than kChannelMaxChunkLen.
  const int64_t per_block_min = int64_t{4} * kBlock;
  int64_t chunks = std::max<int64_t>(1, ceil_div(1024, channels));
  chunks = std::min(chunks, std::max<int64_t>(1, ceil_div(count, per_block_min)));
  chunks = std::max(chunks, ceil_div(count, kChannelMaxChunkLen));
  p.chunk_len = count == 0 ? 0 : ceil_div(count, chunks);
  p.chunks = count == 0 ? 1 : ceil_div(count, p.chunk_len);  // no empty chunk
  p.grid_x = p.chunks;
  p.grid_y = std::min(channels, kNnMaxGridY);
  p.workspace = channels * p.chunks * width;
  return p;
}

}  // namespace ember::kernels
