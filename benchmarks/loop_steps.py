"""Where a noisy-evaluation batch spends its time besides the network: each step of the loop timed inside a running
loop, on the small CNNs of ``throughput.py``.

The torch backend's loop (``adapters/torch/loop.py`` and ``backend.counts``) does, per batch of one input's
copies: draw the noise (torch's CPU sampler, one thread), add the input, run the network, take the argmax, keep the
logits' extremes (all logits are finite exactly when these are) and scatter the votes; the rows' owners, and the
offsets and ones the scatter adds, are computed once, for the first batch, and serve every batch laid out alike.
This script runs those steps with plain torch calls, one after the other as the loop does, and times each with
``time.perf_counter`` (all of them are synchronous on a CPU). Small operations take far longer right after the
network than alone (the network's activations have just evicted the caches: a plain 32 MB copy does the same to
them), so timing them alone understates them; the script prints both. The last line is the ceiling these steps
leave for rs-plugin against the network alone:
network / (network + steps), before any per-call or batch-size cost.

    python benchmarks/loop_steps.py [--width 16] [--batch 256] [--batches 400]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

import torch
from limit import add_allocator_option, allocator  # benchmarks/limit.py
from throughput import SHAPE, SIGMA, small_cnn

STEPS = ("noise", "add input", "network", "argmax", "finite check", "scatter votes")


def alone(step: Callable[[], object], repeats: int = 2000) -> float:
    """Seconds per call of ``step`` run in a tight loop of its own (warm caches)."""
    step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats


def in_loop(width: int, batch: int, batches: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds per batch of each of :data:`STEPS` inside a loop of ``batches`` batches (the first 20 left
    out as warm-up), and of the small steps alone."""
    torch.manual_seed(0)
    model = small_cnn(width).eval()
    x = torch.rand(SHAPE)
    noisy = torch.empty(batch, *SHAPE)
    generator = torch.Generator().manual_seed(0)
    offsets, ones = torch.zeros(batch, dtype=torch.int64), torch.ones(batch, dtype=torch.int64)  # owner 0, K = 10
    times: dict[str, list[float]] = {step: [] for step in STEPS}
    with torch.inference_mode():
        extremes, counts = [], torch.zeros(10, dtype=torch.int64)
        for i in range(batches):
            t = [time.perf_counter()]
            noisy.normal_(0.0, SIGMA, generator=generator)
            t.append(time.perf_counter())
            noisy.add_(x)
            t.append(time.perf_counter())
            logits = model(noisy)
            t.append(time.perf_counter())
            labels = logits.argmax(1)
            t.append(time.perf_counter())
            extremes.extend(torch.aminmax(logits))
            t.append(time.perf_counter())
            counts.scatter_add_(0, offsets + labels, ones)
            t.append(time.perf_counter())
            if i >= 20:
                for step, before, after in zip(STEPS, t, t[1:], strict=False):
                    times[step].append(after - before)
        isolated = {
            "argmax": alone(lambda: logits.argmax(1)),
            "finite check": alone(lambda: torch.aminmax(logits)),
            "scatter votes": alone(lambda: counts.scatter_add_(0, offsets + labels, ones)),
        }
    return {step: statistics.median(values) for step, values in times.items()}, isolated


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=16, help="channels of the CNN's first layer (16 or 32)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=400)
    add_allocator_option(parser)
    args = parser.parse_args(argv)
    if args.batches <= 20:
        parser.error(f"--batches must be above 20 (the warm-up), got {args.batches}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; CNN of width {args.width}, batch "
          f"{args.batch} of {'x'.join(map(str, SHAPE))}; {allocator(args.default_allocator)}")
    medians, isolated = in_loop(args.width, args.batch, args.batches)
    print(f"  {'step':16}{'in the loop':>14}{'alone':>12}  (median per batch)")
    for step, seconds in medians.items():
        single = f"{isolated[step] * 1e6:10.1f} us" if step in isolated else ""
        print(f"  {step:16}{seconds * 1e6:11.1f} us{single:>12}")
    network = medians["network"]
    steps = sum(medians.values()) - network
    print(f"  the steps besides the network: {steps * 1e6:,.0f} us, {steps / network:.1%} of the network's time; "
          f"ceiling network / (network + steps) = {network / (network + steps):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
