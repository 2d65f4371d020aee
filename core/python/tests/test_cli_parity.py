"""The wheel's plans and targets equal `patchmix mix-plan --json` (the Rust CLI) on a table of cases."""

import json
import subprocess

import numpy as np
import pytest

import patchmix_core as pc

# (batch, grid, mix, seed or permutation, smoothing, world_size, rank)
CASES = [
    (2, 2, 2, [3, 0, 2, 1], 0.0, 1, 0),
    (4, 4, 2, 1234, 0.1, 1, 0),
    (5, 3, 3, 7, 0.0, 1, 0),
    (8, 4, 4, 99, 0.2, 2, 1),
    (6, 5, 2, 2**63 + 5, 0.1, 3, 2),
    (3, 4, 1, 0, 0.0, 1, 0),
    (1, 2, 2, 42, 0.0, 1, 0),
    (16, 8, 2, 2024, 0.1, 4, 3),
    (7, 6, 5, [int(x) for x in np.random.default_rng(0).permutation(36)], 0.05, 2, 0),
]


def cli_plan(cli, batch, grid, mix, shuffle, smoothing, world_size, rank):
    args = [cli, "mix-plan", "--json", "--batch", str(batch), "--grid", str(grid), "--mix", str(mix)]
    if isinstance(shuffle, list):
        args += ["--perm", ",".join(map(str, shuffle))]
    else:
        args += ["--seed", str(shuffle)]
    args += ["--smoothing", str(smoothing), "--world-size", str(world_size), "--rank", str(rank)]
    return json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "b{}-g{}-m{}".format(*c[:3]))
def test_plan_and_targets_equal_the_cli(patchmix_cli, case):
    batch, grid, mix, shuffle, smoothing, world_size, rank = case
    expected = cli_plan(patchmix_cli, *case)
    if isinstance(shuffle, list):
        plan = pc.MixPlan.from_permutation(batch, grid, mix, shuffle)
    else:
        plan = pc.MixPlan.from_seed(batch, grid, mix, shuffle)

    assert (plan.batch, plan.grid, plan.tokens, plan.mix, plan.group_size) == (
        expected["batch"], expected["grid"], expected["tokens"], expected["mix"], expected["group_size"],
    )
    assert plan.perm.tolist() == expected["perm"]
    assert plan.source.tolist() == expected["source"]
    assert plan.perm.dtype == plan.source.dtype == np.int64

    kwargs = dict(world_size=world_size, rank=rank, smoothing=smoothing)
    ours = pc.mix_to_origin_targets(batch, mix, **kwargs)
    assert ours.dtype == np.float32
    assert ours.shape == (batch, expected["num_classes"])
    # The CLI prints the f64 targets; the wheel returns them as float32.
    np.testing.assert_array_equal(ours, np.asarray(expected["soft_target"], dtype=np.float32))
    np.testing.assert_array_equal(
        pc.mix_to_mix_targets(batch, mix, **kwargs), np.asarray(expected["soft_mix_target"], dtype=np.float32)
    )


def test_the_cli_rejects_what_the_wheel_rejects(patchmix_cli):
    """Same validation on both sides: m > T."""
    with pytest.raises(subprocess.CalledProcessError):
        cli_plan(patchmix_cli, 2, 2, 5, 0, 0.0, 1, 0)
    with pytest.raises(ValueError, match="^mix: "):
        pc.MixPlan.from_seed(2, 2, 5, 0)
