#!/usr/bin/env python3
"""Reference outputs of timm's fine-tuning augmentations for given parameters (no RNG).

Reads a JSON list of cases on stdin and prints a JSON list of results, one per case:

* ``{"kind": "op", "op": NAME, "args": [...], "width": W, "height": H, "pixels": [...RGB bytes],
  "fill": [r, g, b], "resample": "bicubic" | "bilinear"}``: timm's RandAugment op function
  ``timm.data.auto_augment.NAME`` on the PIL image, with timm's ``fillcolor``/``resample``
  keywords. Result: ``{"pixels": [...]}``.
* ``{"kind": "mixup", "shape": [N, C, H, W], "images": [...], "labels": [...], "classes": K,
  "smoothing": s, "lam": l, "cutmix": bool, "cy": y, "cx": x}``: ``timm.data.Mixup`` (batch
  mode, correct_lam) with its draw fixed to (l, cutmix) and ``rand_bbox``'s centre to (y, x).
  Result: ``{"images": [...], "targets": [...], "box": [yl, yh, xl, xh] | null}``.
* ``{"kind": "level", "name": OP, "magnitude": m, "negate": bool}``: timm's
  ``LEVEL_TO_ARG[OP](m, hparams)`` with ``_randomly_negate``'s draw fixed to negate or not.
  Result: ``{"args": [repr(arg), ...]}`` (Python's exact shortest repr of each argument).

Used by ``train/tests/timm_reference.rs``; needs timm (and so torch and Pillow).
"""

import json
import sys

import numpy as np
import torch
from PIL import Image
from timm.data import Mixup
from timm.data import auto_augment as aa
from timm.data import mixup as timm_mixup

INT_ARG_OPS = {"posterize", "solarize", "solarize_add"}
RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}


def run_op(case):
    img = Image.frombytes("RGB", (case["width"], case["height"]), bytes(case["pixels"]))
    fn = getattr(aa, case["op"])
    # timm's level functions give these ops integers.
    args = [int(a) for a in case["args"]] if case["op"] in INT_ARG_OPS else case["args"]
    out = fn(
        img,
        *args,
        fillcolor=tuple(case["fill"]),
        resample=RESAMPLE[case["resample"]],
    )
    return {"pixels": list(out.convert("RGB").tobytes())}


def run_mixup(case):
    n, c, h, w = case["shape"]
    x = torch.tensor(case["images"], dtype=torch.float32).reshape(n, c, h, w)
    y = torch.tensor(case["labels"], dtype=torch.long)
    mix = Mixup(
        mixup_alpha=0.8,
        cutmix_alpha=1.0,
        prob=1.0,
        switch_prob=0.5,
        mode="batch",
        correct_lam=True,
        label_smoothing=case["smoothing"],
        num_classes=case["classes"],
    )
    mix._params_per_batch = lambda: (case["lam"], case["cutmix"])
    centres = iter([case["cy"], case["cx"]])
    boxes = []
    real_bbox = timm_mixup.rand_bbox

    def fixed_randint(lo, hi, size=None):
        v = next(centres)
        assert lo <= v < hi, (lo, v, hi)
        return v

    def spy_bbox(*a, **k):
        box = real_bbox(*a, **k)
        boxes.append([int(v) for v in box])
        return box

    saved = np.random.randint
    np.random.randint = fixed_randint
    timm_mixup.rand_bbox = spy_bbox
    try:
        x, t = mix(x, y)
    finally:
        np.random.randint = saved
        timm_mixup.rand_bbox = real_bbox
    return {
        "images": x.reshape(-1).tolist(),
        "targets": t.reshape(-1).tolist(),
        "box": boxes[0] if boxes else None,
    }


def run_level(case):
    fn = aa.LEVEL_TO_ARG[case["name"]]
    if fn is None:
        return {"args": []}
    saved = aa.random.random
    aa.random.random = (lambda: 0.9) if case["negate"] else (lambda: 0.1)
    try:
        args = fn(case["magnitude"], {"translate_const": 100, "img_mean": (124, 116, 104)})
    finally:
        aa.random.random = saved
    return {"args": [repr(a) for a in args]}


def main():
    cases = json.load(sys.stdin)
    out = []
    for case in cases:
        if case["kind"] == "op":
            out.append(run_op(case))
        elif case["kind"] == "mixup":
            out.append(run_mixup(case))
        elif case["kind"] == "level":
            out.append(run_level(case))
        else:
            raise SystemExit(f"unknown case kind {case['kind']!r}")
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
