"""The smoothed classifier: PREDICT and CERTIFY of Cohen, Rosenfeld & Kolter (ICML 2019).

:meth:`SmoothedClassifier.predict` and :meth:`SmoothedClassifier.certify` read as the paper's pseudocode
(``_predict``, and ``_certify``: a generator that asks for samples). A single input is a run of one:
:meth:`~SmoothedClassifier.predict_many` and :meth:`~SmoothedClassifier.certify_many` run the same code with several
inputs sharing each forward pass (``_run`` answers the requests of every input in progress together), and fixed-n
CERTIFY is sequential CERTIFY with one stage (:class:`rs_plugin.sequential.FixedSequence`).
"""

from __future__ import annotations

import itertools
import math
import numbers
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from . import diagnostics, sequential
from .bounds import top_two_differ
from .calibration import BatchSizer, sizer_for
from .certificate import ABSTAIN, Certificate
from .checks import positive_int, probability, radii
from .checks import seed as check_seed
from .deprecation import renamed
from .noises import Noise
from .plugins import make_backend, make_noise
from .seeding import fresh_entropy, stream_seed

Request = tuple[str, int, Any]
"""What a procedure of :meth:`SmoothedClassifier._certify` asks for: ``(kind, m, selected)``, the class counts
(``"counts"``) or summed softmax (``"soft_sums"``) of ``m`` fresh noisy copies, or the ``(m, 2)`` softmax pairs of the
class ``selected`` and its runner-up (``"soft_pairs"``)."""

SMOOTHINGS = ("hard", "soft")
"""Which smoothed classifier CERTIFY certifies: the vote (Cohen et al.) or the mean softmax (Salman et al.)."""

ROUND_BATCHES = 16
"""The most batches a round takes in further inputs to fill its last batch, and, at a batch size the user fixed
(nothing timed), the work the inputs in progress may ask for in all while a run takes in another."""


@dataclass(frozen=True)
class _Stopping:
    """How CERTIFY estimates: at most ``n`` samples, the bounds (hard: a confidence sequence on the vote; soft: the
    :class:`~rs_plugin.sequential.SoftBounds`), the target radii and their thresholds on p (hard), the radius
    tolerance (fixed n: one stage, no target, no tolerance)."""

    n: int
    sequence: sequential.ConfidenceSequence | sequential.SoftBounds
    targets: list[float]
    thresholds: list[float]
    radius_tolerance: float | None
    smoothing: str = "hard"


