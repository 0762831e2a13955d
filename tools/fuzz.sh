#!/usr/bin/env bash
# Builds the libFuzzer targets with clang + ASan/UBSan and fuzzes the safetensors reader, the data
# readers (IDX, CSV, text), then a checkpoint's run state. Usage: tools/fuzz.sh [SECONDS=60 per target]
# [BUILD_DIR=build-fuzz]. Exits non-zero on a crash, a leak, undefined behaviour or an oversized
# allocation; the failing input is saved in BUILD_DIR/artifacts/.
# tools/fuzz.sh --configure-only BUILD_DIR only configures the folder (when not yet configured): CI builds
# ember_tests there too and runs the suite under ASan/UBSan before fuzzing, one instrumented build for both.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
configure_only=0
if [[ "${1:-}" == --configure-only ]]; then
  configure_only=1
  shift
  set -- 0 "${1:-}"
fi
seconds="${1:-60}"
build="${2:-$root/build-fuzz}"
case "$build" in /*) ;; *) build="$PWD/$build" ;; esac
jobs="${FUZZ_BUILD_JOBS:-2}"

cxx="${CXX:-clang++}"
if ! command -v "$cxx" >/dev/null 2>&1 || ! "$cxx" --version | grep -q clang; then
  echo "fuzz: needs clang++ (set CXX); found '$cxx'" >&2
  exit 1
fi

if [[ ! -f "$build/build.ninja" ]]; then
  # The whole library gets coverage instrumentation; UB aborts instead of printing and continuing. Asserts
  # on at -O1 (Meson warns that optimization overrides part of buildtype; that is the intent), line tables
  # only (enough for stack traces, a quicker build than -g). Tests are on but only built when named:
  # ember_tests links without libFuzzer, the ASan runtime defines the coverage callbacks.
  CXX="$cxx" meson setup "$build" "$root" \
    -Dbuildtype=debug -Doptimization=1 -Db_sanitize=address,undefined -Db_lundef=false \
    -Dfuzz=true -Dtests=true -Dbenchmarks=false -Dexamples=false \
    -Dcuda=disabled -Dnccl=disabled -Dmpi=disabled \
    "-Dcpp_args=-fsanitize=fuzzer-no-link -fno-sanitize-recover=all -gline-tables-only" \
    "-Dcpp_link_args=-fno-sanitize-recover=all"
fi
((configure_only)) && exit 0
ninja -C "$build" -j "$jobs" tests/fuzz/fuzz_safetensors tests/fuzz/fuzz_data tests/fuzz/fuzz_checkpoint

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# fuzz TARGET SEEDS [extra libFuzzer flags]: new inputs go to BUILD_DIR/corpus-TARGET (seeds stay untouched).
fuzz() {
  local target=$1 seeds=$2 work="$build/corpus-$1"
  shift 2
  mkdir -p "$work" "$build/artifacts"
  "$build/tests/fuzz/$target" -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$build/artifacts/" -print_final_stats=1 "$@" "$work" "$seeds"
}
fuzz fuzz_safetensors "$root/tests/fuzz/corpus" -dict="$root/tests/fuzz/safetensors.dict"
fuzz fuzz_data "$root/tests/fuzz/corpus_data"
# The run state: seeded with the states of valid checkpoints, written by the target itself at start-up.
rm -rf "$build/seeds-checkpoint"
EMBER_FUZZ_SEEDS="$build/seeds-checkpoint" "$build/tests/fuzz/fuzz_checkpoint" -runs=0 "$build/seeds-checkpoint" >/dev/null 2>&1 || true
fuzz fuzz_checkpoint "$build/seeds-checkpoint" -max_len=16384
echo "fuzz: no failures in ${seconds}s per target"
