"""Old names that still work for one release, with a ``DeprecationWarning`` naming the new one
(the naming table of the documentation lists them)."""

from __future__ import annotations

import warnings
from typing import Any

_UNSET: Any = object()


def renamed(where: str, new: str, value: Any, old: str, old_value: Any) -> Any:
    """The value of an argument renamed from ``old`` to ``new`` in ``where``: ``old_value`` (with a
    ``DeprecationWarning``) when only the old name was given, else ``value``; ``TypeError`` when both were."""
    if old_value is _UNSET or old_value is None:
        return value
    if value is not _UNSET and value is not None:
        raise TypeError(f"{where}: give {new}, not both {new} and its old name {old}")
    warnings.warn(f"{where}: {old} is deprecated, use {new}", DeprecationWarning, stacklevel=3)
    return old_value


def renamed_options(where: str, options: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """``options`` with each old name of ``names`` (old: new) replaced by its new name, with a
    ``DeprecationWarning``; ``TypeError`` when an option is given under both names."""
    options = dict(options)
    for old, new in names.items():
        if old in options:
            options[new] = renamed(where, new, options.get(new), old, options.pop(old))
    return options
