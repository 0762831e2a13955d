// ember::data: batches and collate, datasets, random_split, samplers (DistributedSampler against
// PyTorch's index lists), the DataLoader (order, workers, errors, early exit, resume), readers with
// damaged files, text, and the bundled data sets.
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>
#include <thread>

#include "data_fixtures.hpp"
#include "test_util.hpp"

using namespace ember;
using data_test::drain;
using data_test::has_text;
using data_test::ids;
using data_test::range_dataset;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Example i: input [i, i] (f32), target i (i64). Counts get() calls; throws at fail_at; optional jitter
// so that worker threads finish out of order.
struct ProbeDataset : data::Dataset {
  int64_t n = 0;
  int64_t fail_at = -1;
  bool jitter = false;
  std::shared_ptr<std::atomic<int64_t>> calls = std::make_shared<std::atomic<int64_t>>(0);

  explicit ProbeDataset(int64_t n_) : n(n_) {}
  int64_t size() const override { return n; }
  data::Example get(int64_t i) const override {
    data::detail::check_index("ProbeDataset", i, n);
    if (i == fail_at) throw ValueError("probe failure at example " + std::to_string(i));
    if (jitter) std::this_thread::sleep_for(std::chrono::microseconds((i * 7919) % 5 * 150));
    ++*calls;
    return {.input = full({2}, static_cast<double>(i)), .target = scalar_tensor(i, {.dtype = kI64})};
  }
};

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path =
        fs::temp_directory_path() / ("ember_test_data_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  gzclose(f);
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::string idx_bytes(uint8_t type, const std::vector<uint32_t>& dims, const std::string& data) {
  std::string s{'\0', '\0', static_cast<char>(type), static_cast<char>(dims.size())};
  for (uint32_t d : dims)
    for (int b = 3; b >= 0; --b) s += static_cast<char>((d >> (8 * b)) & 0xFF);
  return s + data;
}

// The message of the ember::Error that f throws (fails the test if it throws nothing).
template <class E = Error, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL("expected an exception");
  return {};
}

}  // namespace

TEST_CASE("data: Batch and default_collate") {
  std::vector<data::Example> ex;
  for (int i = 0; i < 3; ++i)
    ex.push_back(
        {.input = full({2, 2}, i), .target = scalar_tensor(i, {.dtype = kI64}), .extra = {{"w", full({1}, 0.5 * i)}}});
  data::Batch b = data::default_collate(ex);
  CHECK(b.input.shape() == Shape{3, 2, 2});
  CHECK(ids(b.target) == std::vector<int64_t>{0, 1, 2});
  CHECK(b.extra.at("w").shape() == Shape{3, 1});
  CHECK(b.size() == 3);
  CHECK(b["w"].to_vector<float>() == std::vector<float>{0, 0.5f, 1});
  CHECK(b.has("target"));
  CHECK_FALSE(b.has("mask"));
  CHECK(has_text(error_of<IndexError>([&] { (void)b["mask"]; }), "input, target, w"));
  CHECK(testing::equal(b.example(1).input, full({2, 2}, 1)));
  CHECK(b.to(kCPU).input.shape() == b.input.shape());

  ex[2].input = full({3}, 2);
  CHECK(has_text(error_of<ShapeError>([&] { data::default_collate(ex); }), "entry 2"));
  ex[2].input = full({2, 2}, 2, {.dtype = kF64});
  CHECK_THROWS_AS(data::default_collate(ex), DTypeError);
  ex[2].input = full({2, 2}, 2);
  ex[2].target = {};
  CHECK(has_text(error_of<ValueError>([&] { data::default_collate(ex); }), "'target'"));

  data::Batch cat = data::cat_batches({b, b});
  CHECK(cat.size() == 6);
  CHECK(ids(cat.target) == std::vector<int64_t>{0, 1, 2, 0, 1, 2});
}

TEST_CASE("data: TensorDataset") {
  Tensor x = arange(0, 24, 1, kF32).reshape({6, 4}).t().t();  // a contiguous copy path is fine too
  Tensor y = arange(10, 16);
  data::TensorDataset ds(x.t().contiguous().t(), y, {{"id", arange(0, 6) * 2}});
  CHECK(ds.size() == 6);
  data::Example e = ds.get(4);
  CHECK(testing::equal(e.input, x[4]));
  CHECK(e.target.item<int64_t>() == 14);
  CHECK(e.extra.at("id").item<int64_t>() == 8);
  std::vector<int64_t> idx{5, 0, 5, 2};
  data::Batch b = ds.get_batch(idx);
  CHECK(testing::equal(b.input, stack({x[5], x[0], x[5], x[2]})));
  CHECK(ids(b.target) == std::vector<int64_t>{15, 10, 15, 12});
  CHECK(ids(b.extra.at("id")) == std::vector<int64_t>{10, 0, 10, 4});
  // The batched gather equals the per-example default path.
  CHECK(testing::equal(ds.Dataset::get_batch(idx).input, b.input));

  CHECK(has_text(error_of<IndexError>([&] { ds.get(6); }), "index 6 is out of range for a dataset of 6"));
  CHECK_THROWS_AS(ds.get(-1), IndexError);
  std::vector<int64_t> bad{1, 7};
  CHECK_THROWS_AS(ds.get_batch(bad), IndexError);
  CHECK(has_text(error_of<ShapeError>([&] { data::TensorDataset(zeros({5, 2}), zeros({4})); }), "4 examples"));
  CHECK_THROWS_AS(data::TensorDataset(zeros({})), ShapeError);
  CHECK_THROWS_AS(data::TensorDataset(zeros({3}), {}, {{"m", zeros({2})}}), ShapeError);
  // No target: batches carry only the input.
  data::TensorDataset only(zeros({3, 2}));
  CHECK_FALSE(only.get_batch(std::vector<int64_t>{0, 1}).target.defined());
}

