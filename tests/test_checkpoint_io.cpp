// Tests of the CheckpointIO plugin: AsyncCheckpointIO gives the same files and resume as the synchronous
// writer, copies the tensors before returning, raises background errors, never leaves a partial file when
// killed; a user's store sees ModelCheckpoint's saves, removals and copies and serves ckpt_path.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>

#include "core/io/temp_files.hpp"
#include "tests/trainer_fixtures.hpp"

using namespace ember;
using namespace trainer_test;

namespace {

// Same names, dtypes, shapes and bytes.
bool same_tensors(const TensorMap& a, const TensorMap& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    if (it == b.end() || it->second.dtype() != t.dtype() || it->second.shape() != t.shape()) return false;
    const Tensor x = t.cpu().contiguous(), y = it->second.cpu().contiguous();
    if (std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) != 0) {
      MESSAGE("tensor " << name << " differs");
      return false;
    }
  }
  return true;
}

std::set<std::string> files_in(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

// A store in memory that records every call (what a user's object-store IO looks like to the Trainer).
struct MemoryIO : train::CheckpointIO {
  std::mutex mutex;
  std::map<std::string, train::Checkpoint> files;
  std::vector<std::string> calls;  // "save <path>", "remove <path>", "copy <from> <to>", "load <path>"
  int fail_on_save = -1;           // the index of the save that throws (-1: none)
  int saves = 0;
  void save_checkpoint(const train::Checkpoint& ck, const std::string& path) override {
    std::lock_guard lock(mutex);
    calls.push_back("save " + fs::path(path).filename().string());
    if (saves++ == fail_on_save) throw IOError("[MemoryIO] disk full writing " + path);
    files[path] = ck;
  }
  train::Checkpoint load_checkpoint(const std::string& path, const train::CheckpointLoadOptions&) override {
    std::lock_guard lock(mutex);
    calls.push_back("load " + fs::path(path).filename().string());
    auto it = files.find(path);
    EMBER_CHECK(it != files.end(), IOError, "[MemoryIO] no checkpoint ", path);
    train::Checkpoint c = it->second;
    c.path = path;
    return c;
  }
  void remove_checkpoint(const std::string& path) override {
    std::lock_guard lock(mutex);
    calls.push_back("remove " + fs::path(path).filename().string());
    files.erase(path);
  }
  bool exists(const std::string& path) override {
    std::lock_guard lock(mutex);
    return files.contains(path);
  }
  void copy_checkpoint(const std::string& from, const std::string& to) override {
    std::lock_guard lock(mutex);
    calls.push_back("copy " + fs::path(from).filename().string() + " " + fs::path(to).filename().string());
    files[to] = files.at(from);
  }
};

// Holds every write until opened: the test decides when the background thread may finish.
struct GatedIO : train::LocalCheckpointIO {
  std::mutex mutex;
  std::condition_variable cv;
  bool open = false;
  void save_checkpoint(const train::Checkpoint& ck, const std::string& path) override {
    {
      std::unique_lock lock(mutex);
      cv.wait(lock, [&] { return open; });
    }
    LocalCheckpointIO::save_checkpoint(ck, path);
  }
  void release() {
    {
      std::lock_guard lock(mutex);
      open = true;
    }
    cv.notify_all();
  }
};

train::TrainerOptions checkpointing(const std::string& dir, std::shared_ptr<train::CheckpointIO> io,
                                    train::ModelCheckpointOptions mc, int64_t epochs = 3) {
  mc.dirpath = dir;
  train::TrainerOptions o = quiet({.max_epochs = epochs, .num_sanity_val_steps = 0});
  o.callbacks = {std::make_shared<train::ModelCheckpoint>(mc)};
  o.checkpoint_io = std::move(io);
  return o;
}

std::unique_ptr<Tiny> adam_tiny() {
  auto m = std::make_unique<Tiny>();
  m->use_adam = true;
  return m;
}

}  // namespace

