"""The hooks through which plugins extend rs-plugin.

A plugin is a module (or any object) with functions named after these hooks and marked with
:data:`hookimpl`. Built-in plugins are registered exactly like third-party ones; a third party ships
its plugin in a distribution with an entry point in the group ``rs_plugin``::

    [project.entry-points.rs_plugin]
    my_plugin = "my_package.my_plugin"
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .backends import Backend
    from .executors import Executor
    from .noises import Noise

PROJECT = "rs_plugin"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(firstresult=True)
def rs_plugin_make_backend(model: Any, num_classes: int, device: Any) -> Backend | None:
    """Return a :class:`~rs_plugin.backends.Backend` that evaluates ``model`` on noisy copies of an input,
    or ``None`` when ``model`` is not of a kind this plugin handles. The first non-``None`` answer wins.

    ``device`` is the user's ``device`` argument (``None``: wherever the model lives).
    """


@hookspec
def rs_plugin_add_noises() -> Mapping[str, Callable[[float], Noise]]:
    """Return noise families by name; each maps ``sigma`` to a :class:`~rs_plugin.noises.Noise`."""


@hookspec
def rs_plugin_add_executors() -> Mapping[str, Callable[..., Executor]]:
    """Return executors by name; each maps its options (``workers``, ``address``) to an
    :class:`~rs_plugin.executors.Executor` that runs per-example tasks."""


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
