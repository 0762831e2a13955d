#!/usr/bin/env bash
# Quick-start setup: installs the Debian packages Ember needs (only those missing), then configures and
# builds with Meson. Usage: bash tools/setup.sh [--deps-only] [--ci] [meson setup options...]
#   --deps-only  install packages and stop        --ci  also the CI tools (clang, libFuzzer runtime, pip)
#   EMBER_BUILD_DIR  build folder (default build)    EMBER_SOURCE_DIR  Meson project (default: this repo)
#   EMBER_JOBS       compile jobs (default nproc)
# Meson options given to an already configured folder reconfigure it; with none, ninja just rebuilds.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

deps_only=0 ci=0
while (($#)); do
  case "$1" in
    --deps-only) deps_only=1 ;;
    --ci) ci=1 ;;
    *) break ;;
  esac
  shift
done

packages=(meson ninja-build pkg-config g++ libopenblas-dev libtbb-dev doctest-dev nlohmann-json3-dev libyaml-cpp-dev
  zlib1g-dev libbenchmark-dev libopenmpi-dev openmpi-bin)
if ((ci)); then
  packages+=(clang libclang-rt-14-dev)
  command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1 || packages+=(python3 python3-pip)
fi

# The CUDA toolkit, where installed (Debian's CUDA installs leave nvcc out of PATH).
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH="/usr/local/cuda/bin:$PATH"; fi
has_cuda=0
command -v nvcc >/dev/null && has_cuda=1
# pip fetches cuDNN's frontend headers below.
((has_cuda)) && ! python3 -m pip --version >/dev/null 2>&1 && packages+=(python3-pip)

missing=()
for p in "${packages[@]}"; do
  [[ $(dpkg -s "$p" 2>/dev/null) == *"Status: install ok installed"* ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: run as root (or install sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  log=$(mktemp)
  export DEBIAN_FRONTEND=noninteractive
  if ! { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
      >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup: apt-get failed" >&2
    exit 1
  fi
  rm -f "$log"
fi

# cuDNN's frontend (NVIDIA's header-only C++ graph API over cuDNN, MIT) for cuDNN's fused attention
# (kernels/cuda/attention_cudnn.cpp): its headers from PyPI's wheel into third_party/ (untracked), only
# with the CUDA toolkit. Without them the build goes on and attention uses Ember's own fused kernel.
fe_version=1.32.0
fe_dir="$root/third_party/cudnn-frontend-$fe_version"
if ((has_cuda)) && [ ! -f "$fe_dir/include/cudnn_frontend.h" ]; then
  fe_tmp=$(mktemp -d)
  if python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$fe_tmp" "nvidia-cudnn-frontend==$fe_version" \
      >"$fe_tmp/log" 2>&1 && python3 "$root/tools/unpack_headers.py" "$fe_tmp"/*.whl "$fe_dir"; then
    echo "setup: cuDNN frontend $fe_version headers in ${fe_dir#"$root"/}"
  else
    echo "setup: warning: could not fetch cuDNN's frontend ($(tail -n 1 "$fe_tmp/log")); attention will use Ember's kernel" >&2
  fi
  rm -rf "$fe_tmp"
fi
((deps_only)) && exit 0

cd "$root"
src=${EMBER_SOURCE_DIR:-$root}
build=${EMBER_BUILD_DIR:-build}
if [ -f "$build/meson-private/coredata.dat" ]; then
  if (($#)); then
    # A folder from another Meson version (or a broken one) cannot be reconfigured: start it afresh.
    meson setup --reconfigure "$build" "$src" "$@" || meson setup --wipe "$build" "$src" "$@"
  fi
else
  meson setup "$build" "$src" "$@"
fi
# An incremental build: CUDA objects whose headers changed (Meson 1.0 gives nvcc no dependency files).
((has_cuda)) && [ -f "$build/compile_commands.json" ] && python3 tools/cuda_deps.py "$build"
ninja -C "$build" -j "${EMBER_JOBS:-$(nproc)}"
