"""What keeping freed memory (``rs_plugin.allocator.retain_freed_memory``, which the command line calls) is worth on
CPU, measured side by side in fresh processes.

glibc's allocator state is per process and depends on its history, so every measurement is a fresh process, and
the two settings alternate: ``default`` (glibc as it starts) and ``retain``. Each process measures one network at
one batch size: the bare network's samples/s on a pre-made noisy batch (``limit.forward_rate``), then rs-plugin's
CERTIFY with default settings after one warm-up certification, and the minor page faults per forward pass. The
table gives the medians over the repetitions, the speed-up of ``retain`` over ``default``, and CERTIFY as a
fraction of the network alone under each setting.

    python benchmarks/allocator.py [--repeats 3] [--networks tiny mnist resnet20]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

NETWORKS = {
    "tiny": ("small CNN 16/32 on 1x28x28", 128, 20_000),
    "mnist": ("small CNN 32/64 on 1x28x28", 128, 10_000),
    "resnet20": ("ResNet-20 on 3x32x32", 32, 2_000),
}
"""Each network: its description, the batch size of its forward-pass limit in throughput.py / resnets.py, and the
n of the timed CERTIFY."""


def child(mode: str, name: str) -> dict[str, float]:
    """One fresh process's measurements (see the module's description)."""
    from rs_plugin.allocator import retain_freed_memory

    if mode == "retain" and not retain_freed_memory():
        raise SystemExit("this C library has no mallopt: nothing to compare")
    import limit  # benchmarks/limit.py
    import numpy as np
    import torch

    from rs_plugin import SmoothedClassifier

    if name == "resnet20":
        import resnets

        model, classes = resnets.build(resnets.NETWORKS["resnet20"])
        shape = resnets.NETWORKS["resnet20"].shape
    else:
        import throughput

        model, classes, shape = throughput.small_cnn(16 if name == "tiny" else 32), 10, throughput.SHAPE
    _, batch, n = NETWORKS[name]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    noisy = limit.noisy_batch(x, batch, 0.25)
    limit.forward_rate(model, noisy, seconds=1.0)  # settle
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with torch.inference_mode():
        for _ in range(10):
            model(noisy)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / 10
    forward = limit.forward_rate(model, noisy, seconds=2.0)
    g = SmoothedClassifier(model, classes, 0.25, seed=0)
    g.certify(x, 100, n, 0.001)  # warm-up: the batch size settles
    start = time.perf_counter()
    g.certify(x, 100, n, 0.001)
    certify = (100 + n) / (time.perf_counter() - start)
    return {"forward": forward, "certify": certify, "faults": faults}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--networks", nargs="+", choices=sorted(NETWORKS), default=list(NETWORKS))
    parser.add_argument("--child", nargs=2, metavar=("MODE", "NETWORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    print(f"{args.repeats} fresh processes per setting and network, alternating; medians")
    print(f"{'network':30}{'setting':>9}{'forward/s':>11}{'faults/pass':>13}{'certify/s':>11}{'of forward':>12}")
    for name in args.networks:
        runs: dict[str, list[dict[str, float]]] = {"default": [], "retain": []}
        for _ in range(args.repeats):
            for mode in runs:
                out = subprocess.run([sys.executable, __file__, "--child", mode, name], capture_output=True,
                                     text=True, check=True)
                runs[mode].append(json.loads(out.stdout.splitlines()[-1]))
        medians = {mode: {key: statistics.median(r[key] for r in rows) for key in rows[0]}
                   for mode, rows in runs.items()}
        for mode, m in medians.items():
            print(f"{NETWORKS[name][0]:30}{mode:>9}{m['forward']:11,.0f}{m['faults']:13,.0f}{m['certify']:11,.0f}"
                  f"{m['certify'] / m['forward']:12.3f}")
        speedups = [medians["retain"][key] / medians["default"][key] for key in ("forward", "certify")]
        print(f"{'':30}{'retain/default':>20}: forward {speedups[0]:.2f}x, certify {speedups[1]:.2f}x")


if __name__ == "__main__":
    main()
