"""Entry-point plugin: ``rs-plugin tightness`` (:mod:`rs_plugin.attacks.command`). Registering it imports
neither torch nor torchattacks."""

from __future__ import annotations

from typing import Any

from rs_plugin.hookspecs import hookimpl

from .command import TightnessCommand


@hookimpl
def rs_plugin_add_commands() -> dict[str, Any]:
    return {"tightness": TightnessCommand()}
