"""Backends turn a base classifier into votes on noisy copies of one input.

This module is also the built-in plugin for plain callables: any function mapping a float32 batch
``(B, *shape)`` to integer labels ``(B,)`` or scores ``(B, K)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from .hookspecs import hookimpl
from .noises import Noise


class Backend(Protocol):
    """What :class:`~rs_plugin.SmoothedClassifier` needs from a base classifier."""

    def prepare(self, x: Any) -> Any:
        """Check one input (no batch dimension; finite values) and convert it for :meth:`counts`."""

    def generator(self, seed: int) -> Any:
        """A random generator of the backend's framework, seeded with ``seed``."""

    def counts(self, x: Any, num: int, noise: Noise, generator: Any, batch_size: int) -> np.ndarray:
        """Class counts (int64, length ``num_classes``) of the base classifier on ``num`` copies of the
        prepared ``x`` plus independent noise from ``generator``, holding at most one batch at a time."""


def check_finite(finite: bool, shape: tuple[int, ...]) -> None:
    """Raise the ``ValueError`` for an input that is not a finite, non-scalar array."""
    if len(shape) == 0:
        raise ValueError("x must be one input without batch dimension, got a scalar")
    if not finite:
        raise ValueError(f"x contains NaN or infinite values (shape {shape})")


def base_failed(err: Exception, batch_shape: tuple[int, ...]) -> ValueError:
    """The error to raise when the base classifier rejects a batch built from ``x``."""
    return ValueError(
        f"x: the base classifier failed on a noisy batch of shape {batch_shape} (x must be one input "
        f"without batch dimension, shaped as the base classifier expects): {type(err).__name__}: {err}"
    )


def check_scores(shape: tuple[int, ...], batch: int, num_classes: int) -> None:
    """Raise ``ValueError`` unless ``shape`` is that of scores ``(batch, num_classes)``."""
    if tuple(shape) != (batch, num_classes):
        raise ValueError(
            f"base returned scores of shape {tuple(shape)} for a batch of {batch}; "
            f"expected ({batch}, num_classes={num_classes})"
        )


def votes(output: Any, batch: int, num_classes: int) -> np.ndarray:
    """Class counts from a base classifier's output on ``batch`` inputs: labels ``(B,)`` or scores ``(B, K)``.

    Raises ``ValueError`` for the wrong number of outputs or labels outside ``[0, num_classes)``.
    """
    out = np.asarray(output)
    if out.ndim == 2:
        check_scores(out.shape, batch, num_classes)
        labels = out.argmax(axis=1)
    elif out.ndim == 1:
        if out.shape[0] != batch:
            raise ValueError(f"base returned {out.shape[0]} labels for a batch of {batch}")
        if not np.issubdtype(out.dtype, np.integer):
            raise ValueError(f"base returned labels of dtype {out.dtype}; expected integer class labels")
        labels = out
        if batch and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"base returned labels outside [0, num_classes={num_classes}): "
                f"{np.unique(labels[(labels < 0) | (labels >= num_classes)])[:5].tolist()}"
            )
    else:
        raise ValueError(
            f"base returned an output of shape {out.shape}; expected labels ({batch},) or scores ({batch}, K)"
        )
    return np.bincount(labels, minlength=num_classes).astype(np.int64)


class CallableBackend:
    """Evaluates a numpy callable on batches written into one reused float32 buffer.

    The callable must not keep a reference to its argument: the buffer is overwritten by the next batch.
    """

    def __init__(self, fn: Callable[[np.ndarray], Any], num_classes: int) -> None:
        self.fn = fn
        self.num_classes = num_classes

    def prepare(self, x: Any) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float32)
        check_finite(bool(np.isfinite(arr).all()), arr.shape)
        return arr

    def generator(self, seed: int) -> np.random.Generator:
        return np.random.default_rng(seed)

    def counts(self, x: np.ndarray, num: int, noise: Noise, generator: Any, batch_size: int) -> np.ndarray:
        buffer = np.empty((min(batch_size, num), *x.shape), dtype=np.float32)
        counts = np.zeros(self.num_classes, dtype=np.int64)
        for start in range(0, num, batch_size):
            batch = buffer[: min(batch_size, num - start)]
            noise.sample(generator, batch)
            batch += x
            try:
                output = self.fn(batch)
            except (TypeError, ValueError, RuntimeError, IndexError) as err:
                raise base_failed(err, batch.shape) from err
            counts += votes(output, len(batch), self.num_classes)
        return counts


@hookimpl(trylast=True)
def rs_plugin_make_backend(model: Any, num_classes: int, device: Any) -> CallableBackend | None:
    if not callable(model):
        return None
    if device not in (None, "cpu"):
        raise ValueError(f"device={device!r} applies to torch models; a plain callable runs where it is")
    return CallableBackend(model, num_classes)
