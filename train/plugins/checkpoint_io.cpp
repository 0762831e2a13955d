// CheckpointIO implementations: the local atomic writer and the background-thread wrapper.
#include "train/plugins/checkpoint_io.hpp"

#include <filesystem>
#include <iostream>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/io/temp_files.hpp"

namespace ember::train {
namespace fs = std::filesystem;

void CheckpointIO::copy_checkpoint(const std::string& from, const std::string& to) {
  save_checkpoint(load_checkpoint(from), to);
}

// ---- LocalCheckpointIO ----

void LocalCheckpointIO::save_checkpoint(const Checkpoint& checkpoint, const std::string& path) {
  checkpoint.save(path);
}

Checkpoint LocalCheckpointIO::load_checkpoint(const std::string& path, const CheckpointLoadOptions& options) {
  return Checkpoint::load(path, options);
}

void LocalCheckpointIO::remove_checkpoint(const std::string& path) {
  std::error_code ec;
  fs::remove(path, ec);  // false without an error when it is missing
  EMBER_CHECK(!ec, IOError, "[LocalCheckpointIO] cannot remove ", path, ": ", ec.message());
}

bool LocalCheckpointIO::exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec) && !ec;
}

void LocalCheckpointIO::copy_checkpoint(const std::string& from, const std::string& to) {
  const std::string tmp = temp_file_name(to);  // "<to>.tmp.<pid>": a later run removes it if we are killed
  std::error_code ec;
  fs::copy_file(from, tmp, fs::copy_options::overwrite_existing, ec);
  // As an atomic save: the copy is on disk before it replaces `to`, and the rename is on disk after.
  if (!ec) ec.assign(fsync_file(tmp), std::generic_category());
  if (!ec) fs::rename(tmp, to, ec);
  if (!ec) ec.assign(fsync_parent_dir(to), std::generic_category());
  if (ec) {
    std::error_code ignored;
    if (fs::symlink_status(tmp, ignored).type() == fs::file_type::regular) fs::remove(tmp, ignored);
    throw IOError(
        detail::cat_str("[LocalCheckpointIO] cannot copy ", from, " to ", to, " through ", tmp, ": ", ec.message()));
  }
}

// ---- AsyncCheckpointIO ----

namespace {

// A checkpoint whose tensors own fresh host memory: nothing the training does afterwards reaches them.
Checkpoint host_copy(const Checkpoint& checkpoint) {
  autograd::NoGradGuard no_grad;
  Checkpoint out;
  out.state = checkpoint.state;
  out.path = checkpoint.path;
  for (const auto& [name, t] : checkpoint.tensors) out.tensors.emplace(name, t.detach().to(kCPU, /*copy=*/true));
  return out;
}

}  // namespace

AsyncCheckpointIO::AsyncCheckpointIO(CheckpointIOPtr inner)
    : inner_(inner ? std::move(inner) : std::make_shared<LocalCheckpointIO>()) {}

AsyncCheckpointIO::~AsyncCheckpointIO() {
  {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return queue_.empty(); });  // no lost data: every queued write finishes
    stopping_ = true;
    if (error_) {  // nobody asked after it; a destructor cannot throw
      try {
        std::rethrow_exception(error_);
      } catch (const std::exception& e) {
        std::cerr << "[AsyncCheckpointIO] error: the background write of " << error_path_ << " failed: " << e.what()
                  << "\n";
      } catch (...) {
      }
    }
  }
  changed_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void AsyncCheckpointIO::work() {
  std::unique_lock lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping
    running_ = true;
    std::function<void()> run = queue_.front().run;
    const std::string path = queue_.front().path;
    lock.unlock();
    std::exception_ptr failed;
    try {
      run();
    } catch (...) {
      failed = std::current_exception();
    }
    lock.lock();
    running_ = false;
    queue_.pop_front();
    if (failed) {
      if (!error_) {
        error_ = failed;
        error_path_ = path;
      }
      queue_.clear();  // what was queued behind a failed write (removing the old file) must not run
    }
    changed_.notify_all();
  }
}

void AsyncCheckpointIO::rethrow_error(std::unique_lock<std::mutex>& lock) {
  if (!error_) return;
  const std::exception_ptr e = std::exchange(error_, nullptr);
  const std::string path = std::exchange(error_path_, "");
  lock.unlock();
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& err) {
    throw IOError(detail::cat_str("[AsyncCheckpointIO] the background work on ", path, " failed: ", err.what()));
  } catch (...) {
    throw IOError(detail::cat_str("[AsyncCheckpointIO] the background work on ", path, " failed"));
  }
}

void AsyncCheckpointIO::wait_idle() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return queue_.empty(); });
  rethrow_error(lock);
}

void AsyncCheckpointIO::enqueue(Job job) {
  std::unique_lock lock(mutex_);
  rethrow_error(lock);
  queue_.push_back(std::move(job));
  if (!worker_.joinable()) worker_ = std::thread([this] { work(); });
  changed_.notify_all();
}

bool AsyncCheckpointIO::pending() const {
  std::lock_guard lock(mutex_);
  return !queue_.empty();
}

void AsyncCheckpointIO::save_checkpoint(const Checkpoint& checkpoint, const std::string& path) {
  // The copy overlaps the previous write; the copy is what the training waits for.
  auto owned = std::make_shared<Checkpoint>(host_copy(checkpoint));
  wait_idle();
  enqueue({Kind::kWrite, path, [this, owned, path] { inner_->save_checkpoint(*owned, path); }});
}

Checkpoint AsyncCheckpointIO::load_checkpoint(const std::string& path, const CheckpointLoadOptions& options) {
  wait_idle();
  return inner_->load_checkpoint(path, options);
}

void AsyncCheckpointIO::remove_checkpoint(const std::string& path) {
  enqueue({Kind::kRemove, path, [this, path] { inner_->remove_checkpoint(path); }});
}

void AsyncCheckpointIO::copy_checkpoint(const std::string& from, const std::string& to) {
  enqueue({Kind::kCopy, to, [this, from, to] { inner_->copy_checkpoint(from, to); }});
}

bool AsyncCheckpointIO::exists(const std::string& path) {
  {
    std::lock_guard lock(mutex_);
    for (auto it = queue_.rbegin(); it != queue_.rend(); ++it)  // the newest queued work on path decides
      if (it->path == path) return it->kind != Kind::kRemove;
  }
  return inner_->exists(path);
}

void AsyncCheckpointIO::teardown() {
  wait_idle();
  inner_->teardown();
}

}  // namespace ember::train
