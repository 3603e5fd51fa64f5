"""A method's hyperparameters: a frozen config dataclass, built from keyword or ``--option NAME=VALUE``
strings converted to each field's type."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from rs_plugin.deprecation import renamed_options


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """A method without hyperparameters."""


def make_config(config_class: type, options: dict[str, Any], method: str) -> Any:
    """``config_class(**options)``, options given as strings (``--option lbd=10``) converted to the field's type;
    ``ValueError`` naming an unknown option or a value of the wrong type. Old option names in the config's
    ``RENAMED`` (old: new) still work, with a ``DeprecationWarning``."""
    options = renamed_options(method, options, getattr(config_class, "RENAMED", {}))
    hints = typing.get_type_hints(config_class)
    known = [field.name for field in dataclasses.fields(config_class)]
    values = {}
    for name, value in options.items():
        if name not in known:
            raise ValueError(f"option: {method} has no option {name!r}; its options: {', '.join(known) or 'none'}")
        values[name] = _convert(name, value, hints[name]) if isinstance(value, str) else value
    return config_class(**values)


def _convert(name: str, text: str, kind: Any) -> Any:
    for convert in (int, float, str):
        if convert is kind or (kind not in (int, float, str) and convert in typing.get_args(kind)):
            try:
                return convert(text)
            except ValueError:
                raise ValueError(f"option: {name} must be {convert.__name__}, got {text!r}") from None
    return text
