#!/usr/bin/env bash
# Round trip with the Python safetensors package: Ember writes, Python checks and writes, Ember checks.
# Usage: tests/interop/run.sh [BUILD_DIR]   (default: build). Skips (exit 0) without numpy/safetensors.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:-$root/build}"
case "$build" in /*) ;; *) build="$PWD/$build" ;; esac
exe="$build/tests/ember_interop"
python="${PYTHON:-python3}"

if ! "$python" -c 'import numpy, safetensors' >/dev/null 2>&1; then
  echo "interop: SKIP ($python cannot import numpy and safetensors)"
  exit 0
fi
if [[ ! -x "$exe" ]]; then
  echo "interop: $exe not found; build it first (ninja -C $build tests/ember_interop)" >&2
  exit 1
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/ember_interop.XXXXXX")"
trap 'rm -rf "$dir"' EXIT
"$exe" write "$dir"
"$python" "$here/check_safetensors.py" "$dir"
"$exe" check "$dir"
echo "interop: OK"

# TensorBoard's own reader on the event file a TensorBoardLogger wrote (plus the CSVLogger's files).
tb_exe="$build/tests/ember_write_tensorboard"
if ! "$python" -c 'import tensorboard' >/dev/null 2>&1; then
  "$python" -m pip install --quiet --break-system-packages tensorboard >/dev/null 2>&1 || true
fi
if "$python" -c 'import tensorboard' >/dev/null 2>&1; then
  "$tb_exe" "$dir/loggers" >/dev/null
  "$python" "$here/check_tensorboard.py" "$dir/loggers"
  echo "interop: tensorboard OK"
else
  echo "interop: tensorboard SKIP (pip install tensorboard failed; $python cannot import tensorboard)"
fi
