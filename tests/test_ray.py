"""The Ray executor on a local Ray with 2 CPUs: the rows of a local run, whatever dies along the way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rs_plugin.cli import main
from rs_plugin.runs import DatasetTask, run

ray = pytest.importorskip("ray")
pytest.importorskip("torch")
pytest.importorskip("sklearn")

from rs_plugin.adapters.ray import RayExecutor, check_address  # noqa: E402

TASK = DatasetTask("digits", 0.25, n0=20, n=200)


@pytest.fixture(scope="module")
def local_ray(noisy_digits_net):
    """A local Ray instance with 2 CPUs for this module (the digits model is cached before workers start)."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the tasks below travel by value
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def local_rows(tmp_path_factory, noisy_digits_net) -> list[list[str]]:
    """The rows of an uninterrupted local run over the first 24 digits."""
    out = tmp_path_factory.mktemp("local") / "local.tsv"
    run(TASK, out, max_examples=24, progress=False)
    return rows(out)


def rows(path: Path) -> list[list[str]]:
    """The rows of a results file without their time column."""
    return [line.split("\t")[:-1] for line in path.read_text().splitlines()[1:]]


class DiesOnce:
    """The task, except that the worker process running example ``index`` kills itself (once)."""

    def __init__(self, task: DatasetTask, index: int, marker: Path) -> None:
        self.task, self.index, self.marker = task, index, marker

    def setup(self):
        return self.task.setup()

    def __call__(self, state, index: int):
        if index == self.index and not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return self.task(state, index)


class AlwaysDies(DiesOnce):
    def __call__(self, state, index: int):
        if index == self.index:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.task(state, index)


class Fails:
    def setup(self):
        return None

    def __call__(self, state, index: int):
        if index == 3:
            raise ValueError("example 3 is broken")
        return index


def test_ray_run_writes_the_rows_of_a_local_run(local_ray, local_rows, tmp_path):
    out = tmp_path / "ray.tsv"
    written = run(TASK, out, max_examples=24, executor=RayExecutor(workers=2), progress=False)
    assert written == 24
    assert rows(out) == local_rows  # same rows, sorted by idx once complete


def test_a_worker_killed_mid_run_loses_no_example(local_ray, local_rows, tmp_path):
    marker = tmp_path / "killed"
    results = list(RayExecutor(workers=2).map(DiesOnce(TASK, 5, marker), range(12)))
    assert marker.exists()  # a worker did die running example 5
    assert sorted(row["idx"] for row in results) == list(range(12))
    by_index = {row["idx"]: row for row in results}
    assert [[str(by_index[i][c]) if c != "radius" else f"{by_index[i][c]:.3}" for c in TASK.columns[:-1]]
            for i in range(12)] == local_rows[:12]


def test_a_task_error_reaches_the_driver_as_itself(local_ray):
    with pytest.raises(ValueError, match="example 3 is broken"):
        list(RayExecutor(workers=2).map(Fails(), range(6)))


def test_a_worker_that_keeps_dying_is_reported(local_ray, tmp_path):
    executor = RayExecutor(workers=1, max_restarts=0)
    # the examples lost with it: 1, those queued after it, and any whose reply the kill cut off
    with pytest.raises(RuntimeError, match=r"worker running examples [\d, ]*\b1\b[\d, ]* died 1 times"):
        list(executor.map(AlwaysDies(TASK, 1, tmp_path / "unused"), range(3)))


def test_more_workers_than_the_cluster_holds_is_an_error(local_ray):
    with pytest.raises(ValueError, match="3 workers need 3 CPUs"):
        list(RayExecutor(workers=3).map(Fails(), range(2)))


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_workers_must_be_a_positive_int(workers):
    with pytest.raises(ValueError, match="workers must be a positive number"):
        RayExecutor(workers=workers)


def test_addresses_are_checked_before_connecting():
    with pytest.raises(ValueError, match="address: expected auto, local"):
        RayExecutor(address="not an address")
    start = time.monotonic()
    with pytest.raises(ConnectionError, match=r"cannot reach a Ray cluster at 127\.0\.0\.1:1"):
        check_address("127.0.0.1:1", timeout=5)
    assert time.monotonic() - start < 10


@pytest.mark.parametrize(
    ("options", "message"),
    [(["--workers", "0"], "workers must be a positive number"), (["--address", "127.0.0.1:1"], "cannot reach")],
)
def test_the_command_line_reports_bad_workers_and_addresses(tmp_path, options, message):
    result = subprocess.run(
        [sys.executable, "-m", "rs_plugin.cli", "certify", "--sigma", "0.25", "--n", "10", "--max-examples", "2",
         "--executor", "ray", *options, "--out", str(tmp_path / "out.tsv")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_killed_ray_driver_resumes_to_the_rows_of_a_local_run(local_ray, tmp_path):
    out, local = tmp_path / "killed.tsv", tmp_path / "local.tsv"
    command = ["certify", "--sigma", "0.25", "--n", "2000", "--max-examples", "20", "--no-progress",
               "--executor", "ray", "--workers", "2", "--out", str(out)]
    process = subprocess.Popen([sys.executable, "-m", "rs_plugin.cli", *command], start_new_session=True,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while not (out.exists() and out.read_text().count("\n") > 2):
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "no rows written in 180 s"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the driver, and the Ray instance it started
    process.wait()
    assert 2 <= out.read_text().count("\n") - 1 < 20, "the run was not killed mid-way"
    assert main(command) == 0  # resumed (here on the test's Ray instance)
    run(DatasetTask("digits", 0.25, n=2000), local, max_examples=20, progress=False)
    assert [row[0] for row in rows(out)] == [str(i) for i in range(20)]
    assert rows(out) == rows(local)
