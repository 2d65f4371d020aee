#!/usr/bin/env python3
"""Reference logits of an exported classifier from timm itself.

    python3 scripts/timm_classifier_reference.py classifier.safetensors images.safetensors out.safetensors

Builds timm's `VisionTransformer` from the architecture in the weights' metadata
(`patchmix.vit`: img, patch, dim, depth, heads) with `num_classes` = the rows of `head.weight`
and `global_pool='token'` (the original PatchMix fine-tune's pooling: the CLS token after the
final norm, no fc_norm), loads `classifier.safetensors` with `strict=True`, runs the `images`
tensor [N, 3, H, W] in float64 and writes `logits` [N, classes] (float64) to out.safetensors.
Prints the number of parameters loaded.
"""
import json
import sys
from functools import partial

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from timm.models.vision_transformer import VisionTransformer


def main():
    weights_path, images_path, out_path = sys.argv[1:4]
    with safe_open(weights_path, framework="pt") as f:
        meta = f.metadata() or {}
    vit = json.loads(meta["patchmix.vit"])
    state = load_file(weights_path)
    classes = state["head.weight"].shape[0]
    model = VisionTransformer(
        img_size=vit["img"],
        patch_size=vit["patch"],
        embed_dim=vit["dim"],
        depth=vit["depth"],
        num_heads=vit["heads"],
        mlp_ratio=4,
        qkv_bias=True,
        class_token=True,
        global_pool="token",
        num_classes=classes,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
    )
    model.load_state_dict(state, strict=True)
    model = model.double().eval()
    images = load_file(images_path)["images"].double()
    with torch.no_grad():
        logits = model(images)
    save_file({"logits": logits.contiguous()}, out_path)
    print(sum(v.numel() for v in state.values()))


if __name__ == "__main__":
    main()
