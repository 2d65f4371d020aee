#!/usr/bin/env python3
"""Replay one dumped patchmix-rs training step in plain PyTorch autograd and compare.

`patchmix pretrain --dump-step DIR` writes the state before and after one step of the ONNX
engine (`before.safetensors`, `after.safetensors`), the step's inputs
(`inputs.safetensors`), its loss terms (`losses.json`) and its architecture and label
smoothing (`step_config.json`). This script rebuilds the same step independently of the engine, with
PyTorch's own modules and optimizer wherever PyTorch has one:

- a timm-style ViT (patch-embedding convolution, CLS token + learned position embedding,
  pre-norm blocks with qkv bias, LayerNorm eps 1e-6, exact GELU), with drop path applied as
  the dumped per-sample scales (`drop_path.<pass>` [2*depth, rows]: row 2*i scales block i's
  attention residual, row 2*i+1 its MLP residual); local crops see the position embedding
  resized as DINO's `interpolate_pos_encoding` (bicubic, scale_factor (g + 0.1) / G);
- MoCo v3 style projector (Linear-BN-ReLU-Linear-BN-ReLU-Linear-BN(affine=False)) and
  predictor (Linear-BN-ReLU-Linear-BN(affine=False)), no Linear biases, BatchNorm1d in
  training mode in every pass (`F.batch_norm`, momentum 0.1), in the engine's pass order;
- the two frames: no-momentum (k1 = head(enc(v1)) with gradient, q1 = pred(k1); k2 and k_m1
  from detached passes; q_m2 = pred(head(enc(mix2)))) and momentum (EMA of the base encoder
  and projector into the momentum encoder *before* the step, keys from the momentum encoder);
- the soft targets built here from their formulas, as the original's `PatchMixer` builds
  them: T_src = (1 - s_src) * I + s_src/N with `src_smoothing` (the original's view-to-view
  mixer keeps the class default 0.1), T_mix and T_mix2 the PatchMix weights times (1 - s)
  plus s/N with `smoothing` (N = B; a dump without these fields ran with 0);
- virtual ranks (`virtual_ranks` W in step_config.json, 1 when absent): the step the
  original runs on W GPUs with DDP. Rank r holds rows r*b .. (r+1)*b (b = B/W) of every
  input; its PatchMix mixes within its own b images; its targets are the original's
  `PatchMixer` rows over num_classes = b*W columns shifted by offset = b*r; its loss terms
  are CE of its b queries against the keys of all ranks (`concat_all_gather`, no gradient);
  every BatchNorm is SyncBatchNorm, i.e. statistics over all ranks' rows, which is
  F.batch_norm over the whole batch; DDP averages the ranks' gradients, so the replay
  backpropagates the mean over ranks of their total losses, and reports each loss term as
  the mean over ranks (the original's `synchronize_between_processes`);
- per rank, the loss CE(q1, k2, T_src) + CE(q_m2, sg(k1), T_mix)/2 + CE(q_m2, k_m1, T_mix2)/2,
  plus with local crops (1/n)*sum_j [CE(q_j, k1, T_src) + CE(q_j, k2, T_src)] and the same
  for the mixed crops with T_mix, where CE(q, k, T) = mean_rows(-sum T * log_softmax(q^ . k^T
  / tau));
- backward, then `torch.optim.AdamW` (betas 0.9/0.999, eps 1e-8) with two groups: decayed
  (everything but `.bias` names and 1-D tensors) and not decayed.

It then compares with what the engine wrote: the loss terms; every parameter's gradient
(recovered from the engine's first moments: exp_avg_after = b1*exp_avg_before + (1-b1)*g);
the updated parameters twice (`param`: PyTorch's AdamW applied to the engine's gradient,
which isolates the optimizer; `param_chain`: PyTorch's gradient then PyTorch's AdamW, in
units of lr); the AdamW moments, BN running statistics, momentum-encoder parameters and
counters (`num_batches_tracked`, `opt.step`); and it re-derives the PatchMix images
mix1/mix2 from the views and the dumped permutations, and checks that the dumped targets
equal the formulas with the dump's smoothing. The replay runs in float64 by default (the f32 dump cast up), so the
differences measure the engine's f32 arithmetic; `--dtype float32` runs it in f32 instead.

Exit status: 0 when every check is within its tolerance, 1 when one is not, 2 for a missing
or unreadable dump (or an unsupported one).

Usage: python3 scripts/replay_step.py DIR [--json] [--dtype float64|float32] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass, field

try:
    import torch
    import torch.nn.functional as F
    from safetensors.torch import load_file
except ImportError as e:  # pragma: no cover - depends on the machine
    sys.stderr.write(f"replay_step.py needs PyTorch and safetensors: {e}\n")
    sys.exit(2)

BETA1, BETA2, ADAM_EPS = 0.9, 0.999, 1e-8
BN_EPS, BN_MOMENTUM = 1e-5, 0.1
LN_EPS = 1e-6

# Tolerances for the replay of an f32 engine step (either replay dtype). "measured" is the
# worst seen on six dumps: tiny-test in both frames, with drop path 0.5, with local crops,
# and the demo recipe (D 64, depth 4, h 512, B 64, real MNIST) in both frames, the momentum
# one with drop path and 2 local crops of 12 px, at steps 1-21. PyTorch's own float32
# replay deviates from the float64 one by as much as the engine does.
TOLERANCES = {
    # Loss terms, relative error: f32 rounding (6e-8) through the encoder, BatchNorms and
    # 1/tau; measured <= 7e-7.
    "loss": 1e-4,
    # Per-tensor gradient, relative L2 error; measured <= 1.3e-5 (PyTorch f32 vs f64: 1.8e-5).
    # The margin is for ReLU pre-activations within f32 rounding of 0, which flip a unit's
    # routing in one of the two and move ~1/(B*h) of a head tensor's gradient; none seen.
    "grad_rel": 1e-3,
    # A tensor whose true gradient is ~0 (the final LayerNorm bias: the projector's first
    # BatchNorm cancels any constant shift exactly) is judged by its absolute L2 error over
    # the norm of the whole gradient; measured <= 2.6e-8.
    "grad_zero_abs": 1e-5,
    # Updated parameters from PyTorch's AdamW on the engine's own gradient, max |diff| /
    # max |tensor|: isolates the optimizer; the gradient recovered from f32 first moments
    # carries their rounding into the Adam ratio; measured <= 5.2e-6.
    "param": 1e-4,
    # Updated parameters from PyTorch's gradient and AdamW (the whole chain), max |diff|
    # beyond one f32 ulp, in units of lr, over the elements whose true gradient is not ~0;
    # measured <= 2.3e-5 (4.3e-5 replaying in float32).
    "param_chain": 1e-2,
    # AdamW moments from PyTorch's gradient, max |diff| / max |tensor|; measured <= 2.2e-5.
    "exp_avg": 2e-3,
    "exp_avg_sq": 4e-3,
    # BN running statistics, max |diff| / max |tensor| (a running mean: over its channels'
    # spread); measured <= 3e-7.
    "bn": 1e-4,
    # Momentum-encoder parameters after the EMA; measured <= 1.1e-7 (0 replaying in float32).
    "momentum": 1e-5,
}
# A torch gradient (a tensor's L2 norm, or an element's magnitude in the whole-chain check)
# below this fraction of the whole gradient's norm (max element) is "~0".
ZERO_GRAD_REL = 1e-6


class DumpError(Exception):
    """A missing, unreadable or inconsistent dump file."""


# --------------------------------------------------------------------------------------------
# Loading


def load_json(path: str) -> dict:
    """Reads a JSON file, naming it in the error."""
    if not os.path.isfile(path):
        raise DumpError(f"missing {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise DumpError(f"cannot read {path}: {e}") from e


def load_tensors(path: str) -> dict[str, torch.Tensor]:
    """Reads a safetensors file, naming it in the error."""
    if not os.path.isfile(path):
        raise DumpError(f"missing {path}")
    try:
        return load_file(path)
    except Exception as e:  # safetensors raises several types for corrupt files
        raise DumpError(f"cannot read {path}: corrupt or not safetensors ({e})") from e


@dataclass
class Dump:
    """The five files of a step dump."""

    cfg: dict
    before: dict[str, torch.Tensor]
    inputs: dict[str, torch.Tensor]
    after: dict[str, torch.Tensor]
    losses: dict

    @staticmethod
    def read(d: str) -> "Dump":
        if not os.path.isdir(d):
            raise DumpError(f"{d} is not a directory (expected a --dump-step directory)")
        cfg_path = os.path.join(d, "step_config.json")
        if os.path.isdir(d) and not os.path.exists(cfg_path):
            raise DumpError(f"missing {cfg_path} (the step's architecture; a dump from a "
                            "patchmix without it cannot be replayed: dump the step again)")
        return Dump(
            cfg=load_json(cfg_path),
            before=load_tensors(os.path.join(d, "before.safetensors")),
            inputs=load_tensors(os.path.join(d, "inputs.safetensors")),
            after=load_tensors(os.path.join(d, "after.safetensors")),
            losses=load_json(os.path.join(d, "losses.json")),
        )


@dataclass
class Arch:
    """The step configuration (`step_config.json`)."""

    img: int
    patch: int
    dim: int
    depth: int
    heads: int
    hidden: int
    out: int
    batch: int
    mix: int
    frame: str
    drop_path: float
    local_count: int = 0
    local_img: int = 0
    src_smoothing: float = 0.0
    smoothing: float = 0.0
    virtual_ranks: int = 1

    @staticmethod
    def parse(c: dict, path: str = "step_config.json") -> "Arch":
        try:
            v = c["vit"]
            local = c.get("local")
            a = Arch(
                img=int(v["img"]),
                patch=int(v["patch"]),
                dim=int(v["dim"]),
                depth=int(v["depth"]),
                heads=int(v["heads"]),
                hidden=int(c["hidden"]),
                out=int(c["out"]),
                batch=int(c["batch"]),
                mix=int(c["mix"]),
                frame=str(c["frame"]),
                drop_path=float(c["drop_path"]),
                local_count=int(local["count"]) if local else 0,
                local_img=int(local["img"]) if local else 0,
                src_smoothing=float(c.get("src_smoothing", 0.0)),
                smoothing=float(c.get("smoothing", 0.0)),
                virtual_ranks=int(c.get("virtual_ranks", 1)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise DumpError(f"{path}: missing or invalid field {e}") from e
        if a.frame not in ("no-momentum", "momentum"):
            raise DumpError(f"{path}: unknown frame {a.frame!r}")
        precision = c.get("precision", "fp32")
        if precision != "fp32":
            raise DumpError(
                f"{path}: precision {precision!r}: the replay's tolerances are for fp32 steps"
            )
        for k in ("src_smoothing", "smoothing"):
            if not 0.0 <= getattr(a, k) < 1.0:
                raise DumpError(f"{path}: {k} {getattr(a, k)} is not in [0, 1)")
        if a.virtual_ranks < 1 or a.batch % a.virtual_ranks != 0:
            raise DumpError(f"{path}: virtual_ranks {a.virtual_ranks} does not split batch "
                            f"{a.batch} into equal groups")
        return a

    @property
    def grid(self) -> int:
        return self.img // self.patch

    @property
    def per_rank(self) -> int:
        """Images per rank, b = B / W."""
        return self.batch // self.virtual_ranks

    @property
    def passes(self) -> list[str]:
        """Base-encoder passes in the engine's order (those that take drop-path masks)."""
        p = ["view1", "view2", "mix1", "mix2"] if self.frame == "no-momentum" else ["view1", "mix2"]
        return p + (["local", "local_mix"] if self.local_count else [])


