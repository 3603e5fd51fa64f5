"""Executors run a per-example task over many examples; this module is the built-in ``local`` one."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from .hookspecs import hookimpl


class Task(Protocol):
    """Work on one example at a time; picklable, so that remote workers can run it."""

    def setup(self) -> Any:
        """Build what every example needs (model, data) once per worker."""

    def __call__(self, state: Any, index: int) -> Any:
        """The result for example ``index``: a deterministic function of the index and the task."""


class Executor(Protocol):
    """Runs a task over examples and yields results as they finish, in any order."""

    def map(self, task: Task, indices: Iterable[int]) -> Iterator[Any]:
        """Yield ``task(state, i)`` for every ``i`` in ``indices``."""


class LocalExecutor:
    """Runs every example in this process, in order."""

    def __init__(self, workers: int = 1, address: str | None = None) -> None:
        if workers != 1:
            raise ValueError(f"workers: the local executor runs one worker, got {workers}; use --executor ray")
        if address is not None:
            raise ValueError("address: the local executor takes no cluster address; use --executor ray")

    def map(self, task: Task, indices: Iterable[int]) -> Iterator[Any]:
        """Yield the results in order; a task with ``rows(state, indices)`` and ``pack_size(state)`` gets groups
        of examples that share forward passes."""
        state = task.setup()
        if not hasattr(task, "rows"):
            yield from (task(state, index) for index in indices)
            return
        indices, start = list(indices), 0
        while start < len(indices):
            size = task.pack_size(state)
            yield from task.rows(state, indices[start : start + size])
            start += size


@hookimpl
def rs_plugin_add_executors() -> dict[str, type]:
    return {"local": LocalExecutor}
