"""Append-only writers that resume what a killed run left and never modify a file they cannot prove is theirs:
:class:`ResultsWriter` (the paper's TSV) and :class:`RecordsWriter` (JSON Lines records)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import IO, Any

from ..atomic import write_atomically
from .paper_format import ResultsError, _decode, _parse_field, _parse_header, _parse_line, format_row
from .settings import _write_settings, _write_text, plain_settings, read_settings, refuse_other_settings, settings_path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent writers are the user's business
    fcntl = None


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

    def close(self, *, sort: bool = False) -> None:
        """Close the file (``sort`` is for writers that can order their rows)."""
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
        self.settings = None if settings is None else plain_settings(settings)
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
        recorded = read_settings(record)
        if rows and recorded is None:
            raise ResultsError(
                f"{self.path}: its {rows} rows have no settings record ({record}: written by another program or "
                "an older rs-plugin), so they cannot be checked against this run's; give another output file"
            )
        if rows:
            refuse_other_settings(f"{self.path}: its {rows} rows", recorded, self.settings)
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
                text = header + "".join(line for _, line in sorted(rows))
                write_atomically(self.path, lambda partial: _write_text(partial, text))
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
        self.settings = plain_settings(settings)
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
            refuse_other_settings(f"{self.path}: its {len(self.records)} rows", first["settings"], self.settings)
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
