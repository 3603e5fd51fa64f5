"""The GPU path measured: how close rs-plugin's CERTIFY comes to the forward-pass limit of the paper's networks, in
each precision, and its seconds per certificate beside those of the paper's released logs.

Networks: ResNet-110 on 3x32x32 inputs (CIFAR-10 size, 10 classes) and ResNet-50 on 3x224x224 (ImageNet size, 1000
classes), with random weights (speed does not depend on their values; batch-norm statistics are taken from a few
noisy batches first, so that activations stay in range as in a trained network). Settings: fp32, and bf16 and fp16
under autocast or with converted weights (``FastModel(autocast=False)``), each in NCHW and channels_last, all
compiled with ``--compile [MODE]``. For each:

- limit: images/s of the network alone on pre-made noisy batches already in the dtype and memory format it takes
  (the label of each row read off), the best over batch sizes up to what fits in memory;
- certify: images/s of rs-plugin's CERTIFY (n0 = 100, n = 100,000, sigma = 0.25, default settings: the batch size
  rs-plugin chooses; timed over ``--examples`` inputs after a warm-up certificate), its fraction of the limit, and
  the seconds per certificate;
- paper: the median seconds per certificate in the paper's released logs (Cohen et al. 2019, CIFAR-10 ResNet-110 and
  ImageNet ResNet-50 at n = 100,000 on the authors' GPU), read from ``../shared/reference/cohen2019`` beside the
  repository, else the copy in ``tests/data/cohen2019`` (``--reference`` to override); n/a when absent.

    python benchmarks/gpu.py [--models resnet110 resnet50] [--precisions fp32 bf16 fp16] [--compile [MODE]]
    python benchmarks/gpu.py --check                  # CUDA smoke checks of the GPU path, one line each
    python benchmarks/gpu.py --device cpu --quick     # the script's own test: small inputs, tiny n

Without CUDA it stops with one line, unless ``--device cpu --quick`` is given.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rs_plugin import SmoothedClassifier
from rs_plugin.adapters.models import get_architecture
from rs_plugin.adapters.torch import FastModel, TorchBackend, TorchStream, label_agreement, noisy_batches
from rs_plugin.diagnostics import PreflightWarning
from rs_plugin.noises import Gaussian
from rs_plugin.results import read_results

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = (ROOT.parent / "shared" / "reference" / "cohen2019", ROOT / "tests" / "data" / "cohen2019")
SIGMA = 0.25


@dataclass(frozen=True)
class Network:
    """One of the paper's networks: the architecture, the input shape, the classes, its logs in the paper's data."""

    arch: str
    shape: tuple[int, ...]
    classes: int
    logs: str
    title: str


NETWORKS = {
    "resnet110": Network("cifar_resnet110", (3, 32, 32), 10, "cifar10/resnet110", "ResNet-110, 3x32x32"),
    "resnet50": Network("resnet50", (3, 224, 224), 1000, "imagenet/resnet50", "ResNet-50, 3x224x224"),
}
QUICK_SHAPE = (3, 8, 8)
"""``--quick``: every network on 3x8x8 inputs (both end in adaptive pooling, which takes them)."""


@dataclass(frozen=True)
class Setting:
    """How the network runs: precision, autocast or converted weights, memory format, compile mode."""

    precision: str
    autocast: bool
    channels_last: bool
    compile: str | None

    @property
    def name(self) -> str:
        kind = "" if self.precision == "fp32" else (" autocast" if self.autocast else " weights")
        layout = " channels_last" if self.channels_last else " nchw"
        return f"{self.precision}{kind}{layout}" + (f" compile={self.compile}" if self.compile else "")

    def wrap(self, net: nn.Module) -> FastModel:
        return FastModel(net, self.precision, self.channels_last, self.compile or False, autocast=self.autocast)


def settings(precisions: list[str], layouts: list[str], compile_mode: str | None) -> list[Setting]:
    """fp32 once per layout, each reduced precision under autocast and with converted weights."""
    out = []
    for precision, layout in itertools.product(precisions, layouts):
        for autocast in (True,) if precision == "fp32" else (True, False):
            out.append(Setting(precision, autocast, layout == "channels_last", compile_mode))
    return out


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def noisy_copies(xs: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """One Gaussian noisy copy (sigma :data:`SIGMA`) of each input of the batch ``xs``, from the torch
    noisy-evaluation loop on ``xs``'s device."""
    stream = TorchStream(Gaussian(SIGMA), seed, xs.device)
    noisy, _ = next(noisy_batches(xs, [1] * len(xs), stream, len(xs)))
    return noisy


