"""Result files in the paper's format: one tab-separated row per example, written as it finishes.

CERTIFY files have the columns ``idx label predict radius correct time`` and PREDICT files
``idx label predict correct time`` (``predict`` is -1 on abstention, ``radius`` is printed with three
significant digits, ``time`` as ``H:MM:SS.ffffff``), exactly as the paper's ``certify.py`` and
``predict.py`` write them. Runs of CERTIFY with target radii add a trailing ``samples`` column (the
base-classifier evaluations used); readers of the paper's format that select columns by name, such as
:mod:`rs_plugin.analysis`, read those files unchanged.

Writers (:class:`ResultsWriter`, and :class:`RecordsWriter` for JSON Lines records) resume what a killed
run left and never modify a file they cannot prove is theirs. The settings a run's rows depend on are
recorded next to them (``FILE.settings.json``; the paper's format has no room for them), and a resume with
other settings is refused. :func:`read_results` refuses rows no run could have written, naming ``file:line``.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
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
    >= 0, ``predict`` a class or -1, ``correct`` equal to ``predict == label``, a radius finite, >= 0 and 0 on
    abstention."""
    problems = []
    if row["idx"] < 0 or row["label"] < 0 or row["predict"] < -1:
        problems.append("idx and label must be >= 0 and predict >= -1 (-1: abstained)")
    if row["correct"] != int(row["predict"] == row["label"]):
        problems.append(
            f"correct is {row['correct']} but predict {row['predict']} and label {row['label']} "
            f"{'agree' if row['predict'] == row['label'] else 'differ'}"
        )
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
    radius that is negative, infinite or NaN (or not 0 on an abstention).
    """
    name = os.fspath(path)
    with open(name, "rb") as file:
        lines = _decode(file.read(), name).splitlines()
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


# Run settings: what a resumed run must share with the rows already written.

SETTINGS_SUFFIX = ".settings.json"
_SETTINGS_FORMAT = "rs-plugin run settings"
UNRECORDED = frozenset({"batch", "device", "data_dir", "report"})
"""Fields of a task that do not change what its rows mean (how many inputs per forward pass, where it runs,
where the dataset is read from, what is reported at start); every other field is recorded and must match to
resume."""

MODEL_FILES = ("checkpoint", "denoiser")
"""Fields of a task that name model files (one path, or several): they are recorded with their SHA-256."""


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


def task_settings(task: Any) -> dict[str, Any]:
    """The settings of a dataclass task that its rows depend on, as plain JSON values: every field but
    :data:`UNRECORDED` (so that a field added later is recorded too), and the SHA-256 of each model file of
    :data:`MODEL_FILES` (a checkpoint is identified by its content: it may move; a denoiser given by a plugin
    name is recorded by name)."""
    settings = {
        field.name: getattr(task, field.name) for field in dataclasses.fields(task) if field.name not in UNRECORDED
    }
    for name in MODEL_FILES:
        value = settings.get(name)
        if value is None:
            continue
        paths = [os.fspath(p) for p in ([value] if isinstance(value, (str, os.PathLike)) else value)]
        if all(os.path.isfile(p) for p in paths):
            settings[name] = paths[0] if len(paths) == 1 else paths
            digests = [file_sha256(p) for p in paths]
            settings[f"{name}_sha256"] = digests[0] if len(digests) == 1 else digests
    return _plain(settings)


def _plain(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` as they read back from JSON (tuples become lists), so that records compare equal."""
    return json.loads(json.dumps(dict(settings), allow_nan=False))


