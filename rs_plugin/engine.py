"""The noisy-evaluation engine: the one loop that draws noise, adds it to inputs (or randomizes them otherwise: a
noise's :meth:`~rs_plugin.noises.Noise.randomize`) and hands batches to a model.

Every framework has one such loop (numpy here; a framework's backend plugin brings its own); all follow the same
:func:`plan`. Several examples can share a batch (``nums[e]`` noisy copies of example ``e``, in example order),
and each example's noise comes from its own stream, so an example's copies do not depend on the batch size or on
which other examples share its batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .noises import Noise

Segments = list[tuple[int, int]]
"""One batch's rows: ``(example, copies)`` pairs, in order."""


def plan(nums: Sequence[int], batch_size: int) -> Iterator[Segments]:
    """Split ``nums[e]`` copies of each example ``e`` (in example order) into batches of at most ``batch_size``
    rows; every row belongs to exactly one batch."""
    batch: Segments = []
    room = batch_size
    for example, num in enumerate(nums):
        while num:
            take = min(num, room)
            batch.append((example, take))
            num, room = num - take, room - take
            if room == 0:
                yield batch
                batch, room = [], batch_size
    if batch:
        yield batch


def owners(segments: Segments) -> np.ndarray:
    """The example of each row of a batch: ``(rows,)`` int64."""
    return np.repeat(np.array([e for e, _ in segments], dtype=np.int64), [c for _, c in segments])


def streams_per_input(streams: Any, count: int) -> Sequence[Any]:
    """``streams`` as one stream per input: a sequence of ``count`` streams, or one stream shared by all."""
    if isinstance(streams, Sequence):
        if len(streams) != count:
            raise ValueError(f"streams: got {len(streams)} streams for {count} examples")
        return streams
    return [streams] * count


class NumpyStream:
    """One random stream of one noise, drawn by numpy from ``seed`` (see :func:`rs_plugin.seeding.stream_seed`)."""

    def __init__(self, noise: Noise, seed: int | None) -> None:
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.copies = 0
        """How many randomized copies :meth:`randomize` has given."""

    def fill(self, out: np.ndarray) -> np.ndarray:
        """Fill the float32 array ``out`` with the stream's next noise values; returns ``out``."""
        self.noise.sample(self.rng, out)
        return out

    def randomize(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Fill the float32 array ``out`` (``(rows, *x.shape)``) with the stream's next randomized copies of ``x``
        (:meth:`rs_plugin.noises.Noise.randomize`; for an additive noise, ``x`` plus :meth:`fill`'s values); returns
        ``out``."""
        self.noise.randomize(self.rng, x, out, self.copies)
        self.copies += len(out)
        return out


def noisy_batches(
    xs: np.ndarray, nums: Sequence[int], streams: NumpyStream | Sequence[NumpyStream], batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches ``(inputs, owner)`` of noisy copies: ``nums[e]`` copies of ``xs[e] + noise`` (or, for a randomization
    that is not additive, ``xs[e]`` randomized) from ``streams[e]``, ``owner[i]`` the example of row ``i``. At most
    ``batch_size`` rows, written into one reused float32 buffer: consume each batch before asking for the next."""
    streams = streams_per_input(streams, len(xs))
    buffer = np.empty((min(batch_size, sum(nums)), *xs.shape[1:]), dtype=np.float32)
    for segments in plan(nums, batch_size):
        start = 0
        for example, count in segments:
            streams[example].randomize(xs[example], buffer[start : start + count])
            start += count
        yield buffer[:start], owners(segments)
