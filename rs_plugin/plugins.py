"""The plugin manager: built-in plugins, entry-point plugins and lookups by name."""

from __future__ import annotations

import functools
import importlib
import inspect
import os
from collections.abc import Callable
from typing import Any

import pluggy

from . import hookspecs
from .noises import Noise

AUTOLOAD_ENV = "RS_PLUGIN_DISABLE_PLUGIN_AUTOLOAD"
"""Set this environment variable (to anything non-empty) to skip loading entry-point plugins."""

BUILTIN_PLUGINS = ("rs_plugin.noises", "rs_plugin.correlated", "rs_plugin.ablation", "rs_plugin.backends",
                   "rs_plugin.executors", "rs_plugin.datasets", "rs_plugin.models")


@functools.cache
def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with built-in and (unless disabled) entry-point plugins registered, and the
    hooks they add (:func:`~rs_plugin.hookspecs.rs_plugin_addhooks`).

    Raises ``pluggy.PluginValidationError`` when a plugin implements a hook that does not exist.
    Call ``get_plugin_manager.cache_clear()`` to rebuild it after installing a plugin.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    if not os.environ.get(AUTOLOAD_ENV):
        pm.load_setuptools_entrypoints(hookspecs.PROJECT)
    pm.hook.rs_plugin_addhooks.call_historic(kwargs={"pluginmanager": pm})
    pm.check_pending()
    return pm


def collect(hook: str) -> dict[str, Any]:
    """The mappings returned by every implementation of the ``rs_plugin_add_*`` hook ``hook``, merged by name (a
    plugin registered later overrides an earlier one); empty when no plugin specifies the hook."""
    caller = getattr(get_plugin_manager().hook, hook, None)
    merged: dict[str, Any] = {}
    for result in reversed(caller() if caller is not None else []):  # pluggy answers the last registered first
        merged.update(result)
    return merged


def lookup(kind: str, name: str, known: dict[str, Any]) -> Any:
    """``known[name]``; ``ValueError`` naming ``kind`` (e.g. ``"noise"``) and listing the known names otherwise."""
    if name not in known:
        raise ValueError(f"{kind}: unknown {kind} {name!r}; known {kind}s: {', '.join(sorted(known)) or 'none'}")
    return known[name]


def noise_families() -> dict[str, Callable[[float], Any]]:
    """Every noise family provided by a plugin, by name."""
    return collect("rs_plugin_add_noises")


def executors() -> dict[str, Callable[..., Any]]:
    """Every executor provided by a plugin, by name."""
    return collect("rs_plugin_add_executors")


def parse_spec(spec: str, kind: str = "noise") -> tuple[str, dict[str, str]]:
    """``"name:key=value,key=value"`` as ``(name, {key: value})`` (values as text; ``"name"`` alone has no options);
    ``ValueError`` naming ``kind`` for an option that is not ``key=value`` or is given twice."""
    if not isinstance(spec, str):
        raise TypeError(f"{kind} must be a name (optionally name:key=value,...), got {type(spec).__name__}")
    name, _, rest = spec.partition(":")
    options: dict[str, str] = {}
    for item in rest.split(",") if rest else []:
        key, equals, value = (part.strip() for part in item.partition("="))
        if not key or not equals or not key.isidentifier():
            raise ValueError(f"{kind}: {item!r} in {spec!r} is not an option key=value")
        if key in options:
            raise ValueError(f"{kind}: option {key!r} given twice in {spec!r}")
        options[key] = value
    return name.strip(), options


def make_noise(spec: Any, sigma: float) -> Any:
    """The noise of ``spec`` at ``sigma``: a family's name with its options, ``"name:key=value,..."`` (the family gets
    them as keyword arguments, as text: ``"lowpass:shape=1x8x8,ratio=4"``), or a noise object (returned as is; its
    ``sigma`` must be ``sigma``). ``ValueError`` listing the known families for an unknown name, naming the options a
    family does not take."""
    if isinstance(spec, Noise):
        if spec.sigma != sigma:
            raise ValueError(f"sigma: the noise {spec!r} was made with sigma={spec.sigma}, got sigma={sigma}")
        return spec
    name, options = parse_spec(spec)
    family = lookup("noise", name, noise_families())
    parameters = list(inspect.signature(family).parameters.values())[1:]  # after sigma
    takes = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if not any(p.kind == p.VAR_KEYWORD for p in parameters) and set(options) - set(takes):
        unknown = ", ".join(sorted(set(options) - set(takes)))
        raise ValueError(f"noise: the {name} noise does not take the option(s) {unknown} (it takes: "
                         f"{', '.join(takes) or 'none'})")
    missing = [p.name for p in parameters if p.name in takes and p.default is p.empty and p.name not in options]
    if missing:
        raise ValueError(f"noise: the {name} noise needs the option(s) {', '.join(missing)} "
                         f"({name}:{','.join(f'{key}=...' for key in takes if key in missing or key in options)})")
    noise = family(sigma, **options)
    noise._spec = spec.strip()
    return noise


def make_executor(name: str, **options: Any) -> Any:
    """The executor ``name`` built with ``options``; ``ValueError`` listing the known executors otherwise."""
    return lookup("executor", name, executors())(**options)


def make_backend(model: Any, num_classes: int, device: Any = None) -> Any:
    """The backend a plugin provides for ``model``; ``TypeError`` when no plugin accepts it."""
    backend = get_plugin_manager().hook.rs_plugin_make_backend(model=model, num_classes=num_classes, device=device)
    if backend is None:
        hint = f" (entry-point plugins are off: {AUTOLOAD_ENV} is set)" if os.environ.get(AUTOLOAD_ENV) else ""
        raise TypeError(
            f"base: no plugin can evaluate a {type(model).__module__}.{type(model).__qualname__}{hint}; pass a "
            "callable mapping a float32 batch to labels (B,) or scores (B, K), or a model of an installed plugin's "
            "framework (rs-plugin plugins lists them)"
        )
    return backend


def describe_plugins() -> list[tuple[str, str, list[str]]]:
    """``(name, module or distribution, hooks implemented)`` for every registered plugin."""
    pm = get_plugin_manager()
    dists = {id(plugin): f"{dist.project_name} {dist.version}" for plugin, dist in pm.list_plugin_distinfo()}
    rows = []
    for name, plugin in pm.list_name_plugin():
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        rows.append((name, dists.get(id(plugin), getattr(plugin, "__name__", repr(plugin))), hooks))
    return rows