def settings_difference(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    """The settings that differ, e.g. ``"n 2000 there, 100 here; alpha 0.001 there, 0.3 here"`` ("" when none).

    A setting missing on one side counts as None (a field added later, off by default, changes nothing); a
    file's path may differ when its ``NAME_sha256`` is recorded on both sides and equal (the file moved)."""
    current = _plain(current)
    differences = []
    for name in [*recorded, *(key for key in current if key not in recorded)]:
        there, here = recorded.get(name), current.get(name)
        digest = recorded.get(f"{name}_sha256")
        if there != here and not (digest is not None and digest == current.get(f"{name}_sha256")):
            differences.append(f"{name} {json.dumps(there)} there, {json.dumps(here)} here")
    return "; ".join(differences)


def _read_settings(path: str) -> dict[str, Any] | None:
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
    partial = f"{path}.{os.getpid()}.tmp"
    with open(partial, "w", encoding="utf-8") as file:
        json.dump({"format": _SETTINGS_FORMAT, "version": 1, "settings": dict(settings)}, file, indent=1)
        file.write("\n")
    os.replace(partial, path)


def _refuse_other_settings(path: str, rows: int, recorded: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    difference = settings_difference(recorded, current)
    if difference:
        raise ResultsError(
            f"{path}: its {rows} rows were made with other settings ({difference}); give another output file, "
            "or the same settings to resume"
        )


class _AppendOnly:
    """A file opened for appending and locked (``flock``), created if missing and removed again if it was
    created empty and then refused. Subclasses check the content in :meth:`_resume` before changing anything."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        created = not os.path.lexists(self.path)
        self._file: IO[bytes] = open(self.path, "a+b")  # noqa: SIM115 - closed by close()
        try:
            self._lock()
            self._file.seek(0)
            self.done = self._resume(self._file.read())
        except BaseException:
            self._file.close()
            if created and os.path.getsize(self.path) == 0:
                os.remove(self.path)
            raise

    def _lock(self) -> None:
        if fcntl is None:
            return
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ResultsError(f"{self.path}: another process is writing this file") from None

    def _resume(self, content: bytes) -> set[int]:
        raise NotImplementedError

    def _append(self, data: bytes) -> None:
        self._file.write(data)
        self._file.flush()

    def _cut(self, length: int) -> None:
        """Cut off a last line that a killed writer left half-written (the file was checked to be ours)."""
        self._file.truncate(length)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> _AppendOnly:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _row_prefix(text: str, columns: tuple[str, ...]) -> bool:
    """Whether ``text`` can be the start of a row of ``columns``, as a writer killed mid-line leaves it."""
    fields = text.split("\t")
    if len(fields) > len(columns):
        return False
    try:
        for column, field in zip(columns, fields[:-1], strict=False):
            _parse_field(column, field)
    except ValueError:
        return False
    return set(fields[-1]) <= set("0123456789.-+e:, days")


class ResultsWriter(_AppendOnly):
    """Appends rows to a results file, resuming what an earlier (possibly killed) run left there.

    A file that is not verifiably one this writer could have written is refused (:class:`ResultsError`)
    and left untouched, byte for byte: only a missing file, an empty one or one holding part of the header
    is started afresh, and only a file whose first line is exactly the header of ``columns``, whose complete
    rows all read back, is resumed; then a last line that a killed writer left half-written (no newline, the
    start of a row) is cut off, and the ``idx`` of every complete row lands in :attr:`done`, so that the
    caller computes only the others.

    With ``settings`` (a JSON-ready mapping, e.g. :func:`task_settings`), they are recorded next to the file
    (:func:`settings_path`) and resuming requires the same ones: rows made with other settings, or rows with
    no record of their settings, are refused, naming the difference.

    Each :meth:`write` is flushed to the operating system, so a killed process loses at most the row it was
    writing. The file is locked (``flock``) while open, so two runs cannot write the same file at once.
    """

    def __init__(
        self, path: str | os.PathLike, columns: Iterable[str], *, settings: Mapping[str, Any] | None = None
    ) -> None:
        self.columns = tuple(columns)
        self.settings = None if settings is None else _plain(settings)
        super().__init__(path)

    def _resume(self, content: bytes) -> set[int]:
        header = ("\t".join(self.columns) + "\n").encode()
        if header.startswith(content):  # empty, or the header cut short: nothing of anyone's to keep
            self._record_settings(0)
            self._append(header[len(content) :])
            return set()
        if b"\n" not in content:
            raise ResultsError(
                f"{self.path}:1: not a results file (no header line); left untouched: give another output file"
            )
        *lines, tail = _decode(content, self.path).split("\n")
        columns = _parse_header(lines[0].rstrip("\r"), f"{self.path}:1")
        if columns != self.columns:
            raise ResultsError(
                f"{self.path}:1: the file has columns {' '.join(columns)}, this run writes "
                f"{' '.join(self.columns)}; give another output file"
            )
        done: set[int] = set()
        for number, line in enumerate(lines[1:], start=2):
            if line.strip():
                done.add(int(_parse_line(line.rstrip("\r"), columns, f"{self.path}:{number}")[0]))
        if tail and not _row_prefix(tail, columns):
            raise ResultsError(
                f"{self.path}:{len(lines) + 1}: not a row: {tail[:40]!r} (no newline); left "
                "untouched: give another output file"
            )
        self._record_settings(len(done))
        if tail:
            self._cut(len(content) - len(tail.encode()))
        return done

    def _record_settings(self, rows: int) -> None:
        """Check the recorded settings against this run's (rows made with others are refused), or record them."""
        if self.settings is None:
            return
        record = settings_path(self.path)
        recorded = _read_settings(record)
        if rows and recorded is None:
            raise ResultsError(
                f"{self.path}: its {rows} rows have no settings record ({record}: written by another program or "
                "an older rs-plugin), so they cannot be checked against this run's; give another output file"
            )
        if rows:
            _refuse_other_settings(self.path, rows, recorded, self.settings)
        elif recorded != self.settings:
            _write_settings(record, self.settings)

    def write(self, row: Mapping[str, Any]) -> None:
        """Append ``row`` (a mapping with every column) and flush it."""
        self._append(format_row(row, self.columns).encode())
        self.done.add(int(row["idx"]))

    def close(self, *, sort: bool = False) -> None:
        """Close the file; with ``sort``, first rewrite it with its rows in ``idx`` order, atomically
        (a crash leaves either the old or the new file)."""
        if sort and not self._file.closed:
            self._file.seek(0)
            header, *lines = self._file.read().decode("utf-8").splitlines(keepends=True)
            rows = [(int(line.split("\t", 1)[0]), line) for line in lines if line.strip()]
            if rows != sorted(rows):
                partial = f"{self.path}.{os.getpid()}.tmp"
                with open(partial, "w", encoding="utf-8") as file:
                    file.write(header)
                    file.writelines(line for _, line in sorted(rows))
                os.replace(partial, self.path)
        super().close()

    def __enter__(self) -> ResultsWriter:
        return self


_RECORDS_FORMAT = "rs-plugin records"


class RecordsWriter(_AppendOnly):
    """Appends records (JSON objects with an int ``index``, one per line) to a file whose first line holds the
    run's ``settings``, resuming what an earlier (possibly killed) run left there, as :class:`ResultsWriter`
    does: a file that is not verifiably such a records file is refused and left untouched; records made with
    other settings are refused, naming the difference; a half-written last record is cut off; the records
    already there are in :attr:`records` (by index; their indices in :attr:`done`); each write is flushed; the
    file is locked while open.
    """

    def __init__(self, path: str | os.PathLike, settings: Mapping[str, Any]) -> None:
        self.settings = _plain(settings)
        self.records: dict[int, dict[str, Any]] = {}
        super().__init__(path)

    def _resume(self, content: bytes) -> set[int]:
        header = (json.dumps({"format": _RECORDS_FORMAT, "version": 1, "settings": self.settings}) + "\n").encode()
        if header.startswith(content):
            self._append(header[len(content) :])
            return set()
        lines = _decode(content, self.path).split("\n")
        first = _json_object(lines[0])
        if len(lines) == 1 or first.get("format") != _RECORDS_FORMAT or not isinstance(first.get("settings"), dict):
            raise ResultsError(
                f"{self.path}:1: not a records file written by rs-plugin; left untouched: give another file"
            )
        *lines, tail = lines
        for number, line in enumerate(lines[1:], start=2):
            record = _json_object(line)
            if not isinstance(record.get("index"), int) or record["index"] in self.records:
                raise ResultsError(
                    f"{self.path}:{number}: not a record of this file (a JSON object with a new "
                    "int index); left untouched"
                )
            self.records[record["index"]] = record
        if tail and not tail.startswith("{"):
            raise ResultsError(f"{self.path}:{len(lines) + 1}: not a record: {tail[:40]!r}; left untouched")
        if self.records:
            _refuse_other_settings(self.path, len(self.records), first["settings"], self.settings)
        elif first["settings"] != self.settings:  # no records yet: the settings line is simply replaced
            self._cut(0)
            self._append(header)
            return set()
        if tail:
            self._cut(len(content) - len(tail.encode()))
        return set(self.records)

    def write(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` (JSON-ready, with an int ``index``) and flush it."""
        line = json.dumps(dict(record), allow_nan=False)
        self._append((line + "\n").encode())
        self.records[int(record["index"])] = json.loads(line)
        self.done.add(int(record["index"]))

    def __enter__(self) -> RecordsWriter:
        return self


def _json_object(text: str) -> dict[str, Any]:
    """The JSON object in ``text``; an empty dict when ``text`` is not one."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
