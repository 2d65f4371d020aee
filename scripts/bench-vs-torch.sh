#!/usr/bin/env bash
# Side-by-side training-step throughput: patchmix-rs (ORT CPU) against the PyTorch reference
# step (../shared/bench/torch_patchmix_step.py), alternating the two for several rounds in one
# run so that both see the same machine load. Prints each round and the median ratio.
#
#   scripts/bench-vs-torch.sh [small|vit-t4] [ROUNDS] [STEPS]
#
# Needs `pip install torch numpy`. Not run in CI (it measures, it does not test).
set -euo pipefail
config=${1:-small}
rounds=${2:-3}
steps=${3:-10}
here=$(cd "$(dirname "$0")/.." && pwd)
torch_script=${TORCH_STEP:-$here/../shared/bench/torch_patchmix_step.py}
case $config in
small) targs="--dim 64 --depth 4 --heads 4 --img 32 --patch 4 --batch 64 --hidden 512 --out 128" ;;
vit-t4) targs="--dim 192 --depth 12 --heads 3 --img 32 --patch 4 --batch 64 --hidden 4096 --out 256" ;;
*) echo "bench-vs-torch: unknown config '$config' (small or vit-t4)" >&2; exit 2 ;;
esac
[ -f "$torch_script" ] || { echo "bench-vs-torch: $torch_script not found (set TORCH_STEP)" >&2; exit 2; }
python3 -c "import torch" 2>/dev/null || { echo "bench-vs-torch: PyTorch missing: pip install torch numpy" >&2; exit 2; }
# The dev profile builds dependencies at opt-level 2; the step itself runs inside ORT.
cargo build -q -p patchmix-train
bin=${CARGO_TARGET_DIR:-$here/target}/debug/patchmix
ours=() theirs=()
for r in $(seq 1 "$rounds"); do
  o=$("$bin" bench step --config "$config" --steps "$steps" | sed -n 's/.* \([0-9.]*\) img\/s$/\1/p' | tail -1)
  t=$(python3 "$torch_script" $targs --steps "$steps" --threads "$(nproc)" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["img_per_s"])')
  printf 'round %d: patchmix-rs %.1f img/s, PyTorch eager %.1f img/s, ratio %.2f\n' "$r" "$o" "$t" "$(python3 -c "print($o/$t)")"
  ours+=("$o"); theirs+=("$t")
done
python3 - "${ours[*]}" "${theirs[*]}" <<'PY'
import statistics, sys
o = [float(x) for x in sys.argv[1].split()]; t = [float(x) for x in sys.argv[2].split()]
r = [a / b for a, b in zip(o, t)]
print(f"median: patchmix-rs {statistics.median(o):.1f} img/s, PyTorch {statistics.median(t):.1f} img/s, "
      f"ratio {statistics.median(r):.2f} (per-round ratios {', '.join(f'{x:.2f}' for x in r)})")
PY
