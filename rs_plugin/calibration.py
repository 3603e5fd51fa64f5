"""Choosing the batch size (noisy copies per forward pass) by measuring the run itself.

The fastest size depends on the network, the input, the device and how busy the machine is, and that can change
during a run of hours, so it is never decided once at start-up. A :class:`BatchSizer` times the run's own work in
chunks of a fraction of a second (a much shorter one, a request's end, measures nothing) and now and then runs one
chunk at twice or half the size (more rarely at four times or a quarter, so that a plateau one step away does not
hide a faster size beyond it), comparing it with the chunks at the current size just before and after it (so a load
that comes and goes hits both alike, and a trial around which those two chunks ran at different speeds, the load
having changed, is not judged); it moves when the other size is faster by a clear margin twice in a row, or by a
small margin on average over its recent trials (a flat peak, where the gain is smaller than the timings' jitter).
Every row it times is a row the run needed, so measuring costs only the few chunks run at a slower size: the trials
grow rarer while the current size keeps winning, and wait while the losing ones have cost more than 2% of the time.
Results never depend on the batch size: each example's noise comes from its own stream (:mod:`rs_plugin.engine`). On
an accelerator (a backend that reports its free ``device_memory``) the run starts at the largest size that memory
allows instead, where a GPU is usually fastest, and the trials look downwards.

:func:`best_batch_size` is the one-off measurement for callers that run no long loop of their own (training's
smoothed forward pass): the same start and candidate sizes, measured on a throwaway stream, a bounded cost.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

MAX_SIZE = 4096
"""The largest batch size tried."""

START_BYTES = 1 << 21
"""A run starts at the power of two whose batch of float32 inputs takes about this much memory (at most 256)."""

MAX_BATCH_BYTES = 1 << 30
"""No size is tried whose batch of float32 inputs would take more memory than this."""

ACCELERATOR_MAX_SIZE = 1 << 14
"""The largest batch size tried on an accelerator (a GPU runs its fastest at large batches)."""

ACCELERATOR_MEMORY_SHARE = 64
"""On an accelerator, a batch of float32 inputs takes at most this fraction (1/64) of its free memory, and at most
:data:`ACCELERATOR_MAX_BATCH_BYTES`: room for the network's activations, a multiple of its input; a batch that still
does not fit runs in halves and caps the size (:meth:`BatchSizer.cap`), so the run never fails for it."""

ACCELERATOR_MAX_BATCH_BYTES = 1 << 31
"""No size is tried on an accelerator whose batch of float32 inputs would take more memory than this."""

CHUNK_SECONDS = 0.2
"""The work timed as one measurement: about this long, and at least one whole batch."""

SLOW_BATCH_SECONDS = 0.5
"""No larger size is tried once one batch takes this long: a longer batch saves no per-batch overhead worth having
(and on a CPU only adds memory)."""

MARGIN = 0.05
"""A trial size must be this much faster than the current one to replace it."""

MAX_PATIENCE = 64
"""After repeated losing trials of one neighbour, at most this many chunks pass before the next."""

FAR_PATIENCE = 8
"""The chunks that pass, at the start and after each move, before the first trial two steps away (four times or a
quarter of the size)."""

FAR_MAX_PATIENCE = 4 * MAX_PATIENCE
"""After repeated losing trials of one size two steps away, at most this many chunks pass before the next."""

BACK_PATIENCE = 8
"""After a move, the chunks that pass before the size it left is tried again."""

COST_SHARE = 0.02
"""No trial starts while the trials that lost have cost more than this share of the time measured so far."""

SMALL_MARGIN = 0.015
"""A size on trial (:data:`STEPS`) whose trials since the last move were faster by this much on average (geometric
mean), by more than twice the standard error of that average, over at least :data:`EVIDENCE_TRIALS` trials, replaces
the current size: the way to a peak that is flat to within :data:`MARGIN` under timing jitter larger than the gain."""

EVIDENCE_TRIALS = 4
"""The fewest trials of one size that can move the size by :data:`SMALL_MARGIN`."""

UNSTEADY = 0.2
"""A trial is judged only when the current size's chunks just before and after it ran within this much of each other
(20%): otherwise the machine's load changed around the trial (another process came or went) and the comparison would
measure the load, not the sizes; such a trial moves nothing and adds no evidence."""

EVIDENCE_WINDOW = 8
"""The most recent trials of one size that the :data:`SMALL_MARGIN` rule weighs."""

STEPS = (1, -1, 2, -2)
"""The sizes tried, as steps from the current size (log2 of their ratio): the neighbours, twice and half the size,
and more rarely four times and a quarter, so that a plateau or a dip one step away does not hide a faster size two
steps away."""

SHORT_CHUNK = 0.5
"""A chunk of fewer rows than this share of a chunk at its size measures nothing (:meth:`BatchSizer.record`)."""


def _power_of_two_at_most(n: float) -> int:
    """The largest power of two not above ``n`` (1 for anything below 2)."""
    return 2 ** int(math.log2(max(1, n)))


def _row_bytes(input_shape: tuple[int, ...]) -> int:
    """The memory of one float32 input of ``input_shape``."""
    return 4 * max(1, math.prod(input_shape))


def start_size(input_shape: tuple[int, ...]) -> int:
    """The size a run starts at for inputs of ``input_shape``: about :data:`START_BYTES` of float32 inputs, a power
    of two between 1 and 256 (small networks are fast from 256 up; large inputs start small so that no first batch
    runs out of memory or takes long)."""
    return min(256, _power_of_two_at_most(START_BYTES // _row_bytes(input_shape)))


@dataclass
class BatchSizer:
    """The batch size of one model on one input shape, adapted during a run (see the module's description).

    Use: ask :meth:`next_size` for a chunk's batch size and :meth:`chunk_rows` for its rows, run them, and
    :meth:`record` how long they took (:meth:`round_rows` and :meth:`held_rows` say how much work a run of many
    inputs gathers for its next backend call). Guarantee: the size only moves to a size :data:`STEPS` away (twice,
    half, four times or a quarter) that ran faster than the current size in the chunks just before and after it,
    chunks that ran within :data:`UNSTEADY` of each other: by :data:`MARGIN` in two trials in a row, or by
    :data:`SMALL_MARGIN` on average over its latest trials (at least :data:`EVIDENCE_TRIALS`); it stays between 1
    and :attr:`max_size`; and no trial starts while the trials that lost or went unjudged have cost more than
    :data:`COST_SHARE` of the time (what they took beyond what the current size would have).
    """

    size: int
    max_size: int = MAX_SIZE
    rates: dict[int, float] = field(default_factory=dict)
    """The latest copies-per-second measured at each size tried."""
    moves: list[tuple[int, int, float]] = field(default_factory=list)
    """Each move: ``(from, to, speed-up measured)``."""
    rows: int = 0
    """Rows timed so far (all of them useful work)."""
    trial_rows: int = 0
    """Of those, the rows run at a trial size."""
    seconds: float = 0.0
    """The time of the rows timed so far."""
    trial_cost: float = 0.0
    """Of that time, what the trials that lost or went unjudged took beyond what the current size would have (their
    cost)."""
    unsteady: int = 0
    """Trials not judged because the load changed around them (:data:`UNSTEADY`)."""

    def __post_init__(self) -> None:
        self.size = max(1, min(self.size, self.max_size))
        self._last: float | None = None  # the rate of the latest chunk at the current size
        self._trial: tuple[int, int, float, float] | None = None  # awaiting the next chunk: size, rows, rate, before
        self._direction = 1  # the way the next trial of a neighbour looks first
        self._wins: tuple[int, float] | None = None  # (step, speed-up) of a trial that won once, awaiting confirmation
        self._patience = {1: 1, -1: 1, 2: FAR_PATIENCE, -2: FAR_PATIENCE}  # by step (log2 of trial size / size)
        self._wait = {**self._patience, 1: 0, -1: 0}
        self._evidence: dict[int, list[float]] = {step: [] for step in STEPS}  # log speed-ups of each step's trials

    @classmethod
    def for_input(cls, input_shape: tuple[int, ...], device_memory: int | None = None) -> BatchSizer:
        """A sizer for inputs of ``input_shape``. On a CPU (``device_memory`` None) it starts at :func:`start_size`,
        never above what :data:`MAX_BATCH_BYTES` allows. On an accelerator with ``device_memory`` bytes free it
        starts at the largest size allowed (:data:`ACCELERATOR_MAX_SIZE`, a batch of inputs within
        :data:`ACCELERATOR_MEMORY_SHARE` of that memory and :data:`ACCELERATOR_MAX_BATCH_BYTES`), where a GPU is
        usually fastest, and moves down only where a smaller size is measured faster: no climb through the slow small
        sizes."""
        row = _row_bytes(input_shape)
        if device_memory is None:
            return cls(start_size(input_shape), max_size=_power_of_two_at_most(min(MAX_SIZE, MAX_BATCH_BYTES // row)))
        room = min(ACCELERATOR_MAX_BATCH_BYTES, device_memory // ACCELERATOR_MEMORY_SHARE) // row
        largest = _power_of_two_at_most(min(ACCELERATOR_MAX_SIZE, room))
        return cls(largest, max_size=largest)

    def next_size(self) -> int:
        """The batch size of the next chunk: the current size, or now and then a size on trial (a trial that won once
        first, then the neighbours, then the sizes two steps away)."""
        if self._trial is not None or self._last is None or self.trial_cost > COST_SHARE * self.seconds:
            return self.size
        near = (self._direction, -self._direction)
        for step in (*([self._wins[0]] if self._wins else []), *near, *(2 * d for d in near)):
            if self._wait[step] <= 0 and self._allowed(step):
                if abs(step) == 1:
                    self._direction = step
                return self.size << step if step > 0 else self.size >> -step
        return self.size

    def chunk_rows(self, size: int) -> int:
        """Rows of a chunk at ``size``: whole batches, at least one, about :data:`CHUNK_SECONDS` of work at the
        speed measured so far (half that for a size on trial)."""
        rate = self.rates.get(size) or self.rates.get(self.size)
        seconds = CHUNK_SECONDS if size == self.size else CHUNK_SECONDS / 2
        batches = 1 if rate is None else max(1, int(seconds * rate / size))
        return batches * size

    def round_rows(self) -> int:
        """Rows a round of work should hold at least: one batch of the next chunk's size (so that a trial of a larger
        size measures a whole batch)."""
        return max(self.size, self.next_size())

    def held_rows(self) -> int:
        """Rows the inputs in progress may ask for in all while a run takes in another input: one chunk at the
        current size (about :data:`CHUNK_SECONDS` of work), so that inputs of few copies each (PREDICT at small
        ``n``) share each backend call, while every input held is answered within about a chunk's time."""
        return self.chunk_rows(self.size)

    def record(self, size: int, rows: int, seconds: float) -> None:
        """Take the time of a chunk of ``rows`` copies run in batches of ``size``. A chunk of less than one batch, or
        of less than :data:`SHORT_CHUNK` of a chunk's rows at that size (a request's short end, CERTIFY's ``n0``),
        measures nothing and is ignored: its call's fixed cost and its part-empty last batch would make that size
        look slower than it runs (a trial that falls on one is tried again on the next chunk)."""
        if rows < size or rows < SHORT_CHUNK * self.chunk_rows(size) or seconds <= 0:
            return
        rate = rows / seconds
        self.rates[size], self.rows, self.seconds = rate, self.rows + rows, self.seconds + seconds
        if size != self.size:
            self.trial_rows += rows
            self._trial = (size, rows, rate, self._last or rate)
            return
        if self._trial is not None:
            self._judge(rate)
        self._last = rate
        for step in self._wait:  # waits count whole chunks' worth of rows, however the rows came
            self._wait[step] -= rows / self.chunk_rows(size)

    def cap(self, largest: int) -> None:
        """Never use a batch larger than ``largest`` again (the device ran out of memory above it)."""
        self.max_size = min(self.max_size, _power_of_two_at_most(largest))
        if self.size > self.max_size:
            self.moves.append((self.size, self.max_size, 0.0))
            self.size, self._last, self._trial, self._wins = self.max_size, None, None, None
            self._evidence = {step: [] for step in STEPS}

    def report(self) -> str:
        """What was chosen and why, in one line."""
        if not self.rates:
            return f"batch size {self.size} (nothing measured yet)"
        tried = ", ".join(f"{s}: {r:,.0f}/s" for s, r in sorted(self.rates.items()))
        share, cost = self.trial_rows / self.rows, self.trial_cost / self.seconds
        unjudged = f"; {self.unsteady} trials not judged: the load changed around them" if self.unsteady else ""
        return (f"batch size {self.size}, which no size on trial has beaten by {MARGIN:.0%} twice in a row or by "
                f"{SMALL_MARGIN:.1%} on average over its recent trials during the run (the latest noisy inputs per "
                f"second by size: {tried}; {share:.0%} of the rows ran at a size on trial, costing {cost:.1%} of the "
                f"time{unjudged})")

    def _allowed(self, step: int) -> bool:
        """Whether the size ``step`` steps away may be tried: at least 1, at most :attr:`max_size`, and upwards only
        while a batch of half that size took less than :data:`SLOW_BATCH_SECONDS`."""
        if step < 0:
            return self.size >> -step >= 1
        rate = self.rates.get(self.size)
        slow = rate is not None and (self.size << (step - 1)) / rate >= SLOW_BATCH_SECONDS
        return self.size << step <= self.max_size and not slow

    def _judge(self, after: float) -> None:
        """Compare the trial with the current size's chunks before and after it; move when it was faster by
        :data:`MARGIN` twice in a row, or by :data:`SMALL_MARGIN` consistently; otherwise double the wait before that
        size's next trial. A trial whose chunks before and after differ by more than :data:`UNSTEADY` counts
        for nothing (it breaks a row of wins, and that size is tried again after the same wait): the load
        changed around it."""
        assert self._trial is not None
        size, rows, rate, before = self._trial
        self._trial = None
        step = round(math.log2(size / self.size))
        baseline = statistics.mean([before, after])
        speedup, cost = rate / baseline, max(0.0, rows / rate - rows / baseline)
        if max(before, after) > (1 + UNSTEADY) * min(before, after):  # the load changed: the trial tells nothing
            self.unsteady += 1
            self._stay(step, cost, lost=False)
            return
        evidence = self._evidence[step]
        evidence[:] = [*evidence[1 - EVIDENCE_WINDOW:], math.log(speedup)]
        won = speedup > 1 + MARGIN
        pending = self._wins[1] if self._wins is not None and self._wins[0] == step else 0.0  # its first win
        confirmed, consistent = won and pending > 0, _consistently_faster(evidence)
        if won and not (confirmed or consistent):
            self._wins = (step, speedup)  # once faster: confirm it with the next chunks
            return
        if confirmed or consistent:  # move on, and keep going that way (going back was measured slower)
            speedup = min(speedup, pending) if confirmed else math.exp(statistics.mean(evidence))
            self._wins = None
            self.moves.append((self.size, size, speedup))
            self.size, self._last = size, None
            ahead = 1 if step > 0 else -1
            self._patience = {ahead: 1, -ahead: BACK_PATIENCE, 2: FAR_PATIENCE, -2: FAR_PATIENCE}
            self._wait = {**self._patience, ahead: 0}
            self._evidence = {s: [] for s in STEPS}
            self._direction = ahead
            return
        self._stay(step, cost, lost=True)

    def _stay(self, step: int, cost: float, lost: bool) -> None:
        """After a trial ``step`` steps away that moved nothing and cost ``cost`` seconds: wait before that size's
        next trial, twice as long as last time when it ``lost`` (as long when it went unjudged); after a neighbour's,
        look the other way first."""
        self._wins = None
        self.trial_cost += cost
        if lost:
            longest = MAX_PATIENCE if abs(step) == 1 else FAR_MAX_PATIENCE
            self._patience[step] = min(2 * self._patience[step], longest)
        self._wait[step] = self._patience[step]
        if abs(step) == 1:
            self._direction = -step


