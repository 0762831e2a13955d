"""Unpacks a wheel's include/ folder into DEST/include (used by tools/setup.sh for cuDNN's frontend).

Usage: python3 tools/unpack_headers.py WHEEL DEST. Writes into a temporary folder first and renames it,
so an interrupted run leaves no half-written DEST."""
import os
import shutil
import sys
import tempfile
import zipfile


def main() -> int:
    wheel, dest = sys.argv[1], sys.argv[2]
    parent = os.path.dirname(os.path.abspath(dest))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent)
    try:
        with zipfile.ZipFile(wheel) as z:
            members = [m for m in z.namelist() if m.startswith("include/") and not m.endswith("/")]
            if not any(m == "include/cudnn_frontend.h" for m in members):
                print(f"unpack_headers: {wheel} has no include/cudnn_frontend.h", file=sys.stderr)
                return 1
            for m in members:
                target = os.path.realpath(os.path.join(tmp, m))
                if not target.startswith(os.path.realpath(tmp) + os.sep):
                    print(f"unpack_headers: refusing path {m}", file=sys.stderr)
                    return 1
                z.extract(m, tmp)
        shutil.rmtree(dest, ignore_errors=True)
        os.rename(tmp, dest)
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
