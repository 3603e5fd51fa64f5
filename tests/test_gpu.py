"""The GPU path without a GPU: the Ray executor's one worker per GPU (on a fake Ray), and benchmarks/gpu.py at its test
size on the CPU. The CUDA tests themselves are in test_torch_backend.py and test_smoothed_module.py."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from benchmark_scripts import load

from rs_plugin.adapters.ray import RayExecutor

ROOT = Path(__file__).resolve().parents[1]


class Ref(SimpleNamespace):
    """A finished call's object reference (hashable, as Ray's are)."""

    __hash__ = object.__hash__

    def __init__(self, value: Any) -> None:
        super().__init__(value=value)


class Actor(SimpleNamespace):
    __hash__ = object.__hash__


class FakeRay:
    """Just enough of Ray for :meth:`RayExecutor.map`: a running cluster of ``resources``; actors run in-process and
    remember the options they were made with."""

    exceptions = SimpleNamespace(RayTaskError=type("RayTaskError", (Exception,), {}),
                                 RayActorError=type("RayActorError", (Exception,), {}))

    def __init__(self, resources: dict[str, float]) -> None:
        self.resources, self.actors = resources, []

    def is_initialized(self) -> bool:
        return True

    def cluster_resources(self) -> dict[str, float]:
        return self.resources

    def remote(self, cls: type) -> Any:
        ray = self

        class ActorClass:
            def options(self, **options: Any) -> Any:
                self.given = options
                return self

            def remote(self, task: Any) -> Any:
                worker, ran = cls(task), []

                def run(index: int) -> Any:
                    ran.append(index)
                    return Ref(worker.run(index))

                actor = Actor(options=self.given, ran=ran, run=SimpleNamespace(remote=run))
                ray.actors.append(actor)
                return actor

        return ActorClass()

    def wait(self, refs: list[Any], num_returns: int) -> tuple[list[Any], list[Any]]:
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref: Any) -> Any:
        return ref.value

    def kill(self, actor: Any) -> None:
        pass


class Square:
    def setup(self) -> None:
        return None

    def __call__(self, state: None, index: int) -> int:
        return index * index


def test_the_ray_executor_starts_one_worker_per_gpu_each_holding_one_gpu(monkeypatch) -> None:
    from rs_plugin.adapters import ray as ray_executor

    fake = FakeRay({"CPU": 16.0, "GPU": 2.0})
    monkeypatch.setattr(ray_executor, "_import_ray", lambda: fake)
    assert sorted(RayExecutor().map(Square(), range(9))) == [i * i for i in range(9)]
    assert len(fake.actors) == 2 and all(actor.options["num_gpus"] == 1 for actor in fake.actors)
    assert all(actor.ran for actor in fake.actors)  # both GPUs got examples
    assert sorted(itertools.chain(*(actor.ran for actor in fake.actors))) == list(range(9))
    with pytest.raises(ValueError, match="3 workers need 3 CPUs and 3 GPUs; the Ray cluster has 16 CPUs and 2 GPUs"):
        list(RayExecutor(workers=3).map(Square(), range(3)))


@pytest.mark.parametrize(("model", "title", "certificates"), [
    ("resnet110", "ResNet-110, 3x32x32", "3,500"),
    pytest.param("resnet50", "ResNet-50, 3x224x224", "2,427", marks=pytest.mark.slow),  # torchvision's import
])
def test_the_gpu_benchmark_runs_at_its_test_size_on_the_cpu(model: str, title: str, certificates: str) -> None:
    """``benchmarks/gpu.py --device cpu --quick``: fp32 and bf16 (autocast and converted weights), the limit,
    CERTIFY's rate and its fraction of the limit, and the paper's seconds per certificate from its logs."""
    pytest.importorskip("torch")
    if model == "resnet50":
        pytest.importorskip("torchvision")
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--device", "cpu", "--quick",
                             "--models", model], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith(title) for line in lines)
    rows = [line.split() for line in lines if line.strip().startswith(("fp32", "bf16"))]
    assert [" ".join(row[:-5]) for row in rows] == ["fp32 nchw", "bf16 autocast nchw", "bf16 weights nchw"]
    assert all(float(row[-2]) > 0 and float(row[-5].replace(",", "")) > 0 for row in rows)
    (paper,) = [line for line in lines if "the paper's released logs" in line]
    assert "n/a" in paper or f"of {certificates} certificates" in paper


def test_the_gpu_batch_size_benchmark_runs_at_its_test_size_on_the_cpu() -> None:
    """``benchmarks/gpu_batch.py --device cpu --quick``: for each setting the limit by batch size, the noise alone,
    CERTIFY at a fixed size, and CERTIFY started as on a CPU and as on an accelerator (at the top size)."""
    pytest.importorskip("torch")
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_batch.py"), "--device", "cpu", "--quick",
                             "--cases", "3"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "FAILED" not in out and "ResNet-110, 3x32x32, bf16 weights channels_last" in out
    assert out.count("  limit img/s: 4: ") == 1 and out.count("certify at fixed batch") == 1
    assert out.count("  cpu start: warm-up") == 1 and out.count("  accelerator start: warm-up") == 1
    (line,) = [line for line in out.splitlines() if "accelerator start" in line]
    assert "batch size 16384" in line


def test_without_cuda_the_gpu_benchmark_stops_with_one_line(capsys) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    gpu = load("gpu")
    assert gpu.main([]) == 1
    assert gpu.main(["--device", "cpu"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith("gpu.py: no CUDA device here")
    batch = load("gpu_batch")
    assert batch.main(["--device", "cpu"]) == 1 and batch.main([]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("gpu_batch.py: --device cpu runs only with --quick") and "no CUDA device" in err[1]


def test_the_prepared_gpu_session_script_is_valid_bash_and_names_what_exists() -> None:
    """``.ci/gpu`` (the one call a lent GPU machine gets) parses, and every test file and benchmark it runs exists:
    a typo there would cost a scarce GPU session. ``bash .ci/gpu --dry-run`` runs it whole on the CPU."""
    script = ROOT / ".ci" / "gpu"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    named = {word for word in text.replace('"', " ").replace("(", " ").replace(")", " ").split()
             if word.startswith(("tests/", "benchmarks/"))}
    assert {"tests/test_torch_backend.py", "tests/test_smoothed_module.py", "benchmarks/gpu.py"} <= named
    assert all((ROOT / path).is_file() for path in named), named
