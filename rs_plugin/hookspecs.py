"""The hooks through which plugins extend rs-plugin's core.

A plugin is a module (or any object) with functions named after these hooks and marked with
:data:`hookimpl`. Built-in plugins are registered exactly like third-party ones; a third party ships
its plugin in a distribution with an entry point in the group ``rs_plugin``::

    [project.entry-points.rs_plugin]
    my_plugin = "my_package.my_plugin"

A plugin that brings hooks of its own adds their specifications in :func:`rs_plugin_addhooks`, as pytest
plugins do with ``pytest_addhooks``: the core never names them (the torch plugin's denoisers, trainers and
architectures are specified in :mod:`rs_plugin.adapters.hookspecs`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .backends import Backend
    from .commands import Command
    from .datasets import DatasetSpec
    from .executors import Executor
    from .models import ModelOption, ModelRequest
    from .noises import Noise

PROJECT = "rs_plugin"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(historic=True)
def rs_plugin_addhooks(pluginmanager: pluggy.PluginManager) -> None:
    """Add the specifications of a plugin's own hooks: ``pluginmanager.add_hookspecs(module)``. Called once for
    every plugin, whenever it is registered."""


@hookspec(firstresult=True)
def rs_plugin_make_backend(model: Any, num_classes: int, device: Any) -> Backend | None:
    """Return a :class:`~rs_plugin.backends.Backend` that evaluates ``model`` on noisy copies of an input,
    or ``None`` when ``model`` is not of a kind this plugin handles. The first non-``None`` answer wins.

    ``device`` is the user's ``device`` argument (``None``: wherever the model lives).
    """


@hookspec
def rs_plugin_add_noises() -> Mapping[str, Callable[[float], Noise]]:
    """Return noise families by name; each maps ``sigma`` and keyword options (text, from a spec string
    ``"name:key=value,..."``, :func:`~rs_plugin.plugins.make_noise`) to a :class:`~rs_plugin.noises.Noise`."""


@hookspec
def rs_plugin_add_executors() -> Mapping[str, Callable[..., Executor]]:
    """Return executors by name; each maps its options (``workers``, ``address``) to an
    :class:`~rs_plugin.executors.Executor` that runs per-example tasks."""


@hookspec
def rs_plugin_add_datasets() -> Mapping[str, DatasetSpec]:
    """Return datasets by name (:class:`~rs_plugin.datasets.DatasetSpec`: the number of classes and a loader of
    ``(x in [0, 1], label)`` sequences read from a local folder; nothing is ever downloaded)."""


@hookspec
def rs_plugin_add_model_options() -> Sequence[ModelOption]:
    """Return the options that describe a model (e.g. ``--checkpoint FILE``): they become flags of
    ``rs-plugin certify``, ``predict`` and every command that loads a model, and the entries of
    :attr:`~rs_plugin.models.ModelRequest.options`."""


@hookspec(firstresult=True)
def rs_plugin_load_model(request: ModelRequest) -> Any:
    """Return the base classifier (in eval mode) that ``request`` describes, or ``None`` when this plugin does not
    handle it. The first non-``None`` answer wins; the core's own answer (``--model MODULE:FUNCTION``) comes last."""


@hookspec
def rs_plugin_add_commands() -> Mapping[str, Command]:
    """Return subcommands of ``rs-plugin`` by name (:class:`~rs_plugin.commands.Command`), e.g. ``train``."""
