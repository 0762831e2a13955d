// Preemption signals during fit: SIGTERM and SIGUSR1 (what SLURM sends before it stops a job) are caught
// while a SignalWatch lives, so the Trainer can finish its step and save instead of dying mid-write.
#pragma once

namespace ember::train {

// Installs handlers for SIGTERM and SIGUSR1 and restores the previous ones on destruction. The first
// signal is only recorded (received() returns its number); a second one while the first is pending gets
// the signal's default action, so an impatient second kill still stops the process. Watches nest: the
// outermost one owns the handlers.
class SignalWatch {
 public:
  SignalWatch();
  ~SignalWatch();
  SignalWatch(const SignalWatch&) = delete;
  SignalWatch& operator=(const SignalWatch&) = delete;

  // The signal caught since the outermost watch began, or 0.
  static int received();
  static const char* name(int signal);

 private:
  bool owner_ = false;
};

}  // namespace ember::train