TEST_CASE("data: Subset, ConcatDataset and random_split") {
  auto a = range_dataset(5),
       b = std::make_shared<data::TensorDataset>(arange(0, 3, 1, kF32).unsqueeze(1) + 100, arange(100, 103));
  data::Subset sub(a, {4, 1, 1});
  CHECK(sub.size() == 3);
  CHECK(sub.get(0).target.item<int64_t>() == 4);
  CHECK(ids(sub.get_batch(std::vector<int64_t>{2, 0}).target) == std::vector<int64_t>{1, 4});
  CHECK_THROWS_AS(data::Subset(a, {5}), IndexError);
  CHECK_THROWS_AS(sub.get(3), IndexError);

  auto empty = range_dataset(0);
  data::ConcatDataset cat({a, empty, b});
  CHECK(cat.size() == 8);
  CHECK(cat.get(5).target.item<int64_t>() == 100);
  std::vector<int64_t> idx{6, 0, 4, 5, 7, 1};
  data::Batch cb = cat.get_batch(idx);
  CHECK(ids(cb.target) == std::vector<int64_t>{101, 0, 4, 100, 102, 1});
  CHECK(testing::equal(cb.input, cat.Dataset::get_batch(idx).input));
  CHECK_THROWS_AS(cat.get(8), IndexError);

  auto ds = range_dataset(10);
  auto parts = data::random_split(ds, {0.33, 0.33, 0.34}, 3);
  REQUIRE(parts.size() == 3);  // torch: floor gives 3, 3, 3; the remainder goes to the first
  CHECK(parts[0]->size() == 4);
  CHECK(parts[1]->size() == 3);
  CHECK(parts[2]->size() == 3);
  std::set<int64_t> all;
  for (auto& p : parts) all.insert(p->indices().begin(), p->indices().end());
  CHECK(all.size() == 10);
  auto again = data::random_split(ds, {0.33, 0.33, 0.34}, 3);
  CHECK(again[0]->indices() == parts[0]->indices());
  auto other = data::random_split(ds, {4, 3, 3}, 4);
  CHECK(other[0]->indices() != parts[0]->indices());
  CHECK(data::random_split(ds, {0.25, 0.25, 0.25, 0.25})[3]->size() == 2);  // torch: 3, 3, 2, 2
  CHECK(has_text(error_of<ValueError>([&] { data::random_split(ds, {5, 4}); }), "sum to 9"));
  CHECK_THROWS_AS(data::random_split(ds, {0.5, 0.6}), ValueError);
}

TEST_CASE("data: DataLoader batching") {
  auto ds = range_dataset(10);
  data::DataLoader loader(ds, {.batch_size = 4});
  CHECK(loader.size() == 3);
  auto got = drain(loader);
  REQUIRE(got.size() == 3);
  CHECK(got[0] == std::vector<int64_t>{0, 1, 2, 3});
  CHECK(got[2] == std::vector<int64_t>{8, 9});  // the last, partial batch
  data::DataLoader dropping(ds, {.batch_size = 4, .drop_last = true});
  CHECK(dropping.size() == 2);
  CHECK(drain(dropping).size() == 2);
  data::DataLoader exact(ds, {.batch_size = 5, .drop_last = true});
  CHECK(drain(exact).size() == 2);
  data::DataLoader big(ds, {.batch_size = 64, .drop_last = true});
  CHECK(big.size() == 0);
  CHECK(drain(big).empty());
  // A dataset passed by value, and batches shaped as the fields.
  data::DataLoader by_value(data::TensorDataset(zeros({7, 3}), arange(0, 7)), {.batch_size = 3});
  for (const data::Batch& b : by_value) CHECK(b.input.size(1) == 3);
  CHECK_THROWS_AS(data::DataLoader(ds, {.batch_size = 0}), ValueError);
  CHECK_THROWS_AS(data::DataLoader(ds, {.shuffle = true, .sampler = std::make_shared<data::SequentialSampler>(10)}),
                  ValueError);
  // Custom collate and a transform.
  data::DataLoader custom(std::make_shared<ProbeDataset>(5), {.batch_size = 2,
                                                              .collate =
                                                                  [](const std::vector<data::Example>& ex) {
                                                                    data::Batch b = data::default_collate(ex);
                                                                    b.extra["count"] =
                                                                        full({1}, static_cast<double>(ex.size()));
                                                                    return b;
                                                                  },
                                                              .transform =
                                                                  [](data::Batch b, Generator&) {
                                                                    b.input = b.input * 2.0;
                                                                    return b;
                                                                  }});
  std::vector<float> counts;
  for (const data::Batch& b : custom) {
    counts.push_back(b["count"].item<float>());
    CHECK(b.input.to_vector<float>()[0] == 2.0f * static_cast<float>(b.target.to_vector<int64_t>()[0]));
  }
  CHECK(counts == std::vector<float>{2, 2, 1});
}

