"""Result files in the paper's format: one tab-separated row per example.

CERTIFY files have the columns ``idx label predict radius correct time`` and PREDICT files
``idx label predict correct time`` (``predict`` is -1 on abstention, ``radius`` is printed with three
significant digits, ``time`` as ``H:MM:SS.ffffff``), exactly as the paper's ``certify.py`` and
``predict.py`` write them. Runs of CERTIFY with target radii add a trailing ``samples`` column (the
base-classifier evaluations used); readers of the paper's format that select columns by name, such as
:mod:`rs_plugin.analysis`, read those files unchanged.

:func:`read_results` refuses rows no run could have written, naming ``file:line``; the writers that resume a
killed run are in :mod:`rs_plugin.results.writers`, the run settings recorded beside the rows in
:mod:`rs_plugin.results.settings`.
"""

from __future__ import annotations

import datetime
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

CERTIFY_COLUMNS = ("idx", "label", "predict", "radius", "correct", "time")
PREDICT_COLUMNS = ("idx", "label", "predict", "correct", "time")
SAMPLES_COLUMN = "samples"
"""The extension column of sequential CERTIFY runs: base-classifier evaluations used for the example."""

_INT_COLUMNS = {"idx", "label", "predict", "correct", SAMPLES_COLUMN}
_TIMEDELTA = re.compile(r"^(?:(-?\d+) days?, )?(\d+):(\d\d):(\d\d(?:\.\d+)?)$")


class ResultsError(ValueError):
    """A results file that cannot be read or appended to; the message names the file (``file:line``)."""


def format_time(seconds: float) -> str:
    """``seconds`` as the paper writes it: ``str(datetime.timedelta(seconds=...))``, e.g. ``0:00:15.400000``."""
    return str(datetime.timedelta(seconds=seconds))


def parse_time(text: str) -> float:
    """Seconds from either time format of the paper's logs: ``15.4`` or ``[D day[s], ]H:MM:SS[.ffffff]``."""
    try:
        return float(text)
    except ValueError:
        pass
    match = _TIMEDELTA.match(text)
    if match is None:
        raise ValueError(f"time {text!r} is neither seconds nor H:MM:SS[.ffffff]")
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def format_row(row: Mapping[str, Any], columns: Iterable[str]) -> str:
    """One line (with its newline) of ``row``'s values for ``columns``, formatted as the paper does."""
    fields = []
    for column in columns:
        value = row[column]
        if column == "radius":
            fields.append(f"{value:.3}")
        elif column == "time":
            fields.append(format_time(value))
        else:
            fields.append(str(value))
    return "\t".join(fields) + "\n"


def _parse_field(column: str, text: str) -> float:
    if column in _INT_COLUMNS:
        return int(text)
    if column == "time":
        return parse_time(text)
    value = float(text)
    if value != value and column != "radius":  # a NaN radius gets _check_row's message
        raise ValueError(text)
    return value


def _parse_line(line: str, columns: tuple[str, ...], where: str) -> list[float]:
    fields = line.split("\t")
    if len(fields) != len(columns):
        raise ResultsError(
            f"{where}: expected {len(columns)} tab-separated fields ({' '.join(columns)}), got {len(fields)}: "
            f"{line[:80]!r}"
        )
    values: list[float] = []
    for column, text in zip(columns, fields, strict=True):
        try:
            values.append(_parse_field(column, text))
        except ValueError:
            raise ResultsError(f"{where}: column {column!r}: cannot read {text!r}") from None
    _check_row(dict(zip(columns, values, strict=True)), where)
    return values


def _check_row(row: Mapping[str, float], where: str) -> None:
    """``ResultsError`` naming ``where`` unless the row is one CERTIFY or PREDICT can write: ``idx`` and ``label``
    >= 0, ``predict`` a class or -1, ``correct`` equal to ``predict == label``, a time finite and >= 0, a radius
    finite, >= 0 and 0 on abstention."""
    problems = []
    if row["idx"] < 0 or row["label"] < 0 or row["predict"] < -1:
        problems.append("idx and label must be >= 0 and predict >= -1 (-1: abstained)")
    if row["correct"] != int(row["predict"] == row["label"]):
        problems.append(
            f"correct is {row['correct']} but predict {row['predict']} and label {row['label']} "
            f"{'agree' if row['predict'] == row['label'] else 'differ'}"
        )
    if not (math.isfinite(row["time"]) and row["time"] >= 0):
        problems.append(f"time must be finite and >= 0 seconds, got {row['time']}")
    radius = row.get("radius", 0.0)
    if not (math.isfinite(radius) and radius >= 0):
        problems.append(f"radius must be finite and >= 0, got {radius}")
    elif row["predict"] == -1 and radius != 0:
        problems.append(f"an abstention (predict -1) has radius 0, got {radius}")
    if problems:
        raise ResultsError(f"{where}: {'; '.join(problems)}")


def _parse_header(line: str, where: str) -> tuple[str, ...]:
    columns = tuple(line.rstrip("\r\n").split("\t"))
    missing = [c for c in PREDICT_COLUMNS if c not in columns]
    if missing:
        raise ResultsError(
            f"{where}: not a results file: the header lacks {', '.join(missing)} "
            f"(expected {' '.join(CERTIFY_COLUMNS)}, tab-separated)"
        )
    return columns


def _decode(data: bytes, path: str) -> str:
    """``data`` as UTF-8 text; ``ResultsError`` naming ``path:line`` where it is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ResultsError(f"{path}:{line}: not UTF-8 text (byte {data[err.start]:#04x}): not a results file") from None


@dataclass(frozen=True)
class Results:
    """The rows of a results file, column by column (``time`` in seconds, whichever format was read)."""

    path: str
    columns: tuple[str, ...]
    data: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.data["idx"])

    def __getitem__(self, column: str) -> np.ndarray:
        if column not in self.data:
            raise KeyError(f"{self.path} has no column {column!r} (columns: {' '.join(self.columns)})")
        return self.data[column]


def read_results(path: str | os.PathLike) -> Results:
    """Read a results file of the paper's format (either time format, any extra columns, blank lines skipped).

    Raises ``FileNotFoundError`` for a missing file and :class:`ResultsError` naming ``file:line`` for
    anything malformed or impossible: text that is not UTF-8, a row of the wrong length or with an
    unreadable value, an ``idx`` given twice, ``correct`` that disagrees with ``predict == label``, a
    time or a radius that is negative, infinite or NaN (a radius not 0 on an abstention).
    """
    name = os.fspath(path)
    with open(name, "rb") as file:
        text = _decode(file.read(), name)
    # lines end at "\n" alone (as the writers write them; "\r\n" read too), so that line numbers are an editor's
    lines = [line.removesuffix("\r") for line in text.removesuffix("\n").split("\n")] if text else []
    if not lines:
        raise ResultsError(f"{name}:1: empty file, expected the header {' '.join(CERTIFY_COLUMNS)}")
    columns = _parse_header(lines[0], f"{name}:1")
    rows, first_seen = [], {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        values = _parse_line(line, columns, f"{name}:{number}")
        idx = int(values[columns.index("idx")])
        if idx in first_seen:
            raise ResultsError(f"{name}:{number}: idx {idx} is already on line {first_seen[idx]}")
        first_seen[idx] = number
        rows.append(values)
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(columns))
    data = {
        column: table[:, k].astype(np.int64) if column in _INT_COLUMNS else table[:, k]
        for k, column in enumerate(columns)
    }
    return Results(name, columns, data)


