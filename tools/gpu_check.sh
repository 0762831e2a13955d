#!/usr/bin/env bash
# The one GPU check, within 8 minutes, in order of priority: nvidia-smi; the CUDA tests and the
# CPU-vs-CUDA parity sweep (fused attention and CUDA graphs included); issue 18's benchmarks beside
# PyTorch (GPT-2 124M step against eager and torch.compile, fused attention, CUDA graphs); GPT-2 124M
# trained on the Austen text for 75 s; compute-sanitizer's memcheck and racecheck on short subsets; every
# gradcheck on the GPU (EMBER_TEST_DEVICE=cuda); digits_mlp and one epoch of mnist_cnn on the GPU; the
# rest of the GPU benchmark suite. Logs go to $OUT when set (else build-gpu-check/).
#
#   tools/gpu_check.sh            on the GPU machine (run from anywhere; paths are relative to the repo)
#   tools/gpu_check.sh --prepare  on a build machine without a GPU: builds build-cuda (sm_90 + PTX) and packs
#                                 build-cuda/gpu_bundle/bundle.tar.gz (the programs, the shared libraries they
#                                 need that a bare CUDA box may lack, and MNIST) to carry. cuBLAS, cuDNN and
#                                 NCCL are not carried: the GPU machine's own (toolkit or PyTorch's wheels) serve.
#   tools/gpu_check.sh --list-sources  prints the library sources the direct compile (3. below) builds.
#
# Build choice on the GPU machine, first that works:
#   1. build-cuda/gpu_bundle carried from a build machine (needs the NVIDIA driver and glibc >= 2.34);
#   2. meson + ninja + the libraries (openblas, tbb, zlib, nlohmann_json, doctest) found by pkg-config;
#   3. a direct g++/nvcc compile of the sources meson.build lists (needs the same headers and libraries).
# Environment: EMBER_GPU_ARCH (default 90) selects the nvcc target of the direct compile.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2

# The library's .cpp or .cu sources (by $1) from every `ember_sources (+)= files(...)` statement of
# meson.build, one a line, less those the direct compile cannot build: the no-CUDA stubs and the MPI/NCCL
# communicators. The generated ember_data_embedded.cpp (a custom_target) is made separately.
meson_sources() {
  awk '/^ *ember_sources \+?= files\(/ {on = 1} on {print} on && /\)/ {on = 0}' meson.build |
    grep -o "'[^']*\.$1'" | tr -d "'" |
    grep -v -x -e kernels/cuda_stubs.cpp -e dist/mpi.cpp -e dist/nccl.cpp
}
if [[ "${1:-}" == "--list-sources" ]]; then
  meson_sources cpp
  meson_sources cu
  exit 0
fi
LOGDIR=${OUT:-$ROOT/build-gpu-check}
mkdir -p "$LOGDIR"
LOG=$LOGDIR/gpu_check.log
# A device run brings back at most 8 files from $OUT: the log and compare's JSON and .md tables go there
# (7 files); scratch files and the charts go to SCRATCH.
SCRATCH=$(mktemp -d)
: >"$LOG"
exec > >(tee -a "$LOG") 2>&1
START=$(date +%s)
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
CUDA_HOME=${CUDA_HOME:-$(cd "$(dirname "$NVCC")/.." 2>/dev/null && pwd)}
JOBS=$(nproc 2>/dev/null || echo 2)
BUNDLE=$ROOT/build-cuda/gpu_bundle