def _consistently_faster(evidence: list[float]) -> bool:
    """Whether log speed-ups ``evidence`` show a size faster by :data:`SMALL_MARGIN` on average, by more than
    twice the average's standard error, over at least :data:`EVIDENCE_TRIALS` trials."""
    if len(evidence) < EVIDENCE_TRIALS:
        return False
    mean = statistics.mean(evidence)
    return mean > math.log(1 + SMALL_MARGIN) and mean > 2 * statistics.stdev(evidence) / math.sqrt(len(evidence))


_SIZERS: dict[tuple, BatchSizer] = {}


def calibration_key(backend: Any, x: Any) -> tuple:
    """What the best batch size depends on: the backend's model and device (its ``identity()``; a backend without
    one is its own identity), the input's shape and dtype."""
    identity = backend.identity() if hasattr(backend, "identity") else (id(backend),)
    return (*identity, tuple(getattr(x, "shape", ())), str(getattr(x, "dtype", "")))


def sizer_for(backend: Any, x: Any) -> BatchSizer:
    """The process's :class:`BatchSizer` for ``backend`` on inputs like the prepared ``x`` (one per
    :func:`calibration_key`: a later run goes on from what earlier ones measured)."""
    key = calibration_key(backend, x)
    if key not in _SIZERS:
        _SIZERS[key] = _new_sizer(backend, x)
    return _SIZERS[key]


