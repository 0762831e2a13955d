// Writes a TensorBoardLogger run (and a CSVLogger run) into DIR for check_tensorboard.py, which reads them
// back with TensorBoard's own event reader. Values are formulas of the step, shared with that script.
#include <cmath>
#include <cstdio>
#include <exception>
#include <map>
#include <string>

#include "train/loggers/csv.hpp"
#include "train/loggers/tensorboard.hpp"

using namespace ember::train;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  try {
    const std::string dir = argv[1];
    TensorBoardLogger tb({.save_dir = dir, .name = "tb", .version = 0, .max_queue = 4});
    CSVLogger csv({.save_dir = dir, .name = "csv", .version = 0, .flush_logs_every_n_steps = 7});
    const nlohmann::json hparams = {
        {"lr", 0.001}, {"model", {{"hidden", 32}, {"layers", {64, 32}}}}, {"optimizer", "adam"}};
    tb.log_hyperparams(hparams);
    csv.log_hyperparams(hparams);
    for (int step = 0; step < 20; ++step) {
      std::map<std::string, double> m = {{"train_loss", 1.0 / (step + 1)}, {"lr", 0.1 * std::pow(0.5, step / 5)}};
      tb.log_metrics(m, step);
      csv.log_metrics(m, step);
      if (step % 5 == 4) {
        std::map<std::string, double> v = {{"val_acc", step / 20.0 + 0.05}, {"epoch", step / 5}};
        tb.log_metrics(v, step);
        csv.log_metrics(v, step);
      }
    }
    tb.finalize("success");
    csv.finalize("success");
    std::printf("%s\n%s\n", tb.event_file_path().c_str(), csv.metrics_file_path().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "write_tensorboard: %s\n", e.what());
    return 1;
  }
  return 0;
}
