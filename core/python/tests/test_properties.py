"""Properties over random valid (and invalid) arguments, with hypothesis."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import patchmix_core as pc


@st.composite
def plans(draw):
    grid = draw(st.integers(1, 6))
    mix = draw(st.integers(1, grid * grid))
    batch = draw(st.integers(1, 9))
    seed = draw(st.integers(0, 2**64 - 1))
    return pc.MixPlan.from_seed(batch, grid, mix, seed)


@settings(max_examples=200, deadline=None)
@given(plans(), st.integers(1, 5))
def test_apply_patches_is_a_permutation_of_the_batchs_tokens(plan, dim):
    b, t = plan.batch, plan.tokens
    # Token k of the batch carries the value k in every component: the mixed batch must hold
    # each token exactly once, and `source` must say where each came from.
    tokens = np.repeat(np.arange(b * t, dtype=np.float32), dim).reshape(b, t, dim)
    mixed = plan.apply_patches(tokens)
    ids = mixed[:, :, 0].reshape(-1)
    assert (mixed == mixed[:, :, :1]).all()
    assert sorted(ids.astype(np.int64).tolist()) == list(range(b * t))
    np.testing.assert_array_equal(ids, plan.source.astype(np.float32))


@settings(max_examples=100, deadline=None)
@given(plans(), st.integers(1, 4), st.integers(1, 3))
def test_apply_nchw_moves_whole_patches(plan, patch, channels):
    b, g = plan.batch, plan.grid
    side = g * patch
    images = np.random.default_rng(0).integers(0, 256, size=(b, channels, side, side), dtype=np.uint8)
    mixed = plan.apply_nchw(images)

    def tokens(x):  # (B, C, H, W) → (B·T, C·p·p), tokens row-major over the patch grid
        x = x.reshape(b, channels, g, patch, g, patch).transpose(0, 2, 4, 1, 3, 5)
        return x.reshape(b * g * g, channels * patch * patch)

    np.testing.assert_array_equal(tokens(mixed), tokens(images)[plan.source])


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 12),
    st.integers(1, 6),
    st.integers(1, 4),
    st.data(),
    st.floats(0.0, 1.0),
)
def test_every_target_row_sums_to_one(batch, mix, world_size, data, smoothing):
    rank = data.draw(st.integers(0, world_size - 1))
    kwargs = dict(world_size=world_size, rank=rank, smoothing=smoothing)
    for targets in (
        pc.origin_targets(batch, **kwargs),
        pc.mix_to_origin_targets(batch, mix, **kwargs),
        pc.mix_to_mix_targets(batch, mix, **kwargs),
    ):
        assert targets.shape == (batch, batch * world_size)
        assert (targets >= 0).all()
        np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=0, atol=1e-5)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.integers(0, 2**64 - 1), st.data())
def test_mix_above_the_token_count_raises(grid, seed, data):
    mix = data.draw(st.integers(grid * grid + 1, grid * grid + 50))
    with pytest.raises(ValueError, match="^mix: "):
        pc.MixPlan.from_seed(2, grid, mix, seed)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 8), st.integers(1, 4), st.data())
def test_a_rank_outside_the_world_raises(batch, world_size, data):
    rank = data.draw(st.integers(world_size, world_size + 10))
    with pytest.raises(ValueError, match="^rank: "):
        pc.mix_to_mix_targets(batch, 1, world_size=world_size, rank=rank)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1.0 + 1e-9), st.just(float("nan"))))
def test_smoothing_outside_the_unit_interval_raises(smoothing):
    with pytest.raises(ValueError, match="^smoothing: "):
        pc.origin_targets(4, smoothing=smoothing)


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 5), st.data())
def test_a_perm_that_is_not_a_permutation_raises(grid, data):
    t = grid * grid
    perm = data.draw(
        st.lists(st.integers(-3, t + 3), min_size=0, max_size=t + 2).filter(lambda p: sorted(p) != list(range(t)))
    )
    with pytest.raises(ValueError, match="^perm: "):
        pc.MixPlan.from_permutation(2, grid, 2, perm)
