"""The Ray executor: per-example tasks on a Ray cluster, one copy of the model per actor.

Each worker is a Ray actor (one CPU, and one GPU when the cluster has GPUs) that builds the task's
state on its first example and keeps it. The driver keeps :data:`IN_FLIGHT` examples queued per actor
and hands out the next index whenever one finishes, so fast and slow examples balance themselves.
A worker process that dies is restarted by Ray, which re-runs the calls it had queued (at most
``max_restarts`` times per actor); as tasks are deterministic per example, nothing is lost or changed.
Ray is imported only when a map starts.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterable, Iterator
from typing import Any

from rs_plugin.executors import Task

IN_FLIGHT = 2
"""Examples queued per actor: one running, one waiting, so that an actor never idles on the driver."""

_HOST_PORT = re.compile(r"^(?:ray://)?\[?([^\s\]/]+?)\]?:(\d{1,5})$")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise ImportError("the ray executor needs Ray: pip install 'rs-plugin[ray]'") from err
    return ray


def check_address(address: str, timeout: float = 10.0) -> None:
    """Raise ``ConnectionError`` unless ``address`` (``HOST:PORT`` or ``ray://HOST:PORT``) accepts a TCP
    connection within ``timeout`` seconds (Ray itself would keep retrying for minutes); ``ValueError``
    for an address of another form."""
    match = _HOST_PORT.match(address)
    if match is None:
        raise ValueError(f"address: expected auto, local, HOST:PORT or ray://HOST:PORT, got {address!r}")
    host, port = match.group(1), int(match.group(2))
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        raise ConnectionError(f"address: cannot reach a Ray cluster at {address}: {err}") from None


class _Worker:
    """The body of a Ray actor: one task and, after the first example, its state (model, data)."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.state: Any = None

    def run(self, index: int) -> Any:
        if self.state is None:
            self.state = self.task.setup()
        return self.task(self.state, index)


class RayExecutor:
    """Runs a task over examples on Ray actors and yields results as they finish.

    ``workers``: the number of actors (default: one per GPU of the cluster, else one per CPU);
    ``address``: the cluster (``None``: ``RAY_ADDRESS`` or a new local instance, ``"auto"``: the running
    cluster, ``HOST:PORT``, ``ray://HOST:PORT``); ignored when Ray is already initialised in this process.
    A Ray instance started by :meth:`map` is shut down when the map ends.
    """

    def __init__(
        self,
        workers: int | None = None,
        address: str | None = None,
        *,
        cpus_per_worker: float = 1,
        gpus_per_worker: float | None = None,
        max_restarts: int = 3,
    ) -> None:
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers must be a positive number of Ray actors, got {workers!r}")
        if address is not None and address not in ("auto", "local") and not _HOST_PORT.match(address):
            raise ValueError(f"address: expected auto, local, HOST:PORT or ray://HOST:PORT, got {address!r}")
        if max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {max_restarts}")
        self.workers = workers
        self.address = address
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker
        self.max_restarts = max_restarts

    def _connect(self, ray: Any) -> bool:
        """Initialise Ray unless it is; return whether this call started it."""
        if ray.is_initialized():
            return False
        if self.address not in (None, "auto", "local"):
            check_address(self.address)
        ray.init(address=self.address, include_dashboard=False, logging_level=logging.WARNING)
        return True

    def _actor_options(self, ray: Any) -> tuple[int, dict[str, Any]]:
        resources = ray.cluster_resources()
        cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
        per_gpu = self.gpus_per_worker if self.gpus_per_worker is not None else (1 if gpus else 0)
        workers = self.workers or int(gpus // per_gpu if per_gpu else cpus // self.cpus_per_worker) or 1
        if workers * self.cpus_per_worker > cpus or workers * per_gpu > gpus:
            raise ValueError(
                f"workers: {workers} workers need {workers * self.cpus_per_worker:g} CPUs and {workers * per_gpu:g} "
                f"GPUs; the Ray cluster has {cpus:g} CPUs and {gpus:g} GPUs"
            )
        options = {
            "num_cpus": self.cpus_per_worker,
            "num_gpus": per_gpu,
            "max_restarts": self.max_restarts,
            "max_task_retries": self.max_restarts,
        }
        return workers, options

    def map(self, task: Task, indices: Iterable[int]) -> Iterator[Any]:
        """Yield ``task(state, i)`` for every ``i`` in ``indices``, in the order they finish.

        An exception raised by the task is re-raised here (its remote traceback chained); a worker that
        died more than ``max_restarts`` times raises ``RuntimeError`` naming the examples it was running.
        """
        ray = _import_ray()
        started = self._connect(ray)
        actors: list[Any] = []
        try:
            workers, options = self._actor_options(ray)
            actor_class = ray.remote(_Worker).options(**options)
            actors = [actor_class.remote(task) for _ in range(workers)]
            todo = iter(indices)
            pending: dict[Any, tuple[Any, int]] = {}

            def submit(actor: Any) -> None:
                index = next(todo, None)
                if index is not None:
                    pending[actor.run.remote(index)] = (actor, index)

            for _ in range(IN_FLIGHT):
                for actor in actors:
                    submit(actor)
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                actor, index = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as err:
                    if isinstance(err.cause, Exception):
                        raise err.cause from err
                    raise
                except ray.exceptions.RayActorError as err:
                    lost = sorted([index, *(i for a, i in pending.values() if a is actor)])
                    raise RuntimeError(
                        f"the Ray worker running examples {', '.join(map(str, lost))} died "
                        f"{self.max_restarts + 1} times: {str(err).splitlines()[0]}"
                    ) from err
                yield result
                submit(actor)
        finally:
            for actor in actors:
                ray.kill(actor)
            if started:
                ray.shutdown()