def encoder_param_shapes(a: Arch) -> dict[str, tuple]:
    """timm VisionTransformer parameter names and shapes (without the head)."""
    d, t = a.dim, a.grid * a.grid
    s = {
        "cls_token": (1, 1, d),
        "pos_embed": (1, 1 + t, d),
        "patch_embed.proj.weight": (d, 3, a.patch, a.patch),
        "patch_embed.proj.bias": (d,),
    }
    for i in range(a.depth):
        b = f"blocks.{i}."
        s.update(
            {
                b + "norm1.weight": (d,),
                b + "norm1.bias": (d,),
                b + "attn.qkv.weight": (3 * d, d),
                b + "attn.qkv.bias": (3 * d,),
                b + "attn.proj.weight": (d, d),
                b + "attn.proj.bias": (d,),
                b + "norm2.weight": (d,),
                b + "norm2.bias": (d,),
                b + "mlp.fc1.weight": (4 * d, d),
                b + "mlp.fc1.bias": (4 * d,),
                b + "mlp.fc2.weight": (d, 4 * d),
                b + "mlp.fc2.bias": (d,),
            }
        )
    s["norm.weight"] = (d,)
    s["norm.bias"] = (d,)
    return s


# (linear index, in, out, bn index, affine) as in MoCo v3's `_build_mlp`.
def projector_layers(a: Arch) -> list[tuple]:
    return [
        (0, a.dim, a.hidden, 1, True),
        (3, a.hidden, a.hidden, 4, True),
        (6, a.hidden, a.out, 7, False),
    ]