TEST_CASE("data: DataLoader shuffle is seeded per epoch") {
  auto ds = range_dataset(50);
  data::DataLoader a(ds, {.batch_size = 50, .shuffle = true, .seed = 11});
  data::DataLoader b(ds, {.batch_size = 50, .shuffle = true, .seed = 11});
  auto ea = drain(a, 3), eb = drain(b, 3);
  CHECK(ea == eb);
  CHECK(ea[0] != ea[1]);
  CHECK(ea[1] != ea[2]);
  for (auto order : ea) {
    std::sort(order.begin(), order.end());
    CHECK(order == ids(arange(0, 50)));
  }
  // Epoch e's order depends only on (seed, e): jump straight to epoch 2.
  data::DataLoader c(ds, {.batch_size = 50, .shuffle = true, .seed = 11});
  c.set_epoch(2);
  CHECK(drain(c)[0] == ea[2]);
  data::DataLoader d(ds, {.batch_size = 50, .shuffle = true, .seed = 12});
  CHECK(drain(d)[0] != ea[0]);
  // Unset seed: drawn from the default generator, so manual_seed makes it reproducible.
  manual_seed(5);
  data::DataLoader e1(ds, {.batch_size = 50, .shuffle = true});
  manual_seed(5);
  data::DataLoader e2(ds, {.batch_size = 50, .shuffle = true});
  CHECK(e1.seed() == e2.seed());
  CHECK(drain(e1) == drain(e2));
}

TEST_CASE("data: DataLoader order is the same for any num_workers") {
  auto probe = std::make_shared<ProbeDataset>(61);
  probe->jitter = true;
  auto noisy = [](data::Batch b, Generator& gen) {
    b.input = b.input + rand(b.input.shape(), {}, &gen);
    return b;
  };
  std::vector<std::vector<float>> ref;
  for (int64_t workers : {0, 1, 3}) {
    data::DataLoader loader(probe, {.batch_size = 4,
                                    .shuffle = true,
                                    .seed = 3,
                                    .num_workers = workers,
                                    .prefetch_factor = 2,
                                    .transform = noisy});
    std::vector<std::vector<float>> got;
    for (int e = 0; e < 2; ++e)
      for (const data::Batch& b : loader) got.push_back(b.input.to_vector<float>());
    CHECK(got.size() == 32);
    if (ref.empty())
      ref = got;
    else
      CHECK(got == ref);
  }
}

TEST_CASE("data: DataLoader worker exceptions reach the consumer") {
  for (int64_t workers : {0, 1, 3}) {
    CAPTURE(workers);
    auto probe = std::make_shared<ProbeDataset>(80);
    probe->fail_at = 37;
    data::DataLoader loader(probe, {.batch_size = 8, .num_workers = workers});
    int batches = 0;
    std::string msg;
    bool nested = false;
    try {
      for (const data::Batch& b : loader) {
        (void)b;
        ++batches;
      }
    } catch (const Error& e) {
      msg = e.what();
      try {
        std::rethrow_if_nested(e);
      } catch (const ValueError& inner) {
        nested = has_text(inner.what(), "probe failure");
      }
    }
    CHECK(batches == 4);  // batches 0..3 arrive, batch 4 (examples 32..39) fails
    CHECK(has_text(msg, "batch 4 of epoch 0"));
    CHECK(has_text(msg, "probe failure at example 37"));
    CHECK(nested);
    // The loader stays usable: the next pass is the next epoch and fails at the same place.
    CHECK_THROWS_AS(drain(loader), Error);
  }
}

TEST_CASE("data: DataLoader early exit stops the workers") {
  auto probe = std::make_shared<ProbeDataset>(1000);
  data::DataLoader loader(probe, {.batch_size = 1, .num_workers = 3, .prefetch_factor = 2});
  int seen = 0;
  for (const data::Batch& b : loader) {
    (void)b;
    if (++seen == 2) break;
  }
  const int64_t after_break = *probe->calls;
  CHECK(after_break <= 2 + 6 + 3);  // consumed + the bounded queue (+ batches in hand)
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(*probe->calls == after_break);  // joined: nothing runs any more
  CHECK(loader.state_dict()["batches_yielded"] == 2);
  // The next pass is epoch 1, from its start.
  auto it = loader.begin();
  CHECK(loader.epoch() == 1);
  CHECK(it->target.item<int64_t>() == 0);

  // Destroying the loader mid-pass, with a live iterator, joins its workers; the iterator reads as ended.
  auto owned = std::make_unique<data::DataLoader>(probe, data::DataLoaderOptions{.batch_size = 2, .num_workers = 2});
  auto live = owned->begin();
  ++live;
  owned.reset();
  CHECK(live == std::default_sentinel);
  // A new pass ends the one before it.
  data::DataLoader twice(probe, {.batch_size = 10, .num_workers = 2});
  auto first = twice.begin();
  auto second = twice.begin();
  CHECK(first == std::default_sentinel);
  CHECK(second != std::default_sentinel);
}

