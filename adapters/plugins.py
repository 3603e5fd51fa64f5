"""Lookups of what the torch plugin's own hooks provide (:mod:`rs_plugin.adapters.hookspecs`): denoisers, training
methods and architectures, by name."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from rs_plugin.plugins import collect, lookup

DEFAULT_DENOISER = "dncnn"
"""The denoiser that loads ``--denoiser FILE`` (a checkpoint) when ``FILE`` names no denoiser plugin."""


def denoisers() -> dict[str, Callable[[float, str | None], Any]]:
    """Every denoiser provided by a plugin, by name."""
    return collect("rs_plugin_add_denoisers")


def trainers() -> dict[str, Callable[..., Any]]:
    """Every training method provided by a plugin, by name."""
    return collect("rs_plugin_add_trainers")


def architectures() -> dict[str, Any]:
    """Every architecture provided by a plugin, by name (:class:`~rs_plugin.adapters.models.Architecture`)."""
    return collect("rs_plugin_add_architectures")


def architecture(name: str) -> Any:
    """The architecture ``name``; ``ValueError`` listing the known ones otherwise."""
    return lookup("architecture", name, architectures())


def make_trainer(name: str, sigma: float | None = None, **options: Any) -> Any:
    """The training method ``name`` at noise level ``sigma`` with ``options`` (``noise=`` and its hyperparameters);
    ``ValueError`` listing the known methods otherwise."""
    return lookup("method", name, trainers())(sigma, **options)


def make_denoiser(spec: str, sigma: float) -> Any:
    """The denoiser that ``spec`` names, for Gaussian noise ``sigma``: ``NAME`` or ``NAME:SOURCE`` for the plugin
    denoiser ``NAME`` (called with ``sigma`` and ``SOURCE`` or None); anything else is a checkpoint file for
    :data:`DEFAULT_DENOISER`. ``ValueError`` listing the known denoisers when none applies."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"denoiser must be a name or a checkpoint file, got {spec!r}")
    known = denoisers()
    name, sep, source = spec.partition(":")
    if name in known:
        return known[name](sigma, source if sep else None)
    names = ", ".join(sorted(known)) or "none"
    if DEFAULT_DENOISER not in known:
        raise ValueError(f"denoiser: unknown denoiser {name!r}; known denoisers: {names}")
    if not os.path.exists(spec):
        raise FileNotFoundError(f"denoiser: {spec!r} is neither a file nor a known denoiser ({names})")
    return known[DEFAULT_DENOISER](sigma, spec)
