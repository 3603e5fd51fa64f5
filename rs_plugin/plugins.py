"""The plugin manager: built-in plugins, entry-point plugins and lookups by name."""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from typing import Any

import pluggy

from . import hookspecs

AUTOLOAD_ENV = "RS_PLUGIN_DISABLE_PLUGIN_AUTOLOAD"
"""Set this environment variable (to anything non-empty) to skip loading entry-point plugins."""

BUILTIN_PLUGINS = ("rs_plugin.noises", "rs_plugin.backends", "rs_plugin.executors")
DEFAULT_DENOISER = "dncnn"
"""The denoiser that loads ``--denoiser FILE`` (a checkpoint) when ``FILE`` names no denoiser plugin."""


@functools.cache
def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with built-in and (unless disabled) entry-point plugins registered.

    Raises ``pluggy.PluginValidationError`` when a plugin implements a hook that does not exist.
    Call ``get_plugin_manager.cache_clear()`` to rebuild it after installing a plugin.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    if not os.environ.get(AUTOLOAD_ENV):
        pm.load_setuptools_entrypoints(hookspecs.PROJECT)
    pm.check_pending()
    return pm


def _merged(results: list[dict[str, Any]]) -> dict[str, Any]:
    # pluggy returns the last registered plugin first; let later plugins override earlier ones.
    merged: dict[str, Any] = {}
    for result in reversed(results):
        merged.update(result)
    return merged


def noise_families() -> dict[str, Callable[[float], Any]]:
    """Every noise family provided by a plugin, by name."""
    return _merged(get_plugin_manager().hook.rs_plugin_add_noises())


def executors() -> dict[str, Callable[..., Any]]:
    """Every executor provided by a plugin, by name."""
    return _merged(get_plugin_manager().hook.rs_plugin_add_executors())


def denoisers() -> dict[str, Callable[[float, str | None], Any]]:
    """Every denoiser provided by a plugin, by name."""
    return _merged(get_plugin_manager().hook.rs_plugin_add_denoisers())


def make_denoiser(spec: str, sigma: float) -> Any:
    """The denoiser that ``spec`` names, for Gaussian noise ``sigma``: ``NAME`` or ``NAME:SOURCE`` for the plugin
    denoiser ``NAME`` (called with ``sigma`` and ``SOURCE`` or None); anything else is a checkpoint file for the
    built-in ``dncnn``. ``ValueError`` listing the known denoisers when none applies."""
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


def trainers() -> dict[str, Callable[..., Any]]:
    """Every training method provided by a plugin, by name."""
    return _merged(get_plugin_manager().hook.rs_plugin_add_trainers())


def make_noise(name: str, sigma: float) -> Any:
    """The noise family ``name`` at ``sigma``; ``ValueError`` listing the known families otherwise."""
    families = noise_families()
    if name not in families:
        raise ValueError(f"noise: unknown noise {name!r}; known noises: {', '.join(sorted(families))}")
    return families[name](sigma)


def make_backend(model: Any, num_classes: int, device: Any = None) -> Any:
    """The backend a plugin provides for ``model``; ``TypeError`` when no plugin accepts it."""
    backend = get_plugin_manager().hook.rs_plugin_make_backend(
        model=model, num_classes=num_classes, device=device
    )
    if backend is None:
        hint = f" (entry-point plugins are off: {AUTOLOAD_ENV} is set)" if os.environ.get(AUTOLOAD_ENV) else ""
        raise TypeError(
            f"base: no plugin can evaluate a {type(model).__module__}.{type(model).__qualname__}{hint}; "
            "pass a callable mapping a float32 batch to labels (B,) or scores (B, K), a torch.nn.Module "
            "or an ART classifier"
        )
    return backend


def make_executor(name: str, **options: Any) -> Any:
    """The executor ``name`` built with ``options``; ``ValueError`` listing the known executors otherwise."""
    known = executors()
    if name not in known:
        raise ValueError(f"executor: unknown executor {name!r}; known executors: {', '.join(sorted(known))}")
    return known[name](**options)


def make_trainer(name: str, sigma: float | None = None, **options: Any) -> Any:
    """The training method ``name`` at noise level ``sigma`` with ``options`` (``noise=`` and its hyperparameters);
    ``ValueError`` listing the known methods otherwise."""
    known = trainers()
    if name not in known:
        raise ValueError(f"method: unknown method {name!r}; known methods: {', '.join(sorted(known)) or 'none'}")
    return known[name](sigma, **options)


def describe_plugins() -> list[tuple[str, str, list[str]]]:
    """``(name, module or distribution, hooks implemented)`` for every registered plugin."""
    pm = get_plugin_manager()
    dists = {id(plugin): f"{dist.project_name} {dist.version}" for plugin, dist in pm.list_plugin_distinfo()}
    rows = []
    for name, plugin in pm.list_name_plugin():
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        rows.append((name, dists.get(id(plugin), getattr(plugin, "__name__", repr(plugin))), hooks))
    return rows
