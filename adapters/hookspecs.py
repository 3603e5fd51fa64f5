"""The hooks the torch plugin adds (through ``rs_plugin_addhooks``, as pytest plugins add theirs): denoisers,
training methods and network architectures. The core never names them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from rs_plugin.hookspecs import hookspec

if TYPE_CHECKING:
    from .models import Architecture


@hookspec
def rs_plugin_add_denoisers() -> Mapping[str, Callable[[float, str | None], Any]]:
    """Return denoisers by name; each maps ``(sigma, source)`` to a torch ``nn.Module`` taking a batch in ``[0, 1]``
    with Gaussian noise of standard deviation ``sigma`` to the denoised batch of the same shape (see
    :mod:`rs_plugin.adapters.plugin_denoisers`). ``source`` is what follows ``NAME:`` in ``--denoiser NAME:SOURCE``
    (e.g. a weights file), or ``None``."""


@hookspec
def rs_plugin_add_trainers() -> Mapping[str, Callable[..., Any]]:
    """Return training methods by name; each maps ``(sigma, *, noise="gaussian", **options)`` to a trainer (see
    :class:`rs_plugin.adapters.trainers.Trainer`: a loss per batch, hyperparameters in a config dataclass)."""


@hookspec
def rs_plugin_add_architectures() -> Mapping[str, Architecture]:
    """Return network architectures by name (:class:`~rs_plugin.adapters.models.Architecture`), the ``arch`` of a
    checkpoint in the paper's format ``{"arch": NAME, "state_dict": ...}``."""
