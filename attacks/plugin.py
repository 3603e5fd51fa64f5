"""Entry-point plugin: the attack ``"smoothadv_pgd"`` is :class:`rs_plugin.attacks.SmoothAdvPGD`.

Imports torch and torchattacks only when the attack is built, so that the core works without them.
"""

from __future__ import annotations

from typing import Any

from rs_plugin.hookspecs import hookimpl


def _smoothadv_pgd(model: Any, sigma: float, eps: Any, **options: Any) -> Any:
    from .smoothadv import SmoothAdvPGD

    return SmoothAdvPGD(model, sigma, eps, **options)


@hookimpl
def rs_plugin_add_attacks() -> dict[str, Any]:
    return {"smoothadv_pgd": _smoothadv_pgd}
