// The CUDA CPU emulator's fiber scheduler (fibers.cpp), for emu.cpp's launches.
#pragma once
#include <string>

#include "emu.hpp"

namespace emu {

// Runs a whole grid now on the calling thread: "" or, for the first block that failed (a deadlock, a
// warp operation naming a lane that exited or does not exist), where and why.
std::string run_fibers(const LaunchConfig& c, Body body, void* ctx);

}  // namespace emu
