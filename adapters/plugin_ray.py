"""Entry-point plugin: the ``ray`` executor (:class:`rs_plugin.adapters.ray.RayExecutor`).

Registering it does not import Ray; Ray is imported when a run starts.
"""

from __future__ import annotations

from rs_plugin.hookspecs import hookimpl


@hookimpl
def rs_plugin_add_executors() -> dict[str, type]:
    from .ray import RayExecutor

    return {"ray": RayExecutor}
