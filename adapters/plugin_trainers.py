"""Entry-point plugin: the built-in training methods of :mod:`rs_plugin.adapters.trainers`.

Each factory imports its method's module (and torch) only when it is called, so that listing plugins needs no torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from rs_plugin.hookspecs import hookimpl

METHODS = {
    "standard": ("standard", "Standard"),
    "gaussian": ("gaussian", "Gaussian"),
    "smoothadv": ("smoothadv", "SmoothAdv"),
    "consistency": ("consistency", "Consistency"),
    "macer": ("macer", "Macer"),
    "smoothmix": ("smoothmix", "SmoothMix"),
    "denoiser": ("denoiser", "Denoiser"),
}
"""Method name: (module of rs_plugin.adapters.trainers, class)."""


def _factory(module: str, name: str) -> Callable[..., Any]:
    def make(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(f"rs_plugin.adapters.trainers.{module}"), name)(*args, **kwargs)

    make.__qualname__ = make.__name__ = name
    make.__doc__ = f"rs_plugin.adapters.trainers.{module}.{name}(sigma, *, noise='gaussian', **options)"
    return make


@hookimpl
def rs_plugin_add_trainers() -> dict[str, Callable[..., Any]]:
    return {method: _factory(*home) for method, home in METHODS.items()}
