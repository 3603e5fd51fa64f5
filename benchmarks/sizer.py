"""How close the adaptive batch size (``rs_plugin.calibration.BatchSizer``) comes to the best size, simulated on
speed curves measured on this project's machine, with and without each of its rules.

A real run cannot tell how fast the sizes it did not use would have been, and its timings scatter by more than the
differences it is trying to find, so this benchmark simulates: each chunk the sizer asks for takes ``rows / (rate
of its size)``, the rate off by a log-normal factor of standard deviation ``--jitter`` (independent chunks), plus
``--switch`` seconds whenever the size differs from the previous chunk's (a new size's first batch: new buffers,
colder caches). ``--drift D`` adds what a shared host does: the machine's speed, the same for every size,
drifting as a log-normal factor of standard deviation D that forgets itself over ``--drift-seconds`` (an
Ornstein-Uhlenbeck process in time), so that a trial and the chunks around it can meet different speeds; a run's
speed is then taken against the best size's at the same machine speeds. ``--disturb S`` puts another CPU-bound
process on the machine for the first S seconds of each run: each chunk then gets a new share of 10-50% of the
machine's speed (what such a process did to torch's two threads on two cores). The curves are relative speeds by batch
size, shaped after ``throughput.py`` and ``resnets.py`` on a 2-core CPU (their absolute rates only set how many
rows a chunk holds). For each curve and run length, over ``--runs`` seeded runs: the mean and 10th percentile of
the run's speed as a fraction of the best size's, the rows run at a size on trial, and where the runs ended.
``as it is`` is the sizer as it is; ``two wins only`` is the same sizer with the average rule switched off
(moves only after two trials in a row faster by ``MARGIN``); ``every trial judged`` judges also the trials around
which the current size's chunks ran at different speeds (``UNSTEADY`` switched off); ``neighbours only`` never
tries a size two steps away (four times or a quarter of the current size; ``FAR_PATIENCE`` switched off).

    python benchmarks/sizer.py [--runs 40] [--jitter 0.03 0.07] [--seconds 20 60 300] [--switch 0.0]
                               [--drift 0.1 --drift-seconds 2] [--disturb 3]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from rs_plugin import calibration
from rs_plugin.calibration import BatchSizer


@dataclass(frozen=True)
class Curve:
    """A network's speed by batch size (relative to its best), its rate at the best size (copies per second) and
    its input's shape, which sets the size a run starts at."""

    name: str
    relative: dict[int, float]
    rate: float
    shape: tuple[int, ...]

    @property
    def start(self) -> int:
        """The size a run starts at: :func:`rs_plugin.calibration.start_size` of the input."""
        return calibration.start_size(self.shape)


SMALL = {1: 0.1, 2: 0.15, 4: 0.25, 8: 0.4, 16: 0.6}
"""Below the measured sizes, each curve goes down as per-batch overhead takes over (only trials two steps away from
the smallest measured sizes reach these)."""

CURVES = [
    Curve("tiny CNN, 1x28x28 (flat 128-512)", {**SMALL, 32: 0.82, 64: 0.92, 128: 0.98, 256: 1.0, 512: 0.98,
                                               1024: 0.75, 2048: 0.66}, 23_000.0, (1, 28, 28)),
    Curve("32/64 CNN, 1x28x28 (64 best, a plateau from 128)", {**SMALL, 32: 0.93, 64: 1.0, 128: 0.95, 256: 0.95,
                                                               512: 0.94, 1024: 0.7, 2048: 0.6}, 9_500.0, (1, 28, 28)),
    Curve("ResNet-20, 3x32x32 (64 is 3-7% behind)", {**SMALL, 16: 0.8, 32: 0.9, 64: 0.95, 128: 0.99, 256: 1.0,
                                                     512: 0.96}, 1_900.0, (3, 32, 32)),
    Curve("ResNet-110, 3x32x32 (one batch per chunk)", {**SMALL, 16: 0.8, 32: 0.9, 64: 0.97, 128: 1.0, 256: 0.97,
                                                        512: 0.9}, 340.0, (3, 32, 32)),
    Curve("ResNet-50, 3x224x224", {1: 0.73, 2: 0.87, 4: 0.95, 8: 1.0, 16: 0.98, 32: 0.9, 64: 0.7},
          23.0, (3, 224, 224)),
]


@dataclass
class Outcome:
    """One variant's runs on one curve: speeds (fractions of the best size's), trial shares, final sizes."""

    speeds: list[float]
    trial_shares: list[float]
    ends: collections.Counter

    def cells(self) -> str:
        ends = " ".join(f"{size}:{count}" for size, count in sorted(self.ends.items()))
        return (f"{np.mean(self.speeds):6.3f} {np.percentile(self.speeds, 10):6.3f} "
                f"{np.mean(self.trial_shares):6.1%}  ends {ends}")


