#!/usr/bin/env bash
# Installs the reference frameworks bench/compare runs against, once per machine (safe to rerun): PyTorch
# (the current PyPI release; a machine whose python3 already has torch keeps it, CUDA builds included), JAX and
# PyTorch Lightning. Debian 12's python3 is "externally managed": as root we pass --break-system-packages.
# Usage: bench/setup_reference.sh [python3]
set -euo pipefail
PY=${1:-python3}
if ! "$PY" -m pip --version >/dev/null 2>&1; then
  command -v apt-get >/dev/null && [[ $EUID -eq 0 ]] && apt-get install -y -q python3-pip >/dev/null
fi
PIP=("$PY" -m pip install --quiet --disable-pip-version-check)
if "$PY" -m pip install --help 2>/dev/null | grep -q -- --break-system-packages; then
  PIP+=(--break-system-packages)
fi

has() { "$PY" -c "import $1" >/dev/null 2>&1; }
for mod_pkg in torch:torch jax:jax pytorch_lightning:pytorch-lightning; do
  mod=${mod_pkg%%:*} pkg=${mod_pkg##*:}
  if has "$mod"; then
    echo "have $pkg $("$PY" -c "import $mod; print($mod.__version__)")"
  else
    echo "installing $pkg"
    "${PIP[@]}" "$pkg"
  fi
done
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda' if torch.cuda.is_available() else 'cpu')"