def predictor_layers(a: Arch) -> list[tuple]:
    return [(0, a.out, a.hidden, 1, True), (3, a.hidden, a.out, 4, False)]


def head_param_shapes(prefix: str, layers: list[tuple]) -> dict[str, tuple]:
    s = {}
    for li, fin, fout, bi, affine in layers:
        s[f"{prefix}.{li}.weight"] = (fout, fin)
        if affine:
            s[f"{prefix}.{bi}.weight"] = (fout,)
            s[f"{prefix}.{bi}.bias"] = (fout,)
    return s


def expected_params(a: Arch) -> dict[str, tuple]:
    """Every trained parameter of the training module, with its shape."""
    s = {f"base_encoder.{k}": v for k, v in encoder_param_shapes(a).items()}
    s.update(head_param_shapes("base_encoder.head", projector_layers(a)))
    s.update(head_param_shapes("predictor", predictor_layers(a)))
    return s


def bn_layers(a: Arch) -> list[tuple[str, int]]:
    v = [(f"base_encoder.head.{bi}", fo) for _, _, fo, bi, _ in projector_layers(a)]
    v += [(f"predictor.{bi}", fo) for _, _, fo, bi, _ in predictor_layers(a)]
    if a.frame == "momentum":
        v += [(f"momentum_encoder.head.{bi}", fo) for _, _, fo, bi, _ in projector_layers(a)]
    return v


def is_decayed(name: str, shape: tuple) -> bool:
    """AdamW's decayed group: not `.bias` names, not 1-D tensors."""
    return not name.endswith(".bias") and len(shape) != 1


def require(d: dict, key: str, shape: tuple | None, where: str) -> torch.Tensor:
    if key not in d:
        raise DumpError(f"{where}: missing tensor `{key}`")
    t = d[key]
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise DumpError(f"{where}: `{key}` has shape {tuple(t.shape)}, expected {tuple(shape)}")
    return t


def validate(dump: Dump, a: Arch) -> None:
    """Checks that the dump holds every tensor the step needs, with the right shapes."""
    params = expected_params(a)
    for state, where in ((dump.before, "before.safetensors"), (dump.after, "after.safetensors")):
        for n, s in params.items():
            require(state, n, s, where)
            require(state, f"opt.exp_avg.{n}", s, where)
            require(state, f"opt.exp_avg_sq.{n}", s, where)
            if a.frame == "momentum" and n.startswith("base_encoder."):
                require(state, n.replace("base_encoder.", "momentum_encoder.", 1), s, where)
        for bn, c in bn_layers(a):
            require(state, f"{bn}.running_mean", (c,), where)
            require(state, f"{bn}.running_var", (c,), where)
            require(state, f"{bn}.num_batches_tracked", None, where)
        require(state, "opt.step", None, where)
    b, img = a.batch, a.img
    for k in ("view1", "view2", "mix1", "mix2"):
        require(dump.inputs, k, (b, 3, img, img), "inputs.safetensors")
    for k in ("target_src", "target_mix", "target_mix2"):
        require(dump.inputs, k, (b, b), "inputs.safetensors")
    for k in ("lr", "wd", "temperature", "momentum"):
        require(dump.inputs, k, (), "inputs.safetensors")
    if a.local_count:
        for k in ("local", "local_mix"):
            shape = (a.local_count * b, 3, a.local_img, a.local_img)
            require(dump.inputs, k, shape, "inputs.safetensors")
    if a.drop_path > 0:
        for p in a.passes:
            rows = a.local_count * b if p.startswith("local") else b
            require(dump.inputs, f"drop_path.{p}", (2 * a.depth, rows), "inputs.safetensors")
    want = ["src", "mix", "mix2", "total"] + (["multi", "multi_mix"] if a.local_count else [])
    for k in want:
        if not isinstance(dump.losses.get(k), (int, float)):
            raise DumpError(f"losses.json: missing or non-numeric `{k}`")


# --------------------------------------------------------------------------------------------
# The model


