// Files a killed run leaves behind in a ModelCheckpoint's folder: temporaries of dead processes, and
// checkpoints beyond save_top_k that the next fit removes (or keeps, when they may be another's).
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "ember.hpp"
#include "test_util.hpp"
#include "train/callbacks/callbacks.hpp"
#include "train/trainer.hpp"
#include "trainer_fixtures.hpp"

using namespace ember;
using namespace ember::train;
using ember::testing::dead_pid;
using trainer_test::regression_loader;
using trainer_test::run_options;
using trainer_test::TinyRegression;

namespace {

// A fresh folder for checkpoints, removed at scope exit.
struct CheckpointDir {
  std::filesystem::path path;
  explicit CheckpointDir(const std::string& name)
      : path(std::filesystem::temp_directory_path() / ("ember_cb_" + name + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~CheckpointDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
  std::set<std::string> names() const {
    std::set<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(path)) out.insert(e.path().filename().string());
    return out;
  }
  void touch(const std::string& name) const { std::ofstream(path / name) << "not a checkpoint"; }
};

// What a block writes to std::cerr.
struct CaptureCerr {
  std::ostringstream text;
  std::streambuf* old = std::cerr.rdbuf(text.rdbuf());
  ~CaptureCerr() { std::cerr.rdbuf(old); }
};

// The latest two checkpoints ("step" is always a candidate metric) and last.safetensors.
std::shared_ptr<ModelCheckpoint> latest_two(const std::string& dir) {
  return std::make_shared<ModelCheckpoint>(
      ModelCheckpointOptions{.dirpath = dir, .monitor = "step", .save_last = true, .save_top_k = 2, .mode = "max"});
}

}  // namespace

TEST_SUITE("callbacks") {
  TEST_CASE("callbacks: ModelCheckpoint removes checkpoint temporaries of dead processes when a fit starts") {
    const CheckpointDir dir("tmp_files");
    const std::string dead = std::to_string(dead_pid()), alive = std::to_string(::getppid());
    const std::vector<std::string> stale = {"epoch=0-step=8.safetensors.tmp." + dead, "last.safetensors.tmp." + dead};
    const std::vector<std::string> kept = {"epoch=0-step=8.safetensors.tmp." + alive,  // a live writer's
                                           "epoch=0-step=8.safetensors.tmp.1",         // pid 1 always exists
                                           "notes.txt.tmp." + dead,                    // not a checkpoint's
                                           "last.safetensors.tmp.copy",
                                           "last.safetensors.tmp.0" + dead,
                                           "last.safetensors.tmp." + dead + "~"};
    for (const auto& name : stale) dir.touch(name);
    for (const auto& name : kept) dir.touch(name);
    Trainer trainer(run_options(
        1, {std::make_shared<ModelCheckpoint>(ModelCheckpointOptions{.dirpath = dir.str(), .save_last = true})}));
    TinyRegression model;
    trainer.fit(model, regression_loader());
    std::set<std::string> expected(kept.begin(), kept.end());
    expected.insert({"epoch=0-step=8.safetensors", "last.safetensors"});
    CHECK(dir.names() == expected);
  }

  TEST_CASE("callbacks: ModelCheckpoint copies to last through <last>.tmp.<pid>") {
    // The name is taken by a folder: the copy must fail on it, naming it (a fixed name would not collide).
    const CheckpointDir dir("last_tmp");
    const std::string tmp = (dir.path / ("last.safetensors.tmp." + std::to_string(::getpid()))).string();
    std::filesystem::create_directories(tmp);
    Trainer trainer(run_options(
        1, {std::make_shared<ModelCheckpoint>(ModelCheckpointOptions{.dirpath = dir.str(), .save_last = true})}));
    TinyRegression model;
    std::string msg;
    try {
      trainer.fit(model, regression_loader());
    } catch (const std::exception& e) {
      msg = e.what();
    }
    CHECK(msg.find(tmp) != std::string::npos);
    CHECK(std::filesystem::is_directory(tmp));  // a failed copy removes only a file of its own
  }

  TEST_CASE("callbacks: a resumed fit removes the checkpoint a kill left beyond save_top_k") {
    const CheckpointDir dir("top_k_extra");
    {
      Trainer first(run_options(2, {latest_two(dir.str())}));
      TinyRegression model;
      first.fit(model, regression_loader(), regression_loader(16, 2));
    }
    REQUIRE(dir.names() ==
            std::set<std::string>{"epoch=0-step=8.safetensors", "epoch=1-step=16.safetensors", "last.safetensors"});
    // The next save was killed after writing its new top-2 file, before removing the one it displaced (any
    // checkpoint but the one resumed from stands in for it).
    std::filesystem::copy_file(dir.path / "epoch=0-step=8.safetensors", dir.path / "epoch=2-step=24.safetensors");
    // Files the template could not have produced, and one in another folder, are not the callback's.
    for (const char* name :
         {"notes.safetensors", "epoch=0-step=8.ckpt", "best-epoch=0-step=8.safetensors", "epoch=x-step=8.safetensors"})
      dir.touch(name);
    std::filesystem::create_directories(dir.path / "old");
    std::filesystem::copy_file(dir.path / "epoch=0-step=8.safetensors",
                               dir.path / "old" / "epoch=2-step=24.safetensors");

    CaptureCerr err;
    Trainer second(run_options(3, {latest_two(dir.str())}));
    TinyRegression model;
    second.fit(model, regression_loader(), regression_loader(16, 2),
               {.ckpt_path = (dir.path / "last.safetensors").string()});
    CHECK(err.text.str().find("[ModelCheckpoint] removed 1 checkpoint file(s) from " + dir.str()) != std::string::npos);
    CHECK(err.text.str().find(": epoch=2-step=24.safetensors\n") != std::string::npos);
    // The resumed run saved epoch 2 under its own name (not "-v1") and displaced epoch 0: top-2 + last.
    CHECK(dir.names() == std::set<std::string>{"best-epoch=0-step=8.safetensors", "epoch=0-step=8.ckpt",
                                               "epoch=1-step=16.safetensors", "epoch=2-step=24.safetensors",
                                               "epoch=x-step=8.safetensors", "last.safetensors", "notes.safetensors",
                                               "old"});
    CHECK(std::filesystem::exists(dir.path / "old" / "epoch=2-step=24.safetensors"));
    CHECK(second.find_callback<ModelCheckpoint>()->best_k_models().size() == 2);
  }

  TEST_CASE("callbacks: reconciling keeps the checkpoint resumed from and files another ModelCheckpoint may own") {
    const CheckpointDir dir("top_k_keep");
    {
      Trainer first(run_options(2, {latest_two(dir.str())}));
      TinyRegression model;
      first.fit(model, regression_loader(), regression_loader(16, 2));
    }
    // Resumed from a copy of epoch 0's under a name its state does not list; an extra with another state goes.
    const auto resumed = dir.path / "epoch=7-step=99.safetensors";
    std::filesystem::copy_file(dir.path / "epoch=0-step=8.safetensors", resumed);
    std::filesystem::copy_file(dir.path / "epoch=1-step=16.safetensors", dir.path / "epoch=3-step=30.safetensors");
    {
      CaptureCerr err;
      Trainer second(run_options(2, {latest_two(dir.str())}));
      TinyRegression model;
      second.fit(model, regression_loader(), regression_loader(16, 2), {.ckpt_path = resumed.string()});
    }
    CHECK(std::filesystem::exists(resumed));
    CHECK_FALSE(std::filesystem::exists(dir.path / "epoch=3-step=30.safetensors"));
    // Another ModelCheckpoint writing the same names to this folder: no file is certainly this one's.
    std::filesystem::copy_file(dir.path / "epoch=0-step=8.safetensors", dir.path / "epoch=3-step=30.safetensors");
    REQUIRE(std::filesystem::exists(dir.path / "epoch=1-step=16.safetensors"));  // written again: last is its copy
    auto other = std::make_shared<ModelCheckpoint>(ModelCheckpointOptions{.dirpath = dir.str(), .monitor = "val_loss"});
    Trainer third(run_options(3, {latest_two(dir.str()), other}));
    TinyRegression model;
    CaptureCerr err;
    third.fit(model, regression_loader(), regression_loader(16, 2),
              {.ckpt_path = (dir.path / "last.safetensors").string()});
    CHECK(std::filesystem::exists(dir.path / "epoch=3-step=30.safetensors"));
    CHECK(err.text.str().find("[ModelCheckpoint] removed") == std::string::npos);
  }
}
