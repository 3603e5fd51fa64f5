"""The core's argument checks (:mod:`rs_plugin.checks`) on tensors, on any device."""

from __future__ import annotations

from typing import Any

import torch

from rs_plugin import checks


def as_numpy(value: Any) -> Any:
    """A tensor as a numpy array (detached, on the CPU); anything else unchanged."""
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value


def check_batch(name: str, x: Any, *, unit_range: bool = False) -> None:
    """``TypeError``/``ValueError`` naming ``name`` unless ``x`` is a non-empty tensor batch ``(B, *shape)`` of finite
    real floats, in ``[0, 1]`` when ``unit_range`` (:func:`rs_plugin.checks.batch_facts`)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a floating-point torch.Tensor batch (B, *shape), got {type(x).__name__}")
    floating = x.is_floating_point()
    low, high = (x.detach().min(), x.detach().max()) if floating and x.numel() else (0.0, 0.0)
    checks.batch_facts(name, tuple(x.shape), floating, low, high, unit_range=unit_range, kind=type(x).__name__)


def check_labels(name: str, value: Any, count: int, num_classes: int) -> None:
    """:func:`rs_plugin.checks.labels` on labels given as a tensor or an array."""
    checks.labels(name, as_numpy(value), count, num_classes)
