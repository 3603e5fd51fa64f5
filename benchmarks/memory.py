"""Peak memory that one CERTIFY adds, for rs-plugin and for ART, each in a fresh process.

Each measurement runs in its own child process: it builds the network and runs one warm-up certification (n0
and n one batch, n at least 16), so that one-off allocations such as thread pools and lazily loaded kernels are not
counted. Then, just before the measured certification (n0 = one batch and the given n), it resets the peak
resident set size (Linux's VmHWM, through /proc/self/clear_refs) and notes the resident size; the peak during the
certification minus that size is the memory the certification added: one batch's noisy inputs and activations,
plus whatever grows with n. (Where VmHWM cannot be reset it falls back to ``resource.getrusage``'s peak, which only
shows growth above the process's earlier peak.) On a GPU the same is read from ``torch.cuda.max_memory_allocated``.
Every certification runs at the same fixed batch size (``--batch``, default 32, ART's default), so that the
comparison is about n, not the batch size.

- rs-plugin at n = 1,000, 10,000 and 100,000 (n / 100, n / 10, n) on 3x224x224 inputs, in one process. The
  network is a cheap stand-in (a stride-8 convolution, global pooling and a linear layer) because ResNet-50 at
  that n takes hours on a CPU, and rs-plugin's loop holds one batch whatever the network; ResNet-50 itself at
  small n (256 and 1024) shows that its memory does not grow with n either.
- ART's ``PyTorchRandomizedSmoothing.certify`` on 3x224x224 with the stand-in at n = 250, 500, 1000: ART draws all
  n noisy copies in host memory at once, so it grows with n; the table gives the growth per 1,000 samples (the
  slope between the smallest and largest n) and its extrapolation to n = 100,000.
- ``--small-cnn``: also both at n = 100,000 with the small CNN of ``throughput.py`` on 1x28x28 inputs (rs-plugin
  at n / 100 and n / 10 too, in the same process).
- ``--plot PATH``: the memory added against n on 3x224x224 (rs-plugin's and ART's runs with the stand-in, and ART's
  straight line out to n), log-log, as an image.

    python benchmarks/memory.py [--n 100000] [--resnet50-n 256 1024] [--art-n 250 500 1000] [--small-cnn]
                                [--plot docs/memory.png]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import resource
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SIGMA, ALPHA, CLASSES = 0.25, 0.001, 10
IMAGENET_SHAPE, SMALL_SHAPE = (3, 224, 224), (1, 28, 28)
NETWORKS = ("stand-in", "resnet50", "small-cnn")
WARM_UP_N = 16
"""The warm-up's n, when one batch is smaller (at alpha = 0.001 an n below 10 can certify nothing)."""


@dataclass(frozen=True)
class Job:
    """One child process: ``framework`` ("rs-plugin" or "ART") certifies one fixed random input of ``shape`` with
    ``network`` (one of :data:`NETWORKS`) once per n of ``ns``, in that order, at batch size ``batch`` on
    ``device`` ("cpu" or "cuda")."""

    framework: str
    network: str
    shape: tuple[int, ...]
    ns: tuple[int, ...]
    batch: int = 32
    device: str = "cpu"


@dataclass(frozen=True)
class Peaks:
    """A child's memory in MB: the resident set size after building the network (``start``) and after the warm-up
    (``warm``); for each n of the job, the resident set size just before its certification (``before``) and the
    peak during it (``after``); on a GPU the same for allocated device memory, otherwise None. ``method`` says how
    the peak was read: "VmHWM" (Linux: the peak is reset just before each certification, so ``after - before`` is
    what that certification added) or "ru_maxrss" (the process's peak so far: ``before`` is then the peak before
    the certification, and growth below it goes unseen)."""

    start: float
    warm: float
    before: list[float]
    after: list[float]
    gpu_before: list[float] | None
    gpu_after: list[float] | None
    method: str

    def added(self, i: int = -1) -> float:
        """Peak resident memory added by the certification with the job's ``i``-th n."""
        return self.after[i] - self.before[i]

    def gpu_added(self, i: int = -1) -> float | None:
        """The same for the device's allocated memory, or None without a GPU."""
        if self.gpu_after is None or self.gpu_before is None:
            return None
        return self.gpu_after[i] - self.gpu_before[i]


STATUS, CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def _status_mb(field: str) -> float | None:
    """A memory field of /proc/self/status (``VmRSS``, ``VmHWM``) in MB, or None where there is none."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def resident_mb() -> float:
    """This process's resident set size now, in MB (its peak so far where the current size cannot be read)."""
    current = _status_mb("VmRSS")
    return peak_mb() if current is None else current


