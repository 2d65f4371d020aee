"""PatchMix index algebra from the tested Rust core (``patchmix-core``): plans, soft targets,
schedules.

Every invalid argument raises ``ValueError`` whose message starts with the argument's name.
Arrays are never copied silently: a non-C-contiguous array or an unsupported dtype is an error.
"""

from typing import Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

__version__: str

_Pixels = Union[npt.NDArray[np.float32], npt.NDArray[np.float16], npt.NDArray[np.uint8]]

class MixPlan:
    """One PatchMix plan: shuffle → group mix → unshuffle for ``batch`` images of
    ``grid``×``grid`` tokens mixed ``mix`` at a time.

    >>> import patchmix_core as pc
    >>> plan = pc.MixPlan.from_permutation(2, 2, 2, [3, 0, 2, 1])
    >>> plan.source.tolist()
    [0, 5, 6, 3, 4, 1, 2, 7]
    """

    @staticmethod
    def from_seed(batch: int, grid: int, mix: int, seed: int) -> MixPlan:
        """The plan whose shuffle is drawn from ``seed`` (the core's SplitMix64 + Fisher–Yates)."""
    @staticmethod
    def from_permutation(
        batch: int, grid: int, mix: int, perm: Union[Sequence[int], npt.NDArray[np.integer]]
    ) -> MixPlan:
        """The plan for the shuffle ``perm``, a permutation of ``0..grid**2``."""
    @property
    def batch(self) -> int: ...
    @property
    def grid(self) -> int: ...
    @property
    def mix(self) -> int: ...
    @property
    def tokens(self) -> int:
        """T = grid²."""
    @property
    def group_size(self) -> int:
        """S = ⌊T/m⌋."""
    @property
    def perm(self) -> npt.NDArray[np.int64]:
        """The shuffle, shape (T,)."""
    @property
    def inverse(self) -> npt.NDArray[np.int64]:
        """The inverse shuffle, shape (T,)."""
    @property
    def source(self) -> npt.NDArray[np.int64]:
        """Flat gather indices, shape (B·T,): mixed token b·T+t is input token source[b·T+t]."""
    def apply_nchw(self, images: _Pixels, *, out: Optional[_Pixels] = None) -> _Pixels:
        """Mixed images of a C-contiguous (B, C, H, W) float32/float16/uint8 array."""
    def apply_patches(self, tokens: _Pixels, *, out: Optional[_Pixels] = None) -> _Pixels:
        """Mixed tokens of a C-contiguous (B, T, D) float32/float16/uint8 array."""

def origin_targets(
    batch: int, *, world_size: int = 1, rank: int = 0, smoothing: float = 0.0
) -> npt.NDArray[np.float32]:
    """View-to-view targets, shape (B, B·world_size).

    >>> import patchmix_core as pc
    >>> pc.origin_targets(2).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """

def mix_to_origin_targets(
    batch: int, mix: int, *, world_size: int = 1, rank: int = 0, smoothing: float = 0.0
) -> npt.NDArray[np.float32]:
    """Mix-to-origin targets (1/m to images b…b+m−1 of the rank), shape (B, B·world_size).

    >>> import patchmix_core as pc
    >>> pc.mix_to_origin_targets(3, 2).tolist()
    [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5]]
    """

def mix_to_mix_targets(
    batch: int, mix: int, *, world_size: int = 1, rank: int = 0, smoothing: float = 0.0
) -> npt.NDArray[np.float32]:
    """Mix-to-mix targets ((1−|d|/m)/m to mixed b+d, |d| < m), shape (B, B·world_size).

    >>> import patchmix_core as pc
    >>> pc.mix_to_mix_targets(3, 2).tolist()
    [[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.25, 0.25, 0.5]]
    """

def cosine_schedule(
    base: float,
    final_value: float,
    total_iters: int,
    warmup_iters: int,
    start_warmup: float,
    iter: int,
) -> float:
    """Warm-up then cosine from ``base`` to ``final_value``, at step ``iter``.

    >>> import patchmix_core as pc
    >>> pc.cosine_schedule(1.0, 0.0, 10, 0, 0.0, 0)
    1.0
    """

def momentum_schedule(base_momentum: float, epoch: float, total_epochs: float) -> float:
    """Momentum-encoder momentum at (fractional) ``epoch``, from ``base_momentum`` up to 1.

    >>> import patchmix_core as pc
    >>> pc.momentum_schedule(0.99, 100.0, 100.0)
    1.0
    """

def temperature_schedule(warmup_temp: float, temp: float, warmup_epochs: int, epoch: int) -> float:
    """Temperature: linear from ``warmup_temp`` to ``temp`` over ``warmup_epochs``, then ``temp``.

    >>> import patchmix_core as pc
    >>> pc.temperature_schedule(0.1, 0.2, 10, 20)
    0.2
    """
