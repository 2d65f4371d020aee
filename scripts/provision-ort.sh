#!/usr/bin/env bash
# Prints the path of ONNX Runtime's CPU library (libonnxruntime.so.1.31.1), fetching the
# onnxruntime==1.31.1 wheel from PyPI with pip into the cache if needed. The same search order
# as the `patchmix` binary: ORT_DYLIB_PATH, then the cache, then pip.
# Usage: export ORT_DYLIB_PATH="$(scripts/provision-ort.sh)"
set -euo pipefail
version=1.31.1
if [[ -n "${ORT_DYLIB_PATH:-}" && -f "${ORT_DYLIB_PATH}" ]]; then
  echo "$ORT_DYLIB_PATH"; exit 0
fi
cache="${PATCHMIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/patchmix}"
dir="$cache/ort/$version"
lib="$dir/libonnxruntime.so.$version"
if [[ ! -f "$lib" ]]; then
  echo "provision-ort: fetching onnxruntime==$version from PyPI into $dir" >&2
  mkdir -p "$dir/wheels"
  python3 -m pip download --quiet --no-deps --only-binary=:all: "onnxruntime==$version" -d "$dir/wheels" >&2
  python3 - "$dir" "$version" <<'PY'
import glob, os, sys, zipfile
d, v = sys.argv[1], sys.argv[2]
w = sorted(glob.glob(os.path.join(d, "wheels", f"onnxruntime-{v}-*.whl")))[-1]
z = zipfile.ZipFile(w)
for m in (f"libonnxruntime.so.{v}", "libonnxruntime_providers_shared.so"):
    tmp = os.path.join(d, m + ".part")
    with open(tmp, "wb") as f:
        f.write(z.read("onnxruntime/capi/" + m))
    os.replace(tmp, os.path.join(d, m))
PY
fi
echo "$lib"