class SmoothedClassifier:
    """The smoothed classifier ``g(x) = argmax_c P(f(x + noise) = c)`` of a base classifier ``f``.

    ``base`` is anything a backend plugin accepts: a callable mapping a float32 batch ``(B, *shape)``
    to labels ``(B,)`` or scores ``(B, K)``, a ``torch.nn.Module`` returning logits, an ART classifier.
    Noise is added to the raw input, so put any normalisation inside the base classifier.

    ``seed``: with an int the results are reproducible (the k-th call on a fresh instance, or any call given
    ``index=i``, a dataset position, always draws the same noise); None draws a root seed from fresh entropy once.
    ``batch_size`` is the number of noisy copies per forward pass; None (the default) measures the fastest once
    per model and input shape (:mod:`rs_plugin.calibration`). Results do not depend on it.
    """

    def __init__(
        self,
        base: Any,
        num_classes: int,
        sigma: float,
        *,
        noise: str | Noise = "gaussian",
        batch_size: int | None = None,
        seed: int | None = None,
        device: Any = None,
    ) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
            raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        check_seed("seed", seed)
        self.noise = make_noise(noise, sigma)
        self.batch_size = None if batch_size is None else positive_int("batch_size", batch_size)
        self.num_classes = int(num_classes)
        self.sigma = self.noise.sigma
        self.seed = seed
        self.base = base
        self.backend = make_backend(base, self.num_classes, device)
        self._root = fresh_entropy() if seed is None else seed
        self._calls = 0

    def __repr__(self) -> str:
        return (
            f"SmoothedClassifier({type(self.base).__name__}, num_classes={self.num_classes}, "
            f"noise={self.noise!r}, seed={self.seed})"
        )

    # PREDICT and CERTIFY, as the paper writes them ------------------------------------------------------------

    def predict(self, x: Any, n: int, alpha: float, *, index: int | None = None) -> int:
        """PREDICT: g's class at ``x``, or :data:`ABSTAIN`.

        With probability at least ``1 - alpha`` a returned class is g(x) (two-sided binomial test of the
        top two counts among ``n`` samples; abstains when its p-value exceeds ``alpha``).
        """
        return int(self._predict_all([(x, index)], n, alpha, progress=False)[0])

    def certify(
        self,
        x: Any,
        n0: int,
        n: int,
        alpha: float,
        *,
        target_radius: float | Sequence[float] | None = None,
        radius_tolerance: float | None = None,
        sequence: str = "betting",
        smoothing: str = "hard",
        index: int | None = None,
    ) -> Certificate:
        """CERTIFY: g's class at ``x`` and a radius within which g is constant.

        ``n0`` samples select the class; ``n`` fresh samples bound its probability from below
        (one-sided Clopper-Pearson at level ``alpha``); the radius follows from the noise. With
        probability at least ``1 - alpha`` the returned class is g(x) and g returns it within the radius.
        Abstains when the bound is below 1/2.

        Sequential CERTIFY (:mod:`rs_plugin.sequential`) draws the ``n`` estimation samples in stages and
        stops early, with the same guarantee whatever the stopping rule: with ``target_radius`` (a radius
        or a list of radii) once each radius is certified or projected out of reach of the samples left;
        with ``radius_tolerance`` (eps) once more samples, up to ``n``, are not expected to raise the radius
        by more than eps; with both, when both hold (the projections are heuristics, not guarantees). ``sequence``
        names the anytime-valid bound: ``"betting"`` (a betting confidence sequence, Waudby-Smith & Ramdas
        2023) or ``"bonferroni"`` (Clopper-Pearson with alpha spent over doubling checkpoints, Horvath et
        al. 2022). ``num_samples`` reports the samples used.

        ``smoothing="soft"`` certifies the soft smoothed classifier ``G(x) = E[softmax(f(x + noise))]`` instead of the
        vote (scores are read as logits, a label as a one-hot vector): ``n0`` samples select the class of the largest
        mean softmax, ``n`` fresh ones bound its mean from below and every other class's from above (the betting
        bounds of :func:`rs_plugin.bounds.mean_lower_bound`, each at level ``alpha / 2``), and the noise turns the two
        bounds into a radius (:meth:`rs_plugin.noises.Noise.soft_radius`; Gaussian: ``sigma / 2 (Phi^-1(lower) -
        Phi^-1(upper))``, Salman et al. 2019). With probability at least ``1 - alpha`` the class is ``G``'s and ``G``
        keeps it within the radius; abstains when the radius is not positive. ``target_radius`` and
        ``radius_tolerance`` stop early as for the vote: the betting bounds with horizon ``n`` are confidence
        sequences, so the guarantee holds at whatever checkpoint sampling stops
        (:func:`rs_plugin.sequential.soft_stages`; ``sequence`` must be ``"betting"``).

        Refuses an ``n`` and ``alpha`` that cannot certify any radius, before any sample, and warns when a target
        radius cannot be certified (:mod:`rs_plugin.diagnostics`).
        """
        return self._certify_all([(x, index)], n0, n, alpha, target_radius, radius_tolerance, sequence, smoothing,
                                 False)[0]

    def _predict(self, x: Any, n: int, alpha: float) -> Generator[Request, Any, int]:
        """PREDICT on the prepared ``x``, as a generator like :meth:`_certify`."""
        copies = self._enumerated(x)
        if copies is not None:  # a deterministic enumeration: every copy once, the top class exactly
            return int((yield ("counts", copies, None)).argmax())
        counts = yield ("counts", n, None)  # n samples of f(x + noise)
        return _vote(counts, alpha)  # the top class if the binomial test separates it

    def _certify(self, x: Any, n0: int, stopping: _Stopping) -> Generator[Request, Any, Certificate]:
        """CERTIFY on the prepared ``x``, as a generator: it asks for samples (``yield`` a :data:`Request`, sent the
        class counts or score pairs of that many fresh noisy copies) and returns the certificate. :meth:`_run`
        answers the requests of many inputs in shared forward passes."""
        if stopping.smoothing == "soft":
            return (yield from self._certify_soft(x, n0, stopping))
        copies = self._enumerated(x)
        if copies is not None:
            return self._certify_enumerated(x, (yield ("counts", copies, None)))
        selected = int((yield ("counts", n0, None)).argmax())  # select the class with n0 samples
        count, used, p_lower = yield from self._estimate(selected, stopping)  # count it on fresh samples, bound p_A
        return self._certificate(x, selected, count, used, p_lower, n0)

    def _estimate(self, selected: int, stopping: _Stopping) -> Generator[Request, Any, tuple[int, int, float]]:
        """The sequential procedure (:func:`rs_plugin.sequential.stages`) on fresh samples' votes for ``selected``.
        Returns ``(count, samples, p_lower)``."""
        procedure = sequential.stages(stopping.n, stopping.sequence, stopping.thresholds,
                                      radius_tolerance=stopping.radius_tolerance, radius=self._radius_of)
        return (yield from _answer(procedure, lambda m: ("counts", m, None), lambda counts: int(counts[selected])))

    def _certify_enumerated(self, x: Any, counts: np.ndarray) -> Certificate:
        """CERTIFY for a deterministic enumeration (derandomized smoothing, :mod:`rs_plugin.ablation`): ``counts``
        holds the base classifier's vote on each randomized copy once, so it is the smoothed classifier's exactly
        and the noise turns it into a class and a radius (``votes_radius``) that hold with certainty."""
        copies = int(counts.sum())
        chosen, radius = self.noise.votes_radius(counts)
        return Certificate(
            prediction=chosen, radius=radius, norm=self.noise.norm, p_lower=float(counts[chosen]) / copies,
            num_samples=copies, count=int(counts[chosen]), n=copies, selected=chosen,
            radii=self.noise.radii(radius, math.prod(np.shape(x))), input_shape=tuple(np.shape(x)),
        )

    def _certify_soft(self, x: Any, n0: int, stopping: _Stopping) -> Generator[Request, Any, Certificate]:
        """CERTIFY of the soft smoothed classifier on the prepared ``x`` (see :meth:`certify`)."""
        chosen = int((yield ("soft_sums", n0, None)).argmax())  # select the class with n0 samples
        procedure = sequential.soft_stages(stopping.sequence, stopping.targets, self._soft_radius_of,
                                           radius_tolerance=stopping.radius_tolerance)
        values, lower, upper = yield from _answer(procedure, lambda m: ("soft_pairs", m, chosen), lambda v: v)
        radius = self._soft_radius_of(lower, upper)
        return Certificate(
            prediction=chosen if radius > 0 else ABSTAIN, radius=radius, norm=self.noise.norm,
            p_lower=lower, num_samples=n0 + len(values), count=int((values[:, 0] > values[:, 1]).sum()),
            n=len(values), selected=chosen, radii=self.noise.radii(radius, math.prod(np.shape(x))),
            smoothing="soft", p_upper=upper, ellipsoid=self.noise.ellipsoid(radius) if radius > 0 else None,
            input_shape=tuple(np.shape(x)),
        )

    def _soft_radius_of(self, lower: float, upper: float) -> float:
        """The soft radius of the bounds ``lower`` on the selected class's mean softmax and ``upper`` on every
        other's (0 unless ``lower > upper``)."""
        return max(self.noise.soft_radius(lower, upper), 0.0) if lower > upper else 0.0

    def _certificate(self, x: Any, selected: int, count: int, used: int, p_lower: float, n0: int) -> Certificate:
        """The certificate of class ``selected`` whose probability is at least ``p_lower``: abstains below 1/2."""
        if p_lower < 0.5:
            prediction, radius = ABSTAIN, 0.0
        else:
            prediction, radius = int(selected), self.noise.radius(p_lower)
        return Certificate(
            prediction=prediction,
            radius=radius,
            norm=self.noise.norm,
            p_lower=p_lower,
            num_samples=n0 + used,
            count=count,
            n=used,
            selected=int(selected),
            radii=self.noise.radii(radius, math.prod(np.shape(x))),
            ellipsoid=self.noise.ellipsoid(radius) if radius > 0 else None,
            input_shape=tuple(np.shape(x)),
        )

    # Several inputs at once --------------------------------------------------------------------------------

    def predict_many(
        self,
        xs: Iterable[Any],
        n: int,
        alpha: float,
        *,
        indices: Iterable[int] | None = None,
        progress: bool = True,
    ) -> np.ndarray:
        """PREDICT on every input of ``xs`` with a progress bar; example ``k`` is seeded by ``indices[k]``
        (default ``k``), so that any split of a dataset gives the same answers. Several examples share each
        forward pass when ``n`` is below the batch size; the answers are those of :meth:`predict` one at a time.
        Refuses an ``n`` and ``alpha`` that always abstain, before any sample (:mod:`rs_plugin.diagnostics`)."""
        return self._predict_all(_numbered(xs, indices), n, alpha, progress=progress)

    def certify_many(
        self,
        xs: Iterable[Any],
        n0: int,
        n: int,
        alpha: float,
        *,
        target_radius: float | Sequence[float] | None = None,
        radius_tolerance: float | None = None,
        sequence: str = "betting",
        smoothing: str = "hard",
        indices: Iterable[int] | None = None,
        progress: bool = True,
    ) -> list[Certificate]:
        """CERTIFY on every input of ``xs`` with a progress bar, seeded per example as in :meth:`predict_many`.
        Several examples share each forward pass: the requests of every example in progress are drawn together, and
        further examples are taken in while a pass would otherwise run part-empty (sequential CERTIFY's examples
        stop at different stages); the certificates are those of :meth:`certify` one at a time."""
        return self._certify_all(_numbered(xs, indices), n0, n, alpha, target_radius, radius_tolerance, sequence,
                                 smoothing, progress)

    def _predict_all(self, pairs: Sequence[tuple[Any, int | None]], n: int, alpha: float, *, progress: bool) -> Any:
        n, alpha = positive_int("n", n), probability("alpha", alpha)
        copies = self._enumerated(pairs[0][0]) if pairs else None
        if copies is None:  # an enumeration neither samples nor tests
            diagnostics.check_predict(n, alpha)
            diagnostics.check_input_scale([x for x, _ in pairs], self.sigma)
        answers = self._run(pairs, lambda x: self._predict(x, n, alpha), "predict", progress, copies or n)
        return np.array(answers, dtype=np.int64)

    def _certify_all(
        self,
        pairs: Sequence[tuple[Any, int | None]],
        n0: int,
        n: int,
        alpha: float,
        target_radius: float | Sequence[float] | None,
        radius_tolerance: float | None,
        sequence: str,
        smoothing: str,
        progress: bool,
    ) -> list[Certificate]:
        n0, n, alpha = positive_int("n0", n0), positive_int("n", n), probability("alpha", alpha)
        if smoothing not in SMOOTHINGS:
            raise ValueError(f"smoothing must be one of {', '.join(SMOOTHINGS)}, got {smoothing!r}")
        targets = [] if target_radius is None else radii("target_radius", target_radius)
        tolerance = None if radius_tolerance is None else sequential.radius_tolerance(radius_tolerance)
        stops_early = bool(targets) or tolerance is not None
        if smoothing == "soft":
            _check_soft(self.noise, sequence if stops_early else "betting")
            bounds: Any = sequential.SoftBounds(alpha, n, stops_early)
        else:
            bounds = sequential.make_sequence(sequence, alpha, n) if stops_early else sequential.FixedSequence(alpha)
        copies = self._enumerated(pairs[0][0]) if pairs else None
        if copies is not None:  # counted exactly: nothing to stop early, no alpha
            if stops_early:
                raise ValueError(f"target_radius: the {self.noise.name} randomization counts every copy exactly "
                                 "once; there is no sampling to stop early (drop target_radius and radius_tolerance)")
        else:
            diagnostics.check_certify(self.noise, n, alpha, target_radius,
                                      sequence=sequence if stops_early else None)
            diagnostics.check_input_scale([x for x, _ in pairs], self.sigma)
        thresholds = [] if smoothing == "soft" else [self.noise.p_needed(r) for r in targets]
        stopping = _Stopping(n, bounds, targets, thresholds, tolerance, smoothing)
        return self._run(pairs, lambda x: self._certify(x, n0, stopping), "certify", progress, copies or n0 + n)

    # The machinery: streams, counts, rounds of sequential estimation, packs ---------------------------------

    def counts(self, x: Any, n: int | None = None, *, index: int | None = None, num: int | None = None) -> np.ndarray:
        """Class counts (length ``num_classes``) of the base classifier on ``n`` noisy copies of ``x`` (``num`` is
        the deprecated name of ``n``)."""
        n = positive_int("n", renamed("SmoothedClassifier.counts", "n", n, "num", num))
        prepared = self.backend.prepare(x)
        return self._draw([[prepared, self._stream("counts", index), None, ("counts", n, None)]],
                          self._sizer(prepared))[0]

    def batch_size_for(self, x: Any) -> int:
        """The batch size in use for inputs like the prepared ``x``: ``batch_size``, or the one the runs so far
        found fastest (:mod:`rs_plugin.calibration`)."""
        return self.batch_size or sizer_for(self.backend, x).size

    def batch_report(self, x: Any) -> str:
        """One line: the batch size in use for inputs like ``x`` and why (what was measured at each size tried)."""
        if self.batch_size:
            return f"batch size {self.batch_size} (set by batch_size)"
        return sizer_for(self.backend, self.backend.prepare(x)).report()

    def _stream(self, purpose: str, index: int | None) -> Any:
        """The noise stream of ``purpose`` for example ``index``, or of the next call when ``index`` is None."""
        if check_seed("index", index) is None:
            purpose, index = "call", self._calls
            self._calls += 1
        return self.backend.stream(self.noise, stream_seed(self._root, purpose, index))

    def _sizer(self, x: Any) -> BatchSizer:
        """What sets the batch size for inputs like the prepared ``x``: the process's adaptive sizer, or one fixed at
        ``batch_size`` (it runs each request whole)."""
        return sizer_for(self.backend, x) if self.batch_size is None else _Fixed(self.batch_size)

    def _run(
        self,
        pairs: Sequence[tuple[Any, int | None]],
        start: Callable[[Any], Generator[Request, Any, Any]],
        purpose: str,
        progress: bool,
        budget: int,
    ) -> list[Any]:
        """Run the procedure ``start(prepared x)`` (e.g. :meth:`_certify`) of every input side by side: each round
        answers every pending request in shared forward passes (one backend call per kind of request), and takes in
        further inputs while the round's rows would leave its last batch part-empty, or while the inputs in progress
        could ask for less than a chunk of work in all (each asks for at most ``budget`` copies: PREDICT's ``n``),
        so that batches stay full across inputs and across an input's stages, backend calls are few, and only
        inputs answered within about a chunk's time (or one round) are held. Each input's noise comes from
        its own stream (of ``purpose`` and its index) in the order of its own requests, so what a procedure returns
        does not depend on which inputs share its batches. Returns the procedures' values, in input order."""
        results: dict[int, Any] = {}
        pending: dict[int, list[Any]] = {}  # position: [prepared x, stream, procedure, its request]
        inputs = enumerate(pairs)
        more, sizer, first = True, None, 1
        with tqdm(total=len(pairs), desc=purpose, disable=not progress, unit="ex") as bar:
            while True:
                rows = sum(entry[3][1] for entry in pending.values())
                while more and (sizer is None or rows < sizer.round_rows() or _part_empty(rows, sizer.size, first)
                                or budget * len(pending) < sizer.held_rows()):
                    taken = next(inputs, None)
                    if taken is None:
                        more = False
                        break
                    position, (x, index) = taken
                    prepared = self.backend.prepare(x)
                    stream = self._stream(purpose, check_seed("index", index))
                    procedure = start(prepared)
                    pending[position] = [prepared, stream, procedure, next(procedure)]
                    sizer = sizer or self._sizer(prepared)
                    first = pending[position][3][1]
                    rows += first
                if not pending:
                    return [results[position] for position in range(len(results))]
                for kind in dict.fromkeys(entry[3][0] for entry in pending.values()):
                    members = [position for position, entry in pending.items() if entry[3][0] == kind]
                    for position, answer in zip(members, self._draw([pending[p] for p in members], sizer),
                                                strict=True):
                        entry = pending[position]
                        try:
                            entry[3] = entry[2].send(answer)
                        except StopIteration as done:
                            results[position] = done.value
                            del pending[position]
                            bar.update()

    def _draw(self, entries: list[list[Any]], sizer: BatchSizer) -> list[Any]:
        """The answers to requests of one kind, ``entries`` of :meth:`_run` (``[x, stream, procedure, request]``),
        drawn in shared forward passes. The rows (each request's copies, in entry order) run in chunks whose batch
        size ``sizer`` chooses and times; an entry split across chunks continues its own stream, so its answer is
        the one a single pass would give."""
        kind, nums = entries[0][3][0], [entry[3][1] for entry in entries]
        parts: list[list[Any]] = [[] for _ in entries]
        segments = [(e, num) for e, num in enumerate(nums)]
        while segments:
            size = sizer.next_size()
            chunk, segments = _take(segments, sizer.chunk_rows(size))
            chosen = [entries[e] for e, _ in chunk]
            xs, streams, counts = [c[0] for c in chosen], [c[1] for c in chosen], [m for _, m in chunk]
            start = time.perf_counter()
            if kind == "counts":
                answers = self.backend.counts(xs, counts, streams, size)
            elif kind == "soft_sums":
                answers = self.backend.soft_sums(xs, counts, streams, size)
            else:
                selected = np.array([c[3][2] for c in chosen], dtype=np.int64)
                answers = self.backend.soft_pairs(xs, counts, streams, size, selected)
            sizer.record(size, sum(counts), time.perf_counter() - start)
            if getattr(self.backend, "max_batch_size", None):  # the device ran out of memory above it
                sizer.cap(self.backend.max_batch_size)
            for (e, _), answer in zip(chunk, answers, strict=True):
                parts[e].append(answer)
        if kind == "soft_pairs":
            return [part[0] if len(part) == 1 else np.concatenate(part) for part in parts]
        return [part[0] if len(part) == 1 else np.sum(part, axis=0) for part in parts]

    def _enumerated(self, x: Any) -> int | None:
        """How many copies a deterministic randomization enumerates for inputs like ``x`` (None: a random one)."""
        return self.noise.enumerated(tuple(np.shape(x)))

    def _radius_of(self, p: float) -> float:
        """The radius certified by a lower bound ``p`` on the top class's probability (0 below 1/2)."""
        return self.noise.radius(p) if p >= 0.5 else 0.0


