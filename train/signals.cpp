// SignalWatch: async-signal-safe handlers that only store the signal number (see signals.hpp).
#include "train/signals.hpp"

#include <atomic>
#include <csignal>

namespace ember::train {
namespace {

constexpr int kSignals[] = {SIGTERM, SIGUSR1};
volatile std::sig_atomic_t g_received = 0;
std::atomic<int> g_depth{0};
struct sigaction g_previous[2];

void on_signal(int sig) {
  if (g_received != 0) {  // a second signal: give it its default action (terminate)
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_received = sig;
}

}  // namespace

SignalWatch::SignalWatch() {
  if (g_depth.fetch_add(1) != 0) return;
  owner_ = true;
  g_received = 0;
  struct sigaction action = {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // reads and writes in progress carry on
  for (int i = 0; i < 2; ++i) sigaction(kSignals[i], &action, &g_previous[i]);
}

SignalWatch::~SignalWatch() {
  g_depth.fetch_sub(1);
  if (!owner_) return;
  for (int i = 0; i < 2; ++i) sigaction(kSignals[i], &g_previous[i], nullptr);
}

int SignalWatch::received() { return g_received; }

const char* SignalWatch::name(int signal) {
  switch (signal) {
    case SIGTERM:
      return "SIGTERM";
    case SIGUSR1:
      return "SIGUSR1";
    default:
      return "a signal";
  }
}

}  // namespace ember::train
