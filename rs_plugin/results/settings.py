"""Run settings: what a resumed run must share with the rows already written.

The paper's format has no room for them, so they are recorded next to the rows (``FILE.settings.json``); a resume
with other settings is refused, naming the difference.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

from ..atomic import write_atomically
from .paper_format import ResultsError

SETTINGS_SUFFIX = ".settings.json"
_SETTINGS_FORMAT = "rs-plugin run settings"
def settings_path(path: str | os.PathLike) -> str:
    """The settings record kept next to the results file ``path``: ``path + ".settings.json"``."""
    return os.fspath(path) + SETTINGS_SUFFIX


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's content (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def plain_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` as they read back from JSON (tuples become lists), so that records compare equal."""
    return json.loads(json.dumps(dict(settings), allow_nan=False))


def settings_difference(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    """The settings that differ, e.g. ``"n 2000 there, 100 here; alpha 0.001 there, 0.3 here"`` ("" when none).

    A setting missing on one side counts as None (a field added later, off by default, changes nothing); a
    file's path may differ when its ``NAME_sha256`` is recorded on both sides and equal (the file moved)."""
    current = plain_settings(current)
    differences = []
    for name in [*recorded, *(key for key in current if key not in recorded)]:
        there, here = recorded.get(name), current.get(name)
        digest = recorded.get(f"{name}_sha256")
        if there != here and not (digest is not None and digest == current.get(f"{name}_sha256")):
            differences.append(f"{name} {json.dumps(there)} there, {json.dumps(here)} here")
    return "; ".join(differences)


def read_settings(path: str) -> dict[str, Any] | None:
    """The settings recorded at ``path`` (None when there is no such file); ``ResultsError`` when the file is
    not a settings record written by rs-plugin."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        return None
    try:
        record = json.loads(data.decode("utf-8"))
    except ValueError:
        record = None
    if not (
        isinstance(record, dict)
        and record.get("format") == _SETTINGS_FORMAT
        and isinstance(record.get("settings"), dict)
    ):
        raise ResultsError(
            f"{path}: not a settings record written by rs-plugin; move it away or give another output file"
        )
    return record["settings"]


def _write_settings(path: str, settings: Mapping[str, Any]) -> None:
    """Record ``settings`` at ``path``, atomically (a crash leaves the old record or the new one)."""
    text = json.dumps({"format": _SETTINGS_FORMAT, "version": 1, "settings": dict(settings)}, indent=1) + "\n"
    write_atomically(path, lambda partial: _write_text(partial, text))


def refuse_other_settings(
    what: str, recorded: Mapping[str, Any], current: Mapping[str, Any], *, ignore: frozenset[str] = frozenset()
) -> None:
    """``ResultsError`` naming ``what`` (e.g. ``"out.tsv: its 12 rows"``) and every setting that differs
    (:func:`settings_difference`), unless ``recorded`` and ``current`` agree on all but ``ignore``."""
    difference = settings_difference(
        {k: v for k, v in recorded.items() if k not in ignore}, {k: v for k, v in current.items() if k not in ignore}
    )
    if difference:
        raise ResultsError(
            f"{what} were made with other settings ({difference}); give another output file, or the same settings "
            "to resume"
        )


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)


