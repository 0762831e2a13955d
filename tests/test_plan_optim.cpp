// Host planning of the CUDA multi-tensor optimizer steps (kernels/optim_plan.hpp) and the per-element
// math they share with the CPU (kernels/optim_math.hpp): the launches cover every element of every tensor
// exactly once within the argument-size limit, and a host replay of the CUDA kernel's indexing over the
// filled argument structs, with runtime flags, gives the CPU kernels' results (to an ulp: FMA contraction).
#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "kernels/optim.hpp"
#include "kernels/optim_math.hpp"
#include "kernels/optim_plan.hpp"
#include "test_util.hpp"

using namespace ember;
using namespace ember::kernels;

namespace {

// Checks the limits and that the chunks of every tensor are exactly [0, numel) once, in order.
void check_cover(const std::vector<int64_t>& numels, int max_tensors, int max_blocks, int64_t chunk) {
  CAPTURE(numels.size());
  CAPTURE(max_tensors);
  CAPTURE(max_blocks);
  CAPTURE(chunk);
  const std::vector<MtaLaunch> plan = plan_multi_tensor(numels, max_tensors, max_blocks, chunk);
  std::map<int64_t, std::vector<int64_t>> chunks_of;  // tensor -> chunks in launch order
  for (const MtaLaunch& l : plan) {
    CHECK(!l.blocks.empty());
    CHECK(static_cast<int>(l.tensors.size()) <= max_tensors);
    CHECK(static_cast<int>(l.blocks.size()) <= max_blocks);
    std::set<int64_t> used;
    for (const MtaBlock& b : l.blocks) {
      REQUIRE(b.slot >= 0);
      REQUIRE(b.slot < static_cast<int>(l.tensors.size()));
      const int64_t t = l.tensors[static_cast<size_t>(b.slot)];
      const int64_t n = numels[static_cast<size_t>(t)];
      CHECK(n > 0);                 // size-0 tensors are skipped
      CHECK(b.chunk * chunk < n);   // a chunk starts inside its tensor and so never crosses into another
      CHECK(b.chunk <= INT32_MAX);  // fits block_chunk
      chunks_of[t].push_back(b.chunk);
      used.insert(b.slot);
    }
    CHECK(used.size() == l.tensors.size());  // no slot without a block
  }
  for (size_t t = 0; t < numels.size(); ++t) {
    const int64_t n = numels[t];
    const auto it = chunks_of.find(static_cast<int64_t>(t));
    if (n == 0) {
      CHECK(it == chunks_of.end());
      continue;
    }
    REQUIRE(it != chunks_of.end());
    const int64_t want = (n + chunk - 1) / chunk;
    REQUIRE(static_cast<int64_t>(it->second.size()) == want);
    for (int64_t c = 0; c < want; ++c) CHECK(it->second[static_cast<size_t>(c)] == c);
  }
}

std::vector<int64_t> random_sizes(size_t count, int64_t max, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> d(0, max);
  std::vector<int64_t> out(count);
  for (auto& n : out) n = d(rng) % 5 == 0 ? 0 : d(rng);
  return out;
}

// The CUDA kernel's indexing on the host: every block of every launch updates its chunk through the
// filled argument struct (pointers offset by the chunk start), with runtime flags as the device has.
template <int Depth, class Op>
void replay(const std::vector<int64_t>& numels, const std::vector<void*> (&ptrs)[Depth], Op op) {
  for (const MtaLaunch& l : plan_multi_tensor(numels, mta_max_tensors(Depth))) {
    const MtaArgs<Depth> a = mta_args<Depth>(l, numels, ptrs);
    for (size_t b = 0; b < l.blocks.size(); ++b) {
      const int slot = a.block_tensor[b];
      const int64_t begin = static_cast<int64_t>(a.block_chunk[b]) * kMtaChunk;
      const int64_t n = std::min(kMtaChunk, a.numel[slot] - begin);
      float* p[Depth];
      for (int k = 0; k < Depth; ++k) p[k] = a.ptrs[k][slot] ? static_cast<float*>(a.ptrs[k][slot]) + begin : nullptr;
      for (int64_t i = 0; i < n; ++i) op(p, i);
    }
  }
}

std::vector<void*> raw(const std::vector<Tensor>& l) {
  std::vector<void*> out;
  for (const Tensor& t : l) out.push_back(t.raw_data());
  return out;
}
std::vector<Tensor> clones(const std::vector<Tensor>& l) {
  std::vector<Tensor> out;
  for (const Tensor& t : l) out.push_back(t.clone());
  return out;
}
// The replay's scalar loop with runtime flags and the CPU's vectorised loop with constant flags may
// contract different multiply-adds (g++ and nvcc both form FMAs), so they agree to an ulp, not a bit;
// an indexing error would be far off.
bool same_values(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  bool ok = true;
  for (size_t j = 0; j < a.size(); ++j) ok = testing::allclose(a[j], b[j], 1e-5, 1e-6) && ok;
  return ok;
}

}  // namespace

