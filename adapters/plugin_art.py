"""Entry-point plugin: ART classifiers as base classifiers, through :func:`rs_plugin.adapters.art.art_backend`
(a ``PyTorchClassifier`` runs its preprocessing and model in torch; any other classifier its ``predict``).

Imports ART only when a model could be an ART classifier (ART already imported), so that the core works
without ART installed.
"""

from __future__ import annotations

import sys
from typing import Any

from rs_plugin.hookspecs import hookimpl


@hookimpl
def rs_plugin_make_backend(model: Any, num_classes: int, device: Any) -> Any:
    if sys.modules.get("art") is None:
        return None
    from art.estimators.classification.classifier import ClassifierMixin

    if not isinstance(model, ClassifierMixin):
        return None
    from .art.backend import art_backend

    return art_backend(model, num_classes, device)
