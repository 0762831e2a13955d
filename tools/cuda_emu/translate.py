#!/usr/bin/env python3
"""Rewrites CUDA sources for the CPU emulator (tools/cuda_emu): each `kernel<<<cfg>>>(args)` launch becomes
`::emu::launch(::emu::LaunchConfig(cfg), <generic lambda calling kernel>, args)` and each
`extern __shared__ T name[];` a pointer to the block's dynamic shared memory. Everything else is kept, so
g++ compiles the same kernels the GPU build does.

usage: translate.py OUT_DIR FILE...   (kernels/cuda/x.cu -> OUT_DIR/cuda_emu_x.cpp, y.cuh -> cuda_emu_y.cuh; the
includes of kernels/cuda/*.cuh go to the translated copies, which sit beside the sources)
"""
import os
import re
import sys

CUDA_HEADER = re.compile(r'#include "kernels/cuda/(\w+)\.cuh"')
EXTERN_SHARED = re.compile(r"extern\s+__shared__\s+(?:__align__\(\s*\d+\s*\)\s+)?([\w:\s]+?)\s+(\w+)\s*\[\s*\]\s*;")


def skip_back_space(s, i):
    while i >= 0 and (s[i].isspace() or (s[i] == "\\" and i + 1 < len(s) and s[i + 1] == "\n")):
        i -= 1
    return i


def kernel_start(s, end):
    """Start index of the kernel expression that ends just before index `end` (`name<targs>` or `ns::name`)."""
    i = skip_back_space(s, end - 1)
    if s[i] == ">":  # template arguments: walk back to the matching '<'
        depth = 0
        while i >= 0:
            if s[i] == ">":
                depth += 1
            elif s[i] == "<":
                depth -= 1
                if depth == 0:
                    break
            i -= 1
        i -= 1
    while i >= 0 and (s[i].isalnum() or s[i] in "_:"):
        i -= 1
    return i + 1


def matching_paren(s, i):
    assert s[i] == "("
    depth = 0
    while i < len(s):
        if s[i] == "(":
            depth += 1
        elif s[i] == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError("unbalanced parentheses in a launch")


def translate(src):
    out = []
    pos = 0
    while True:
        k = src.find("<<<", pos)
        if k < 0:
            break
        start = kernel_start(src, k)
        name = src[start:k].strip()
        close = src.find(">>>", k)
        cfg = src[k + 3:close]
        p = close + 3
        while src[p].isspace() or src[p] == "\\":
            p += 1
        end = matching_paren(src, p)
        args = src[p + 1:end]
        out.append(src[pos:start])
        # A generic lambda defers overload resolution and template argument deduction to the call, as a
        # launch does; the arguments are evaluated once, on the host.
        lines = "\n" * src.count("\n", start, p)  # keeps the line numbers of what follows
        call = f"::emu::launch({lines}::emu::LaunchConfig({cfg}), \"{' '.join(name.split())}\", [&](auto&&... emu_a) {{ {name}(emu_a...); }}"
        if args.strip():
            call += ", " + args
        out.append(call + ")")
        pos = end + 1
    out.append(src[pos:])
    text = "".join(out)
    text = CUDA_HEADER.sub(r'#include "cuda_emu_\1.cuh"', text)
    return EXTERN_SHARED.sub(lambda m: f"{m.group(1)}* {m.group(2)} = reinterpret_cast<{m.group(1)}*>(::emu::dynamic_shared());",
                             text)


def main():
    out_dir, files = sys.argv[1], sys.argv[2:]
    for f in files:
        base = os.path.basename(f)
        dst = os.path.join(out_dir, "cuda_emu_" + (base[:-3] + ".cpp" if base.endswith(".cu") else base))
        with open(f) as fh:
            text = translate(fh.read())
        with open(dst, "w") as fh:
            fh.write(f'#line 1 "{os.path.abspath(f)}"\n' + text)


if __name__ == "__main__":
    main()