def random_network(net: Network, device: torch.device, shape: tuple[int, ...], batch: int = 32) -> nn.Module:
    """``net`` with random weights and batch-norm statistics from two batches of ``batch`` noisy random images, in
    eval mode."""
    torch.manual_seed(0)
    model = get_architecture(net.arch).to(device)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # a plain average over the batches below
    with torch.no_grad():
        model.train()
        for _ in range(2):
            model(noisy_copies(torch.rand(batch, *shape, device=device)))
    return model.eval()


def forward_limit(model: FastModel, x: torch.Tensor, sizes: list[int], images: int) -> tuple[float, int]:
    """``(images/s, batch size)``: the best rate of ``model`` alone over ``sizes``, smallest first, each timed over
    at least ``images`` images after a warm-up batch; stopping at the first size that does not fit in memory, or
    that is slower than the best and at least four times its size."""
    best = (0.0, 0)
    for size in sizes:
        try:
            batch, _ = next(noisy_batches(x[None], [size], TorchStream(Gaussian(SIGMA), 0, x.device), size))
            layout = model.memory_format if batch.dim() == 4 else torch.preserve_format
            batch = batch.to(model.input_dtype, memory_format=layout)
            steps = max(2, -(-images // size))
            with torch.inference_mode():
                model(batch).argmax(1)
                synchronize(x.device)
                start = time.perf_counter()
                for _ in range(steps):
                    model(batch).argmax(1)
                synchronize(x.device)
            rate = steps * size / (time.perf_counter() - start)
            if rate < best[0] and size >= 4 * best[1]:
                break
            best = max(best, (rate, size))
        except torch.OutOfMemoryError:
            break
        finally:
            if x.device.type == "cuda":
                torch.cuda.empty_cache()
    return best


def certify_seconds(model: FastModel, net: Network, xs: np.ndarray, n0: int, n: int, batch_size: int | None) -> float:
    """Seconds per certificate of rs-plugin's CERTIFY over the inputs ``xs``, after a warm-up certificate at a smaller
    n (compilation; the batch size rs-plugin chooses when ``batch_size`` is None, its default)."""
    g = SmoothedClassifier(model, net.classes, SIGMA, seed=0, batch_size=batch_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreflightWarning)  # a small n, for the warm-up only
        g.certify(xs[0], n0, min(n, 1000), 0.001, index=len(xs))
    synchronize(g.backend.device)
    start = time.perf_counter()
    for index, x in enumerate(xs):
        g.certify(x, n0, n, 0.001, index=index)
    synchronize(g.backend.device)
    return (time.perf_counter() - start) / len(xs)


def paper_seconds(reference: Path | None, logs: str) -> str:
    """The median seconds per certificate of the paper's test-set logs of ``logs`` (``cifar10/resnet110``), or n/a."""
    files = sorted((reference / "data" / "certify" / logs).glob("*/test/*")) if reference else []
    if not files:
        return "n/a"
    times = np.concatenate([read_results(path)["time"] for path in files])
    return f"{statistics.median(times):.1f} s (median of {len(times):,} certificates in {len(files)} logs)"


def measure(args: argparse.Namespace, device: torch.device) -> None:
    quick = args.quick
    n0 = args.n0 if args.n0 is not None else (2 if quick else 100)
    n = args.n if args.n is not None else (16 if quick else 100_000)
    sizes = args.batch_sizes or ([4] if quick else [2**k for k in range(5, 15)])
    precisions = args.precisions or (["fp32", "bf16"] if quick else ["fp32", "bf16", "fp16"])
    layouts = args.layouts or (["nchw"] if quick else ["nchw", "channels_last"])
    reference = args.reference or next((path for path in REFERENCES if path.is_dir()), None)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {name}; CERTIFY n0 = {n0}, n = {n:,}, sigma = {SIGMA}, "
          f"{args.examples} certificate(s) per setting; limit over batch sizes {sizes[0]}..{sizes[-1]}")
    for key in args.models:
        net = NETWORKS[key]
        shape = QUICK_SHAPE if quick else net.shape
        base = random_network(net, device, shape, 4 if quick else 32)
        xs = np.random.default_rng(0).random((args.examples + 1, *shape), dtype=np.float32)
        x = torch.from_numpy(xs[0]).to(device)
        print(f"\n{net.title}" + (f" (run on {'x'.join(map(str, shape))})" if shape != net.shape else ""))
        print(f"  {'setting':40}{'limit img/s':>13}{'batch':>7}{'certify img/s':>15}{'of limit':>10}"
              f"{'s/certificate':>15}")
        for setting in settings(precisions, layouts, args.compile):
            model = setting.wrap(copy.deepcopy(base))  # channels_last converts the network it is given
            limit, best = forward_limit(model, x, sizes, sizes[-1] if quick else args.limit_images)
            seconds = certify_seconds(model, net, xs[1:], n0, n, args.batch_size or (8 if quick else None))
            rate = (n0 + n) / seconds
            print(f"  {setting.name:40}{limit:13,.0f}{best:7}{rate:15,.0f}{rate / limit:10.2f}{seconds:15.2f}")
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
        print(f"  the paper's released logs, seconds per certificate (their GPU): {paper_seconds(reference, net.logs)}")


def check(device: torch.device) -> int:
    """The CUDA tests' essentials on ``device``; prints one line per check, returns the number that failed."""
    failed = 0

    def report(name: str, ok: bool, detail: str) -> None:
        nonlocal failed
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")

    torch.manual_seed(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x = np.random.default_rng(0).random((3, 2, 2), dtype=np.float32)
    on = {b: SmoothedClassifier(linear.to(device), 3, 0.5, seed=1, batch_size=b).certify(x, 100, 5000, 0.01, index=2)
          for b in (7, 256, 5000)}
    report("certificates do not depend on the batch size", len({(c.count, c.selected) for c in on.values()}) == 1,
           str(sorted({c.count for c in on.values()})))
    cpu = SmoothedClassifier(linear.cpu(), 3, 0.5, seed=1).certify(x, 100, 5000, 0.01, index=2)
    sd = 5 * np.sqrt(5000 * 0.25)
    report("cuda fp32 agrees with the CPU (other noise, same distribution)",
           cpu.selected == on[7].selected and abs(cpu.count - on[7].count) < sd, f"counts {cpu.count}, {on[7].count}")

    net = random_network(NETWORKS["resnet110"], device, (3, 32, 32))
    images = np.random.default_rng(1).random((4, 3, 32, 32), dtype=np.float32)
    reference = SmoothedClassifier(net, 10, SIGMA, seed=0, batch_size=1000)
    selected = [reference.certify(image, 100, 2000, 0.001, index=i).selected for i, image in enumerate(images)]
    noisy = noisy_copies(torch.from_numpy(images).to(device))
    for setting in (Setting("bf16", True, True, None), Setting("bf16", False, True, None),
                    Setting("fp16", False, True, None)):
        fast = setting.wrap(copy.deepcopy(net))
        agreement = label_agreement(net, fast, images, Gaussian(SIGMA), 200)
        with torch.inference_mode():
            exact, rounded = net(noisy), fast(noisy)
        error = float((exact - rounded).abs().max() / exact.abs().max())
        g = SmoothedClassifier(fast, 10, SIGMA, seed=0, batch_size=1000)
        same = sum(g.certify(image, 100, 2000, 0.001, index=i).selected == chosen
                   for i, (image, chosen) in enumerate(zip(images, selected, strict=True)))
        report(f"{setting.name} keeps the float32 labels",
               agreement >= 0.95 and same >= len(images) - 1 and error < 0.25,
               f"label agreement {agreement:.1%}, same selected class on {same}/{len(images)}, largest logit "
               f"error {error:.1%} of the largest logit")

    backend = TorchBackend(net, 10)
    image = torch.from_numpy(images[0]).to(device)

    def syncs(batches: int) -> int:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                backend.counts([image], [batches * 64], [backend.stream(Gaussian(SIGMA), 0)], 64)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    syncs(1)
    few, many = syncs(2), syncs(16)
    report("no host synchronisation per batch", few == many, f"{few} syncs for 2 batches, {many} for 16")

    eager = SmoothedClassifier(net, 10, SIGMA, seed=3, batch_size=500)
    graphs = SmoothedClassifier(FastModel(net, compile="reduce-overhead"), 10, SIGMA, seed=3, batch_size=500)
    a, b = (g.certify(images[1], 100, 1300, 0.001, index=0) for g in (eager, graphs))
    report("compile=reduce-overhead (CUDA graphs) certifies what the network does",
           a.selected == b.selected and abs(a.count - b.count) <= 2, f"counts {a.count}, {b.count}")
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:1, or cpu (with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="a test run: 3x8x8 inputs, n = 16, fp32 and bf16 in NCHW, limit at batch size 4")
    parser.add_argument("--check", action="store_true", help="run the CUDA smoke checks instead of measuring")
    parser.add_argument("--models", nargs="+", choices=tuple(NETWORKS), default=list(NETWORKS))
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "bf16", "fp16"),
                        help="default: fp32 bf16 fp16 (--quick: fp32 bf16)")
    parser.add_argument("--layouts", nargs="+", choices=("nchw", "channels_last"),
                        help="default: nchw channels_last (--quick: nchw)")
    parser.add_argument("--compile", nargs="?", const="default", metavar="MODE",
                        help="compile every setting with torch.compile (MODE: default, reduce-overhead, ...)")
    parser.add_argument("--n0", type=int, help="CERTIFY's n0 (default: 100; --quick: 2)")
    parser.add_argument("--n", type=int, help="CERTIFY's n (default: 100,000; --quick: 16)")
    parser.add_argument("--examples", type=int, default=1, help="certificates timed per setting (default: 1)")
    parser.add_argument("--batch-size", type=int, help="CERTIFY's batch size (default: measured at start)")
    parser.add_argument("--batch-sizes", type=int, nargs="+",
                        help="batch sizes of the limit (default: 32, 64, ..., 16384)")
    parser.add_argument("--limit-images", type=int, default=10_000,
                        help="images timed per batch size of the limit (default: 10,000)")
    parser.add_argument("--reference", type=Path,
                        help=f"the paper's released logs (default: {REFERENCES[0]}, else {REFERENCES[1]})")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu.py: no CUDA device here; the GPU figures need one (a test run: --device cpu --quick)",
              file=sys.stderr)
        return 1
    if device.type == "cpu" and not args.quick:
        print("gpu.py: --device cpu runs only with --quick (a test of the script, not a measurement)", file=sys.stderr)
        return 1
    if args.check:
        if device.type != "cuda":
            print("gpu.py: --check needs a CUDA device", file=sys.stderr)
            return 1
        return int(check(device) > 0)
    measure(args, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