say() { printf '[gpu_check %4ss] %s\n' "$(($(date +%s) - START))" "$*"; }
die() { say "FAILED: $*"; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- --prepare (build machine)
# Packs the two programs and every shared library they use outside glibc into one gzip'd tarball
# (the CUDA fatbins and OpenBLAS compress about 8x; the raw files exceed what a device run can carry).
if [[ "${1:-}" == "--prepare" ]]; then
  have meson && have ninja || die "--prepare needs meson and ninja"
  # No MPI or NCCL in the bundle: libnccl alone is over 200 MB (the NCCL backend is compiled by CI).
  [[ -f build-cuda/build.ninja ]] || meson setup build-cuda -Dcuda=enabled -Dbenchmarks=true -Dexamples=true ||
    die "meson setup"
  # -Dcpu_arch: the GPU machine's processor is not this one (-march=native could use instructions it lacks).
  # --reconfigure (not configure): a build folder made before an option existed learns it here.
  meson setup --reconfigure build-cuda -Dmpi=disabled -Dnccl=disabled -Dbenchmarks=true -Dexamples=true \
    -Dgpu_arch=90,90-ptx -Ddefault_library=shared -Dcpu_arch=x86-64-v3 || die "meson configure"
  # Meson 1.0 gives nvcc no dependency files: rebuild the CUDA objects whose headers changed since.
  python3 tools/cuda_deps.py build-cuda || die "cuda_deps"
  ninja -C build-cuda -j"${EMBER_JOBS:-2}" tests/ember_tests bm_gpu_elementwise bench/bench_gpu \
    examples/digits_mlp/digits_mlp examples/mnist_cnn/mnist_cnn examples/gpt2/gpt2 || die "build"
  stage=$(mktemp -d)
  mkdir -p "$stage/bin/bench" "$stage/lib" "$stage/lib-cxx" "$stage/data/mnist"
  cp build-cuda/tests/ember_tests build-cuda/bm_gpu_elementwise build-cuda/examples/digits_mlp/digits_mlp \
    build-cuda/examples/mnist_cnn/mnist_cnn build-cuda/examples/gpt2/gpt2 "$stage/bin/"
  cp build-cuda/bench/bench_gpu "$stage/bin/bench/"
  # The programs share libember.so (-Ddefault_library=shared above); its own libraries are found through it.
  cp -L build-cuda/libember.so "$stage/lib/"
  strip --strip-unneeded "$stage"/bin/* "$stage"/bin/bench/* "$stage"/lib/libember.so 2>/dev/null
  for lib in $(LD_LIBRARY_PATH="$stage/lib" ldd "$stage"/bin/* "$stage"/bin/bench/* "$stage"/lib/libember.so 2>/dev/null |
    awk '/=> \//{print $3}' | grep -v "^$stage/" | sort -u); do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libcuda.so*) ;;
      libcublas*|libcudnn*|libnccl*) ;;  # hundreds of MB: the GPU machine's own are used
      libstdc++.so*|libgcc_s.so*) cp -L "$lib" "$stage/lib-cxx/" ;;  # used only if the box's are older
      *) cp -L "$lib" "$stage/lib/" ;;
    esac
  done
  cp "$ROOT"/../shared/data/mnist/*.gz "$stage/data/mnist/" 2>/dev/null || say "no MNIST beside the repo: mnist_cnn will be skipped"
  cp "$ROOT"/../shared/data/austen_six_novels.txt.gz "$stage/data/" 2>/dev/null ||
    say "no Austen novels beside the repo: gpt2 will train on the bundled Pride and Prejudice"
  git -C "$ROOT" rev-parse HEAD >"$stage/commit" 2>/dev/null
  git -C "$ROOT" status --short >>"$stage/commit" 2>/dev/null
  # The sources it was built from, to tell on the GPU machine whether the carried tree has changed since.
  git -C "$ROOT" ls-files -z -- core kernels nn train dist tests examples bench meson.build |
    (cd "$ROOT" && xargs -0 sha1sum) >"$stage/sources.sha1"
  rm -rf "$BUNDLE" && mkdir -p "$BUNDLE"
  tar -C "$stage" -czf "$BUNDLE/bundle.tar.gz" . && sync && gzip -t "$BUNDLE/bundle.tar.gz" || die "tar"
  rm -rf "$stage"
  size=$(du -m "$BUNDLE/bundle.tar.gz" | cut -f1)
  ((size <= 60)) || die "bundle is ${size} MB, over the 60 MB a device run can carry"
  say "bundle ready: ${size} MB; carry [\"build-cuda/gpu_bundle\"]"
  exit 0
fi

# ---------------------------------------------------------------- the GPU machine
say "repo $ROOT, log $LOG"
if have nvidia-smi; then
  timeout 30 nvidia-smi || say "nvidia-smi failed"
  timeout 30 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv
else
  say "nvidia-smi not found"
fi
say "nvcc: $("$NVCC" --version 2>/dev/null | tail -1 || echo missing); g++: $(g++ --version 2>/dev/null | head -1 || echo missing)"

TESTS="" BENCH="" BENCH_DIR="" DIGITS="" MNIST="" MNIST_DATA="" GPT2="" AUSTEN=bundled RUN_ENV=()
# cuBLAS/cuDNN of the machine: the toolkit's lib64 and the NVIDIA wheels PyTorch installed.
machine_cuda_libs() {
  local dirs=("$CUDA_HOME/lib64") sp
  for sp in $(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null); do
    dirs+=("$sp"/nvidia/*/lib "$sp"/nvidia/cu*/lib "$sp"/torch/lib)
  done
  local out="" d
  for d in "${dirs[@]}"; do [[ -d $d ]] && out+="${out:+:}$d"; done
  echo "$out"
}
# Unpacks a carried bundle and finds a library path under which its programs start.
bundle_ok() {
  [[ -f "$BUNDLE/bundle.tar.gz" ]] || return 1
  local dir=${TMPDIR:-/tmp}/ember_gpu_bundle
  rm -rf "$dir" && mkdir -p "$dir" && tar -C "$dir" -xzf "$BUNDLE/bundle.tar.gz" || { say "cannot unpack bundle"; return 1; }
  say "bundle built from: $(head -1 "$dir/commit" 2>/dev/null)"
  if [[ -f $dir/sources.sha1 ]]; then
    local stale
    stale=$(sha1sum -c --quiet "$dir/sources.sha1" 2>/dev/null | cut -d: -f1)
    [[ -z $stale ]] || say "WARNING: the bundle is stale, $(wc -l <<<"$stale") source files changed since it was" \
      "built (rerun tools/gpu_check.sh --prepare): $(head -5 <<<"$stale" | tr '\n' ' ')"
  fi
  local sys path
  sys=$(machine_cuda_libs)
  for path in "$dir/lib:$sys" "$dir/lib:$dir/lib-cxx:$sys"; do
    if LD_LIBRARY_PATH="$path" "$dir/bin/ember_tests" --count >/dev/null 2>&1; then
      TESTS=$dir/bin/ember_tests BENCH=$dir/bin/bm_gpu_elementwise RUN_ENV=(env LD_LIBRARY_PATH="$path")
      BENCH_DIR=$dir/bin DIGITS=$dir/bin/digits_mlp MNIST=$dir/bin/mnist_cnn MNIST_DATA=$dir/data/mnist
      GPT2=$dir/bin/gpt2
      [[ -f $dir/data/austen_six_novels.txt.gz ]] && AUSTEN=$dir/data/austen_six_novels.txt.gz
      return 0
    fi
  done
  say "bundle programs do not start here:"
  LD_LIBRARY_PATH="$dir/lib:$dir/lib-cxx:$sys" ldd "$dir/bin/ember_tests" | grep -i "not found"
  LD_LIBRARY_PATH="$dir/lib:$dir/lib-cxx:$sys" "$dir/bin/ember_tests" --count 2>&1 | head -3
  return 1
}

