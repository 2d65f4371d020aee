#!/usr/bin/env bash
# Stages everything scripts/gpu-check.sh needs on an offline GPU host (no network; files reach
# it in transfers of a bounded size) into .ortgpu/ (ignored by git), in the layout of
# ../shared/gpu/stage-ort-cuda.sh, so ../shared/gpu/unpack-ort-cuda.sh unpacks it into
# /tmp/ort-cuda there:
#   - ONNX Runtime's CUDA build (onnxruntime-gpu 1.31.1: libonnxruntime.so.1.31.1 and both
#     provider libraries), cached in <cache>/ort/1.31.1-gpu/ (where patchmix itself looks);
#   - libcurand.so.10 from the CUDA 13 nvidia-curand wheel: the CUDA provider links it and the
#     GPU host's PyTorch environment does not ship it (its other CUDA 13 libraries do);
#   - the patchmix binary, stripped (a binary built here runs on a host with a newer glibc),
#     as /tmp/ort-cuda/patchmix;
# as one xz tarball split into parts of --part-size bytes (48M by default, for transfers of at
# most 64 MiB), with SHA256SUMS, the unpack script and ../shared/bench/torch_patchmix_step.py
# beside them. Prints the files to transfer and the one command to run on the host.
#
#   scripts/stage-gpu-check.sh [--bin PATH] [--part-size SIZE]
# The binary defaults to $PATCHMIX_BIN, then release, then debug builds under $CARGO_TARGET_DIR
# or target/ (build one first: `cargo build --release -p patchmix-train --features nccl`, so that
# the check also runs the NCCL kernels; without `nccl` it reports them as not built). SIZE is
# split(1)'s: a number of bytes with an optional K, M or G suffix.
set -euo pipefail
VER=1.31.1
bin=${PATCHMIX_BIN:-}
part_size=48M
while [ $# -gt 0 ]; do
  case $1 in
  --bin) [ $# -ge 2 ] || { echo "stage-gpu-check: --bin needs a path" >&2; exit 2; }; bin=$2; shift ;;
  --part-size)
    [ $# -ge 2 ] || { echo "stage-gpu-check: --part-size needs a size (e.g. 48M)" >&2; exit 2; }
    [[ $2 =~ ^[1-9][0-9]*[KMG]?$ ]] || { echo "stage-gpu-check: --part-size '$2' is not a size like 48M, 65536 or 1G" >&2; exit 2; }
    part_size=$2; shift ;;
  -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
  *) echo "stage-gpu-check: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
cd "$root"
shared=$root/../shared
for f in "$shared/gpu/unpack-ort-cuda.sh" "$shared/bench/torch_patchmix_step.py"; do
  [ -f "$f" ] || { echo "stage-gpu-check: $f not found" >&2; exit 2; }
done
if [ -z "$bin" ]; then
  for c in ${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/release/patchmix} target/release/patchmix \
    ${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/debug/patchmix} target/debug/patchmix; do
    [ -x "$c" ] && { bin=$c; break; }
  done
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  echo "stage-gpu-check: no patchmix binary; build one or give --bin" >&2
  exit 2
fi
cache="${PATCHMIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/patchmix}"

# ONNX Runtime's CUDA build.
ort="$cache/ort/$VER-gpu"
libs=("libonnxruntime.so.$VER" libonnxruntime_providers_cuda.so libonnxruntime_providers_shared.so)
if ! (for l in "${libs[@]}"; do [ -f "$ort/$l" ] || exit 1; done); then
  echo "stage-gpu-check: fetching onnxruntime-gpu==$VER (~185 MiB) into $ort" >&2
  mkdir -p "$ort/wheels"
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$ort/wheels" "onnxruntime-gpu==$VER"
  whls=("$ort"/wheels/onnxruntime_gpu-"$VER"-*.whl)
  whl=${whls[-1]}
  for l in "${libs[@]}"; do unzip -o -q -j "$whl" "onnxruntime/capi/$l" -d "$ort"; done
fi
# libcurand.so.10 of CUDA 13.
cu="$cache/cuda13"
if [ ! -f "$cu/libcurand.so.10" ]; then
  echo "stage-gpu-check: fetching nvidia-curand==10.4.* (CUDA 13, ~75 MiB) into $cu" >&2
  mkdir -p "$cu/wheels"
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$cu/wheels" "nvidia-curand==10.4.*"
  whls=("$cu"/wheels/nvidia_curand-10.4.*.whl)
  whl=${whls[-1]}
  unzip -o -q -j "$whl" 'nvidia/*/lib/libcurand.so.10' -d "$cu"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/x"
for l in "${libs[@]}"; do cp "$ort/$l" "$tmp/x/"; done
cp "$cu/libcurand.so.10" "$tmp/x/"
strip -o "$tmp/x/patchmix" "$bin"
echo "stage-gpu-check: packing $(du -sh "$tmp/x" | cut -f1) (ORT CUDA build, libcurand, patchmix from $bin)" >&2
(cd "$tmp/x" && tar cf - .) | xz -6 -T0 >"$tmp/stage.tar.xz"
grep -qx '/.ortgpu/' .git/info/exclude 2>/dev/null || echo '/.ortgpu/' >>.git/info/exclude
rm -rf .ortgpu && mkdir -p .ortgpu
split -b "$part_size" -d -a 3 "$tmp/stage.tar.xz" .ortgpu/part-
(cd .ortgpu && sha256sum part-* >SHA256SUMS)
cp "$shared/gpu/unpack-ort-cuda.sh" "$shared/bench/torch_patchmix_step.py" .ortgpu/
ls -la .ortgpu
parts=$(cd .ortgpu && ls part-*)
echo
echo "Transfer to the GPU host, into .ortgpu/ of a checkout of this commit (each file at most $part_size):"
for p in $parts; do echo "  .ortgpu/$p"; done
echo "  .ortgpu/SHA256SUMS  .ortgpu/unpack-ort-cuda.sh  .ortgpu/torch_patchmix_step.py"
echo "Then run the check there as one command (it keeps within --budget seconds, 500 by default):"
echo "  eval \"\$(bash .ortgpu/unpack-ort-cuda.sh)\" && bash scripts/gpu-check.sh --bin /tmp/ort-cuda/patchmix"
echo "Results are written under \$OUT, else target/gpu-check (summary.md, results.json, logs)."