def peak_mb() -> float:
    """This process's peak resident set size, in MB: since the last :func:`reset_peak` where Linux's VmHWM can be
    read (a forked child's ``ru_maxrss`` starts at its parent's size, VmHWM does not), otherwise ``ru_maxrss``."""
    peak = _status_mb("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if peak is None else peak  # Linux: KiB


def reset_peak() -> bool:
    """Resets this process's peak resident set size (VmHWM) to its current size; False where that is not possible
    (not Linux, or VmHWM unreadable)."""
    if _status_mb("VmHWM") is None:
        return False
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def stand_in(shape: Sequence[int], classes: int = CLASSES) -> Any:
    """A network that costs little per input and keeps little per batch: an 8x8 convolution of stride 8 to 16
    channels, ReLU, global average pooling and a linear layer, on inputs of ``shape`` (channels first, at least
    8x8), with weights drawn after ``torch.manual_seed(0)``."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(shape[0], 16, 8, stride=8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes),
    ).eval()  # fmt: skip


def build(network: str, shape: Sequence[int]) -> tuple[Any, int]:
    """``network`` (one of :data:`NETWORKS`) with random weights, in eval mode, and its number of classes."""
    import torch

    if network == "stand-in":
        return stand_in(shape), CLASSES
    if network == "resnet50":
        from rs_plugin.adapters.models import get_architecture

        torch.manual_seed(0)
        return get_architecture("resnet50").eval(), 1000
    if network == "small-cnn":
        sys.path.insert(0, str(HERE))
        from throughput import small_cnn

        return small_cnn(), CLASSES
    raise ValueError(f"unknown network {network!r}; known: {', '.join(NETWORKS)}")


def child(job: Job) -> Peaks:
    """Runs ``job`` in this process (see the module's description) and returns its peaks; meant for a fresh
    process, since the peak resident set size never falls."""
    import numpy as np
    import torch

    model, classes = build(job.network, job.shape)
    model.to(job.device)
    x = np.random.default_rng(0).random(job.shape, dtype=np.float32)
    if job.framework == "rs-plugin":
        from rs_plugin import SmoothedClassifier

        g = SmoothedClassifier(model, classes, SIGMA, batch_size=job.batch, seed=0)

        def certify(n: int) -> object:
            return g.certify(x, job.batch, n, ALPHA)

    elif job.framework == "ART":
        from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing
        from torch import nn

        art = PyTorchRandomizedSmoothing(
            model, nn.CrossEntropyLoss(), job.shape, classes, clip_values=(0, 1), sample_size=job.batch,
            device_type="gpu" if job.device.startswith("cuda") else "cpu", scale=SIGMA, alpha=ALPHA,
        )  # fmt: skip

        def certify(n: int) -> object:
            return art.certify(x[None], n=n, batch_size=job.batch)

    else:
        raise ValueError(f"unknown framework {job.framework!r}")
    gpu = job.device.startswith("cuda")
    start = resident_mb()
    certify(max(job.batch, WARM_UP_N))
    warm = resident_mb()
    before, after, gpu_before, gpu_after, method = [], [], [], [], "VmHWM"
    for n in job.ns:
        gc.collect()
        if reset_peak():
            before.append(resident_mb())
        else:
            before.append(peak_mb())
            method = "ru_maxrss"
        if gpu:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            gpu_before.append(torch.cuda.memory_allocated() / 2**20)
        certify(n)
        after.append(peak_mb())
        if gpu:
            torch.cuda.synchronize()
            gpu_after.append(torch.cuda.max_memory_allocated() / 2**20)
    return Peaks(start, warm, before, after, gpu_before if gpu else None, gpu_after if gpu else None, method)


def measure(job: Job) -> Peaks:
    """Runs ``job`` in a fresh child process (this script with ``--child``) and returns its peaks."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(asdict(job))], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(f"the child for {job} failed:\n{done.stderr[-4000:]}")
    return Peaks(**json.loads(done.stdout.strip().splitlines()[-1]))


def row(job: Job, peaks: Peaks, i: int = -1) -> str:
    """One line of the table: the job's n at position ``i`` and the memory it added."""
    shape = "x".join(map(str, job.shape))
    gpu = peaks.gpu_added(i)
    gpu_text = "" if gpu is None else f"{gpu:10.1f}{peaks.gpu_after[i]:10.0f}"  # type: ignore[index]
    return (f"{job.framework:10}{job.network:10}{shape:>10}{job.batch:7}{job.ns[i]:>10,}{peaks.added(i):12.1f}"
            f"{peaks.after[i]:10.0f}{gpu_text}")  # fmt: skip


def header(gpu: bool) -> str:
    """The table's header (with the GPU columns when ``gpu``)."""
    text = f"{'framework':10}{'network':10}{'input':>10}{'batch':>7}{'n':>10}{'added MB':>12}{'peak MB':>10}"
    return text + (f"{'GPU added':>10}{'GPU peak':>10}" if gpu else "")


def art_growth(points: Sequence[tuple[int, float]], target: int) -> tuple[float, float]:
    """From ``(n, added MB)`` of ART's runs: the growth in MB per 1,000 samples (slope between the smallest and the
    largest n) and the memory extrapolated linearly to n = ``target``."""
    (n_low, low), (n_high, high) = min(points), max(points)
    slope = (high - low) / (n_high - n_low) * 1000 if n_high > n_low else math.nan
    return slope, high + slope * (target - n_high) / 1000


PLOT_FLOOR_MB = 0.1
"""The smallest memory the plot's log scale shows."""


def ladder(n: int, batch: int) -> tuple[int, ...]:
    """The n's rs-plugin certifies in one process: ``n / 100``, ``n / 10`` and ``n``, those of at least one batch."""
    return tuple(sorted({m for m in (n // 100, n // 10, n) if m >= batch} | {n}))


def save_plot(
    path: Path, rs_points: Sequence[tuple[int, float]], art_points: Sequence[tuple[int, float]], target: int
) -> None:
    """Memory added against n, log-log: rs-plugin's ``(n, MB)`` points, ART's and its straight line
    (:func:`art_growth`) out to ``target``. A point under :data:`PLOT_FLOOR_MB` (a certification can add nothing
    measurable) is drawn at the floor."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    ns, mbs = zip(*sorted(rs_points), strict=True)
    axes.plot(ns, [max(mb, PLOT_FLOOR_MB) for mb in mbs], "-o", color="C0", label="rs-plugin, measured")
    if art_points:
        ns, mbs = zip(*sorted(art_points), strict=True)
        axes.plot(ns, mbs, "s", color="C3", label="ART, measured (all n copies)")
        if len(art_points) >= 2:
            slope, extrapolated = art_growth(art_points, target)
            axes.plot([ns[-1], target], [mbs[-1], extrapolated], "--", color="C3",
                      label=f"ART, extrapolated: {slope:,.0f} MB per 1,000 samples")
    axes.set(xscale="log", yscale="log", xlabel="n (noisy samples of one input)", ylabel="memory added (MB)",
             title="Peak memory one CERTIFY adds, 3x224x224")
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="rs-plugin's n with the stand-in network")
    parser.add_argument("--resnet50-n", type=int, nargs="*", default=[256, 1024], help="rs-plugin's n with ResNet-50")
    parser.add_argument("--art-n", type=int, nargs="*", default=[250, 500, 1000], help="ART's n with the stand-in")
    parser.add_argument("--batch", type=int, default=32, help="the batch size of every certification")
    parser.add_argument("--small-cnn", action="store_true", help="also both at --n on 1x28x28 with the small CNN")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--plot", type=Path, default=None, help="save the memory against n on 3x224x224 here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        job = json.loads(args.child)
        peaks = child(Job(**{**job, "shape": tuple(job["shape"]), "ns": tuple(job["ns"])}))
        print(json.dumps(asdict(peaks)))
        return 0
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device.startswith("cuda")
    jobs = [Job("rs-plugin", "stand-in", IMAGENET_SHAPE, ladder(args.n, args.batch), args.batch, device)]
    jobs += [Job("rs-plugin", "resnet50", IMAGENET_SHAPE, (n,), args.batch, device) for n in args.resnet50_n]
    jobs += [Job("ART", "stand-in", IMAGENET_SHAPE, (n,), args.batch, device) for n in args.art_n]
    if args.small_cnn:
        jobs += [Job("rs-plugin", "small-cnn", SMALL_SHAPE, ladder(args.n, args.batch), args.batch, device),
                 Job("ART", "small-cnn", SMALL_SHAPE, (args.n,), args.batch, device)]
    print(f"peak resident memory added by one CERTIFY (after a warm-up), each row a fresh process; batch "
          f"{args.batch}, n0 = one batch, device {device}")  # fmt: skip
    print(header(gpu), flush=True)
    art_points, rs_points = [], []
    for job in jobs:
        peaks = measure(job)
        for i in range(len(job.ns)):
            print(row(job, peaks, i) + ("" if peaks.method == "VmHWM" else f"  ({peaks.method})"), flush=True)
        if job.network == "stand-in":
            points = art_points if job.framework == "ART" else rs_points
            points += [(n, peaks.added(i)) for i, n in enumerate(job.ns)]
    if len(art_points) >= 2:
        slope, extrapolated = art_growth(art_points, args.n)
        print(f"ART on 3x224x224: {slope:,.0f} MB more per 1,000 samples; extrapolated to n = {args.n:,}: "
              f"{extrapolated / 1024:,.1f} GB")  # fmt: skip
    if args.plot:
        save_plot(args.plot, rs_points, art_points, args.n)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
