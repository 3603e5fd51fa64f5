"""Entry-point plugin: ``torch.nn.Module`` base classifiers use :class:`rs_plugin.adapters.torch.TorchBackend`.

Imports torch only when a model could be a torch module (torch already imported), so that the core
works without torch installed.
"""

from __future__ import annotations

import sys
from typing import Any

from rs_plugin.hookspecs import hookimpl


@hookimpl
def rs_plugin_make_backend(model: Any, num_classes: int, device: Any) -> Any:
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(model, torch.nn.Module):
        return None
    from .torch import TorchBackend

    return TorchBackend(model, num_classes, device)