TEST_SUITE("checkpoint_io") {
  TEST_CASE("AsyncCheckpointIO: a fit writes the same checkpoints as the synchronous writer and resumes exactly") {
    TempDir sync_dir("cio_sync"), async_dir("cio_async");
    const train::ModelCheckpointOptions mc{.save_last = true, .save_top_k = -1, .every_n_train_steps = 2};
    manual_seed(5);
    auto a = adam_tiny();
    train::Trainer ta(checkpointing(sync_dir.str(), nullptr, mc));
    CHECK(dynamic_cast<train::LocalCheckpointIO*>(&ta.checkpoint_io()) != nullptr);  // the default
    ta.fit(*a, loader(24, 4, true), loader(8, 4, false));

    manual_seed(5);
    auto b = adam_tiny();
    auto io = std::make_shared<train::AsyncCheckpointIO>();
    train::Trainer tb(checkpointing(async_dir.str(), io, mc));
    CHECK(&tb.checkpoint_io() == io.get());
    tb.fit(*b, loader(24, 4, true), loader(8, 4, false));
    CHECK_FALSE(io->pending());  // fit returned with every write done
    CHECK(flat_params(*a) == flat_params(*b));

    const std::set<std::string> names = files_in(sync_dir.path);
    CHECK(names.size() == 10);  // steps 2, 4, ..., 18 and last
    REQUIRE(names == files_in(async_dir.path));
    for (const std::string& name : names) {
      CAPTURE(name);
      const train::Checkpoint x = train::Checkpoint::load((sync_dir.path / name).string());
      const train::Checkpoint y = train::Checkpoint::load((async_dir.path / name).string());
      CHECK(same_tensors(x.tensors, y.tensors));  // weights and Adam's moments
      nlohmann::json sx = x.state, sy = y.state;  // the same run state but for the time taken
      for (nlohmann::json* s : {&sx, &sy}) {
        REQUIRE(s->contains("loops"));
        s->at("loops").erase("elapsed_s");
      }
      for (const char* key : {"epoch", "global_step", "optimizer_states", "lr_schedulers", "loops", "rng"}) {
        CAPTURE(key);
        CHECK(sx.contains(key));
        CHECK(sx.value(key, nlohmann::json()) == sy.value(key, nlohmann::json()));
      }
    }

    // Resuming from a mid-run checkpoint through the async IO ends where the uninterrupted run ended.
    const std::string mid = (async_dir.path / "epoch=1-step=8.safetensors").string();
    REQUIRE(fs::exists(mid));
    auto c = adam_tiny();
    TempDir resume_dir("cio_resume");
    train::Trainer tc(checkpointing(resume_dir.str(), std::make_shared<train::AsyncCheckpointIO>(), mc));
    tc.fit(*c, loader(24, 4, true), loader(8, 4, false), {.ckpt_path = mid});
    CHECK(tc.global_step() == 18);
    CHECK(flat_params(*c) == flat_params(*a));
    const train::Checkpoint last_a = train::Checkpoint::load((sync_dir.path / "last.safetensors").string());
    const train::Checkpoint last_c = train::Checkpoint::load((resume_dir.path / "last.safetensors").string());
    CHECK(same_tensors(last_a.tensors, last_c.tensors));
  }

  TEST_CASE("AsyncCheckpointIO: save returns before the write, with a copy the training cannot change") {
    TempDir dir("cio_gate");
    const std::string a = (dir.path / "a.safetensors").string(), b = (dir.path / "b.safetensors").string();
    nn::Linear fc(8, 4);
    const std::vector<double> want = flat_params(*fc);
    auto gate = std::make_shared<GatedIO>();
    train::AsyncCheckpointIO io(gate);
    train::Checkpoint ck;
    ck.tensors = fc->state_dict();  // the parameters themselves, as make_checkpoint hands them over
    ck.state = {{"global_step", 1}};
    io.save_checkpoint(ck, a);
    CHECK(io.pending());  // the write waits at the gate...
    CHECK_FALSE(fs::exists(a));
    CHECK(io.exists(a));  // ...and the store answers for it already
    {
      autograd::NoGradGuard no_grad;  // an optimizer step changing the parameters in place
      fc->weight.add_(1.0);
      fc->bias.mul_(-1.0);
    }
    // The next save waits for the previous write.
    std::atomic<bool> second_returned = false;
    std::thread second([&] {
      io.save_checkpoint(ck, b);
      second_returned = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK_FALSE(second_returned.load());
    gate->release();
    second.join();
    io.remove_checkpoint(b);  // queued behind b's write
    CHECK_FALSE(io.exists(b));
    io.teardown();
    CHECK_FALSE(io.pending());
    CHECK_FALSE(fs::exists(b));
    nn::Linear back(8, 4);
    back->load_state_dict(io.load_checkpoint(a).tensors);
    CHECK(flat_params(*back) == want);  // the values at save time, not the changed ones
    CHECK(flat_params(*fc) != want);
  }

  TEST_CASE("AsyncCheckpointIO: a background error is raised by the next call and by fit, never lost") {
    auto mem = std::make_shared<MemoryIO>();
    mem->fail_on_save = 0;
    {
      train::AsyncCheckpointIO io(mem);
      train::Checkpoint ck;
      ck.tensors = {{"x", ones({3})}};
      io.save_checkpoint(ck, "/store/a.safetensors");  // fails in the background
      io.remove_checkpoint("/store/old.safetensors");  // queued behind it: dropped, the old one stays
      CHECK(throws_with<IOError>([&] { io.teardown(); }, "[AsyncCheckpointIO] the background work on /store/a"));
      io.teardown();  // reported once
      CHECK(std::find(mem->calls.begin(), mem->calls.end(), "remove old.safetensors") == mem->calls.end());
      mem->fail_on_save = 1;  // the next save (index 1) fails too: raised by the save after it
      io.save_checkpoint(ck, "/store/b.safetensors");
      CHECK(
          throws_with<IOError>([&] { io.save_checkpoint(ck, "/store/c.safetensors"); }, "disk full writing /store/b"));
      io.save_checkpoint(ck, "/store/d.safetensors");
      io.teardown();
      CHECK(mem->files.contains("/store/d.safetensors"));
    }

    // Inside a fit: the third save fails; the fit raises it and the second checkpoint is kept.
    TempDir dir("cio_fail");
    auto store = std::make_shared<MemoryIO>();
    store->fail_on_save = 2;
    Tiny m;
    train::Trainer t(checkpointing(dir.str(), std::make_shared<train::AsyncCheckpointIO>(store),
                                   {.save_top_k = 1, .every_n_train_steps = 1}));
    CHECK(throws_with<IOError>([&] { t.fit(m, loader(24, 4, false)); }, "disk full writing"));
    CHECK(store->files.size() == 1);
    CHECK(store->files.contains((dir.path / "epoch=0-step=2.safetensors").string()));
    CHECK(store->calls == std::vector<std::string>{"save epoch=0-step=1.safetensors", "save epoch=0-step=2.safetensors",
                                                   "remove epoch=0-step=1.safetensors",
                                                   "save epoch=0-step=3.safetensors"});
    // A synchronous failing store raises at once.
    auto sync_store = std::make_shared<MemoryIO>();
    sync_store->fail_on_save = 0;
    Tiny m2;
    train::Trainer t2(checkpointing(dir.str(), sync_store, {.every_n_train_steps = 1}));
    CHECK(throws_with<IOError>([&] { t2.fit(m2, loader(24, 4, false)); }, "[MemoryIO] disk full"));
  }

  TEST_CASE("AsyncCheckpointIO killed while writing leaves no partial file under the final name") {
    TempDir dir("cio_kill");
    const std::string path = (dir.path / "big.safetensors").string();
    train::Checkpoint ck;  // 64 MiB: the write, checksums and fsync take a while
    for (int i = 0; i < 4; ++i) ck.tensors.emplace(std::to_string(i) + ".weight", full({4 << 20}, float(i + 1)));
    ck.state = {{"global_step", 7}};
    for (int attempt = 0; attempt < 4; ++attempt) {
      CAPTURE(attempt);
      pid_t pid = ::fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {  // the child saves asynchronously, over and over, until killed
        try {
          train::AsyncCheckpointIO io;
          for (;;) io.save_checkpoint(ck, path);
        } catch (...) {
        }
        ::_exit(1);
      }
      const std::string tmp = path + ".tmp." + std::to_string(pid);
      if (attempt % 2 == 0) {  // kill while the child's background thread has the temporary file open
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (!fs::exists(tmp) && std::chrono::steady_clock::now() < deadline)
          std::this_thread::sleep_for(std::chrono::microseconds(200));
        CHECK(fs::exists(tmp));
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(150 * attempt));
      }
      ::kill(pid, SIGKILL);
      int status = 0;
      ::waitpid(pid, &status, 0);
      CHECK(WIFSIGNALED(status));
      if (attempt == 0) CHECK_FALSE(fs::exists(path));  // the first write was cut off: no file at all
      if (fs::exists(path)) {
        const train::Checkpoint back = train::Checkpoint::load(path);  // whole: checksums verified
        CHECK(same_tensors(back.tensors, ck.tensors));
        CHECK(back.state.at("global_step") == 7);
      }
      remove_stale_temp_files(dir.str(), [](const std::string&) { return true; });
      CHECK(files_in(dir.path).size() <= 1);
    }
  }

  TEST_CASE("a user's CheckpointIO stores ModelCheckpoint's files and serves ckpt_path") {
    TempDir dir("cio_memory");
    auto store = std::make_shared<MemoryIO>();
    Tiny m;
    train::Trainer t(checkpointing(dir.str(), store, {.save_last = true, .save_top_k = 1}));
    t.fit(m, loader(16, 4, false), loader(8, 4, false));  // 4 steps per epoch, 3 epochs
    CHECK(store->calls == std::vector<std::string>{
                              "save epoch=0-step=4.safetensors", "copy epoch=0-step=4.safetensors last.safetensors",
                              "save epoch=1-step=8.safetensors", "remove epoch=0-step=4.safetensors",
                              "copy epoch=1-step=8.safetensors last.safetensors", "save epoch=2-step=12.safetensors",
                              "remove epoch=1-step=8.safetensors",
                              "copy epoch=2-step=12.safetensors last.safetensors"});
    CHECK(store->files.size() == 2);
    CHECK(files_in(dir.path).empty());  // nothing went to the filesystem

    // ckpt_path "last" is found in the store; the resumed fit continues from step 12.
    store->calls.clear();
    Tiny again;
    train::Trainer t2(checkpointing(dir.str(), store, {.save_last = true, .save_top_k = 1}, 4));
    t2.fit(again, loader(16, 4, false), loader(8, 4, false), {.ckpt_path = "last"});
    CHECK(t2.global_step() == 16);
    REQUIRE(!store->calls.empty());
    CHECK(store->calls.front() == "load last.safetensors");
    CHECK(store->calls.at(1) == "save epoch=3-step=16.safetensors");

    // Names the store already holds get a version suffix, as files on disk do.
    store->calls.clear();
    Tiny fresh;
    train::Trainer t3(checkpointing(dir.str(), store, {.save_top_k = -1}, 1));
    t3.fit(fresh, loader(16, 4, false), loader(8, 4, false));
    CHECK(store->calls == std::vector<std::string>{"save epoch=0-step=4.safetensors"});
    Tiny fresh2;
    store->calls.clear();
    train::Trainer t4(checkpointing(dir.str(), store, {.save_top_k = -1}, 1));
    t4.fit(fresh2, loader(16, 4, false), loader(8, 4, false));
    CHECK(store->calls == std::vector<std::string>{"save epoch=0-step=4-v1.safetensors"});
    // validate() loads through the store too.
    Tiny probe;
    train::Trainer t5(quiet({.checkpoint_io = store}));
    t5.validate(probe, loader(8, 4, false), {.ckpt_path = (dir.path / "epoch=0-step=4-v1.safetensors").string()});
    CHECK(flat_params(probe) == flat_params(fresh2));
  }
}
