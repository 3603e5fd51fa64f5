"""The scripts of benchmarks/ imported in tests. Each script imports its siblings by name (``limit``,
``throughput``), as it does when run as ``python benchmarks/<name>.py``, so benchmarks/ must be on ``sys.path``
while it is imported."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module; benchmarks/ is on ``sys.path`` only while it (and the siblings it
    imports) are imported."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))
