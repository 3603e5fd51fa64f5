"""Backends turn a base classifier into votes on noisy copies of inputs.

This module is also the built-in plugin for plain callables: any function mapping a float32 batch
``(B, *shape)`` to integer labels ``(B,)`` or scores ``(B, K)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from .checks import float32_array
from .engine import NumpyStream, noisy_batches
from .hookspecs import hookimpl
from .noises import Noise


class Backend(Protocol):
    """What :class:`~rs_plugin.SmoothedClassifier` needs from a base classifier: the framework's noisy-evaluation
    loop (see :mod:`rs_plugin.engine`) turned into votes.

    Optionally, an attribute ``max_batch_size``: None, or a batch size the device has room for after a larger batch
    ran out of memory (the batch sizer of :mod:`rs_plugin.calibration` then stays at or below it; the torch backend
    sets it); and an attribute ``device_memory``: None on a CPU, or the free memory in bytes of the accelerator the
    model runs on (the batch sizer then starts at the largest size that memory allows and looks downwards; the torch
    backend sets it on a GPU)."""

    def prepare(self, x: Any) -> Any:
        """Check one input (no batch dimension; finite values) and convert it for :meth:`counts`."""

    def stream(self, noise: Noise, seed: int) -> Any:
        """A random stream of ``noise`` in the backend's framework, seeded with ``seed``."""

    def identity(self) -> tuple:
        """What the fastest batch size depends on besides the input: the model and where it runs
        (:mod:`rs_plugin.calibration` measures once per identity and input shape)."""

    def counts(self, xs: Sequence[Any], nums: Sequence[int], streams: Sequence[Any], batch_size: int) -> np.ndarray:
        """Class counts ``(len(xs), num_classes)`` int64: row ``e`` counts the base classifier's votes on ``nums[e]``
        copies of the prepared ``xs[e]`` plus noise from ``streams[e]``, at most ``batch_size`` copies at a time.
        Raises ``ValueError`` when the base classifier answers with NaN or infinite scores."""

    def soft_sums(self, xs: Sequence[Any], nums: Sequence[int], streams: Sequence[Any], batch_size: int) -> np.ndarray:
        """Like :meth:`counts`, the sums ``(len(xs), num_classes)`` float64 of the base classifier's softmax (of its
        scores as logits; a label is a one-hot vector) instead of its votes. Needed only for ``smoothing="soft"``."""

    def soft_pairs(
        self, xs: Sequence[Any], nums: Sequence[int], streams: Sequence[Any], batch_size: int, classes: Sequence[int]
    ) -> list[np.ndarray]:
        """For each input ``e``, an array ``(nums[e], 2)``: on each noisy copy, in the order drawn, the softmax of
        ``classes[e]`` and the largest softmax of any other class. Needed only for ``smoothing="soft"``."""


def check_input(x: Any) -> np.ndarray:
    """One input as a float32 array (``x`` itself when it is one); ``ValueError`` naming ``x`` unless it is a finite,
    non-scalar, non-empty real array (a value beyond float32's range is refused as infinite, without numpy's overflow
    warning)."""
    arr = float32_array(x)
    check_finite(bool(np.isfinite(arr).all()), arr.shape)
    return arr


def check_finite(finite: bool, shape: tuple[int, ...]) -> None:
    """Raise the ``ValueError`` for an input that is not a finite, non-scalar array holding at least one value."""
    if len(shape) == 0:
        raise ValueError("x must be one input without batch dimension, got a scalar")
    if math.prod(shape) == 0:
        raise ValueError(f"x holds no values (shape {shape}): give one input with its features")
    if not finite:
        raise ValueError(f"x contains NaN or infinite values (shape {shape})")


def base_failed(err: Exception, batch_shape: tuple[int, ...]) -> ValueError:
    """The error to raise when the base classifier raises on a batch of noisy copies of ``x``."""
    return ValueError(
        f"base: the base classifier raised {type(err).__name__} on a batch of noisy inputs of shape {batch_shape} "
        f"(is x one input without batch dimension, shaped as the base classifier expects?): {err}"
    )


def run_base(base: Callable[[Any], Any], batch: Any, passthrough: tuple[type[BaseException], ...] = ()) -> Any:
    """``base(batch)``; if the base raises ``TypeError``, ``ValueError``, ``RuntimeError`` or ``IndexError`` (other
    than one of ``passthrough``, e.g. an out-of-memory error), the one-line ``ValueError`` of :func:`base_failed`."""
    try:
        return base(batch)
    except passthrough:
        raise
    except (TypeError, ValueError, RuntimeError, IndexError) as err:
        raise base_failed(err, tuple(batch.shape)) from err


def check_scores(shape: tuple[int, ...], batch: int, num_classes: int, input_shape: tuple[int, ...] = ()) -> None:
    """Raise ``ValueError`` unless ``shape`` is that of scores ``(batch, num_classes)``; when the scores look like
    the model treated the first dimension of ``x`` (of ``input_shape``) as a batch, say so."""
    if tuple(shape) == (batch, num_classes):
        return
    hint = ""
    if len(input_shape) >= 2 and tuple(shape[:2]) == (batch, input_shape[0]):
        hint = (
            f"; x has shape {input_shape}: if its first dimension is a batch of {input_shape[0]} inputs, pass "
            "them one at a time (predict_many / certify_many)"
        )
    raise ValueError(
        f"base returned scores of shape {tuple(shape)} for a batch of {batch}; "
        f"expected ({batch}, num_classes={num_classes}){hint}"
    )


