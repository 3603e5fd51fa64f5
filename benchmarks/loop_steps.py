"""Where a noisy-evaluation batch spends its time besides the network: each step of the loop timed inside a running
loop, on the small CNNs of ``throughput.py``.

The torch backend's loop (``adapters/torch/loop.py`` and ``backend.counts``) does, per batch of one input's
copies: draw the noise (torch's CPU sampler, one thread), add the input, run the network, take the argmax, keep the
logits' extremes (all logits are finite exactly when these are) and scatter the votes; the rows' owners, and the
offsets and ones the scatter adds, are computed once, for the first batch, and serve every batch laid out alike.
This script runs those steps with plain torch calls, one after the other as the loop does, and times each with
``time.perf_counter`` (all of them are synchronous on a CPU). Small operations take far longer right after the
network than alone (the network's activations have just evicted the caches: a plain 32 MB copy does the same to
them), so timing them alone understates them; the script prints both. The steps' line ends with the ceiling they
leave for rs-plugin against the network alone: network / (network + steps), before any per-call or batch-size cost.

Then the whole loops, at the same batch size, in interleaved rounds: those plain steps one after the other,
rs-plugin's ``TorchBackend.counts`` and ``SmoothedClassifier.certify`` (n0 = 100 of the same rows) with the batch size
fixed; the differences per batch are rs-plugin's own bookkeeping (the plan, the streams, the checks, Python) and,
for CERTIFY, its per-call cost. On the CNN they are smaller than the network's own scatter; ``--linear`` puts a
linear model (one 784 x 10 layer) in its place, whose forward pass is short enough for them to show.

The noise is the largest step, so the script also times the Gaussian samplers at hand for one batch's values, alone:
torch's CPU ``normal_`` (the one the loop uses; its values fix every certificate), torch's ``uniform_`` (the
Mersenne Twister draws inside ``normal_``, one thread), and numpy's ``Generator.standard_normal`` in float32 with
its bit generators, with the ceiling each would leave beside the network's time in the loop.

    python benchmarks/loop_steps.py [--width 16 | --linear] [--batch 256] [--batches 400] [--rounds 5]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from limit import add_allocator_option, allocator  # benchmarks/limit.py
from throughput import ALPHA, SHAPE, SIGMA, small_cnn
from torch import nn

from rs_plugin import SmoothedClassifier
from rs_plugin.adapters.torch import TorchBackend, TorchStream
from rs_plugin.noises import Gaussian

STEPS = ("noise", "add input", "network", "argmax", "finite check", "scatter votes")
LOOPS = ("plain steps", "rs-plugin counts", "rs-plugin certify")


def base(width: int) -> nn.Module:
    """The tiny CNN of ``throughput.py`` with ``width`` channels, or for ``width`` 0 a linear model on the same
    inputs (a forward pass short enough for the loop's own costs to show)."""
    if width:
        return small_cnn(width)
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(SHAPE[-1] * SHAPE[-2], 10)).eval()


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
    model = base(width)
    torch.manual_seed(0)
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


SAMPLERS = ("torch normal_", "torch uniform_", "numpy PCG64", "numpy SFC64", "numpy Philox")


def samplers(batch: int, repeats: int = 20) -> dict[str, float]:
    """Seconds per value of each of :data:`SAMPLERS` filling ``batch`` inputs' worth of float32 noise, alone (the
    best of five timings of ``repeats`` fills each)."""
    values = batch * int(np.prod(SHAPE))
    tensor, array = torch.empty(values), np.empty(values, dtype=np.float32)
    generator = torch.Generator().manual_seed(0)
    fills: dict[str, Callable[[], object]] = {
        "torch normal_": lambda: tensor.normal_(0.0, SIGMA, generator=generator),
        "torch uniform_": lambda: tensor.uniform_(0.0, 1.0, generator=generator),
    }
    for name in SAMPLERS[2:]:
        numpy_generator = np.random.Generator(getattr(np.random, name.split()[1])(0))
        fills[name] = functools.partial(numpy_generator.standard_normal, dtype=np.float32, out=array)
    return {name: min(alone(fill, repeats) for _ in range(5)) / values for name, fill in fills.items()}