TEST_CASE("data: DataLoader resumes mid-epoch exactly") {
  auto ds = range_dataset(23);
  for (int64_t workers : {0, 2}) {
    CAPTURE(workers);
    data::DataLoaderOptions o{.batch_size = 4, .shuffle = true, .seed = 7, .num_workers = workers};
    data::DataLoader ref(ds, o);
    auto all = drain(ref, 3);  // 6 batches an epoch
    REQUIRE(all.size() == 18);

    data::DataLoader first(ds, o);
    CHECK(first.state_dict()["epoch"] == 0);
    json saved;
    int k = 0;
    for (const data::Batch& b : first) {
      CHECK(ids(b.target) == all[static_cast<size_t>(k)]);
      if (++k == 3) {
        saved = first.state_dict();  // a checkpoint taken inside the loop, after 3 batches
        break;
      }
    }
    CHECK(saved["epoch"] == 0);
    CHECK(saved["batches_yielded"] == 3);

    // A fresh loader with another seed adopts the saved one; the JSON survives a text round trip.
    data::DataLoader resumed(ds, {.batch_size = 4, .shuffle = true, .seed = 99, .num_workers = 1});
    resumed.load_state_dict(json::parse(saved.dump()));
    CHECK(resumed.epoch() == 0);
    auto rest = drain(resumed, 3);
    CHECK(rest == std::vector<std::vector<int64_t>>(all.begin() + 3, all.end()));
    CHECK(resumed.state_dict()["epoch"] == 3);
    CHECK(resumed.state_dict()["batches_yielded"] == 0);
  }
  data::DataLoader other(ds, {.batch_size = 5});
  json s = data::DataLoader(ds, {.batch_size = 4}).state_dict();
  CHECK(has_text(error_of<ValueError>([&] { other.load_state_dict(s); }), "batch_size"));
  s["batch_size"] = 5;
  s["batches_yielded"] = 9;
  CHECK_THROWS_AS(other.load_state_dict(s), ValueError);
  CHECK_THROWS_AS(other.load_state_dict(json::parse(R"({"epoch": "x", "batches_yielded": 0})")), ValueError);
}

TEST_CASE("data: DataLoader over an IterableDataset") {
  // Epoch e streams 10 examples valued 100 e + i.
  auto stream = std::make_shared<data::StreamDataset>(
      [](int64_t epoch) {
        return [epoch, i = int64_t{0}]() mutable -> std::optional<data::Example> {
          if (i == 10) return std::nullopt;
          int64_t v = 100 * epoch + i++;
          return data::Example{.input = full({1}, static_cast<double>(v)), .target = scalar_tensor(v, {.dtype = kI64})};
        };
      },
      10);
  for (int64_t workers : {0, 2}) {
    data::DataLoader loader(stream, {.batch_size = 3, .num_workers = workers});
    CHECK(loader.size() == 4);
    auto got = drain(loader, 2);
    REQUIRE(got.size() == 8);
    CHECK(got[3] == std::vector<int64_t>{9});
    CHECK(got[4] == std::vector<int64_t>{100, 101, 102});
  }
  data::DataLoader dropping(stream, {.batch_size = 3, .drop_last = true, .num_workers = 1});
  CHECK(dropping.size() == 3);
  CHECK(drain(dropping).size() == 3);
  // Resume: replays the stream up to the saved position.
  data::DataLoader a(stream, {.batch_size = 3});
  auto it = a.begin();
  ++it;
  json s = a.state_dict();
  data::DataLoader b(stream, {.batch_size = 3, .num_workers = 1});
  b.load_state_dict(s);
  auto rest = drain(b, 2);
  REQUIRE(rest.size() == 6);
  CHECK(rest[0] == std::vector<int64_t>{6, 7, 8});  // begin() and ++ yielded two batches
  CHECK(rest[2] == std::vector<int64_t>{100, 101, 102});
  auto unsized =
      std::make_shared<data::StreamDataset>([](int64_t) { return [] { return std::optional<data::Example>(); }; });
  CHECK_THROWS_AS(data::DataLoader(unsized).size(), ValueError);
  CHECK_THROWS_AS(data::DataLoader(unsized, {.shuffle = true}), ValueError);
}

