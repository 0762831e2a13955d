#!/usr/bin/env python3
"""Marks CUDA objects stale when a header they include changed: `tools/cuda_deps.py BUILD_DIR`.

Meson 1.0 (Debian 12's) gives nvcc no dependency-file flags, so ninja rebuilds a .cu object only when
the .cu file itself changes; an edited header (a struct a kernel takes by value, say) would leave an
object built against the old one. This asks nvcc for each CUDA source's includes (nvcc -M, with the
source's own flags) and touches the source when one of them is newer than its object. Run it before
ninja in an incremental build (tools/gpu_check.sh --prepare does). A clean build does not need it.
"""
import json
import os
import shlex
import subprocess
import sys


def main(build: str) -> int:
    with open(os.path.join(build, "compile_commands.json")) as f:
        entries = [e for e in json.load(f) if e["file"].endswith(".cu")]
    touched = 0
    for e in entries:
        cwd = e["directory"]
        args = shlex.split(e["command"])
        obj = os.path.join(cwd, args[args.index("-o") + 1])
        if not os.path.exists(obj):
            continue  # ninja builds it anyway
        flags, skip = [], False
        for a in args[1:]:
            if skip:
                skip = False
            elif a == "-o":
                skip = True
            elif a not in ("-c", e["file"]):
                flags.append(a)
        r = subprocess.run([args[0], "-M", *flags, e["file"]], cwd=cwd, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"cuda_deps: nvcc -M failed for {e['file']}: {r.stderr.strip()[-500:]}", file=sys.stderr)
            return 1
        deps = r.stdout.replace("\\\n", " ").split(":", 1)[1].split()
        built = os.path.getmtime(obj)
        newer = [d for d in deps if os.path.getmtime(os.path.join(cwd, d)) > built]
        if newer:
            os.utime(os.path.join(cwd, e["file"]))
            touched += 1
            print(f"cuda_deps: {e['file']} is rebuilt ({os.path.relpath(os.path.join(cwd, newer[0]))} changed)")
    print(f"cuda_deps: {touched} of {len(entries)} CUDA sources marked for rebuilding")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tools/cuda_deps.py BUILD_DIR")
    sys.exit(main(sys.argv[1]))
