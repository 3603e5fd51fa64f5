"""Result files in the paper's format: one tab-separated row per example, written as it finishes.

CERTIFY files have the columns ``idx label predict radius correct time`` and PREDICT files
``idx label predict correct time`` (``predict`` is -1 on abstention, ``radius`` is printed with three
significant digits, ``time`` as ``H:MM:SS.ffffff``), exactly as the paper's ``certify.py`` and
``predict.py`` write them. Runs of CERTIFY with target radii add a trailing ``samples`` column (the
base-classifier evaluations used); readers of the paper's format that select columns by name, such as
:mod:`rs_plugin.analysis`, read those files unchanged.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent writers are the user's business
    fcntl = None

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
            if column in _INT_COLUMNS:
                values.append(int(text))
            elif column == "time":
                values.append(parse_time(text))
            else:
                value = float(text)
                if value != value:
                    raise ValueError(text)
                values.append(value)
        except ValueError:
            raise ResultsError(f"{where}: column {column!r}: cannot read {text!r}") from None
    return values


def _parse_header(line: str, where: str) -> tuple[str, ...]:
    columns = tuple(line.rstrip("\r\n").split("\t"))
    missing = [c for c in PREDICT_COLUMNS if c not in columns]
    if missing:
        raise ResultsError(
            f"{where}: not a results file: the header lacks {', '.join(missing)} "
            f"(expected {' '.join(CERTIFY_COLUMNS)}, tab-separated)"
        )
    return columns


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
    anything malformed.
    """
    name = os.fspath(path)
    with open(name, encoding="utf-8") as file:
        header = file.readline()
        if not header:
            raise ResultsError(f"{name}:1: empty file, expected the header {' '.join(CERTIFY_COLUMNS)}")
        columns = _parse_header(header, f"{name}:1")
        rows = [
            _parse_line(line.rstrip("\r\n"), columns, f"{name}:{number}")
            for number, line in enumerate(file, start=2)
            if line.strip()
        ]
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(columns))
    data = {
        column: table[:, k].astype(np.int64) if column in _INT_COLUMNS else table[:, k]
        for k, column in enumerate(columns)
    }
    return Results(name, columns, data)


class ResultsWriter:
    """Appends rows to a results file, resuming what an earlier (possibly killed) run left there.

    On opening: a missing or empty file gets the header; a half-written last line (no newline) is cut
    off; the header must be ``columns``; the ``idx`` of every complete row lands in :attr:`done`, so
    that the caller computes only the others. Each :meth:`write` is flushed to the operating system,
    so a killed process loses at most the row it was writing. The file is locked (``flock``) while
    open, so two runs cannot write the same file at once.
    """

    def __init__(self, path: str | os.PathLike, columns: Iterable[str]) -> None:
        self.path = os.fspath(path)
        self.columns = tuple(columns)
        self._file: IO[bytes] = open(self.path, "a+b")  # noqa: SIM115 - closed by close()
        try:
            self._lock()
            self.done = self._resume()
        except BaseException:
            self._file.close()
            raise

    def _lock(self) -> None:
        if fcntl is None:
            return
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ResultsError(f"{self.path}: another process is writing this file") from None

    def _resume(self) -> set[int]:
        self._file.seek(0)
        content = self._file.read()
        complete = content.rfind(b"\n") + 1
        if complete < len(content):
            self._file.truncate(complete)
        if complete == 0:
            self._file.write(("\t".join(self.columns) + "\n").encode())
            self._file.flush()
            return set()
        lines = content[:complete].decode("utf-8").splitlines()
        columns = _parse_header(lines[0], f"{self.path}:1")
        if columns != self.columns:
            raise ResultsError(
                f"{self.path}:1: the file has columns {' '.join(columns)}, this run writes "
                f"{' '.join(self.columns)}; give another output file"
            )
        return {
            int(_parse_line(line, columns, f"{self.path}:{number}")[0])
            for number, line in enumerate(lines[1:], start=2)
            if line.strip()
        }

    def write(self, row: Mapping[str, Any]) -> None:
        """Append ``row`` (a mapping with every column) and flush it."""
        self._file.write(format_row(row, self.columns).encode())
        self._file.flush()
        self.done.add(int(row["idx"]))

    def close(self, *, sort: bool = False) -> None:
        """Close the file; with ``sort``, first rewrite it with its rows in ``idx`` order, atomically
        (a crash leaves either the old or the new file)."""
        if sort:
            self._file.seek(0)
            header, *lines = self._file.read().decode("utf-8").splitlines(keepends=True)
            rows = [(int(line.split("\t", 1)[0]), line) for line in lines if line.strip()]
            if rows != sorted(rows):
                partial = f"{self.path}.{os.getpid()}.tmp"
                with open(partial, "w", encoding="utf-8") as file:
                    file.write(header)
                    file.writelines(line for _, line in sorted(rows))
                os.replace(partial, self.path)
        self._file.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
