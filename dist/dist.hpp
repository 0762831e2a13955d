// ember::dist: cluster environments, communicators, the process group, DistributedDataParallel and ShardedDataParallel.
#pragma once
#include "dist/cluster_environment.hpp"
#include "dist/communicator.hpp"
#include "dist/ddp.hpp"
#include "dist/process_group.hpp"
#include "dist/sharded.hpp"