use_meson() {
  have meson && have ninja || return 1
  local dir=build-gpu
  if [[ ! -f $dir/build.ninja ]]; then
    timeout 120 meson setup $dir -Dcuda=enabled -Dbenchmarks=false -Dexamples=false -Dtests=true || return 1
  fi
  timeout 330 ninja -C $dir -j"$JOBS" tests/ember_tests bm_gpu_elementwise || return 1
  TESTS=$dir/tests/ember_tests BENCH=$dir/bm_gpu_elementwise
}

# Direct compile of the sources meson.build lists, for a box without meson/ninja.
use_direct() {
  local arch=${EMBER_GPU_ARCH:-90} dir=build-gpu-direct missing=()
  have g++ || missing+=("g++")
  [[ -x "$NVCC" ]] || missing+=("nvcc")
  for h in tbb/parallel_for.h cblas.h zlib.h nlohmann/json.hpp yaml-cpp/yaml.h doctest/doctest.h; do
    echo "#include <$h>" | g++ -std=c++20 -x c++ -fsyntax-only - 2>/dev/null ||
      echo "#include <$h>" | g++ -std=c++20 -I/usr/include/openblas -x c++ -fsyntax-only - 2>/dev/null ||
      missing+=("header <$h>")
  done
  for l in tbb openblas z yaml-cpp; do
    echo 'int main(){}' | g++ -x c++ - -l$l -o /dev/null 2>/dev/null || missing+=("library -l$l")
  done
  if ((${#missing[@]})); then
    say "direct build impossible, missing: ${missing[*]}"
    say "carry a bundle instead: run 'tools/gpu_check.sh --prepare' on the build machine, carry build-cuda/gpu_bundle"
    return 1
  fi
  mkdir -p $dir/obj
  local cxx=(g++ -std=c++20 -O2 -DNDEBUG -DEMBER_CUDA=1 -I. -I/usr/include/openblas -I"$CUDA_HOME/include" -fno-math-errno -pthread)
  # cuBLAS is required (meson's cuda dependency); cuDNN only when its header is there, as in meson.build
  # (which adds its handle's source only then; cuDNN's frontend is left out: attention uses Ember's kernel).
  local ld=(-L"$CUDA_HOME/lib64" -lcublas -lcublasLt -lcudart_static -ldl -lrt -lopenblas -ltbb -lz -lyaml-cpp -pthread)
  local no_cudnn=kernels/cuda/cudnn_handle.cpp
  if echo '#include <cudnn.h>' | g++ -I"$CUDA_HOME/include" -x c++ -fsyntax-only - 2>/dev/null; then
    cxx+=(-DEMBER_CUDNN=1)
    ld+=(-lcudnn)
    no_cudnn=none
  fi
  local srcs cus
  srcs="$(meson_sources cpp | grep -v -x "$no_cudnn" | tr '\n' ' ') $dir/ember_data_embedded.cpp"
  cus=$(meson_sources cu)
  python3 tools/embed_data.py data/digits.csv.gz "$ROOT/data" $dir/ember_data_embedded.cpp || return 1
  say "direct build: $(echo $srcs | wc -w) C++ and $(echo $cus | wc -w) CUDA sources, sm_$arch, $JOBS jobs"
  printf '%s\n' $srcs tests/test_main.cpp tests/test_cuda.cpp bench/gpu/bm_gpu_elementwise.cpp |
    xargs -P "$JOBS" -I{} sh -c '"$@" -c {} -o '"$dir"'/obj/$(echo {} | tr / _).o || exit 255' _ "${cxx[@]}" \
      -DEMBER_TEST_SOURCE_DIR="\"$ROOT/tests\"" || return 1
  printf '%s\n' $cus | xargs -P "$JOBS" -I{} sh -c '"$@" -c {} -o '"$dir"'/obj/cu_$(basename {}).o || exit 255' _ \
    "$NVCC" -std=c++20 -O3 --expt-relaxed-constexpr -DNDEBUG -DEMBER_CUDA=1 -I. \
    -gencode arch=compute_$arch,code=sm_$arch || return 1
  local lib_objs
  lib_objs=$(ls $dir/obj/*.o | grep -v -e tests_test_ -e bench_gpu_)
  g++ -o $dir/ember_tests $dir/obj/tests_test_main.cpp.o $dir/obj/tests_test_cuda.cpp.o $lib_objs "${ld[@]}" || return 1
  g++ -o $dir/bm_gpu_elementwise $dir/obj/bench_gpu_bm_gpu_elementwise.cpp.o $lib_objs "${ld[@]}" || return 1
  TESTS=$dir/ember_tests BENCH=$dir/bm_gpu_elementwise
}

if bundle_ok; then say "using the carried bundle"
elif use_meson; then say "built with meson"
elif use_direct; then say "built directly with g++/nvcc"
else die "no way to build here (see the messages above)"; fi

export EMBER_TEST_DIR=$ROOT/tests  # the fixtures, wherever the test binary was built
# Every step gets at most its own budget and never runs past 460 s in all (plus 10 s for a step that
# ignores SIGTERM, then SIGKILL: the Trainer takes SIGTERM as a requeue and writes a checkpoint first).
# A step with under 5 s left is skipped (exit code 124).
DEADLINE=460
left() { local l=$((DEADLINE - ($(date +%s) - START))); ((l < $1)) && echo $((l > 0 ? l : 0)) || echo "$1"; }
run() {
  local t
  t=$(left "$1")
  ((t >= 5)) || { say "no time left, skipped: ${*:2}"; return 124; }
  timeout -k 10 "$t" ${RUN_ENV[@]+"${RUN_ENV[@]}"} "${@:2}"
}
declare -A RC

# In order of what matters now (issue 18 first); a step that would run past the deadline gets what is left.
say "CUDA tests and the CPU-vs-CUDA parity sweep (fused attention, CUDA graphs included)"
CUDA_TESTS='cuda*,streams*,sweep*,examples: the digits MLP reaches 97% when*'
EMBER_REQUIRE_CUDA=1 run 100 "$TESTS" -tc="$CUDA_TESTS" -s=false --duration=true | tee "$SCRATCH/cuda_tests.log"
RC[cuda_tests]=${PIPESTATUS[0]}
if ((RC[cuda_tests] != 0)); then
  # A memory fault ends the CUDA context for the rest of its process (and a crash ends the process), so every
  # later test fails or never runs. Each test that did not pass runs again alone, to tell the faulty from
  # their victims.
  say "each CUDA test that did not pass, again in its own process"
  passed=$(awk '/ERROR:|CRASHED/ {bad = 1} /^[0-9.]+ s: / {if (!bad) {sub(/^[0-9.]+ s: /, ""); print} bad = 0}' \
    "$SCRATCH/cuda_tests.log")
  ${RUN_ENV[@]+"${RUN_ENV[@]}"} "$TESTS" -ltc -tc="$CUDA_TESTS" 2>/dev/null | sed '1,2d;/^=====/,$d' | grep -vxF -e "$passed" |
    while IFS= read -r name; do
      ((DEADLINE - ($(date +%s) - START) > 300)) || { say "no time left to isolate: $name"; continue; }
      EMBER_REQUIRE_CUDA=1 run 30 "$TESTS" -tc="${name//[,*?]/?}" -s=false >"$SCRATCH/isolated.log" 2>&1
      rc=$?
      say "alone: rc=$rc  $name"
      ((rc == 0)) || grep -E -A3 'ERROR:|CRASHED' "$SCRATCH/isolated.log" | head -40
    done
fi
HAVE_TORCH=$([[ -n $BENCH_DIR ]] && python3 -c 'import torch' 2>/dev/null && echo 1)
KEY='gpt2_124m|attention|graph'
if [[ -n $HAVE_TORCH ]]; then
  # The GPT-2 124M step first and on its own (torch.compile's compile is part of its setup), so that a
  # slow compile cannot cost the other numbers; compare writes its JSON after every workload.
  say "GPT-2 124M training step beside PyTorch eager and torch.compile"
  run 150 python3 bench/compare --suite gpu --quick --filter gpt2_124m --build "$BENCH_DIR" \
    --json "$LOGDIR/compare_gpu_gpt2.json" --svg "$SCRATCH/compare_gpu_gpt2.svg"
  RC[bench_gpt2]=$?
  say "fused attention and CUDA graphs beside PyTorch"
  run 90 python3 bench/compare --suite gpu --quick --filter 'attention|graph' --build "$BENCH_DIR" \
    --json "$LOGDIR/compare_gpu_key.json" --svg "$SCRATCH/compare_gpu_key.svg"
  RC[bench_key]=$?
fi
if [[ -n $GPT2 ]]; then
  say "GPT-2 124M on the Austen text, bf16-mixed, 75 s of training (exit code 1: the validation loss did not fall);"
  say "its ops profiler's tables at the end: where the device's time goes in three steps"
  run 110 "$GPT2" --device cuda --model.max_minutes 1.25 --data.data "$AUSTEN" --trainer.val_check_interval 50 \
    --trainer.profiler ops
  RC[gpt2]=$?
fi
if have compute-sanitizer; then
  say "compute-sanitizer memcheck on a short subset (Ember's own attention kernel, not cuDNN's; bad indices)"
  EMBER_TEST_SDPA=ember EMBER_REQUIRE_CUDA=1 run 60 compute-sanitizer --tool memcheck --error-exitcode 9 "$TESTS" \
    -tc='cuda: binary*,sweep: elementwise,streams: a side*,cuda: fused attention: strided*,cuda: gather*,cuda: embedding*' \
    -s=false
  RC[memcheck]=$?
  say "compute-sanitizer racecheck on the fused attention (shared-memory tiles between warps)"
  EMBER_TEST_SDPA=ember EMBER_REQUIRE_CUDA=1 run 45 compute-sanitizer --tool racecheck --error-exitcode 9 "$TESTS" \
    -tc='cuda: fused attention: strided*' -s=false
  RC[racecheck]=$?
fi
say "the whole suite with the GPU present: gradchecks on CUDA (EMBER_TEST_DEVICE=cuda), Trainer tests on \"auto\""
EMBER_TEST_DEVICE=cuda run 150 "$TESTS" -tce='cuda*,streams*,sweep*'
RC[whole_suite]=$?
if [[ -n $DIGITS ]]; then
  say "digits_mlp on the GPU"
  run 45 "$DIGITS" 30 --device cuda
  RC[digits_mlp]=$?
  if [[ -d $MNIST_DATA ]]; then
    say "mnist_cnn, one epoch on the GPU (exit code 1 means under 99% after one epoch)"
    run 75 "$MNIST" "$MNIST_DATA" 1 --device cuda
    RC[mnist_cnn]=$?
  fi
fi
if [[ -n $HAVE_TORCH ]]; then
  say "the rest of the GPU benchmark suite"
  run 90 python3 bench/compare --suite gpu --quick --filter "^(?!.*($KEY))" --build "$BENCH_DIR" \
    --json "$LOGDIR/compare_gpu.json" --svg "$SCRATCH/compare_gpu.svg"
  RC[bench]=$?
fi
say "elementwise bandwidth (256M elements)"
run 40 "$BENCH" $((1 << 28)) 5
RC[bandwidth]=$?
summary="" ok=0
for k in "${!RC[@]}"; do summary+=" $k=${RC[$k]}"; ((RC[$k] == 0)) || ok=1; done
say "done in $(($(date +%s) - START)) s:$summary"
exit $ok