class _Fixed(BatchSizer):
    """A batch size set by the user: every request runs whole, in batches of that size, untimed."""

    def __init__(self, size: int) -> None:
        super().__init__(size, max_size=size)

    def next_size(self) -> int:
        return self.size

    def chunk_rows(self, size: int) -> int:
        return 1 << 62

    def round_rows(self) -> int:
        return self.size

    def held_rows(self) -> int:
        return ROUND_BATCHES * self.size

    def record(self, size: int, rows: int, seconds: float) -> None:
        return None


def _part_empty(rows: int, size: int, first: int) -> bool:
    """Whether a round of ``rows`` in batches of ``size`` should take in another input (whose first request is
    ``first`` rows): while more than 5% of its last batch would run empty, up to :data:`ROUND_BATCHES` batches."""
    empty = -rows % size
    return empty >= first or (20 * empty > rows + empty and rows < ROUND_BATCHES * size)


def _take(segments: list[tuple[int, int]], rows: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Split ``(entry, copies)`` segments after their first ``rows`` copies: ``(the first rows, the rest)``."""
    chunk: list[tuple[int, int]] = []
    for k, (entry, copies) in enumerate(segments):
        if copies >= rows:
            chunk.append((entry, rows))
            rest = ([(entry, copies - rows)] if copies > rows else []) + segments[k + 1 :]
            return chunk, rest
        chunk.append((entry, copies))
        rows -= copies
    return chunk, []


def _answer(
    procedure: Generator[int, Any, Any], ask: Callable[[int], Request], read: Callable[[Any], Any]
) -> Generator[Request, Any, Any]:
    """Run ``procedure`` (a generator that yields how many samples it wants and is sent what they gave): each want
    ``m`` is asked for as the request ``ask(m)``, and the answer is sent on as ``read(answer)``. Returns the
    procedure's value."""
    wanted = next(procedure)
    while True:
        answer = yield ask(wanted)
        try:
            wanted = procedure.send(read(answer))
        except StopIteration as done:
            return done.value


def _check_soft(noise: Any, sequence: str) -> None:
    """``ValueError`` unless soft certification applies: a noise with a soft certificate, the betting bounds."""
    if type(noise).soft_radius is Noise.soft_radius:
        raise ValueError(f"smoothing: the {noise.name} noise has no certificate for the soft smoothed classifier")
    if sequence != "betting":
        raise ValueError(f"sequence: 'soft' certification reads the betting bounds of scores, got {sequence!r}")


def _vote(counts: np.ndarray, alpha: float) -> int:
    """PREDICT's answer from the class counts: the top class if the binomial test separates it, else ABSTAIN."""
    first, second = np.argsort(counts, kind="stable")[::-1][:2]
    return int(first) if top_two_differ(int(counts[first]), int(counts[second]), alpha) else ABSTAIN


def _numbered(xs: Iterable[Any], indices: Iterable[int] | None) -> Sequence[tuple[Any, int]]:
    """``(x, index)`` for every input: ``indices[k]`` (default ``k``) for input ``k``."""
    if indices is None:
        return list(zip(xs, itertools.count()))
    xs, indices = list(xs), list(indices)
    if len(indices) != len(xs):
        raise ValueError(f"indices has {len(indices)} entries for {len(xs)} inputs")
    return list(zip(xs, indices, strict=True))