TEST_CASE("data: DistributedSampler matches PyTorch's index lists") {
  // torch.utils.data.DistributedSampler(range(n), R, r, shuffle=False, drop_last=dl), listed per rank.
  struct Case {
    int64_t n, replicas;
    bool drop_last;
    std::vector<std::vector<int64_t>> expect;
  };
  const std::vector<Case> cases{
      {10, 3, false, {{0, 3, 6, 9}, {1, 4, 7, 0}, {2, 5, 8, 1}}},
      {10, 3, true, {{0, 3, 6}, {1, 4, 7}, {2, 5, 8}}},
      {2, 4, false, {{0}, {1}, {0}, {1}}},
      {1, 4, false, {{0}, {0}, {0}, {0}}},
      {7, 2, true, {{0, 2, 4}, {1, 3, 5}}},
      {8, 4, false, {{0, 4}, {1, 5}, {2, 6}, {3, 7}}},
      {5, 3, false, {{0, 3}, {1, 4}, {2, 0}}},
      {11, 4, true, {{0, 4}, {1, 5}, {2, 6}, {3, 7}}},
  };
  for (const Case& c : cases) {
    for (int64_t r = 0; r < c.replicas; ++r) {
      CAPTURE(c.n);
      CAPTURE(r);
      data::DistributedSampler s(c.n, c.replicas, r, false, 0, c.drop_last);
      CHECK(s.indices() == c.expect[static_cast<size_t>(r)]);
      CHECK(s.size() == static_cast<int64_t>(c.expect[static_cast<size_t>(r)].size()));
    }
  }
  // Shuffled: a disjoint cover with equal shares, the same on every rank's view, new each epoch.
  std::vector<int64_t> seen;
  std::vector<std::vector<int64_t>> epoch0;
  for (int64_t r = 0; r < 4; ++r) {
    data::DistributedSampler s(20, 4, r, true, 5);
    epoch0.push_back(s.indices());
    CHECK(epoch0.back().size() == 5);
    seen.insert(seen.end(), epoch0.back().begin(), epoch0.back().end());
    s.set_epoch(1);
    CHECK(s.indices() != epoch0.back());
  }
  std::sort(seen.begin(), seen.end());
  CHECK(seen == ids(arange(0, 20)));
  CHECK(epoch0[0] != std::vector<int64_t>{0, 4, 8, 12, 16});
  data::DistributedSampler padded(10, 4, 3, true, 5);  // pads 2 of 12 by wrapping: still 3 each
  CHECK(padded.size() == 3);
  CHECK(padded.indices().size() == 3);
  CHECK_THROWS_AS(data::DistributedSampler(10, 2, 2), ValueError);
  CHECK_THROWS_AS(data::DistributedSampler(10, 0, 0), ValueError);
  // Through a DataLoader, which sets the epoch on each pass.
  data::DataLoader loader(range_dataset(10),
                          {.batch_size = 2, .sampler = std::make_shared<data::DistributedSampler>(10, 3, 1, false)});
  CHECK(loader.size() == 2);
  auto got = drain(loader);
  CHECK(got == std::vector<std::vector<int64_t>>{{1, 4}, {7, 0}});
  auto shuffled = std::make_shared<data::DistributedSampler>(10, 2, 0, true, 1);
  data::DataLoader sl(range_dataset(10), {.batch_size = 5, .sampler = shuffled});
  auto two = drain(sl, 2);
  CHECK(two[0] != two[1]);
  CHECK(shuffled->epoch() == 1);
}

TEST_CASE("data: samplers") {
  data::RandomSampler rs(30, 4);
  auto p = rs.indices();
  std::sort(p.begin(), p.end());
  CHECK(p == ids(arange(0, 30)));
  data::RandomSampler with(5, 4, true, 100);
  CHECK(with.indices().size() == 100);
  for (int64_t i : with.indices()) CHECK((i >= 0 && i < 5));
  CHECK_THROWS_AS(data::RandomSampler(5, 0, false, 3), ValueError);

  data::SubsetRandomSampler sub({3, 5, 7}, 1);
  auto s = sub.indices();
  std::sort(s.begin(), s.end());
  CHECK(s == std::vector<int64_t>{3, 5, 7});

  data::WeightedRandomSampler w({1.0, 0.0, 3.0}, 20000, true, 9);
  auto draws = w.indices();
  int64_t c0 = std::count(draws.begin(), draws.end(), 0), c1 = std::count(draws.begin(), draws.end(), 1);
  CHECK(c1 == 0);
  CHECK(std::abs(static_cast<double>(c0) / 20000 - 0.25) < 0.02);
  data::WeightedRandomSampler nr({1, 1, 0, 5, 1}, 4, false, 2);
  auto d = nr.indices();
  CHECK(std::set<int64_t>(d.begin(), d.end()).size() == 4);
  CHECK(std::find(d.begin(), d.end(), 2) == d.end());
  CHECK_THROWS_AS(data::WeightedRandomSampler({1, 0}, 2, false), ValueError);
  CHECK_THROWS_AS(data::WeightedRandomSampler({1, -1}, 2), ValueError);

  // State: the epoch and seed travel; a different size is refused.
  data::RandomSampler a(30, 4);
  a.set_epoch(3);
  data::RandomSampler b(30, 8);
  b.load_state_dict(a.state_dict());
  CHECK(b.epoch() == 3);
  CHECK(b.indices() == a.indices());
  data::RandomSampler c(31, 4);
  CHECK(has_text(error_of<ValueError>([&] { c.load_state_dict(a.state_dict()); }), "saved with num_samples = 30"));
}