TEST_CASE("plan optim: the argument struct fits the kernel-parameter limit with room for the scalars") {
  CHECK(sizeof(MtaArgs<1>) + kMtaScalarRoom <= 4096);
  CHECK(sizeof(MtaArgs<3>) + kMtaScalarRoom <= 4096);
  CHECK(sizeof(MtaArgs<5>) + kMtaScalarRoom <= 4096);
  // The ops' scalars travel beside the struct: they must fit the room kept for them.
  CHECK(sizeof(optim_math::AdamScalars<double>) + sizeof(optim_math::AdamFlags) <= kMtaScalarRoom);
  CHECK(sizeof(optim_math::RmspropScalars<double>) + sizeof(optim_math::RmspropFlags) <= kMtaScalarRoom);
  CHECK(mta_max_tensors(5) <= mta_max_tensors(3));
  CHECK(mta_max_tensors(1) <= 255);
}

TEST_CASE("plan optim: launches cover every element once, never cross tensors, stay within the limits") {
  check_cover({}, 30, 320, kMtaChunk);
  check_cover({0, 0, 0}, 30, 320, kMtaChunk);
  check_cover({1}, 30, 320, kMtaChunk);
  check_cover({kMtaChunk, kMtaChunk + 1, kMtaChunk - 1}, 30, 320, kMtaChunk);
  check_cover(std::vector<int64_t>(1000, 1), 110, 320, kMtaChunk);  // many tiny tensors: 10 launches
  check_cover(std::vector<int64_t>(1000, 3), 30, 320, kMtaChunk);
  check_cover({int64_t{3} << 31}, 30, 320, kMtaChunk);  // one huge tensor, over 2^32 elements
  check_cover({5, int64_t{1} << 26, 0, 7, int64_t{1} << 25}, 30, 320, kMtaChunk);
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    check_cover(random_sizes(200, 400, seed), 1 + static_cast<int>(seed % 7), 1 + static_cast<int>(seed % 11), 16);
    check_cover(random_sizes(60, 3 * kMtaChunk, seed), mta_max_tensors(5), kMtaMaxBlocks, kMtaChunk);
  }
  CHECK(plan_multi_tensor(std::vector<int64_t>(1000, 1), 110).size() == 10);
  CHECK(plan_multi_tensor({int64_t{320} * kMtaChunk}, 30).size() == 1);
  CHECK(plan_multi_tensor({int64_t{320} * kMtaChunk + 1}, 30).size() == 2);
  // A tensor cut between launches is the first tensor of the next launch.
  const auto cut = plan_multi_tensor({10, 5 * kMtaChunk}, 30, 3);
  REQUIRE(cut.size() == 2);
  CHECK(cut[0].tensors == std::vector<int64_t>{0, 1});
  CHECK(cut[1].tensors == std::vector<int64_t>{1});
  CHECK(cut[1].blocks[0].chunk == 2);
}

