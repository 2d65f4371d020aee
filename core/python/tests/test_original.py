"""The wheel against the original's own code: `module/mix.py` of visresearch/patchmix.

Its `PatchMixer` mixes a batch of images and builds both soft targets; with the same shuffle
(the original draws it with `np.random.shuffle` inside `random_indexes`, which is replaced by
the plan's permutation), its mixed images must equal `MixPlan.apply_nchw` exactly and its
targets must equal ours. The original's scatter double-counts columns when B < 2m−1, so every
case has B ≥ 2m−1. Skipped, with the reason, unless torch, einops and $PATCHMIX_ORIGINAL are
there (see conftest.py).
"""

import numpy as np
import pytest

import patchmix_core as pc

# (batch, grid, patch, channels, mix, world_size, rank, smoothing, dtype)
CASES = [
    (3, 2, 4, 3, 2, 1, 0, 0.0, np.float32),
    (4, 4, 2, 3, 2, 2, 1, 0.1, np.float32),
    (5, 4, 8, 1, 3, 1, 0, 0.1, np.float32),
    (8, 8, 4, 3, 4, 4, 2, 0.2, np.float32),
    (7, 3, 5, 2, 3, 3, 0, 0.05, np.uint8),
    (9, 5, 2, 3, 5, 2, 1, 0.1, np.float32),
    (16, 8, 4, 3, 2, 1, 0, 0.1, np.float32),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "b{}-g{}-p{}-m{}-w{}".format(c[0], c[1], c[2], c[4], c[5]))
def test_mixed_images_and_targets_equal_the_original(original_mix, monkeypatch, case):
    batch, grid, patch, channels, mix, world_size, rank, smoothing, dtype = case
    torch, module = original_mix.torch, original_mix.module
    side = grid * patch
    rng = np.random.default_rng(batch * 1000 + grid)
    if dtype == np.uint8:
        images = rng.integers(0, 256, size=(batch, channels, side, side), dtype=np.uint8)
    else:
        images = rng.standard_normal((batch, channels, side, side)).astype(dtype)
    plan = pc.MixPlan.from_seed(batch, grid, mix, seed=batch * 31 + grid)

    perm = plan.perm
    monkeypatch.setattr(module, "random_indexes", lambda size: (perm.copy(), np.argsort(perm)))
    monkeypatch.setattr(torch.distributed, "get_rank", lambda *args, **kwargs: rank)
    mixer = module.PatchMixer(
        num_classes=batch * world_size, mix_s=patch, mix_n=mix, mix_p=1.0, smoothing=smoothing
    )
    mixed, soft_target, soft_mix_target = mixer(torch.from_numpy(images.copy()), torch.arange(batch))

    np.testing.assert_array_equal(plan.apply_nchw(images), mixed.numpy())
    kwargs = dict(world_size=world_size, rank=rank, smoothing=smoothing)
    np.testing.assert_allclose(
        pc.mix_to_origin_targets(batch, mix, **kwargs), soft_target.numpy(), rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(
        pc.mix_to_mix_targets(batch, mix, **kwargs), soft_mix_target.numpy(), rtol=1e-6, atol=1e-7
    )