def diverged(what: str, batch: int) -> ValueError:
    """The error for a base classifier whose scores hold NaN or infinite values: nothing it says is certified."""
    return ValueError(
        f"base returned NaN or infinite {what} on a batch of {batch} noisy inputs: the model has diverged or is "
        "broken, and rs-plugin never certifies what such a model says"
    )


def probabilities(output: Any, batch: int, num_classes: int, input_shape: tuple[int, ...] = ()) -> np.ndarray:
    """The base classifier's output on ``batch`` inputs as probabilities ``(B, K)`` float64: the softmax of scores
    ``(B, K)`` (logits), or one-hot labels ``(B,)``; the checks of :func:`labels`."""
    out = np.asarray(output)
    classes = labels(out, batch, num_classes, input_shape)
    if out.ndim == 1:
        return np.eye(num_classes)[classes]
    scores = out.astype(np.float64)
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def pairs_of(probs: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Each row's ``(probs[chosen], largest of the others)``: ``(B, 2)``."""
    rows = np.arange(len(probs))
    others = probs.copy()
    others[rows, chosen] = -np.inf
    return np.stack([probs[rows, chosen], others.max(axis=1)], axis=1)


def split_rows(values: np.ndarray, nums: Sequence[int]) -> list[np.ndarray]:
    """``values`` (the rows of every input, in input order) as one array per input."""
    return np.split(values, np.cumsum(nums)[:-1])


def labels(output: Any, batch: int, num_classes: int, input_shape: tuple[int, ...] = ()) -> np.ndarray:
    """The class labels in a base classifier's output on ``batch`` inputs: labels ``(B,)`` or scores ``(B, K)``.

    Raises ``ValueError`` for the wrong number of outputs, labels outside ``[0, num_classes)`` or scores that are
    not finite.
    """
    out = np.asarray(output)
    if out.ndim == 2:
        check_scores(out.shape, batch, num_classes, input_shape)
        if not np.isfinite(out).all():
            raise diverged("scores", batch)
        return out.argmax(axis=1)
    if out.ndim != 1:
        raise ValueError(
            f"base returned an output of shape {out.shape}; expected labels ({batch},) or scores ({batch}, K)"
        )
    if out.shape[0] != batch:
        raise ValueError(f"base returned {out.shape[0]} labels for a batch of {batch}")
    if not np.issubdtype(out.dtype, np.integer):
        raise ValueError(f"base returned labels of dtype {out.dtype}; expected integer class labels")
    if batch and (out.min() < 0 or out.max() >= num_classes):
        raise ValueError(
            f"base returned labels outside [0, num_classes={num_classes}): "
            f"{np.unique(out[(out < 0) | (out >= num_classes)])[:5].tolist()}"
        )
    return out


class CallableBackend:
    """Evaluates a numpy callable on the batches of :func:`rs_plugin.engine.noisy_batches`.

    The callable must not keep a reference to its argument: the buffer is overwritten by the next batch.
    """

    def __init__(self, fn: Callable[[np.ndarray], Any], num_classes: int) -> None:
        self.fn = fn
        self.num_classes = num_classes

    def prepare(self, x: Any) -> np.ndarray:
        return check_input(x)

    def stream(self, noise: Noise, seed: int) -> NumpyStream:
        return NumpyStream(noise, seed)

    def identity(self) -> tuple:
        return (id(self.fn), "cpu")

    def counts(self, xs: Sequence[Any], nums: Sequence[int], streams: Sequence[Any], batch_size: int) -> np.ndarray:
        counts = np.zeros((len(xs), self.num_classes), dtype=np.int64)
        for output, owner, shape in self._outputs(xs, nums, streams, batch_size):
            np.add.at(counts, (owner, labels(output, len(owner), self.num_classes, shape)), 1)
        return counts

    def soft_sums(self, xs: Sequence[Any], nums: Sequence[int], streams: Sequence[Any], batch_size: int) -> np.ndarray:
        sums = np.zeros((len(xs), self.num_classes))
        for output, owner, shape in self._outputs(xs, nums, streams, batch_size):
            np.add.at(sums, owner, probabilities(output, len(owner), self.num_classes, shape))
        return sums

    def soft_pairs(
        self, xs: Sequence[Any], nums: Sequence[int], streams: Sequence[Any], batch_size: int, classes: Sequence[int]
    ) -> list[np.ndarray]:
        chosen, rows = np.asarray(classes), []
        for output, owner, shape in self._outputs(xs, nums, streams, batch_size):
            rows.append(pairs_of(probabilities(output, len(owner), self.num_classes, shape), chosen[owner]))
        return split_rows(np.concatenate(rows), nums)

    def _outputs(self, xs: Sequence[Any], nums: Sequence[int], streams: Sequence[Any], batch_size: int) -> Any:
        """The base's output on each batch of the numpy noisy-evaluation loop, with the batch's owners and the input
        shape."""
        stacked = np.stack(xs)
        for batch, owner in noisy_batches(stacked, nums, streams, batch_size):
            yield run_base(self.fn, batch), owner, stacked.shape[1:]


@hookimpl(trylast=True)
def rs_plugin_make_backend(model: Any, num_classes: int, device: Any) -> CallableBackend | None:
    if not callable(model):
        return None
    if device not in (None, "cpu", "auto"):
        raise ValueError(f"device={device!r} applies to a framework plugin's models; a plain callable runs where it is")
    return CallableBackend(model, num_classes)
