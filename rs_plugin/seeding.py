"""The one seeding function: every random stream in rs-plugin is ``stream_seed(seed, purpose, index)``.

Streams for different purposes (CERTIFY, PREDICT, an attack, training, ...) or different example indices
are independent (numpy's ``SeedSequence`` spawn keys), and the same ``(seed, purpose, index)`` always gives
the same stream, whatever process, worker or resumed run asks for it.
"""

from __future__ import annotations

import zlib

import numpy as np

from .checks import seed as check_seed

PURPOSES = {"call": 0, "certify": 1, "predict": 2, "counts": 3}
"""Purposes with fixed codes (kept from the first release, so that published results stay reproducible);
any other purpose name is coded by its CRC-32."""


def purpose_code(purpose: str) -> int:
    """The integer that keys ``purpose``'s streams."""
    if not isinstance(purpose, str) or not purpose:
        raise ValueError(f"purpose must be a non-empty string, got {purpose!r}")
    return PURPOSES.get(purpose, zlib.crc32(purpose.encode()) + len(PURPOSES))


def fresh_entropy() -> int:
    """A fresh random root seed, for objects created with ``seed=None`` (fixed for the object's life)."""
    return int(np.random.SeedSequence().entropy)


def stream_seed(seed: int, purpose: str, index: int | None = None) -> int:
    """A 64-bit seed for the random stream of ``purpose`` (e.g. ``"certify"``) and example ``index`` under the
    root ``seed`` (a non-negative int). Equal arguments give equal seeds; different ones, independent streams."""
    check_seed("seed", seed)
    key = (purpose_code(purpose),) if index is None else (purpose_code(purpose), int(check_seed("index", index)))
    state = np.random.SeedSequence(seed, spawn_key=key).generate_state(1, np.uint64)
    return int(state[0])