def _new_sizer(backend: Any, x: Any) -> BatchSizer:
    """A sizer for ``backend`` on inputs like ``x``, starting where :meth:`BatchSizer.for_input` says for the
    backend's device (its ``device_memory``, None on a CPU)."""
    return BatchSizer.for_input(tuple(getattr(x, "shape", ())), getattr(backend, "device_memory", None))


def measure(backend: Any, noise: Any, x: Any, size: int, min_seconds: float = 0.02) -> float:
    """Noisy copies evaluated per second by ``backend`` on batches of ``size`` copies of ``x`` (after a warm-up):
    the median of at least three timed batches, and of as many as fit in ``min_seconds``."""
    stream = backend.stream(noise, 0)
    backend.counts([x], [size], [stream], size)
    rates: list[float] = []
    spent = 0.0
    while len(rates) < 3 or (spent < min_seconds and len(rates) < 50):
        start = time.perf_counter()
        backend.counts([x], [size], [stream], size)
        seconds = time.perf_counter() - start
        rates.append(size / seconds)
        spent += seconds
    return statistics.median(rates)


def best_batch_size(backend: Any, noise: Any, x: Any, budget: float = 1.0) -> tuple[int, float]:
    """``(size, copies per second)``, the fastest power of two for ``backend`` on inputs like the prepared ``x``:
    from where :meth:`BatchSizer.for_input` starts (on an accelerator, the largest size its free memory allows) the
    sizes are measured upwards while they get faster (by :data:`MARGIN`) and a batch stays under
    :data:`SLOW_BATCH_SECONDS`, or else downwards while they get faster, within about ``budget`` seconds after the
    first; once per process for each :func:`calibration_key`. A size that ran out of device memory (the backend's
    ``max_batch_size`` fell below it: it ran in halves) is never the answer: the sizes are capped below it."""
    key = ("once", *calibration_key(backend, x))
    sizer = _SIZERS.get(key)
    if sizer is None:
        sizer = _new_sizer(backend, x)
        rates: dict[int, float] = {}
        _measure_fitting(backend, noise, x, sizer, sizer.size, rates)
        start = time.perf_counter()
        for direction in (1, -1):
            size = sizer.size
            while time.perf_counter() - start < budget:
                slow = size / rates[size] >= SLOW_BATCH_SECONDS
                other = size * 2 if direction > 0 else size // 2
                if other < 1 or other > sizer.max_size or (direction > 0 and slow):
                    break
                if not _measure_fitting(backend, noise, x, sizer, other, rates):
                    break
                if rates[other] <= rates[size] * (1 + MARGIN):
                    break
                size = other
            if size != sizer.size:  # faster upwards: no need to look below
                break
        sizer.rates = rates
        sizer.size = max(rates, key=rates.get)
        _SIZERS[key] = sizer
    return sizer.size, sizer.rates[sizer.size]


def _measure_fitting(backend: Any, noise: Any, x: Any, sizer: BatchSizer, size: int, rates: dict[int, float]) -> bool:
    """Measure ``size`` into ``rates``; whether it fitted in the device's memory. A size that did not (it ran in
    halves) caps ``sizer`` below it and drops every rate above the cap; ``sizer``'s size, moved down to the cap, is
    then measured too unless it was already."""
    fitted = True
    while True:
        rates[size] = measure(backend, noise, x, size)
        largest = getattr(backend, "max_batch_size", None)
        if largest is None or size <= largest:
            return fitted
        fitted = False
        sizer.cap(largest)
        for tried in [s for s in rates if s > sizer.max_size]:
            del rates[tried]
        if sizer.size in rates:
            return False
        size = sizer.size
