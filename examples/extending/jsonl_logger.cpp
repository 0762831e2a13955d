// Trains the digits MLP with a custom Logger (jsonl_logger.hpp) and prints the JSON Lines it wrote.
// Usage: jsonl_logger [epochs] [dir]
#include "jsonl_logger.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>

int main(int argc, char** argv) {
  try {
    const int64_t epochs = argc > 1 ? std::atoll(argv[1]) : 3;
    const std::string path =
        argc > 2 ? extending::train_with_jsonl_logger(epochs, argv[2]) : extending::train_with_jsonl_logger(epochs);
    std::ifstream in(path);
    std::cout << in.rdbuf();
    std::printf("(written to %s)\n", path.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "jsonl_logger: %s\n", e.what());
    return 2;
  }
}
