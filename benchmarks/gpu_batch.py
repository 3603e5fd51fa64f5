"""The batch size on a GPU: where CERTIFY's time goes for the networks and settings of ``gpu.py``. For each: the
forward-pass limit at a few batch sizes, the noise alone, CERTIFY at a fixed batch size (the limit's best), and
CERTIFY with the batch size rs-plugin chooses, started as on a CPU (small, climbing by measured doublings) and as on
an accelerator (at the largest size the GPU's free memory allows, looking downwards), each as the first certificate
after a warm-up at n = 1000 and as the next one, with the batch sizer's report.

    python benchmarks/gpu_batch.py [--cases 0 2]         # on a CUDA machine; the cases of CASES, in order
    python benchmarks/gpu_batch.py --device cpu --quick  # the script's own test: 3x8x8 inputs, tiny n
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings

import gpu
import numpy as np
import torch

from rs_plugin import SmoothedClassifier, calibration
from rs_plugin.adapters.torch import TorchStream, noisy_batches
from rs_plugin.diagnostics import PreflightWarning
from rs_plugin.noises import Gaussian

CASES = [
    ("resnet50", gpu.Setting("bf16", True, True, None), [256, 1024, 2048]),
    ("resnet50", gpu.Setting("bf16", False, True, None), [256, 1024, 2048]),
    ("resnet110", gpu.Setting("fp32", True, False, None), [1024, 4096, 16384]),
    ("resnet110", gpu.Setting("bf16", False, True, None), [1024, 4096, 16384]),
    ("resnet50", gpu.Setting("fp32", True, False, None), [256, 1024, 2048]),
]


def timed(g: SmoothedClassifier, x: np.ndarray, n0: int, n: int, index: int) -> float:
    gpu.synchronize(g.backend.device)
    start = time.perf_counter()
    g.certify(x, n0, n, 0.001, index=index)
    gpu.synchronize(g.backend.device)
    return time.perf_counter() - start


def sizing(model: gpu.FastModel, net: gpu.Network, xs: np.ndarray, n0: int, n: int, accelerator: bool) -> str:
    """The first and the next certificate's images/s with the adaptive batch size, started as on a CPU or as on an
    accelerator, after a warm-up certificate at n = 1000; and the sizer's report."""
    calibration._SIZERS.clear()
    g = SmoothedClassifier(model, net.classes, gpu.SIGMA, seed=0)
    prepared = g.backend.prepare(xs[0])
    memory = g.backend.device_memory if accelerator else None
    if accelerator and memory is None:
        memory = 1 << 34  # --quick on a CPU: as if 16 GiB were free
    key = calibration.calibration_key(g.backend, prepared)
    calibration._SIZERS[key] = calibration.BatchSizer.for_input(tuple(prepared.shape), memory)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreflightWarning)
        warm = timed(g, xs[0], n0, min(n, 1000), 100)
    first, second = (timed(g, x, n0, n, i) for i, x in enumerate(xs[1:3]))
    rate = (n0 + n) / np.array([first, second])
    return (f"warm-up {warm:.2f} s; first {rate[0]:,.0f} img/s ({first:.2f} s), next {rate[1]:,.0f} img/s "
            f"({second:.2f} s); {g.batch_report(xs[0])}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:1, or cpu (with --quick)")
    parser.add_argument("--quick", action="store_true", help="a test run: 3x8x8 inputs, n = 64, batch sizes 4 and 8")
    parser.add_argument("--cases", type=int, nargs="+", choices=range(len(CASES)),
                        help="indices into CASES (default: all, in order)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_batch.py: no CUDA device here (a test run: --device cpu --quick)", file=sys.stderr)
        return 1
    if device.type == "cpu" and not args.quick:
        print("gpu_batch.py: --device cpu runs only with --quick (a test of the script, not a measurement)",
              file=sys.stderr)
        return 1
    n0, n, images = (2, 64, 64) if args.quick else (100, 100_000, 10_000)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {name}; n0 = {n0}, n = {n:,}")
    bases = {}
    for case in args.cases or range(len(CASES)):
        key, setting, sizes = CASES[case]
        net = gpu.NETWORKS[key]
        shape = gpu.QUICK_SHAPE if args.quick else net.shape
        sizes = [4, 8] if args.quick else sizes
        try:
            if key not in bases:
                bases[key] = gpu.random_network(net, device, shape, 4 if args.quick else 32)
            model = setting.wrap(copy.deepcopy(bases[key]))
            xs = np.random.default_rng(0).random((3, *shape), dtype=np.float32)
            x = torch.from_numpy(xs[0]).to(device)
            print(f"\n{net.title}, {setting.name}", flush=True)
            limits = {size: gpu.forward_limit(model, x, [size], images)[0] for size in sizes}
            print("  limit img/s: " + ", ".join(f"{s}: {r:,.0f}" for s, r in limits.items()), flush=True)
            best = max(limits, key=limits.get)
            stream = TorchStream(Gaussian(gpu.SIGMA), 0, device)
            gpu.synchronize(device)
            start = time.perf_counter()
            for _ in noisy_batches(x[None], [n], stream, sizes[-1]):
                pass
            gpu.synchronize(device)
            print(f"  noise alone at batch {sizes[-1]}: {n / (time.perf_counter() - start):,.0f} copies/s", flush=True)
            seconds = gpu.certify_seconds(model, net, xs[1:2], n0, n, best)
            print(f"  certify at fixed batch {best}: {(n0 + n) / seconds:,.0f} img/s ({seconds:.2f} s), "
                  f"{(n0 + n) / seconds / limits[best]:.2f} of that size's limit", flush=True)
            for accelerator in (False, True):
                label = "accelerator start" if accelerator else "cpu start"
                print(f"  {label}: {sizing(model, net, xs, n0, n, accelerator)}", flush=True)
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
        except Exception as err:  # one case's failure must not cost the others (a scarce GPU session)
            print(f"  FAILED: {type(err).__name__}: {err}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
