#!/usr/bin/env bash
# All tests: sets up and builds like tools/setup.sh (same arguments and variables), then runs every
# registered test (the doctest suites, the examples) with `meson test`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/tools/setup.sh" "$@"
cd "$root"
meson test -C "${EMBER_BUILD_DIR:-build}" --print-errorlogs --num-processes "${EMBER_JOBS:-$(nproc)}"
