// Checkpoint checksums' cost (issue 15): a large checkpoint (float32 tensors of 64 MiB each) written and
// read with and without the per-tensor CRC-32, alternating, best of --reps. Prints one JSON line.
// Usage: checkpoint_io [--mb 1024] [--reps 3] [--dir DIR]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "ember.hpp"

using namespace ember;

namespace {

double seconds_of(auto&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  int64_t mb = 1024, reps = 3;
  std::string dir = std::filesystem::temp_directory_path().string();
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--mb") mb = std::atoll(argv[i + 1]);
    if (a == "--reps") reps = std::atoll(argv[i + 1]);
    if (a == "--dir") dir = argv[i + 1];
  }
  manual_seed(0);
  train::Checkpoint ck;
  for (int64_t i = 0; i < std::max<int64_t>(1, mb / 64); ++i)
    ck.tensors.emplace("layer" + std::to_string(i) + ".weight", randn({4096, 4096}));
  ck.state = {{"format", "ember-checkpoint"}};
  const std::string with = dir + "/ember_ckio_with.safetensors", without = dir + "/ember_ckio_without.safetensors";
  double save_with = 1e30, save_without = 1e30, load_verify = 1e30, load_plain = 1e30;
  auto save_checked = [&] { save_with = std::min(save_with, seconds_of([&] { ck.save(with); })); };
  auto save_plain = [&] {
    save_without = std::min(save_without, seconds_of([&] {
                              save(without, ck.tensors, {{"ember_checkpoint", ck.state.dump()}});
                            }));
  };
  auto load_checked = [&] { load_verify = std::min(load_verify, seconds_of([&] { train::Checkpoint::load(with); })); };
  auto load_plain_ = [&] {
    load_plain = std::min(load_plain, seconds_of([&] { train::Checkpoint::load(with, {.verify_checksums = false}); }));
  };
  for (int64_t r = 0; r < reps; ++r) {  // alternating which goes first, so the page cache favours neither
    if (r % 2 == 0) {
      save_checked(), save_plain(), load_checked(), load_plain_();
    } else {
      save_plain(), save_checked(), load_plain_(), load_checked();
    }
  }
  std::filesystem::remove(with);
  std::filesystem::remove(without);
  nlohmann::json out = {{"mib", mb},
                        {"save_with_checksums_s", save_with},
                        {"save_without_s", save_without},
                        {"load_verified_s", load_verify},
                        {"load_unverified_s", load_plain}};
  std::printf("%s\n", out.dump().c_str());
}