def interpolate_pos_encoding(pos_embed: torch.Tensor, grid: int, new_grid: int) -> torch.Tensor:
    """DINO's `interpolate_pos_encoding`: bicubic resize of the patch rows with
    scale_factor (g + 0.1) / G, CLS row kept; the same embedding for equal grids."""
    if grid == new_grid:
        return pos_embed
    d = pos_embed.shape[-1]
    cls, patches = pos_embed[:, :1], pos_embed[:, 1:]
    s = (new_grid + 0.1) / math.sqrt(grid * grid)
    patches = F.interpolate(
        patches.reshape(1, grid, grid, d).permute(0, 3, 1, 2),
        scale_factor=(s, s),
        mode="bicubic",
        align_corners=False,
    )
    assert patches.shape[-2:] == (new_grid, new_grid), patches.shape
    patches = patches.permute(0, 2, 3, 1).reshape(1, -1, d)
    return torch.cat([cls, patches], dim=1)


def vit_cls(
    p: dict, prefix: str, x: torch.Tensor, a: Arch, masks: torch.Tensor | None
) -> torch.Tensor:
    """A timm VisionTransformer's final-normed CLS token for images x [R, 3, S, S].

    `masks` [2*depth, R] are the per-sample drop-path scales (keep mask / keep probability).
    """
    w = lambda n: p[prefix + n]  # noqa: E731 - a short accessor
    r, d, h = x.shape[0], a.dim, a.heads
    dh = d // h
    t = F.conv2d(x, w("patch_embed.proj.weight"), w("patch_embed.proj.bias"), stride=a.patch)
    g = t.shape[-1]
    t = t.flatten(2).transpose(1, 2)  # [R, g*g, D], row-major tokens
    z = torch.cat([w("cls_token").expand(r, -1, -1), t], dim=1)
    z = z + interpolate_pos_encoding(w("pos_embed"), a.grid, g)
    n = z.shape[1]
    for i in range(a.depth):
        b = f"blocks.{i}."
        y = F.layer_norm(z, (d,), w(b + "norm1.weight"), w(b + "norm1.bias"), LN_EPS)
        qkv = F.linear(y, w(b + "attn.qkv.weight"), w(b + "attn.qkv.bias"))
        q, k, v = qkv.reshape(r, n, 3, h, dh).permute(2, 0, 3, 1, 4)
        attn = ((q * dh**-0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        o = (attn @ v).transpose(1, 2).reshape(r, n, d)
        o = F.linear(o, w(b + "attn.proj.weight"), w(b + "attn.proj.bias"))
        if masks is not None:
            o = o * masks[2 * i].reshape(r, 1, 1)
        z = z + o
        y = F.layer_norm(z, (d,), w(b + "norm2.weight"), w(b + "norm2.bias"), LN_EPS)
        f = F.linear(F.gelu(F.linear(y, w(b + "mlp.fc1.weight"), w(b + "mlp.fc1.bias"))),
                     w(b + "mlp.fc2.weight"), w(b + "mlp.fc2.bias"))
        if masks is not None:
            f = f * masks[2 * i + 1].reshape(r, 1, 1)
        z = z + f
    z = F.layer_norm(z, (d,), w("norm.weight"), w("norm.bias"), LN_EPS)
    return z[:, 0]


@dataclass
class BatchNorms:
    """BN running statistics and pass counters, updated by every training-mode pass."""

    stats: dict[str, torch.Tensor]
    tracked: dict[str, int]

    def __call__(self, x: torch.Tensor, prefix: str, weight, bias) -> torch.Tensor:
        self.tracked[prefix] += 1
        return F.batch_norm(
            x,
            self.stats[f"{prefix}.running_mean"],
            self.stats[f"{prefix}.running_var"],
            weight,
            bias,
            training=True,
            momentum=BN_MOMENTUM,
            eps=BN_EPS,
        )


def mlp(p: dict, prefix: str, layers: list[tuple], x: torch.Tensor, bn: BatchNorms) -> torch.Tensor:
    """Linear(no bias)-BN-ReLU ... Linear-BN(affine=False)."""
    for j, (li, _, _, bi, affine) in enumerate(layers):
        x = F.linear(x, p[f"{prefix}.{li}.weight"])
        wb = (p[f"{prefix}.{bi}.weight"], p[f"{prefix}.{bi}.bias"]) if affine else (None, None)
        x = bn(x, f"{prefix}.{bi}", *wb)
        if j + 1 < len(layers):
            x = F.relu(x)
    return x


def soft_ce(q: torch.Tensor, k: torch.Tensor, target: torch.Tensor, tau: float) -> torch.Tensor:
    """mean over rows of -sum T * log_softmax(normalize(q) . normalize(k)^T / tau)."""
    logits = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T / tau
    return -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


@dataclass
class Replay:
    """The PyTorch step's results."""

    losses: dict[str, float]
    grads: dict[str, torch.Tensor]
    params: dict[str, torch.Tensor]
    exp_avg: dict[str, torch.Tensor]
    exp_avg_sq: dict[str, torch.Tensor]
    bn: dict[str, torch.Tensor]
    tracked: dict[str, int]
    momentum: dict[str, torch.Tensor] = field(default_factory=dict)
    step: int = 0


def replay(dump: Dump, a: Arch, dtype: torch.dtype) -> Replay:
    """Runs the step in PyTorch: forward passes, loss, backward, AdamW."""
    cast = lambda t: t.detach().to(dtype).clone()  # noqa: E731
    shapes = expected_params(a)
    params = {n: cast(dump.before[n]).requires_grad_(True) for n in shapes}
    bn = BatchNorms(
        stats={
            f"{b}.{k}": cast(dump.before[f"{b}.{k}"])
            for b, _ in bn_layers(a)
            for k in ("running_mean", "running_var")
        },
        tracked={b: int(dump.before[f"{b}.num_batches_tracked"].item()) for b, _ in bn_layers(a)},
    )
    x = {k: cast(v) for k, v in dump.inputs.items() if v.is_floating_point()}
    # The targets come from their formulas, not from the dump (`compare` checks the dump's).
    x.update({k: t.to(dtype) for k, t in targets(a).items()})
    tau = x["temperature"].item()
    masks = lambda pass_: x.get(f"drop_path.{pass_}") if a.drop_path > 0 else None  # noqa: E731
    proj, pred = projector_layers(a), predictor_layers(a)

    def base_pass(pass_: str, img: torch.Tensor, with_pred: bool):
        # Local crops: the token grid follows the images, the position embedding is resized.
        feats = vit_cls(params, "base_encoder.", img, a, masks(pass_))
        k = mlp(params, "base_encoder.head", proj, feats, bn)
        return k, (mlp(params, "predictor", pred, k, bn) if with_pred else None)

    momentum: dict[str, torch.Tensor] = {}
    if a.frame == "no-momentum":
        k1, q1 = base_pass("view1", x["view1"], True)
        with torch.no_grad():
            k2, _ = base_pass("view2", x["view2"], False)
            k_m1, _ = base_pass("mix1", x["mix1"], False)
        _, q_m2 = base_pass("mix2", x["mix2"], True)
        k1 = k1.detach()
    else:
        # EMA of the base encoder and projector, before the step.
        mu = x["momentum"].item()
        with torch.no_grad():
            for n in shapes:
                if n.startswith("base_encoder."):
                    m = n.replace("base_encoder.", "momentum_encoder.", 1)
                    momentum[m] = cast(dump.before[m]) * mu + params[n].detach() * (1.0 - mu)

        def momentum_pass(img: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                feats = vit_cls(momentum, "momentum_encoder.", img, a, None)
                return mlp(momentum, "momentum_encoder.head", proj, feats, bn)

        _, q1 = base_pass("view1", x["view1"], True)
        k1 = momentum_pass(x["view1"])
        k2 = momentum_pass(x["view2"])
        k_m1 = momentum_pass(x["mix1"])
        _, q_m2 = base_pass("mix2", x["mix2"], True)

    if a.local_count:
        _, lq = base_pass("local", x["local"], True)
        _, lmq = base_pass("local_mix", x["local_mix"], True)
    # Each rank's losses on its rows of the queries and targets, against every rank's keys
    # (the gathered, detached keys: k1 is detached above, the others carry no gradient).
    w, b, big_b = a.virtual_ranks, a.per_rank, a.batch
    per_rank = []
    for r in range(w):
        rows = slice(r * b, (r + 1) * b)
        t = {k: x[k][rows] for k in ("target_src", "target_mix", "target_mix2")}
        rank_losses = {
            "src": soft_ce(q1[rows], k2, t["target_src"], tau),
            "mix": soft_ce(q_m2[rows], k1, t["target_mix"], tau),
            "mix2": soft_ce(q_m2[rows], k_m1, t["target_mix2"], tau),
        }
        total = rank_losses["src"] + rank_losses["mix"] / 2 + rank_losses["mix2"] / 2
        if a.local_count:
            n = a.local_count
            # The original's loop over crops: on rank r, its rows N*j .. N*(j+1) of the stacked
            # crops are crop j of its images, here rows j*B + r*b .. j*B + (r+1)*b.
            crop = lambda q, j: q[j * big_b + r * b:j * big_b + (r + 1) * b]  # noqa: E731
            multi = sum(
                soft_ce(crop(lq, j), k1, t["target_src"], tau)
                + soft_ce(crop(lq, j), k2, t["target_src"], tau)
                for j in range(n)
            ) / n
            multi_mix = sum(
                soft_ce(crop(lmq, j), k1, t["target_mix"], tau)
                + soft_ce(crop(lmq, j), k2, t["target_mix"], tau)
                for j in range(n)
            ) / n
            rank_losses.update(multi=multi, multi_mix=multi_mix)
            total = total + multi + multi_mix
        rank_losses["total"] = total
        per_rank.append(rank_losses)
    # DDP's mean of the ranks' gradients is the gradient of the mean of their losses.
    losses = {k: sum(p[k] for p in per_rank) / w for k in per_rank[0]}
    losses["total"].backward()
    grads = {n: p.grad.detach().clone() for n, p in params.items()}

    opt = adamw(dump, grads, dtype)
    return Replay(
        losses={k: v.item() for k, v in losses.items()},
        grads=grads,
        params=opt.params,
        exp_avg=opt.exp_avg,
        exp_avg_sq=opt.exp_avg_sq,
        bn=bn.stats,
        tracked=bn.tracked,
        momentum=momentum,
        step=opt.step,
    )


@dataclass
class AdamWResult:
    """Parameters and moments after one AdamW step."""

    params: dict[str, torch.Tensor]
    exp_avg: dict[str, torch.Tensor]
    exp_avg_sq: dict[str, torch.Tensor]
    step: int


def adamw(dump: Dump, grads: dict[str, torch.Tensor], dtype: torch.dtype) -> AdamWResult:
    """One step of PyTorch's own `torch.optim.AdamW` from the dumped parameters and optimizer
    state with the given gradients: the decayed group (weight decay `wd`) holds every tensor
    but `.bias` names and 1-D tensors, the other group has no weight decay."""
    cast = lambda t: t.detach().to(dtype).clone()  # noqa: E731
    params = {n: cast(dump.before[n]) for n in grads}
    for n, p in params.items():
        p.grad = grads[n].to(dtype).clone()
    decayed = [p for n, p in params.items() if is_decayed(n, tuple(p.shape))]
    plain = [p for n, p in params.items() if not is_decayed(n, tuple(p.shape))]
    lr, wd = dump.inputs["lr"].item(), dump.inputs["wd"].item()
    opt = torch.optim.AdamW(
        [{"params": decayed, "weight_decay": wd}, {"params": plain, "weight_decay": 0.0}],
        lr=lr, betas=(BETA1, BETA2), eps=ADAM_EPS, foreach=False, amsgrad=False,
    )
    step_before = int(dump.before["opt.step"].item())
    for n, p in params.items():
        opt.state[p] = {
            "step": torch.tensor(float(step_before), dtype=torch.float64),
            "exp_avg": cast(dump.before[f"opt.exp_avg.{n}"]),
            "exp_avg_sq": cast(dump.before[f"opt.exp_avg_sq.{n}"]),
        }
    opt.step()
    return AdamWResult(
        params={n: p.detach() for n, p in params.items()},
        exp_avg={n: opt.state[p]["exp_avg"] for n, p in params.items()},
        exp_avg_sq={n: opt.state[p]["exp_avg_sq"] for n, p in params.items()},
        step=int(opt.state[next(iter(params.values()))]["step"].item()),
    )


# --------------------------------------------------------------------------------------------
# Independent checks of the inputs


def patchmix(views: torch.Tensor, perm: torch.Tensor, a: Arch) -> torch.Tensor:
    """PatchMix as the original's ranks run it: each rank's b = B/W images (rows r*b ..
    (r+1)*b) are mixed among themselves, all ranks with the same permutation (the original
    seeds NumPy identically on every rank, so its `PatchShuffle` draws agree)."""
    b = a.per_rank
    return torch.cat([patchmix_batch(views[r * b:(r + 1) * b], perm, a)
                      for r in range(a.virtual_ranks)])


def patchmix_batch(views: torch.Tensor, perm: torch.Tensor, a: Arch) -> torch.Tensor:
    """The paper's PatchMix of a batch with a token permutation: shuffle the tokens with
    `perm` (shuffled position i holds token perm[i]), cut the first m*S shuffled positions
    into m groups of S = floor(T/m), mixed image b takes group r from image (b + r) mod B,
    then unshuffle."""
    b, g, p, m = views.shape[0], a.grid, a.patch, a.mix
    t = g * g
    s = t // m
    tokens = views.reshape(b, 3, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(b, t, -1)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(t)
    group = torch.where(inv < m * s, inv // s, torch.zeros_like(inv))  # per original token
    src_img = (torch.arange(b)[:, None] + group[None, :]) % b  # [B, T]
    mixed = tokens[src_img, torch.arange(t)[None, :]]
    return mixed.reshape(b, g, g, 3, p, p).permute(0, 3, 1, 4, 2, 5).reshape(views.shape)


def targets(a: Arch) -> dict[str, torch.Tensor]:
    """The soft targets with the original's label smoothing, every rank's rows stacked in rank
    order ([B, B]): every entry s/N, plus (1 - s) times the weights of `paper_targets`
    (N = b*W = B, the original's `num_classes = batch_size * world_size`); `src_smoothing`
    for T_src, `smoothing` for T_mix and T_mix2."""
    n = a.per_rank * a.virtual_ranks
    smooth = lambda t, s: (1.0 - s) * t + s / n  # noqa: E731
    ranks = [paper_targets(a.per_rank, a.mix, a.virtual_ranks, r) for r in range(a.virtual_ranks)]
    return {
        k: smooth(torch.cat([p[k] for p in ranks]), s)
        for k, s in (("target_src", a.src_smoothing), ("target_mix", a.smoothing),
                     ("target_mix2", a.smoothing))
    }


def paper_targets(b: int, m: int, world: int = 1, rank: int = 0) -> dict[str, torch.Tensor]:
    """Rank `rank`'s targets [b, b*world], before label smoothing: T_src = I; T_mix: mixed i ~
    images i..i+m-1 (1/m each); T_mix2: mixed i ~ mixed i+d, |d| < m, weight (1 - |d|/m)/m
    (indices mod b, accumulated), every column shifted by the original's offset b*rank."""
    off = b * rank
    src = torch.zeros(b, b * world, dtype=torch.float64)
    mix = torch.zeros(b, b * world, dtype=torch.float64)
    mix2 = torch.zeros(b, b * world, dtype=torch.float64)
    for i in range(b):
        src[i, off + i] = 1.0
        for r in range(m):
            mix[i, off + (i + r) % b] += 1.0 / m
        for d in range(-(m - 1), m):
            mix2[i, off + (i + d) % b] += (1.0 - abs(d) / m) / m
    return {"target_src": src, "target_mix": mix, "target_mix2": mix2}


# --------------------------------------------------------------------------------------------
# Comparison


def rel_max(ref: torch.Tensor, got: torch.Tensor, scale: float) -> float:
    return float((ref.double() - got.double()).abs().max().item() / max(scale, 1e-30))


def compare(dump: Dump, a: Arch, r: Replay, dtype: torch.dtype) -> dict:
    """Every check as {name: {..., "ok": bool}} per category, plus the worst of each."""
    tol = TOLERANCES
    res: dict = {
        "losses": {}, "gradients": {}, "state": {}, "counters": {}, "inputs": {}, "notes": [],
    }

    for k, t in r.losses.items():
        e = float(dump.losses[k])
        err = abs(t - e) / max(abs(t), 1e-12)
        res["losses"][k] = {
            "torch": t, "engine": e, "rel_err": err, "tol": tol["loss"], "ok": err <= tol["loss"],
        }

    # Gradients, recovered from the engine's first moments.
    engine_g = {}
    for n in r.grads:
        m0 = dump.before[f"opt.exp_avg.{n}"].double()
        m1 = dump.after[f"opt.exp_avg.{n}"].double()
        engine_g[n] = (m1 - BETA1 * m0) / (1.0 - BETA1)
    total_norm = math.sqrt(sum(float(g.double().pow(2).sum()) for g in r.grads.values()))
    zero = set()
    for n, g in r.grads.items():
        gt, ge = g.double(), engine_g[n]
        nt, ne, diff = gt.norm().item(), ge.norm().item(), (gt - ge).norm().item()
        if nt <= ZERO_GRAD_REL * total_norm:
            zero.add(n)
            metric, err, limit = "abs_l2/|g|", diff / max(total_norm, 1e-30), tol["grad_zero_abs"]
        else:
            metric, err, limit = "rel_l2", diff / nt, tol["grad_rel"]
        res["gradients"][n] = {
            "metric": metric, "err": err, "abs_l2": diff, "norm_torch": nt, "norm_engine": ne,
            "tol": limit, "ok": err <= limit,
        }

    def state(cat: str, ref: dict, key, tol_: float, zero_aware: bool = True) -> None:
        # A tensor's scale is its own max |value|; tensors whose gradient is ~0 (their moments
        # and updates are rounding noise, normalised by AdamW) use the category's largest. A BN
        # running mean is measured against its channels' spread, sqrt(running_var): the
        # predictor's first BN sees Linear(BN(affine=False) output), whose batch mean is
        # exactly 0, so its running mean is rounding noise.
        top = max(float(t.abs().max()) for t in ref.values())
        out = {}
        for n, t in ref.items():
            base = n.replace("momentum_encoder.", "base_encoder.", 1)
            scale = top if (zero_aware and base in zero) else max(float(t.abs().max()), 1e-12 * top)
            if n.endswith(".running_mean"):
                var = ref[n[: -len("running_mean")] + "running_var"]
                scale = max(scale, float(var.clamp(min=0).sqrt().max()))
            err = rel_max(t, dump.after[key(n)], scale)
            out[n] = {"err": err, "scale": scale, "tol": tol_, "ok": err <= tol_}
        res["state"][cat] = out

    # The update: PyTorch's AdamW applied to the engine's own gradient must give the engine's
    # parameters (this isolates the optimizer from the gradient's f32 rounding).
    state("param", adamw(dump, engine_g, dtype).params, lambda n: n, tol["param"])
    # The whole chain, PyTorch's gradient then PyTorch's AdamW, in units of the learning rate,
    # beyond one f32 ulp of the stored parameter.
    # Elements whose true gradient is exactly 0 (the key slice of qkv.bias: softmax ignores a
    # per-query constant; the final norm.bias) are left out: their gradient is rounding noise
    # in both, which AdamW normalises into steps of about lr with an arbitrary sign.
    lr = dump.inputs["lr"].item()
    gmax = max(float(g.abs().max()) for g in r.grads.values())
    chain = {}
    for n, t in r.params.items():
        engine = dump.after[n].double()
        # Less one f32 ulp of the stored parameter: storage rounding, not the step.
        diff = ((t.double() - engine).abs() - engine.abs() * 2.0**-23).clamp(min=0)
        live = r.grads[n].abs() > ZERO_GRAD_REL * gmax
        if lr > 0:
            err = float(diff[live].max()) / lr if bool(live.any()) else 0.0
            unit = "lr"
        else:
            err = float(diff.max()) / max(float(t.abs().max()), 1e-30)
            unit = "scale"
        chain[n] = {"err": err, "unit": unit, "zero_grad_elements": int((~live).sum()),
                    "tol": tol["param_chain"], "ok": err <= tol["param_chain"]}
    res["state"]["param_chain"] = chain
    state("exp_avg", r.exp_avg, lambda n: f"opt.exp_avg.{n}", tol["exp_avg"])
    state("exp_avg_sq", r.exp_avg_sq, lambda n: f"opt.exp_avg_sq.{n}", tol["exp_avg_sq"])
    state("bn", r.bn, lambda n: n, tol["bn"], zero_aware=False)
    if r.momentum:
        state("momentum", r.momentum, lambda n: n, tol["momentum"])

    for bnl, c in r.tracked.items():
        e = int(dump.after[f"{bnl}.num_batches_tracked"].item())
        res["counters"][f"{bnl}.num_batches_tracked"] = {"torch": c, "engine": e, "ok": c == e}
    e = int(dump.after["opt.step"].item())
    res["counters"]["opt.step"] = {"torch": r.step, "engine": e, "ok": r.step == e}

    # The PatchMix images from the views and the dumped permutations.
    for view, mixed, perm in (("view1", "mix1", "perm_mix1"), ("view2", "mix2", "perm_mix2")):
        if perm not in dump.inputs:
            res["notes"].append(f"{perm} not in the dump: {mixed} not re-derived")
            continue
        want = patchmix(dump.inputs[view], dump.inputs[perm].long(), a)
        err = float((want - dump.inputs[mixed]).abs().max())
        res["inputs"][mixed] = {"max_abs_err": err, "ok": err == 0.0}
    for k, t in targets(a).items():
        err = float((t - dump.inputs[k].double()).abs().max())
        s = a.src_smoothing if k == "target_src" else a.smoothing
        res["inputs"][k] = {"max_abs_err": err, "smoothing": s, "tol": 1e-6, "ok": err < 1e-6}

    # Summary.
    def worst(items: dict, key: str = "err"):
        if not items:
            return None
        n = max(items, key=lambda k: items[k][key])
        return {"name": n, "err": items[n][key]}

    rel = {k: v for k, v in res["gradients"].items() if v["metric"] == "rel_l2"}
    absg = {k: v for k, v in res["gradients"].items() if v["metric"] != "rel_l2"}
    res["worst"] = {
        "loss": worst(res["losses"], "rel_err"),
        "gradient": worst(rel),
        "gradient_zero": worst(absg),
        **{cat: worst(v) for cat, v in res["state"].items()},
    }
    # Inputs first: a wrong input is the cause of every other failure.
    failures = []
    for k, v in res["inputs"].items():
        if not v["ok"] and "smoothing" in v:
            failures.append(
                f"input {k}: differs from the formula with smoothing {v['smoothing']:g} "
                f"by {v['max_abs_err']:.3g}"
            )
        elif not v["ok"]:
            failures.append(
                f"input {k}: differs from PatchMix of its view by {v['max_abs_err']:.3g}"
            )
    for k, v in res["losses"].items():
        if not v["ok"]:
            failures.append(
                f"loss {k}: torch {v['torch']:.8g} vs engine {v['engine']:.8g} "
                f"(rel {v['rel_err']:.3g} > {v['tol']:g})"
            )
    for k, v in res["gradients"].items():
        if not v["ok"]:
            failures.append(f"gradient {k}: {v['metric']} {v['err']:.3g} > {v['tol']:g}")
    for cat, items in res["state"].items():
        for k, v in items.items():
            if not v["ok"]:
                failures.append(f"{cat} {k}: max|diff|/scale {v['err']:.3g} > {v['tol']:g}")
    for k, v in res["counters"].items():
        if not v["ok"]:
            failures.append(f"{k}: torch {v['torch']} vs engine {v['engine']}")
    res["failures"] = failures
    res["pass"] = not failures
    return res


# --------------------------------------------------------------------------------------------
# Output


def finite_json(v):
    """The object with non-finite floats as strings, so that the output stays valid JSON."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {k: finite_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [finite_json(x) for x in v]
    return v


def print_table(res: dict, verbose: bool) -> None:
    ranks = "" if res["virtual_ranks"] == 1 else f", {res['virtual_ranks']} virtual ranks"
    print(f"step dump {res['dir']}: frame {res['frame']}{ranks}, replayed in {res['dtype']}")
    print(f"{'loss':<12} {'torch':>14} {'engine':>14} {'rel err':>10}")
    for k, v in res["losses"].items():
        ok = "ok" if v["ok"] else "FAIL"
        print(f"{k:<12} {v['torch']:>14.8f} {v['engine']:>14.8f} {v['rel_err']:>10.2e} {ok}")
    print()
    print(f"{'gradient':<46} {'|g| torch':>10} {'|g| engine':>10} {'metric':>11} {'err':>9}")
    for k, v in res["gradients"].items():
        print(f"{k:<46} {v['norm_torch']:>10.3e} {v['norm_engine']:>10.3e} {v['metric']:>11} "
              f"{v['err']:>9.2e} {'ok' if v['ok'] else 'FAIL'}")
    print()
    print(f"{'state (max|diff|/scale)':<28} {'tensors':>7} {'worst':>9}  tensor")
    for cat, items in res["state"].items():
        w = res["worst"][cat]
        bad = sum(not v["ok"] for v in items.values())
        print(f"{cat:<28} {len(items):>7} {w['err']:>9.2e}  {w['name']}"
              f"{'' if not bad else f'  ({bad} FAIL)'}")
        if verbose:
            for k, v in items.items():
                print(f"    {k:<50} {v['err']:>9.2e} {'ok' if v['ok'] else 'FAIL'}")
    print()
    for k, v in res["counters"].items():
        if verbose or not v["ok"]:
            print(f"{k:<50} torch {v['torch']} engine {v['engine']} {'ok' if v['ok'] else 'FAIL'}")
    ncount = len(res["counters"])
    print(f"counters: {sum(v['ok'] for v in res['counters'].values())}/{ncount} equal")
    for k, v in res["inputs"].items():
        extra = "" if "smoothing" not in v else f" (formula, smoothing {v['smoothing']:g})"
        print(f"input {k:<12} max|diff| {v['max_abs_err']:.3g}{extra}")
    for n in res["notes"]:
        print(f"note: {n}")
    w = res["worst"]
    print()
    print(f"worst loss rel err {w['loss']['err']:.2e} ({w['loss']['name']}); "
          f"worst gradient rel L2 {w['gradient']['err']:.2e} ({w['gradient']['name']})"
          + (f"; ~0 gradients: worst {w['gradient_zero']['err']:.2e} of |g| "
             f"({w['gradient_zero']['name']})" if w["gradient_zero"] else ""))
    if res["pass"]:
        print("PASS: the engine's step matches the PyTorch replay within tolerance")
    else:
        print(f"FAIL: {len(res['failures'])} check(s) out of tolerance:")
        for f in res["failures"]:
            print(f"  {f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="a `patchmix pretrain --dump-step` directory")
    ap.add_argument("--json", action="store_true",
                    help="print one JSON object instead of the table")
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                    help="precision of the PyTorch replay (default float64)")
    ap.add_argument("--verbose", action="store_true", help="list every state tensor and counter")
    args = ap.parse_args(argv)
    dtype = {"float64": torch.float64, "float32": torch.float32}[args.dtype]
    try:
        dump = Dump.read(args.dir)
        a = Arch.parse(dump.cfg, os.path.join(args.dir, "step_config.json"))
        validate(dump, a)
        r = replay(dump, a, dtype)
    except DumpError as e:
        msg = f"replay_step.py: {e}"
        if args.json:
            print(json.dumps({"pass": False, "error": str(e)}))
        sys.stderr.write(msg + "\n")
        return 2
    res = compare(dump, a, r, dtype)
    res = {"dir": args.dir, "dtype": args.dtype, "frame": a.frame,
           "virtual_ranks": a.virtual_ranks, "config": dump.cfg,
           "tolerances": {**TOLERANCES, "zero_grad_rel": ZERO_GRAD_REL}, **res}
    if args.json:
        print(json.dumps(finite_json(res)))
    else:
        print_table(res, args.verbose)
    if not res["pass"]:
        fails = res["failures"]
        sys.stderr.write(f"replay_step.py: FAIL: {len(fails)} check(s) out of tolerance:\n")
        for f in fails[:20]:
            sys.stderr.write(f"  {f}\n")
        if len(fails) > 20:
            sys.stderr.write(f"  ... and {len(fails) - 20} more\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
