#!/usr/bin/env python3
"""Replay one dumped patchmix-rs fine-tune step with timm and PyTorch, and compare.

A fine-tune dump (`patchmix_train::finetune::write_dump`) holds the state before and after
one step of the ONNX engine (`before.safetensors`, `after.safetensors`: the model under timm's
names, `opt.exp_avg.<name>`, `opt.exp_avg_sq.<name>`, `ema.<name>`, the integer `opt.step`;
`after` also has the step's `logits`), the step's inputs (`inputs.safetensors`: `images`
[B,3,H,W] after Mixup/CutMix, `targets` [B,classes], `drop_path` [2*depth, B] when drop path
is on, the scalars `lr`, `wd`, `ema_decay`), its loss (`losses.json`) and its configuration
(`step_config.json`). This script rebuilds the step with the original's own building blocks:

- the model is timm's `VisionTransformer` (qkv bias, LayerNorm eps 1e-6, `global_pool='token'`,
  `num_classes` from the dump, `drop_path_rate`), loaded with `strict=True`; its DropPath
  modules are replaced by the dumped per-sample scales (row 2*i scales block i's attention
  residual, row 2*i+1 its MLP residual), in training mode;
- the loss is timm's `SoftTargetCrossEntropy` on the dumped targets;
- the optimizer is `torch.optim.AdamW` over timm's `param_groups_layer_decay(model, wd,
  model.no_weight_decay(), layer_decay)`, each group at lr * lr_scale as timm's schedulers
  set it, its moments and step count loaded from the dump;
- the model EMA is timm's `ModelEma` with the dumped decay, loaded from the dump's `ema.*`
  and updated after the optimizer step.

It compares (relative L2 per tensor, |engine - replay| / |replay|): the loss and the logits;
every gradient (the engine's recovered from its first moments, exp_avg_after = b1 *
exp_avg_before + (1 - b1) * g); the updated parameters and moments from torch's AdamW
applied to the engine's gradient (`param`, `exp_avg`, `exp_avg_sq`: the optimizer in
isolation, as `replay_step.py` does); the EMA from timm's `ModelEma` updated with those
parameters; and the whole chain, torch's gradient through torch's AdamW (`param_chain`, max
|difference| in units of lr: Adam normalises the update, so a gradient that is zero up to
rounding, such as the key bias's, moves a parameter by up to ~lr in either run). The replay
runs in float64 (the f32 dump cast up), so the differences measure the engine's f32
arithmetic.

Exit status: 0 when every check is within tolerance, 1 when one is not, 2 for a missing or
unreadable dump (or missing torch/timm).

Usage: python3 scripts/replay_finetune_step.py DIR [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

try:
    import torch
    import torch.nn as nn
    from safetensors.torch import load_file
    from timm.loss import SoftTargetCrossEntropy
    from timm.models.vision_transformer import VisionTransformer
    from timm.optim import param_groups_layer_decay
    from timm.utils import ModelEma
except ImportError as e:  # pragma: no cover - depends on the machine
    sys.stderr.write(f"replay_finetune_step.py needs PyTorch, safetensors and timm: {e}\n")
    sys.exit(2)

# The bounds: the loss to 1e-5 relative, every state tensor to 1e-5 relative L2.
TOL_LOSS = 1e-5
TOL_STATE = 1e-5
# The logits and the gradient (relative L2 per tensor), in f32 against f64.
TOL_LOGITS = 1e-4
TOL_GRAD = 1e-3
# The whole chain (torch's gradient, torch's AdamW) against the engine, max |diff| / lr.
TOL_CHAIN = 2.0
BETA1 = 0.9


class Scale(nn.Module):
    """Multiplies a residual branch by per-sample drop-path scales [B, 1, 1]."""

    def __init__(self, scales: torch.Tensor):
        super().__init__()
        self.scales = scales

    def forward(self, x):
        return x * self.scales


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    d = (a.double() - b.double()).norm().item()
    n = b.double().norm().item()
    return d / n if n > 0 else d


def replay(d: str) -> dict:
    with open(os.path.join(d, "step_config.json")) as f:
        cfg = json.load(f)
    before = load_file(os.path.join(d, "before.safetensors"))
    after = load_file(os.path.join(d, "after.safetensors"))
    inp = load_file(os.path.join(d, "inputs.safetensors"))
    with open(os.path.join(d, "losses.json")) as f:
        losses = json.load(f)
    vit = cfg["vit"]
    dt = torch.float64
    model = VisionTransformer(
        img_size=vit["img"], patch_size=vit["patch"], embed_dim=vit["dim"], depth=vit["depth"],
        num_heads=vit["heads"], mlp_ratio=4.0, qkv_bias=True, num_classes=cfg["classes"],
        global_pool="token", drop_path_rate=cfg["drop_path"],
    ).to(dt)
    names = [n for n, _ in model.named_parameters()]
    model.load_state_dict({n: before[n].to(dt) for n in model.state_dict()}, strict=True)
    model.train()
    if "drop_path" in inp:
        masks = inp["drop_path"].to(dt)
        for i, blk in enumerate(model.blocks):
            blk.drop_path1 = Scale(masks[2 * i].reshape(-1, 1, 1))
            blk.drop_path2 = Scale(masks[2 * i + 1].reshape(-1, 1, 1))

    lr, wd = inp["lr"].item(), inp["wd"].item()
    params = dict(model.named_parameters())
    step = int(before["opt.step"].item())

    def optimizer() -> torch.optim.Optimizer:
        groups = param_groups_layer_decay(model, weight_decay=wd,
                                          no_weight_decay_list=model.no_weight_decay(),
                                          layer_decay=cfg["layer_decay"])
        for g in groups:
            g["lr"] = lr * g["lr_scale"]  # what timm's schedulers set
        opt = torch.optim.AdamW(groups, lr=lr, betas=(BETA1, 0.999), eps=1e-8, foreach=False)
        if step > 0:
            for n, p in params.items():
                opt.state[p] = {
                    "step": torch.tensor(float(step), dtype=torch.float32),
                    "exp_avg": before[f"opt.exp_avg.{n}"].to(dt).clone(),
                    "exp_avg_sq": before[f"opt.exp_avg_sq.{n}"].to(dt).clone(),
                }
        return opt

    # The forward and backward pass in PyTorch.
    logits = model(inp["images"].to(dt))
    loss = SoftTargetCrossEntropy()(logits, inp["targets"].to(dt))
    loss.backward()
    torch_grad = {n: p.grad.detach().clone() for n, p in params.items()}

    checks = {}

    def check(cat: str, name: str, err: float, tol: float):
        c = checks.setdefault(cat, {"worst": 0.0, "name": "", "tol": tol, "count": 0})
        c["count"] += 1
        if c["name"] == "" or math.isnan(err) or err > c["worst"]:
            c["worst"], c["name"] = err, name

    engine_loss = float(losses["loss"])
    check("loss", "loss", abs(engine_loss - loss.item()) / max(abs(loss.item()), 1e-12), TOL_LOSS)
    check("logits", "logits", rel(after["logits"], logits.detach()), TOL_LOGITS)
    # The engine's gradient, recovered from its first moments:
    # exp_avg_after = b1 * exp_avg_before + (1 - b1) * g.
    engine_grad = {}
    for n in params:
        m0 = before[f"opt.exp_avg.{n}"].to(dt)
        m1 = after[f"opt.exp_avg.{n}"].to(dt)
        engine_grad[n] = (m1 - BETA1 * m0) / (1 - BETA1)
        check("gradient", n, rel(engine_grad[n], torch_grad[n]), TOL_GRAD)

    # The optimizer: torch's AdamW over timm's layer-decay groups on the engine's gradient.
    with torch.no_grad():
        start = {n: p.detach().clone() for n, p in params.items()}
    opt = optimizer()
    for n, p in params.items():
        p.grad = engine_grad[n].clone()
    opt.step()
    for n, p in params.items():
        st = opt.state[p]
        check("param", n, rel(after[n], p.detach()), TOL_STATE)
        check("exp_avg", n, rel(after[f"opt.exp_avg.{n}"], st["exp_avg"]), TOL_STATE)
        check("exp_avg_sq", n, rel(after[f"opt.exp_avg_sq.{n}"], st["exp_avg_sq"]), TOL_STATE)
    torch_step = int(opt.state[params[names[0]]]["step"].item())

    # The model EMA: timm's ModelEma from the dumped EMA, updated with those parameters.
    ema = ModelEma(model, decay=inp["ema_decay"].item())
    ema.ema.load_state_dict({n: before[f"ema.{n}"].to(dt) for n in names}, strict=True)
    ema.update(model)
    ema_sd = ema.ema.state_dict()
    for n in names:
        check("ema", n, rel(after[f"ema.{n}"], ema_sd[n]), TOL_STATE)

    # The whole chain: torch's own gradient through the same optimizer, the difference from
    # the engine in units of the largest group lr (Adam normalises the update, so a gradient
    # that is zero up to rounding, such as that of the key bias, moves by up to ~lr).
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(start[n])
    opt = optimizer()
    for n, p in params.items():
        p.grad = torch_grad[n].clone()
    opt.step()
    for n, p in params.items():
        d = (after[n].to(dt) - p.detach()).abs().max().item() / lr
        check("param_chain", n, d, TOL_CHAIN)

    engine_step = int(after["opt.step"].item())
    ok = all(c["worst"] <= c["tol"] for c in checks.values()) and engine_step == torch_step
    return {
        "pass": ok,
        "loss": {"engine": engine_loss, "torch": loss.item()},
        "step": {"engine": engine_step, "torch": torch_step},
        "tensors": len(params),
        "worst": {k: {"err": v["worst"], "name": v["name"], "tol": v["tol"], "count": v["count"]}
                  for k, v in checks.items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", help="a fine-tune step dump directory")
    ap.add_argument("--json", action="store_true", help="print the result as one JSON object")
    a = ap.parse_args(argv)
    try:
        res = replay(a.dir)
    except (OSError, KeyError, ValueError, RuntimeError) as e:
        if a.json:
            print(json.dumps({"pass": False, "error": f"{type(e).__name__}: {e}"}))
        else:
            sys.stderr.write(f"replay_finetune_step.py: {a.dir}: {e}\n")
        return 2
    if a.json:
        print(json.dumps(res))
    else:
        for k, v in res["worst"].items():
            flag = "ok" if v["err"] <= v["tol"] else "FAIL"
            print(f"{k:11} worst {v['err']:.3e} (tol {v['tol']:.0e}) at {v['name']}  [{flag}]")
        print(f"loss engine {res['loss']['engine']:.8f} torch {res['loss']['torch']:.8f}")
        print("PASS" if res["pass"] else "FAIL")
    if not res["pass"]:
        sys.stderr.write(f"replay disagrees: {json.dumps(res['worst'])}\n")
    return 0 if res["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