TEST_CASE("plan optim: the argument struct names each block's tensor, chunk and pointers") {
  std::vector<int64_t> numels = {3, 0, 2 * kMtaChunk + 5};
  std::vector<void*> p0 = {reinterpret_cast<void*>(0x1000), reinterpret_cast<void*>(0x2000),
                           reinterpret_cast<void*>(0x3000)};
  std::vector<void*> ptrs[2] = {p0, {}};
  const auto plan = plan_multi_tensor(numels, mta_max_tensors(2));
  REQUIRE(plan.size() == 1);
  const MtaArgs<2> a = mta_args<2>(plan[0], numels, ptrs);
  CHECK(a.numel[0] == 3);
  CHECK(a.numel[1] == 2 * kMtaChunk + 5);
  CHECK(a.ptrs[0][0] == p0[0]);
  CHECK(a.ptrs[0][1] == p0[2]);
  CHECK(a.ptrs[1][0] == nullptr);  // an unused operand list
  CHECK(a.block_tensor[0] == 0);
  CHECK(a.block_tensor[3] == 1);
  CHECK(a.block_chunk[3] == 2);
}

TEST_CASE("plan optim: a host replay of the multi-tensor kernels gives the CPU steps' results") {
  manual_seed(3);
  std::vector<int64_t> numels = {5, 0, kMtaChunk + 3, 1, 200, 2 * kMtaChunk};
  for (int j = 0; j < 40; ++j) numels.push_back(1 + j * 37);  // more tensors than one Adam launch takes
  auto make = [&](bool positive) {
    std::vector<Tensor> l;
    for (int64_t n : numels) l.push_back(positive ? abs(randn({n})) + 0.1 : randn({n}));
    return l;
  };
  const std::vector<Tensor> params = make(false), grads = make(false), s1 = make(true), s2 = make(true),
                            s3 = make(true);
  namespace om = optim_math;

  SUBCASE("sgd") {
    for (bool first : {true, false}) {
      const SgdStepArgs h{.lr = 0.1,
                          .momentum = 0.9,
                          .dampening = 0.1,
                          .weight_decay = 0.01,
                          .nesterov = false,
                          .maximize = true,
                          .first = first};
      auto p = clones(params), b = clones(s1), p2 = clones(params), b2 = clones(s1);
      cpu::sgd_step_multi(p, grads, b, h);
      std::vector<void*> ptrs[3] = {raw(p2), raw(grads), raw(b2)};
      const auto s = om::sgd_scalars<float>(h);
      const om::SgdFlags f = om::sgd_flags(h);
      replay<3>(numels, ptrs,
                [&](float* const(&q)[3], int64_t i) { om::sgd_update<float>(q[0], q[1], q[2], i, s, f); });
      CHECK(same_values(p, p2));
      CHECK(same_values(b, b2));
    }
  }
  SUBCASE("adam") {
    for (bool amsgrad : {false, true}) {
      const AdamStepArgs h{.lr = 0.01,
                           .beta1 = 0.9,
                           .beta2 = 0.99,
                           .eps = 1e-8,
                           .weight_decay = 0.1,
                           .decoupled = !amsgrad,
                           .amsgrad = amsgrad,
                           .maximize = false,
                           .step = 3};
      auto p = clones(params), m = clones(s1), v = clones(s2), vm = clones(s3);
      auto p2 = clones(params), m2 = clones(s1), v2 = clones(s2), vm2 = clones(s3);
      cpu::adam_step_multi(p, grads, m, v, amsgrad ? vm : std::vector<Tensor>{}, h);
      std::vector<void*> ptrs[5] = {raw(p2), raw(grads), raw(m2), raw(v2), amsgrad ? raw(vm2) : std::vector<void*>{}};
      const auto s = om::adam_scalars<float>(h);
      const om::AdamFlags f = om::adam_flags<float>(h);
      replay<5>(numels, ptrs,
                [&](float* const(&q)[5], int64_t i) { om::adam_update<float>(q[0], q[1], q[2], q[3], q[4], i, s, f); });
      CHECK(same_values(p, p2));
      CHECK(same_values(m, m2));
      CHECK(same_values(v, v2));
      CHECK(same_values(vm, vm2));
    }
  }
  SUBCASE("rmsprop") {
    const RmspropStepArgs h{.lr = 0.01,
                            .alpha = 0.9,
                            .eps = 1e-8,
                            .weight_decay = 0.1,
                            .momentum = 0.5,
                            .centered = true,
                            .maximize = false};
    // square_avg well above grad_avg^2: sqrt(square_avg - grad_avg^2) near 0 would magnify an ulp.
    std::vector<Tensor> sq0, ga0;
    for (size_t j = 0; j < s1.size(); ++j) {
      sq0.push_back(s1[j] + 1.0);
      ga0.push_back(s2[j] * 0.1);
    }
    auto p = clones(params), sq = clones(sq0), ga = clones(ga0), b = clones(s3);
    auto p2 = clones(params), sq2 = clones(sq0), ga2 = clones(ga0), b2 = clones(s3);
    cpu::rmsprop_step_multi(p, grads, sq, ga, b, h);
    std::vector<void*> ptrs[5] = {raw(p2), raw(grads), raw(sq2), raw(ga2), raw(b2)};
    const auto s = om::rmsprop_scalars<float>(h);
    const om::RmspropFlags f = om::rmsprop_flags<float>(h);
    replay<5>(numels, ptrs, [&](float* const(&q)[5], int64_t i) {
      om::rmsprop_update<float>(q[0], q[1], q[2], q[3], q[4], i, s, f);
    });
    CHECK(same_values(p, p2));
    CHECK(same_values(sq, sq2));
    CHECK(same_values(ga, ga2));
    CHECK(same_values(b, b2));
  }
  SUBCASE("adagrad") {
    const AdagradStepArgs h{
        .lr = 0.1, .lr_decay = 0.01, .weight_decay = 0.0, .eps = 1e-10, .maximize = false, .step = 4};
    auto p = clones(params), sm = clones(s1), p2 = clones(params), sm2 = clones(s1);
    cpu::adagrad_step_multi(p, grads, sm, h);
    std::vector<void*> ptrs[3] = {raw(p2), raw(grads), raw(sm2)};
    const auto s = om::adagrad_scalars<float>(h);
    const om::AdagradFlags f = om::adagrad_flags(h);
    replay<3>(numels, ptrs,
              [&](float* const(&q)[3], int64_t i) { om::adagrad_update<float>(q[0], q[1], q[2], i, s, f); });
    CHECK(same_values(p, p2));
    CHECK(same_values(sm, sm2));
  }
}

TEST_CASE("plan optim: the multi-tensor norm equals the norm of the per-tensor norms") {
  manual_seed(4);
  const std::vector<Tensor> ts = {randn({7}), randn({3, 5}), randn({1000}).to(kF64), randn({4}).to(kBF16)};
  for (double p : {1.0, 2.0, 3.0, std::numeric_limits<double>::infinity()}) {
    CAPTURE(p);
    std::vector<Tensor> norms;
    for (const Tensor& t : ts) norms.push_back(norm(t.to(kF64), p));
    const double want = norm(stack(norms), p).item<double>();
    const Tensor got = ember::multi_tensor_norm(ts, p, kF32);
    CHECK(got.dtype() == kF32);
    CHECK(got.dim() == 0);
    CHECK(got.item<double>() == doctest::Approx(want).epsilon(1e-6));
  }
  CHECK_THROWS_AS(ember::multi_tensor_norm(ts, 0.0, kF32), ValueError);
  CHECK_THROWS_AS(ember::multi_tensor_norm({zeros({4, 2}).select(1, 0)}, 2.0, kF32), ValueError);
}