TEST_CASE("data: read_idx with good and damaged files") {
  TempDir dir;
  std::string pixels;
  for (int i = 0; i < 2 * 3 * 4; ++i) pixels += static_cast<char>(i * 10);
  const std::string good = idx_bytes(0x08, {2, 3, 4}, pixels);
  write_bytes(dir.file("a.idx"), good);
  write_gz(dir.file("a.idx.gz"), good);
  for (const char* name : {"a.idx", "a.idx.gz"}) {
    Tensor t = data::read_idx(dir.file(name));
    CHECK(t.dtype() == kU8);
    CHECK(t.shape() == Shape{2, 3, 4});
    CHECK(t.to_vector<int64_t>()[23] == 230);
  }
  // Big-endian floats.
  std::string f32{'\x3f', '\x80', '\0', '\0', '\xc0', '\0', '\0', '\0'};  // 1.0, -2.0
  CHECK(data::parse_idx(idx_bytes(0x0D, {2}, f32)).to_vector<float>() == std::vector<float>{1.0f, -2.0f});

  auto damaged = [&](const std::string& bytes, const std::string& expect) {
    CAPTURE(expect);
    write_bytes(dir.file("bad.idx"), bytes);
    std::string msg = error_of<FormatError>([&] { data::read_idx(dir.file("bad.idx")); });
    CHECK(has_text(msg, dir.file("bad.idx")));
    CHECK(has_text(msg, expect));
  };
  damaged(good.substr(0, good.size() - 5), "truncated");
  damaged(good.substr(0, 2), "truncated");
  damaged(good.substr(0, 9), "truncated header");
  damaged(good + "xx", "trailing data");
  damaged("\x1f\x00" + good.substr(2), "not an IDX file");
  damaged("PK\x03\x04 this is a zip file", "not an IDX file");
  damaged(idx_bytes(0x07, {2}, "ab"), "not an IDX type");
  damaged(idx_bytes(0x08, {}, ""), "0 dimensions");
  damaged(idx_bytes(0x08, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, "abc"), "describe more than");
  // Found by tools/fuzz.sh: an empty tensor whose other dims would overflow its strides.
  damaged(idx_bytes(0x08, {0, 0xFFFFFF, 0xFFFFFF, 0xFFFFFF}, ""), "describe more than");
  damaged(idx_bytes(0x08, {60000, 28, 28}, "abc"), "truncated");  // a lying header: no 47 MB allocation

  const std::string gz = read_bytes(dir.file("a.idx.gz"));
  write_bytes(dir.file("cut.gz"), gz.substr(0, gz.size() - 12));
  CHECK(has_text(error_of<FormatError>([&] { data::read_idx(dir.file("cut.gz")); }), "gzip"));
  std::string flipped = gz;
  for (size_t i = 12; i < flipped.size() - 8; ++i) flipped[i] = static_cast<char>(flipped[i] ^ 0x5A);
  write_bytes(dir.file("flip.gz"), flipped);
  CHECK(has_text(error_of<FormatError>([&] { data::read_idx(dir.file("flip.gz")); }), "flip.gz"));
  CHECK(has_text(error_of<IOError>([&] { data::read_idx(dir.file("missing.idx")); }), "missing.idx"));
}

TEST_CASE("data: read_csv with good and damaged files") {
  TempDir dir;
  write_bytes(dir.file("t.csv"), "label,a,\"b, quoted\"\r\n# a comment\n1,0.5,2\n\n0, -1e3 ,\"+7\"\n");
  data::CsvData d = data::read_csv(dir.file("t.csv"), {.label_column = 0});
  CHECK(d.features.shape() == Shape{2, 2});
  CHECK(d.features.to_vector<float>() == std::vector<float>{0.5f, 2, -1000, 7});
  CHECK(ids(d.labels) == std::vector<int64_t>{1, 0});
  CHECK(d.feature_names == std::vector<std::string>{"a", "b, quoted"});
  data::CsvData all = data::read_csv(dir.file("t.csv"), {.label_column = std::nullopt, .dtype = kF64});
  CHECK(all.features.shape() == Shape{2, 3});
  CHECK(all.features.dtype() == kF64);
  CHECK_FALSE(all.labels.defined());

  write_gz(dir.file("s.csv.gz"), "x,y,kind\n1,2,cat\n3,4,dog\n5,6,cat\n");
  data::CsvData s = data::read_csv(dir.file("s.csv.gz"), {.string_labels = true});
  CHECK(s.class_names == std::vector<std::string>{"cat", "dog"});
  CHECK(ids(s.labels) == std::vector<int64_t>{0, 1, 0});

  auto damaged = [&](const std::string& text, const std::string& expect, data::CsvOptions o = {}) {
    CAPTURE(expect);
    write_bytes(dir.file("bad.csv"), text);
    std::string msg = error_of<FormatError>([&] { data::read_csv(dir.file("bad.csv"), o); });
    CHECK(has_text(msg, dir.file("bad.csv")));
    CHECK(has_text(msg, expect));
  };
  damaged("a,b\n1,2\n3,x7\n", "line 3: column 2 ('b'): 'x7' is not a number");
  damaged("a,b\n1,2\n3,4,5\n", "line 3: 3 fields, expected 2");
  damaged("a,b\n1,\n", "empty cell");
  damaged("a,b\n1,2.5\n", "label '2.5' is not an integer");
  damaged("", "empty file");
  damaged("a,b\n", "no data rows");
  damaged("a,b\n1,\"2\n", "unterminated quoted field");
  damaged("3,1,x,y\n1,0\n2,1\n", "promises 3 rows", {.header = data::CsvHeader::sklearn});
  damaged("2,1,x\n1,0\n2,1\n", "names 1 classes", {.header = data::CsvHeader::sklearn});
  damaged("two,1\n1,0\n", "scikit-learn header", {.header = data::CsvHeader::sklearn});
  damaged("a,b\n1,2\n", "label column 5", {.label_column = 5});
  CHECK_THROWS_AS(data::read_csv(dir.file("none.csv")), IOError);
}

