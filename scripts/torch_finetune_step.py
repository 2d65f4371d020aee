#!/usr/bin/env python3
"""The original's fine-tune step in PyTorch eager, for `scripts/bench-finetune-vs-torch.sh`.

timm's VisionTransformer (qkv bias, drop path 0.1, a 10-class head), SoftTargetCrossEntropy on
soft targets, torch AdamW over timm's layer-decay groups (0.75) and timm's ModelEma, on random
images: what `patchmix bench step --finetune` runs. Prints one JSON line with img_per_s.

Usage: python3 scripts/torch_finetune_step.py --dim 64 --depth 4 --heads 4 --img 32 \
           --patch 4 --batch 64 [--steps 10] [--warmup 2] [--threads N]
"""

import argparse
import json
import time

import torch
from timm.loss import SoftTargetCrossEntropy
from timm.models.vision_transformer import VisionTransformer
from timm.optim import param_groups_layer_decay
from timm.utils import ModelEma


def main() -> None:
    ap = argparse.ArgumentParser()
    for k, d in [("dim", 64), ("depth", 4), ("heads", 4), ("img", 32), ("patch", 4),
                 ("batch", 64), ("steps", 10), ("warmup", 2), ("threads", 0), ("classes", 10)]:
        ap.add_argument(f"--{k}", type=int, default=d)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = VisionTransformer(img_size=a.img, patch_size=a.patch, embed_dim=a.dim, depth=a.depth,
                              num_heads=a.heads, qkv_bias=True, num_classes=a.classes,
                              drop_path_rate=0.1)
    model.train()
    groups = param_groups_layer_decay(model, weight_decay=0.05,
                                      no_weight_decay_list=model.no_weight_decay(),
                                      layer_decay=0.75)
    for g in groups:
        g["lr"] = 1e-3 * g["lr_scale"]
    opt = torch.optim.AdamW(groups, lr=1e-3)
    ema = ModelEma(model, decay=0.99996)
    crit = SoftTargetCrossEntropy()
    x = torch.rand(a.batch, 3, a.img, a.img) * 2 - 1
    t = torch.full((a.batch, a.classes), 0.01)
    for i in range(a.batch):
        t[i, i % a.classes] += 0.6
        t[i, (i + 3) % a.classes] += 0.3

    def step():
        loss = crit(model(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update(model)
        return loss.item()

    for _ in range(a.warmup):
        step()
    start = time.perf_counter()
    for _ in range(a.steps):
        last = step()
    secs = time.perf_counter() - start
    print(json.dumps({"img_per_s": a.steps * a.batch / secs, "ms_per_step": 1e3 * secs / a.steps,
                      "last_loss": last, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
