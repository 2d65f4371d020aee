"""Micro-benchmark: `MixPlan.apply_nchw` against the original's torch gather, side by side.

    python core/python/bench/bench_apply.py [--batch 512] [--grid 8] [--rounds 7] [--reps 20]

Mixes a (batch, 3, 32, 32) float32 batch with one plan per round and reports the median time
per call and the ratio to the original, with every contender timed in each round (alternated,
so machine noise hits all of them alike):

* `original PatchMixer`: the original's `module/mix.py` `PatchMixer.__call__` (patchify,
  shuffle gather, group gather, unshuffle gather, unpatchify; targets included, as the original
  always builds them) — needs torch, einops and $PATCHMIX_ORIGINAL (a checkout of
  visresearch/patchmix), skipped otherwise;
* `torch one gather`: the same mix as a single `index_select` with the plan's `source` on
  patchified tokens plus the two rearranges — the best a torch pipeline could do with our plan;
* `apply_nchw` (a new array) and `apply_nchw(out=…)` (into a preallocated array).

torch runs with `--threads` intra-op threads (default 1: `apply_nchw` is single-threaded).
"""

import argparse
import importlib.util
import os
import pathlib
import statistics
import sys
import time

import numpy as np

import patchmix_core as pc


def load_original(torch):
    root = os.environ.get("PATCHMIX_ORIGINAL")
    if not root:
        return None, "PATCHMIX_ORIGINAL is not set"
    try:
        import einops  # noqa: F401
    except ImportError:
        return None, "einops is not installed"
    path = pathlib.Path(root) / "module" / "mix.py"
    spec = importlib.util.spec_from_file_location("original_patchmix_mix", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # the original moves indices to CUDA
    torch.distributed.get_rank = lambda *args, **kwargs: 0
    one_hot = module.PatchMixer._one_hot
    module.PatchMixer._one_hot = lambda self, t, n, on=1.0, off=0.0, device="cpu": one_hot(self, t, n, on, off, device="cpu")
    return module, None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--grid", type=int, default=8, help="patches per side (32/grid pixels each)")
    parser.add_argument("--mix", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    b, g, m, side = args.batch, args.grid, args.mix, 32
    p = side // g
    images = np.random.default_rng(0).standard_normal((b, 3, side, side)).astype(np.float32)
    images_t = torch.from_numpy(images)
    out = np.empty_like(images)
    original, why = load_original(torch)

    def torch_one_gather(plan):
        source = torch.from_numpy(plan.source)
        tokens = images_t.reshape(b, 3, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(b * g * g, 3 * p * p)
        mixed = tokens.index_select(0, source)
        return mixed.reshape(b, g, g, 3, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, 3, side, side).contiguous()

    contenders = {}
    if original is not None:
        mixer = original.PatchMixer(num_classes=b, mix_s=p, mix_n=m, mix_p=1.0, smoothing=0.1)
        labels = torch.arange(b)

        def run_original(plan):
            original.random_indexes = lambda size: (plan.perm.copy(), np.argsort(plan.perm))
            return mixer(images_t, labels)[0]  # it does not write into its input

        contenders["original PatchMixer"] = run_original
    else:
        print(f"original PatchMixer: skipped ({why})", file=sys.stderr)
    contenders["torch one gather"] = torch_one_gather
    contenders["apply_nchw"] = lambda plan: plan.apply_nchw(images)
    contenders["apply_nchw(out=...)"] = lambda plan: plan.apply_nchw(images, out=out)

    times = {name: [] for name in contenders}
    for round_ in range(args.rounds):
        plan = pc.MixPlan.from_seed(b, g, m, seed=round_)
        reference = plan.apply_nchw(images)
        for name, run in contenders.items():
            result = run(plan)  # warm-up, and every contender must agree
            np.testing.assert_array_equal(np.asarray(result), reference, err_msg=name)
            start = time.perf_counter()
            for _ in range(args.reps):
                run(plan)
            times[name].append((time.perf_counter() - start) / args.reps)

    baseline = "original PatchMixer" if "original PatchMixer" in times else "torch one gather"
    base = statistics.median(times[baseline])
    print(f"apply_nchw on {b}x3x{side}x{side} float32, grid {g} (patch {p}), m {m}; "
          f"torch {torch.__version__} with {args.threads} thread(s); median of {args.rounds} rounds x {args.reps} calls")
    print(f"{'contender':<22} {'ms/call':>9} {'speed-up vs ' + baseline:>34}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<22} {median * 1e3:>9.3f} {base / median:>33.2f}x")


if __name__ == "__main__":
    main()
