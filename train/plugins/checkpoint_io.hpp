// CheckpointIO: where the Trainer's checkpoints are stored. The Trainer builds a Checkpoint (tensors and
// JSON run state) and hands it here; ModelCheckpoint removes, copies and probes files through it; ckpt_path
// loads through it. LocalCheckpointIO is the default (atomic safetensors files); AsyncCheckpointIO writes
// in a background thread; a user's own store (an object store, a database, memory) implements the class.
#pragma once
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "train/checkpoint.hpp"

namespace ember::train {

// The extension point: implement save/load/remove/exists for your store and pass an instance as
// TrainerOptions::checkpoint_io. Paths are the names the Trainer and ModelCheckpoint choose
// ("<dirpath>/epoch=1-step=20.safetensors", "last" and "best" resolve to such names); a store that is
// not a filesystem may treat them as plain keys. Errors are ember::Error subclasses (IOError for a
// failed write or read) whose message starts with the class in brackets and names the path.
class CheckpointIO {
 public:
  virtual ~CheckpointIO() = default;
  // Stores `checkpoint` under `path`, replacing what was there; a failure must leave the old one intact.
  virtual void save_checkpoint(const Checkpoint& checkpoint, const std::string& path) = 0;
  // Reads what save_checkpoint stored (IOError when there is none or it is damaged).
  virtual Checkpoint load_checkpoint(const std::string& path, const CheckpointLoadOptions& options = {}) = 0;
  // Removes `path`; a missing one is not an error.
  virtual void remove_checkpoint(const std::string& path) = 0;
  // Whether `path` holds a checkpoint (ModelCheckpoint's name versioning, ckpt_path "last"/"interrupted").
  virtual bool exists(const std::string& path) = 0;
  // Stores the checkpoint at `from` under `to` too (ModelCheckpoint's last.safetensors). By default
  // load + save; a store with a cheaper copy overrides it.
  virtual void copy_checkpoint(const std::string& from, const std::string& to);
  // Waits for outstanding work and reports its errors; the Trainer calls it when a fit ends (an
  // exception included), so every checkpoint of the run is stored when fit returns.
  virtual void teardown() {}
};

using CheckpointIOPtr = std::shared_ptr<CheckpointIO>;

// Today's behaviour: safetensors files written atomically (temporary file, fsync, rename) by
// Checkpoint::save and validated by Checkpoint::load. Stateless: safe to call from several threads.
class LocalCheckpointIO : public CheckpointIO {
 public:
  void save_checkpoint(const Checkpoint& checkpoint, const std::string& path) override;
  Checkpoint load_checkpoint(const std::string& path, const CheckpointLoadOptions& options = {}) override;
  void remove_checkpoint(const std::string& path) override;
  bool exists(const std::string& path) override;
  // A byte copy through "<to>.tmp.<pid>" and a rename, so `to` is always whole.
  void copy_checkpoint(const std::string& from, const std::string& to) override;
};

// Writes through another CheckpointIO (a LocalCheckpointIO by default) in one background thread, so the
// training waits only for a host copy of the tensors. The work runs in call order: a save first waits
// for the previous write to finish; removes and copies queue behind the writes (an old checkpoint goes
// only once the new one is stored); load and teardown wait for everything queued. An error in the
// background is rethrown, as an IOError naming the path, by the next call (save, load, remove, copy,
// teardown), and the work queued behind it is dropped (a failed write never lets the old file be
// removed). The destructor waits too. The inner IO is called from the background thread, and its exists()
// also from the caller's while a write of another path runs.
class AsyncCheckpointIO : public CheckpointIO {
 public:
  explicit AsyncCheckpointIO(CheckpointIOPtr inner = nullptr);
  ~AsyncCheckpointIO() override;
  AsyncCheckpointIO(const AsyncCheckpointIO&) = delete;
  AsyncCheckpointIO& operator=(const AsyncCheckpointIO&) = delete;

  // Copies every tensor to new host memory (the training may change its tensors in place as soon as
  // this returns), waits for the previous write, and queues the write.
  void save_checkpoint(const Checkpoint& checkpoint, const std::string& path) override;
  Checkpoint load_checkpoint(const std::string& path, const CheckpointLoadOptions& options = {}) override;
  void remove_checkpoint(const std::string& path) override;
  // Queued work decides (a queued write: true, a queued remove: false), else the inner IO.
  bool exists(const std::string& path) override;
  void copy_checkpoint(const std::string& from, const std::string& to) override;
  void teardown() override;

  CheckpointIO& inner() const { return *inner_; }
  // Work queued or running (a save, remove or copy not finished yet).
  bool pending() const;

 private:
  enum class Kind { kWrite, kRemove, kCopy };
  struct Job {
    Kind kind;
    std::string path;  // the path written or removed (a copy's destination)
    std::function<void()> run;
  };
  void enqueue(Job job);
  // Waits until the queue is empty and nothing runs, then rethrows a background error (once).
  void wait_idle();
  void rethrow_error(std::unique_lock<std::mutex>& lock);
  void work();

  CheckpointIOPtr inner_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Job> queue_;  // the front one is running while running_ is true
  bool running_ = false;
  bool stopping_ = false;
  std::exception_ptr error_;
  std::string error_path_;
  std::thread worker_;  // started by the first queued job
};

}  // namespace ember::train
