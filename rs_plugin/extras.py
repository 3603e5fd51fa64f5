"""Optional dependencies: one clear line naming the extra to install when one is missing."""

from __future__ import annotations

import importlib.util


def require(module: str, extra: str, purpose: str) -> None:
    """``ImportError`` naming ``purpose`` and ``pip install 'rs-plugin[extra]'`` unless ``module`` is importable."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ImportError(f"{purpose} needs {module}, which is not installed: pip install 'rs-plugin[{extra}]'")