@dataclass(frozen=True)
class Drift:
    """The machine's shared speed: a log factor of standard deviation ``sd`` that forgets itself over ``seconds``."""

    sd: float = 0.0
    seconds: float = 2.0

    def step(self, level: float, elapsed: float, rng: np.random.Generator) -> float:
        """The log factor ``elapsed`` seconds after it was ``level`` (exact for the Ornstein-Uhlenbeck process)."""
        if self.sd == 0.0:
            return 0.0
        keep = np.exp(-elapsed / self.seconds)
        return level * keep + self.sd * np.sqrt(1 - keep**2) * rng.standard_normal()


def simulate(
    curve: Curve, seconds: float, jitter: float, switch: float, runs: int, start: int | None = None,
    drift: Drift = Drift(), disturb: float = 0.0,
) -> Outcome:
    """``runs`` seeded simulated runs of ``seconds`` each of the sizer on ``curve`` (see the module's description),
    starting at ``start`` (default: where a run on the curve's input starts), another process taking the machine
    for the first ``disturb`` seconds. A run's speed is its rows over those the best size would have run in the
    same time at the same (drifting, disturbed) machine speeds."""
    outcome = Outcome([], [], collections.Counter())
    for seed in range(runs):
        rng, machine = np.random.default_rng(seed), np.random.default_rng([seed, 1])
        sizer = BatchSizer(curve.start if start is None else start, max_size=max(curve.relative))
        t = rows = 0.0
        best = 0.0  # the rows the best size would have run in the same time, at the same machine speeds
        previous = None
        level = drift.step(0.0, np.inf, machine)
        while t < seconds:
            size = sizer.next_size()
            chunk = sizer.chunk_rows(size)
            speed = curve.rate * np.exp(level) * (machine.uniform(0.1, 0.5) if t < disturb else 1.0)
            spent = chunk / (speed * curve.relative[size] * np.exp(jitter * rng.standard_normal()))
            spent += switch if size != previous else 0.0
            sizer.record(size, chunk, spent)
            t, rows, previous, best = t + spent, rows + chunk, size, best + spent * speed
            level = drift.step(level, spent, machine)
        outcome.speeds.append(rows / best)
        outcome.trial_shares.append(sizer.trial_rows / sizer.rows)
        outcome.ends[sizer.size] += 1
    return outcome


@contextlib.contextmanager
def switched(settings: dict[str, float]) -> Iterator[None]:
    """Within the block, ``rs_plugin.calibration``'s constants named in ``settings`` take their values there (a rule
    switched off); restored afterwards."""
    saved = {name: getattr(calibration, name) for name in settings}
    for name, value in settings.items():
        setattr(calibration, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(calibration, name, value)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--jitter", type=float, nargs="+", default=[0.03, 0.07])
    parser.add_argument("--seconds", type=float, nargs="+", default=[20.0, 60.0, 300.0])
    parser.add_argument("--switch", type=float, default=0.0, help="seconds lost when the size changes")
    parser.add_argument("--drift", type=float, default=0.0, help="the machine's drifting speed: its log sd")
    parser.add_argument("--drift-seconds", type=float, default=2.0, help="how long the drift takes to forget itself")
    parser.add_argument("--disturb", type=float, default=0.0, help="seconds of another process at each run's start")
    args = parser.parse_args(argv)
    drift = Drift(args.drift, args.drift_seconds)
    variants: dict[str, dict[str, float]] = {"as it is": {}, "two wins only": {"EVIDENCE_TRIALS": 10**9},
                                             "every trial judged": {"UNSTEADY": float("inf")},
                                             "neighbours only": {"FAR_PATIENCE": 10**9}}
    print(f"{args.runs} seeded runs per row; switching sizes costs {args.switch} s; machine drift {drift.sd:.0%} "
          f"over {drift.seconds} s; another process for the first {args.disturb} s; columns per variant: mean speed "
          "and 10th percentile (fractions of the best size's), rows on trial, final sizes (size:runs)")
    for curve in CURVES:
        print(f"\n{curve.name}, starting at {curve.start}")
        for jitter in args.jitter:
            for seconds in args.seconds:
                results = {}
                for label, settings in variants.items():
                    with switched(settings):
                        results[label] = simulate(curve, seconds, jitter, args.switch, args.runs, drift=drift,
                                                  disturb=args.disturb)
                for label, outcome in results.items():
                    print(f"  jitter {jitter:.0%}, {seconds:4.0f} s  {label:18} {outcome.cells()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