def whole_loops(width: int, batch: int, batches: int, rounds: int) -> dict[str, float]:
    """Median seconds per batch of each of :data:`LOOPS` over ``batches`` full batches of one input's noisy
    copies (after one warm-up run each), in ``rounds`` interleaved rounds."""
    model, rows = base(width), batch * batches
    torch.manual_seed(0)
    x = torch.rand(SHAPE)
    noisy, generator = torch.empty(batch, *SHAPE), torch.Generator().manual_seed(0)
    offsets, ones = torch.zeros(batch, dtype=torch.int64), torch.ones(batch, dtype=torch.int64)

    def plain() -> None:
        with torch.inference_mode():
            extremes, counts = [], torch.zeros(10, dtype=torch.int64)
            for _ in range(batches):
                noisy.normal_(0.0, SIGMA, generator=generator).add_(x)
                logits = model(noisy)
                extremes.extend(torch.aminmax(logits))
                counts.scatter_add_(0, offsets + logits.argmax(1), ones)

    backend = TorchBackend(model, 10)
    fixed = SmoothedClassifier(model, 10, SIGMA, seed=0, batch_size=batch)
    loops: dict[str, Callable[[], object]] = {
        "plain steps": plain,
        "rs-plugin counts": lambda: backend.counts([x], [rows], [TorchStream(Gaussian(SIGMA), 0)], batch),
        "rs-plugin certify": lambda: fixed.certify(x.numpy(), 100, rows - 100, ALPHA),
    }
    times: dict[str, list[float]] = {name: [] for name in loops}
    for loop in loops.values():
        loop()
    for _ in range(rounds):
        for name, loop in loops.items():
            start = time.perf_counter()
            loop()
            times[name].append((time.perf_counter() - start) / batches)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=16, help="channels of the CNN's first layer (16 or 32)")
    parser.add_argument("--linear", action="store_true", help="a linear model instead of the CNN")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the whole loops (0: none)")
    add_allocator_option(parser)
    args = parser.parse_args(argv)
    if args.batches <= 20:
        parser.error(f"--batches must be above 20 (the warm-up), got {args.batches}")
    if args.rounds < 0 or args.batch * args.batches <= 100:
        parser.error(f"--rounds must be 0 or more and --batch x --batches above 100 (CERTIFY's n0), got "
                     f"{args.rounds} and {args.batch} x {args.batches}")
    width = 0 if args.linear else args.width
    model = "a linear model" if args.linear else f"CNN of width {args.width}"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {model}, batch "
          f"{args.batch} of {'x'.join(map(str, SHAPE))}; {allocator(args.default_allocator)}")
    medians, isolated = in_loop(width, args.batch, args.batches)
    print(f"  {'step':16}{'in the loop':>14}{'alone':>12}  (median per batch)")
    for step, seconds in medians.items():
        single = f"{isolated[step] * 1e6:10.1f} us" if step in isolated else ""
        print(f"  {step:16}{seconds * 1e6:11.1f} us{single:>12}")
    network = medians["network"]
    steps = sum(medians.values()) - network
    print(f"  the steps besides the network: {steps * 1e6:,.0f} us, {steps / network:.1%} of the network's time; "
          f"ceiling network / (network + steps) = {network / (network + steps):.3f}")
    values = args.batch * int(np.prod(SHAPE))
    print(f"  {'sampler':16}{'per value':>14}{'ceiling':>12}  (alone, {values:,} float32 values: one batch)")
    for name, seconds in samplers(args.batch).items():
        print(f"  {name:16}{seconds * 1e9:11.2f} ns{network / (network + seconds * values):12.3f}")
    if args.rounds:
        loops = whole_loops(width, args.batch, args.batches, args.rounds)
        plain = loops["plain steps"]
        print(f"  {'whole loop':20}{'per batch':>12}{'beyond plain':>14}{'plain / loop':>14}  (median of "
              f"{args.rounds} interleaved rounds of {args.batches} batches)")
        for name, seconds in loops.items():
            print(f"  {name:20}{seconds * 1e6:9.1f} us{(seconds - plain) * 1e6:11.1f} us{plain / seconds:14.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