TEST_CASE("data: bundled digits, iris and breast cancer") {
  auto digits = data::digits();
  CHECK(digits->size() == 1797);
  CHECK(digits->input().shape() == Shape{1797, 64});
  // sklearn's load_digits: image 0 is a 0 whose first row reads 0 0 5 13 9 1 0 0.
  CHECK(digits->get(0).target.item<int64_t>() == 0);
  CHECK(digits->input()[0].narrow(0, 0, 8).to_vector<float>() == std::vector<float>{0, 0, 5, 13, 9, 1, 0, 0});
  CHECK(digits->input().max().item<float>() == 16);
  std::vector<int64_t> per_class(10, 0);
  for (int64_t y : ids(digits->target())) per_class[static_cast<size_t>(y)]++;
  CHECK(per_class[0] == 178);  // sklearn: np.bincount(load_digits().target)[0]
  CHECK(per_class[9] == 180);

  auto iris = data::iris();
  CHECK(iris->size() == 150);
  CHECK(iris->input().shape() == Shape{150, 4});
  CHECK(testing::allclose(iris->input()[0], tensor({5.1f, 3.5f, 1.4f, 0.2f})));
  CHECK(iris->target().to(kF64).sum().item<double>() == 150);  // 50 each of 0, 1, 2

  auto bc = data::breast_cancer();
  CHECK(bc->input().shape() == Shape{569, 30});
  CHECK(bc->get(0).target.item<int64_t>() == 0);
  CHECK(bc->target().to(kF64).sum().item<double>() == 357);  // 212 malignant (0), 357 benign (1)
  CHECK(bc->input()[0][0].item<float>() == doctest::Approx(17.99));

  // A missing file says where it looked and how to fix it.
  TempDir dir;
  const char* old_env = std::getenv("EMBER_DATA_DIR");
  std::string saved = old_env ? old_env : "";
  setenv("EMBER_DATA_DIR", dir.path.c_str(), 1);
  CHECK(data::data_dirs().front() == dir.path.string());
  std::string msg = error_of<IOError>([&] { data::find_data_file("no_such_file.csv"); });
  CHECK(has_text(msg, (dir.path / "no_such_file.csv").string()));
  CHECK(has_text(msg, "EMBER_DATA_DIR"));
  write_bytes(dir.file("iris.csv"), "2,4,a,b\n1,2,3,4,0\n5,6,7,8,1\n");  // the env folder comes first
  CHECK(has_text(error_of<FormatError>([&] { data::iris(); }), "expected [150, 4]"));
  if (old_env)
    setenv("EMBER_DATA_DIR", saved.c_str(), 1);
  else
    unsetenv("EMBER_DATA_DIR");
  CHECK(data::iris()->size() == 150);
}

TEST_CASE("data: CharVocab and next-character windows") {
  data::CharVocab v = data::CharVocab::build("hello world");
  CHECK(v.size() == 8);  // ' ', d, e, h, l, o, r, w
  CHECK(ids(v.encode("hello")) == std::vector<int64_t>{3, 2, 4, 4, 5});
  CHECK(v.decode(v.encode("world hello")) == "world hello");
  CHECK(has_text(error_of<IndexError>([&] { v.encode("help"); }), "'p' at byte offset 3"));
  CHECK_THROWS_AS(v.decode(std::vector<int64_t>{8}), IndexError);

  const std::string utf8 = "na\xc3\xafve caf\xc3\xa9 \xe2\x82\xac";  // naïve café €
  data::CharVocab u = data::CharVocab::build(utf8);
  CHECK(u.size() == 10);
  CHECK(u.encode(utf8).numel() == 12);
  CHECK(u.decode(u.encode(utf8)) == utf8);
  CHECK(u.chars().back() == U'\u20ac');
  CHECK_THROWS_AS(data::CharVocab::build("ab\xc3"), FormatError);
  CHECK_THROWS_AS(data::CharVocab::build("\xc0\xaf"), FormatError);  // overlong '/'
  CHECK_THROWS_AS(data::CharVocab(std::vector<char32_t>{U'a', U'a'}), ValueError);

  TempDir dir;
  u.save(dir.file("vocab.json"));
  data::CharVocab back = data::CharVocab::load(dir.file("vocab.json"));
  CHECK(back.chars() == u.chars());
  write_bytes(dir.file("broken.json"), "{\"chars\": \"ab");
  CHECK(has_text(error_of<FormatError>([&] { data::CharVocab::load(dir.file("broken.json")); }), "broken.json"));
  write_bytes(dir.file("dup.json"), "{\"type\": \"char\", \"chars\": \"abca\"}");
  CHECK_THROWS_AS(data::CharVocab::load(dir.file("dup.json")), FormatError);

  data::NextTokenDataset w(arange(0, 20) * 10, 4);
  CHECK(w.size() == 16);
  CHECK(ids(w.get(3).input) == std::vector<int64_t>{30, 40, 50, 60});
  CHECK(ids(w.get(3).target) == std::vector<int64_t>{40, 50, 60, 70});
  std::vector<int64_t> idx{15, 0, 3};
  data::Batch b = w.get_batch(idx);
  CHECK(b.input.shape() == Shape{3, 4});
  CHECK(testing::equal(b.input, w.Dataset::get_batch(idx).input));
  CHECK(testing::equal(b.target, w.Dataset::get_batch(idx).target));
  CHECK(ids(b.target[0]) == std::vector<int64_t>{160, 170, 180, 190});
  CHECK_THROWS_AS(w.get(16), IndexError);
  CHECK(data::NextTokenDataset(arange(0, 20), 4, 4).size() == 4);  // starts 0, 4, 8, 12
  CHECK(data::NextTokenDataset(arange(0, 4), 4).size() == 0);

  auto [train, val] = data::split_tokens(arange(0, 100), 0.1);
  CHECK(train.numel() == 90);
  CHECK(val[0].item<int64_t>() == 90);

  const std::string text = data::pride_and_prejudice();
  CHECK(text.size() == 684767);
  CHECK(text.rfind("PRIDE AND PREJUDICE", 0) == 0);
  data::CharLmData lm = data::char_lm_data(text, 64);
  CHECK(lm.vocab.size() == 75);
  CHECK(lm.train->size() + lm.val->size() == 684767 - 2 * 64);
  data::Batch first = lm.train->get_batch(std::vector<int64_t>{0});
  CHECK(lm.vocab.decode(first.input).substr(0, 5) == "PRIDE");
}

