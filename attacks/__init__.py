"""Attacks on smoothed classifiers and the tightness experiment (torch and torchattacks): :mod:`.smoothadv`,
:mod:`.deepfool`, :mod:`.tightness` (the experiment, a task the executors run), :mod:`.command`
(``rs-plugin tightness``), :mod:`.plugin` (its entry point).

Names are imported on first use, so that loading the ``attacks`` entry-point plugin does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "SmoothAdvPGD": "smoothadv",
    "deepfool_radii": "deepfool",
    "empirical_robust_accuracy": "deepfool",
    "tightness_experiment": "tightness",
    "TightnessConfig": "tightness",
    "TightnessTask": "tightness",
    "ArraySource": "tightness",
    "TightnessResult": "tightness",
    "ExampleResult": "tightness",
    "AttackResult": "tightness",
    "FactorResult": "tightness",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
