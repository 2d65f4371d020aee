#!/usr/bin/env python3
"""The share of ONNX Runtime's step time spent in the data-parallel collectives.

Reads the ORT profiles (`RUN/ort-profile*.json`, written by `patchmix pretrain --profile`)
and prints, per file: the number of `model_run` calls, their mean duration, and the summed
kernel time of the `AllReduceSum` / `AllGather` nodes as a share of it. With MPI ranks the
collectives' time includes waiting for the slowest rank.

Usage: scripts/profile_collectives.py RUN_DIR [--skip N]   (skip the first N runs: warm-up)
"""
import glob
import json
import sys

COLLECTIVES = {"AllReduceSum", "AllGather"}


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    run = sys.argv[1]
    skip = int(sys.argv[sys.argv.index("--skip") + 1]) if "--skip" in sys.argv else 1
    files = sorted(glob.glob(f"{run}/ort-profile*.json"))
    if not files:
        sys.exit(f"{run}: no ort-profile*.json (run with --profile)")
    for path in files:
        events = json.load(open(path))
        runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
        if len(runs) <= skip:
            print(f"{path}: {len(runs)} runs, fewer than --skip {skip} + 1")
            continue
        start = runs[skip]["ts"]
        total = sum(e["dur"] for e in runs[skip:])
        coll = sum(
            e["dur"]
            for e in events
            if e.get("cat") == "Node"
            and e.get("ts", 0) >= start
            and e.get("name", "").endswith("_kernel_time")
            and e.get("args", {}).get("op_name") in COLLECTIVES
        )
        n = len(runs) - skip
        print(
            f"{path}: {n} steps, {total / n / 1000:.1f} ms/step, collectives "
            f"{coll / n / 1000:.2f} ms/step = {100 * coll / max(total, 1):.1f}% of the step"
        )


if __name__ == "__main__":
    main()
