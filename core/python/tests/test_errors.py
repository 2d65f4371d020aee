"""Bad arrays and arguments: a ValueError naming the argument, never a silent copy or a crash."""

import doctest

import numpy as np
import pytest

import patchmix_core as pc

PLAN = pc.MixPlan.from_seed(4, 4, 2, seed=1)
IMAGES = np.zeros((4, 3, 8, 8), dtype=np.float32)
TOKENS = np.zeros((4, 16, 5), dtype=np.float32)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: PLAN.apply_nchw(IMAGES.astype(np.float64)), r"^images: dtype float64 is not supported"),
        (lambda: PLAN.apply_nchw(IMAGES.astype(np.int32)), r"^images: dtype int32 is not supported"),
        (lambda: PLAN.apply_nchw(IMAGES.tolist()), r"^images: expected a numpy.ndarray, got list"),
        (lambda: PLAN.apply_nchw(IMAGES[:3]), r"^images: batch 3 differs from the plan's batch B = 4"),
        (lambda: PLAN.apply_nchw(IMAGES[0]), r"^images: shape \[3, 8, 8\] is not \(B, C, H, W\)"),
        (lambda: PLAN.apply_nchw(np.zeros((4, 3, 8, 6), np.float32)), r"^images: image height H = 8 differs"),
        (lambda: PLAN.apply_nchw(np.zeros((4, 3, 6, 6), np.float32)), r"^images: grid = 4 does not divide"),
        (lambda: PLAN.apply_nchw(np.zeros((4, 0, 8, 8), np.float32)), r"^images: channels C = 0"),
        (lambda: PLAN.apply_nchw(np.asfortranarray(IMAGES)), r"^images: is not C-contiguous"),
        (lambda: PLAN.apply_nchw(np.zeros((4, 3, 8, 16), np.float32)[..., ::2]), r"^images: is not C-contiguous"),
        (lambda: PLAN.apply_nchw(IMAGES, out=IMAGES), r"^out: must not share memory with images"),
        (lambda: PLAN.apply_nchw(IMAGES, out=np.zeros_like(IMAGES, np.float16)), r"^out: must be a numpy.ndarray with the dtype of images \(float32\)"),
        (lambda: PLAN.apply_nchw(IMAGES, out=np.zeros((4, 3, 8, 9), np.float32)), r"^out: shape \[4, 3, 8, 9\] differs"),
        (lambda: PLAN.apply_nchw(IMAGES, out=np.asfortranarray(IMAGES.copy())), r"^out: is not C-contiguous"),
        (lambda: PLAN.apply_patches(TOKENS[:, :15]), r"^tokens: has 15 tokens per image but the plan has T = 16"),
        (lambda: PLAN.apply_patches(TOKENS.reshape(4, 80)), r"^tokens: shape \[4, 80\] is not \(B, T, D\)"),
        (lambda: PLAN.apply_patches(TOKENS.transpose(1, 0, 2).copy().transpose(1, 0, 2)), r"^tokens: is not C-contiguous"),
        (lambda: pc.MixPlan.from_seed(0, 4, 2, 1), r"^batch: batch B = 0"),
        (lambda: pc.MixPlan.from_seed(-2, 4, 2, 1), r"^batch: -2 is negative"),
        (lambda: pc.MixPlan.from_seed(2, 0, 2, 1), r"^grid: grid = 0"),
        (lambda: pc.MixPlan.from_seed(2, 2, 0, 1), r"^mix: mix m = 0"),
        (lambda: pc.MixPlan.from_seed(2, 2, 2, 2**64), r"^seed: 18446744073709551616 is not in 0..2\*\*64"),
        (lambda: pc.MixPlan.from_permutation(2, 2, 2, [0, 1, 2]), r"^perm: perm has length 3 but must have length T = 4"),
        (lambda: pc.MixPlan.from_permutation(2, 2, 2, [0, 1, 2, 4]), r"^perm: perm\[3\] = 4 is not a token index"),
        (lambda: pc.MixPlan.from_permutation(2, 2, 2, [0, 1, -1, 2]), r"^perm: perm\[2\] = -1 is not a token index"),
        (lambda: pc.origin_targets(4, world_size=0), r"^world_size: world size = 0"),
        (lambda: pc.origin_targets(4, world_size=2, rank=2), r"^rank: rank = 2 is not below the world size 2"),
        (lambda: pc.mix_to_origin_targets(4, 0), r"^mix: mix m = 0"),
        (lambda: pc.mix_to_mix_targets(4, 2, smoothing=-0.5), r"^smoothing: smoothing s = -0.5"),
        (lambda: pc.cosine_schedule(1.0, 0.0, 10, 11, 0.0, 0), r"^warmup_iters: warm-up of 11 steps exceeds"),
        (lambda: pc.cosine_schedule(1.0, 0.0, 10, 0, 0.0, 11), r"^iter: schedule index 11 is past"),
        (lambda: pc.cosine_schedule(float("nan"), 0.0, 10, 0, 0.0, 1), r"^base: schedule parameter base = NaN"),
        (lambda: pc.momentum_schedule(1.5, 0.0, 10.0), r"^base_momentum: "),
        (lambda: pc.momentum_schedule(0.99, 11.0, 10.0), r"^epoch: epoch e = 11"),
        (lambda: pc.temperature_schedule(0.0, 0.2, 10, 1), r"^warmup_temp: "),
        (lambda: pc.temperature_schedule(0.1, 0.2, -1, 1), r"^warmup_epochs: -1 is negative"),
    ],
)
def test_bad_input_raises_a_value_error_naming_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_out_receives_the_result_without_a_new_array():
    out = np.full_like(IMAGES, 7.0)
    images = np.random.default_rng(1).standard_normal(IMAGES.shape).astype(np.float32)
    assert PLAN.apply_nchw(images, out=out) is out
    np.testing.assert_array_equal(out, PLAN.apply_nchw(images))


def test_the_input_is_not_modified_and_dtypes_round_trip():
    rng = np.random.default_rng(2)
    for dtype in (np.float32, np.float16, np.uint8):
        images = (rng.random(IMAGES.shape) * 200).astype(dtype)
        before = images.copy()
        mixed = PLAN.apply_nchw(images)
        assert mixed.dtype == dtype and mixed.shape == images.shape
        np.testing.assert_array_equal(images, before)
        # The same gather on each dtype: the float16/uint8 results are the float32 ones, cast.
        np.testing.assert_array_equal(mixed.astype(np.float32), PLAN.apply_nchw(images.astype(np.float32)))


def test_every_docstring_example_runs():
    objects = [pc.MixPlan, pc.MixPlan.from_seed, pc.MixPlan.from_permutation, pc.MixPlan.apply_nchw,
               pc.MixPlan.apply_patches, pc.origin_targets, pc.mix_to_origin_targets, pc.mix_to_mix_targets,
               pc.cosine_schedule, pc.momentum_schedule, pc.temperature_schedule]
    for obj in objects:
        assert ">>>" in (obj.__doc__ or ""), f"{obj.__name__} has no example"
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        parsed = doctest.DocTestParser().get_doctest(obj.__doc__, {}, obj.__name__, None, 0)
        result = runner.run(parsed)
        assert result.attempted > 0 and result.failed == 0, obj.__name__
