// ember::dist: communicators, the process group and DistributedDataParallel.
#pragma once
#include "dist/communicator.hpp"
#include "dist/ddp.hpp"
#include "dist/process_group.hpp"
