// DDP step (issue 5): the MLP 784-1024-1024-10 with SGD at a global batch of 128, split over the ranks the
// launcher started (alone: the whole batch in one process). Rank 0 prints one JSON line: median ms per
// step, and the median time of one all_reduce of the gradients' size (what DDP adds per step at most).
// Usage: [mpirun -np N] ddp_step [--steps 30]; bench/ddp.sh runs it beside its twin bench/reference/ddp.py.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench/workloads/models.hpp"
#include "ember.hpp"

using namespace ember;

namespace {
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

int main(int argc, char** argv) {
  int steps = 30;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--steps") == 0) steps = std::atoi(argv[i + 1]);
  dist::Communicator& comm = dist::world();
  const int world = comm.world_size(), rank = comm.rank();
  manual_seed(0);
  bench::Mlp model;
  dist::DDP ddp(model, comm);
  optim::SGD opt(model.parameters(), {.lr = 0.01});
  const int64_t local = 128 / world;
  Generator g(1 + rank);
  Tensor x = randn({local, 784}, {}, &g), y = randint(0, 10, {local}, {.dtype = kI64}, &g);
  auto step = [&] {
    opt.zero_grad();
    nn::functional::cross_entropy(model.forward(x), y).backward();
    opt.step();
  };
  for (int i = 0; i < 5; ++i) step();
  std::vector<double> times;
  for (int i = 0; i < steps; ++i) {
    comm.barrier();
    const double t0 = now_ms();
    step();
    times.push_back(now_ms() - t0);
  }
  int64_t numel = 0;
  for (const Tensor& p : model.parameters()) numel += p.numel();
  Tensor grads = zeros({numel});
  std::vector<double> reduce;
  for (int i = 0; i < 10; ++i) {
    comm.barrier();
    const double t0 = now_ms();
    comm.all_reduce(grads);
    reduce.push_back(now_ms() - t0);
  }
  if (rank == 0)
    std::printf(
        "{\"framework\": \"ember\", \"world\": %d, \"ms_per_step\": %.3f, \"allreduce_ms\": %.3f, \"params\": %lld}\n",
        world, median(times), median(reduce), static_cast<long long>(numel));
  return 0;
}
