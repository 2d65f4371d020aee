#!/usr/bin/env bash
# Side-by-side fine-tune step throughput: `patchmix bench step --finetune` (ORT CPU) against
# the original's step in PyTorch eager with timm (scripts/torch_finetune_step.py), alternating
# the two for several rounds in one run so that both see the same machine load. Prints each
# round and the median ratio.
#
#   scripts/bench-finetune-vs-torch.sh [small|vit-t4] [ROUNDS] [STEPS]
#
# Needs `pip install torch timm`. Not run in CI (it measures, it does not test).
set -euo pipefail
config=${1:-small}
rounds=${2:-3}
steps=${3:-10}
here=$(cd "$(dirname "$0")/.." && pwd)
case $config in
small) targs="--dim 64 --depth 4 --heads 4 --img 32 --patch 4 --batch 64" ;;
vit-t4) targs="--dim 192 --depth 12 --heads 3 --img 32 --patch 4 --batch 64" ;;
*) echo "bench-finetune-vs-torch: unknown config '$config' (small or vit-t4)" >&2; exit 2 ;;
esac
python3 -c "import torch, timm" 2>/dev/null || { echo "bench-finetune-vs-torch: PyTorch/timm missing: pip install torch timm" >&2; exit 2; }
cargo build -q -p patchmix-train
bin=${CARGO_TARGET_DIR:-$here/target}/debug/patchmix
ours=() theirs=()
for r in $(seq 1 "$rounds"); do
  o=$("$bin" bench step --finetune --config "$config" --steps "$steps" | sed -n 's/.* \([0-9.]*\) img\/s$/\1/p' | tail -1)
  t=$(python3 "$here/scripts/torch_finetune_step.py" $targs --steps "$steps" --threads "$(nproc)" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["img_per_s"])')
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
