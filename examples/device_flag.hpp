// The examples' `--device cpu|cuda|auto` flag (also `--device=cuda`): taken out of argv so that the
// positional arguments keep their places; the value becomes the Trainer's accelerator ("auto": CUDA
// when a device is present).
#pragma once
#include <stdexcept>
#include <string>

namespace examples {

inline std::string take_device_flag(int& argc, char** argv) {
  std::string device = "auto";
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--device") {
      if (i + 1 >= argc) throw std::invalid_argument("--device needs a value: cpu, cuda or auto");
      device = argv[++i];
    } else if (a.rfind("--device=", 0) == 0) {
      device = a.substr(9);
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
  if (device != "cpu" && device != "cuda" && device != "auto")
    throw std::invalid_argument("--device must be cpu, cuda or auto, got \"" + device + "\"");
  return device;
}

}  // namespace examples
