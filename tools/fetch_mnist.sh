#!/usr/bin/env bash
# Downloads MNIST's four gzipped IDX files into a folder and checks them against known sha256 sums of the
# decompressed data (gzip output differs between tools, the data do not). Files already present and
# correct are kept. Then data::mnist(DIR) reads them.
# Usage: tools/fetch_mnist.sh [DIR=data/mnist]
#   EMBER_MNIST_MIRROR  a base URL to try first (any URL curl/wget accept, file:// included)
# Data: Y. LeCun and C. Cortes, CC BY-SA 3.0 (keep this attribution with any copy).
set -euo pipefail
dir=${1:-data/mnist}
mirrors=(https://ossci-datasets.s3.amazonaws.com/mnist https://storage.googleapis.com/cvdf-datasets/mnist)
[[ -n "${EMBER_MNIST_MIRROR:-}" ]] && mirrors=("$EMBER_MNIST_MIRROR" "${mirrors[@]}")

declare -A sums=(
  [train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
  [train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
  [t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
  [t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
)

download() {  # download URL FILE
  if command -v curl >/dev/null; then
    curl -fsSL --retry 2 -o "$2" "$1"
  elif command -v wget >/dev/null; then
    wget -q -O "$2" "$1"
  else
    echo "fetch_mnist: needs curl or wget" >&2
    return 1
  fi
}

# The sha256 of a gzipped file's content ("" when it is not valid gzip).
content_sum() {
  local s
  s=$(gzip -dc "$1" 2>/dev/null | sha256sum) || return 0  # pipefail: a gzip error prints nothing
  echo "${s%% *}"
}

mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for name in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  want=${sums[$name]}
  dest="$dir/$name.gz"
  if [[ -f "$dest" && "$(content_sum "$dest")" == "$want" ]]; then
    echo "fetch_mnist: $dest is present and correct"
    continue
  fi
  ok=0
  for m in "${mirrors[@]}"; do
    if download "$m/$name.gz" "$tmp/$name.gz" 2>/dev/null; then
      got=$(content_sum "$tmp/$name.gz")
      if [[ "$got" == "$want" ]]; then
        mv "$tmp/$name.gz" "$dest"
        echo "fetch_mnist: $dest from $m (sha256 ok)"
        ok=1
        break
      fi
      echo "fetch_mnist: $m/$name.gz has the wrong content (sha256 ${got:-not gzip}), trying the next mirror" >&2
    else
      echo "fetch_mnist: could not download $m/$name.gz" >&2
    fi
  done
  if ((!ok)); then
    echo "fetch_mnist: FAILED to get $name.gz from any mirror" >&2
    status=1
  fi
done
((status == 0)) && echo "fetch_mnist: MNIST is ready in $dir (data: Y. LeCun and C. Cortes, CC BY-SA 3.0)"
exit $status