TEST_CASE("data: MNIST") {
  const fs::path root = fs::path(EMBER_TEST_DIR) / ".." / ".." / "shared" / "data" / "mnist";
  if (!fs::exists(root / "t10k-images-idx3-ubyte.gz")) {
    MESSAGE("skipped: no MNIST files at " << root.string() << " (get them with tools/fetch_mnist.sh)");
    return;
  }
  auto test = data::mnist(root.string(), false, {.dtype = kU8});
  CHECK(test->size() == 10000);
  CHECK(test->input().shape() == Shape{10000, 1, 28, 28});
  CHECK(test->input().dtype() == kU8);
  CHECK(ids(test->target().narrow(0, 0, 4)) == std::vector<int64_t>{7, 2, 1, 0});
  CHECK(test->input()[0].to(kI64).sum().item<int64_t>() == 18454);  // sum of image 0's bytes (python gzip)

  auto train = data::mnist(root.string(), true);
  CHECK(train->size() == 60000);
  CHECK(train->input().dtype() == kF32);
  CHECK(ids(train->target().narrow(0, 0, 4)) == std::vector<int64_t>{5, 0, 4, 1});
  CHECK(train->input()[1].sum().item<float>() == doctest::Approx(31095.0 / 255).epsilon(1e-5));
  CHECK(train->input().max().item<float>() == 1.0f);

  TempDir dir;
  std::string msg = error_of<IOError>([&] { data::mnist(dir.path.string()); });
  CHECK(has_text(msg, "train-images-idx3-ubyte"));
  CHECK(has_text(msg, "fetch_mnist.sh"));
  // Mismatched counts between the image and label files.
  write_bytes(dir.file("t10k-images-idx3-ubyte"), idx_bytes(0x08, {2, 28, 28}, std::string(2 * 784, '\0')));
  write_bytes(dir.file("t10k-labels-idx1-ubyte"), idx_bytes(0x08, {3}, std::string(3, '\1')));
  CHECK(has_text(error_of<FormatError>([&] { data::mnist(dir.path.string(), false); }), "2 images but"));
}

TEST_CASE("data: DigitsDataModule") {
  data::DigitsDataModule dm({.batch_size = 100, .seed = 3});
  auto train = dm.train_dataloader();
  CHECK(train == dm.train_dataloader());  // one loader, so its position persists
  CHECK(dm.train_dataset()->size() == 1438);
  CHECK(dm.val_dataset()->size() == 359);
  CHECK(train->size() == 15);
  CHECK(dm.val_dataloader()->size() == 4);
  auto it = train->begin();  // the batch lives as long as its iterator (or until ++)
  const data::Batch& first = *it;
  CHECK(first.input.shape() == Shape{100, 64});
  CHECK(first.input.max().item<float>() <= 1.0f);
  // Train and validation examples are disjoint (the split is a partition of the 1797 digits).
  auto a = std::dynamic_pointer_cast<const data::Subset>(dm.train_dataset());
  auto b = std::dynamic_pointer_cast<const data::Subset>(dm.val_dataset());
  REQUIRE((a && b));
  std::set<int64_t> all(a->indices().begin(), a->indices().end());
  all.insert(b->indices().begin(), b->indices().end());
  CHECK(all.size() == 1797);
  // The module's state is its loaders' positions (a new pass ends the one `it` holds).
  int k = 0;
  for (const data::Batch& batch : *train) {
    (void)batch;
    if (++k == 4) break;
  }
  json s = dm.state_dict();
  CHECK(s["train"]["batches_yielded"] == 4);
  CHECK(s.contains("val"));
  CHECK_FALSE(s.contains("test"));  // the same loader as val
  data::DigitsDataModule other({.batch_size = 100, .seed = 3});
  other.load_state_dict(s);
  CHECK(other.train_dataloader()->state_dict() == s["train"]);
  CHECK_THROWS_AS(data::DigitsDataModule({.val_fraction = 1.5}), ValueError);
}
