"""Sequential estimation for CERTIFY: stop sampling as soon as the question asked is answered.

CERTIFY's guarantee rests on one lower confidence bound on ``p``, the probability that the base
classifier returns the selected class under noise. Sequential CERTIFY draws the estimation samples in
stages and reads a *confidence sequence*: bounds on ``p`` from the ``k`` successes among the first
``t`` samples such that, with probability at least ``1 - alpha``, the lower bound holds at every
checkpoint at once. Holding simultaneously, it holds at whatever checkpoint sampling stops, whatever rule
chose that checkpoint from the samples seen so far: **with probability at least 1 - alpha the returned
class and radius are correct, for every stopping rule of** :func:`estimate` (targets, abandoned targets,
radius tolerance), exactly as for fixed-n CERTIFY. The stopping rules only decide when to stop; their
projections never enter a certificate. The selection samples (``n0``) stay separate.

Fixed-n CERTIFY is the same procedure with one stage (:class:`FixedSequence`: one Clopper-Pearson bound after all
``n`` samples), so that every CERTIFY runs through :func:`stages`. Two confidence sequences stop early
(:data:`SEQUENCES`, built by :func:`make_sequence`):

* ``"betting"`` (default, :class:`BettingSequence`): a betting confidence sequence (Waudby-Smith &
  Ramdas 2023), valid at every sample, so the counts are read every 10% of samples at no cost in alpha;
* ``"bonferroni"`` (:class:`BonferroniSequence`): Clopper-Pearson bounds at doubling checkpoints with
  alpha spent across them by the union bound (Horvath et al., ICLR 2022).

The soft smoothed classifier (``smoothing="soft"``) is certified from bounds on two means of ``[0, 1]``-valued
scores instead of one Bernoulli probability: :class:`SoftBounds` (the betting bounds of
:func:`rs_plugin.bounds.mean_lower_bound` with a fixed horizon, a confidence sequence) read by :func:`soft_stages`,
with the same stopping rules (:func:`settled`) and the same guarantee at whatever checkpoint sampling stops.

Voracek (2024) studies confidence sequences for these decisions in randomized smoothing; the measured savings are in
the documentation's measured results (``benchmarks/sequential.py``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Sequence

import numpy as np
from scipy.optimize import brentq
from scipy.special import betaln
from scipy.stats import norm

from .bounds import lower_confidence_bound, mean_lower_bound, mean_upper_bound, upper_confidence_bound
from .checks import positive_number

SEQUENCES = ("betting", "bonferroni")
FIRST_CHECKPOINT = 100


class ConfidenceSequence(ABC):
    """Anytime-valid bounds on a Bernoulli probability ``p`` from the running count of successes.

    Guarantee: ``P(lower(S_t, t) > p for some checkpoint t of checkpoints(n)) <= alpha``, where ``S_t`` is
    the number of successes among the first ``t`` i.i.d. Bernoulli(p) samples.
    """

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha})"

    @abstractmethod
    def checkpoints(self, n: int) -> list[int]:
        """The increasing sample counts, ending at ``n``, at which the bounds may be read."""

    @abstractmethod
    def lower(self, k: int, t: int) -> float:
        """The lower bound on ``p`` after ``k`` successes in ``t`` samples (``t`` a checkpoint)."""


class FixedSequence(ConfidenceSequence):
    """Fixed-n CERTIFY as a sequence with one checkpoint, ``n``: the one-sided Clopper-Pearson bound at level
    ``alpha`` (Cohen et al.), which holds with probability at least ``1 - alpha``."""

    def checkpoints(self, n: int) -> list[int]:
        return [n]

    def lower(self, k: int, t: int) -> float:
        return lower_confidence_bound(k, t, self.alpha)


class BonferroniSequence(ConfidenceSequence):
    """Clopper-Pearson bounds at the checkpoints ``100, 200, 400, ..., n`` with alpha spent across them.

    Checkpoint ``j`` gets the level ``alpha_j``: half of ``alpha`` at the last checkpoint (an input that
    needs all ``n`` samples loses little against fixed-n CERTIFY), the other half shared equally by the
    earlier ones, so that ``sum_j alpha_j = alpha``. Each one-sided Clopper-Pearson bound at level
    ``alpha_j`` fails with probability at most ``alpha_j``; by the union bound (Bonferroni) all hold at
    once with probability at least ``1 - alpha``. A group-sequential design with alpha spending (Pocock
    1977), applied to randomized smoothing by Horvath et al., "Boosting randomized smoothing with variance
    reduced classifiers", ICLR 2022.
    """

    growth = 2.0

    def __init__(self, alpha: float, n: int) -> None:
        super().__init__(alpha)
        self._points = _geometric(n, self.growth)
        k = len(self._points)
        levels = [alpha] if k == 1 else [alpha / (2 * (k - 1))] * (k - 1) + [alpha / 2]
        self.levels = dict(zip(self._points, levels, strict=True))

    def checkpoints(self, n: int) -> list[int]:
        if n != self._points[-1]:
            raise ValueError(f"n: this sequence spends alpha over {self._points[-1]} samples, got {n}")
        return self._points

    def lower(self, k: int, t: int) -> float:
        return lower_confidence_bound(k, t, self.levels[t])


class BettingSequence(ConfidenceSequence):
    """The betting confidence sequence for a Bernoulli probability (Waudby-Smith & Ramdas 2023).

    For each candidate ``m`` a gambler starts with wealth 1 and before each sample stakes the fraction
    ``lambda_t(m) = (q_t - m) / (m (1 - m))`` of her wealth on it, her wealth being multiplied by
    ``1 + lambda_t (X_t - m)``, where ``q_t`` is the predictive probability of a success given the samples
    so far under a prior ``pi`` on ``p``. The bets are predictable, so under ``p = m`` her wealth is a
    nonnegative martingale with mean 1; after ``k`` successes in ``t`` samples it equals the mixture
    likelihood ratio (Robbins 1970; the Beta-binomial mixture of Howard et al. 2021)

        ``W_t(m) = integral q^k (1 - q)^(t - k) pi(dq) / (m^k (1 - m)^(t - k))``,

    a function of the count alone. By Ville's inequality ``P(W_t(p) >= 1 / alpha for some t) <= alpha``,
    so ``{m : W_t(m) < 1 / alpha}`` holds ``p`` at every ``t`` at once with probability at least
    ``1 - alpha``. It is an interval (``log W_t`` is convex in ``m``); its lower end is found by a root
    search below ``k / t``, where ``W_t`` decreases, and returned on the excluded side of the root, so
    that the bound is never tighter than the exact one. Valid at every sample, the sequence can be
    read as often as wanted: every ``growth - 1`` = 10% of samples.

    The prior is ``Beta(1, b)``, ``b = 0.1``: nearly log-uniform in ``1 - p``, the scale on which radii
    grow, with much of its mass near ``p = 1``. An input whose samples all succeed is certified at
    ``p_needed`` after ``(ln(1 / alpha) - ln(B(1 + t, b) / B(1, b))) / -ln(p_needed)`` samples.
    """

    growth = 1.1
    prior = (1.0, 0.1)

    def checkpoints(self, n: int) -> list[int]:
        return _geometric(n, self.growth)

    def log_wealth(self, k: int, t: int, m: float) -> float:
        """``log W_t(m)`` after ``k`` successes in ``t`` samples, for ``0 < m < 1`` (or ``m = 1`` if ``k = t``)."""
        a, b = self.prior
        return betaln(a + k, b + t - k) - betaln(a, b) - _log_likelihood(k, t, m)

    def lower(self, k: int, t: int) -> float:
        if k == 0:
            return 0.0
        a, b = self.prior
        log_mixture = betaln(a + k, b + t - k) - betaln(a, b)
        threshold = math.log(1 / self.alpha)

        def excess(m: float) -> float:  # log W_t(m) - log(1 / alpha): decreasing on (0, k / t], < 0 at k / t
            return log_mixture - _log_likelihood(k, t, m) - threshold

        root = brentq(excess, math.ulp(0.0), k / t, xtol=1e-15, rtol=4 * math.ulp(1.0))
        while excess(root) < 0:  # step onto the excluded side: never tighter than the exact bound
            root -= 1e-15
        return root


def make_sequence(name: str, alpha: float, n: int) -> ConfidenceSequence:
    """The confidence sequence called ``name`` (one of :data:`SEQUENCES`) at level ``alpha`` for ``n`` samples."""
    if name == "betting":
        return BettingSequence(alpha)
    if name == "bonferroni":
        return BonferroniSequence(alpha, n)
    raise ValueError(f"sequence must be one of {', '.join(SEQUENCES)}, got {name!r}")


def radius_tolerance(value: float) -> float:
    """``value`` as a float; ``ValueError`` unless it is a finite radius tolerance > 0."""
    return positive_number("radius_tolerance", value)


def estimate(
    draw: Callable[[int], int],
    n: int,
    sequence: ConfidenceSequence,
    thresholds: Sequence[float] = (),
    *,
    radius_tolerance: float | None = None,
    radius: Callable[[float], float] | None = None,
) -> tuple[int, int, float]:
    """Draw samples in stages until every question asked is answered, or ``n`` samples are drawn.

    ``draw(m)`` draws ``m`` fresh samples and returns how many were successes. At each checkpoint ``t``
    of ``sequence``, with ``k`` successes so far, ``lower`` is the sequence's bound and ``projected =
    sequence.lower(k + (n - t) q, n)`` the bound at ``n`` if the samples left succeeded at an optimistic
    rate ``q``: the one-sided Clopper-Pearson upper bound on ``p`` at level ``t / (2 n)`` (1 if every
    sample so far succeeded). Its optimism fades as samples are drawn: far above the estimate ``k / t``
    early, where the counts are noisy and read often, the estimate itself (the median) at ``t = n``.

    * a threshold ``tau`` on ``p`` is decided when ``lower >= tau`` (certified) or ``projected < tau``
      (abandoned as out of reach of the samples left; every threshold beyond what ``n`` samples can ever
      certify, ``sequence.lower(n, n)``, is abandoned at the first checkpoint);
    * with ``radius_tolerance`` (``radius`` turns a bound into a certified radius, 0 below 1/2), the radius is
      settled when ``radius(projected) - radius(lower) <= radius_tolerance``: more samples, up to ``n``, are not
      expected to raise it by more (input-specific sample sizes within a radius tolerance, as in Chen et
      al., "Input-specific robustness certification for randomized smoothing", AAAI 2022).

    Sampling stops when every threshold is decided and the radius is settled. Abandoning and settling
    are heuristics that only choose when to stop: a threshold abandoned might still have been certified
    with all ``n`` samples, and the radius might still have grown by more than ``radius_tolerance`` (the
    benchmark counts how often). Returns ``(successes, samples drawn, lower bound)``; with probability at
    least ``1 - alpha`` (the sequence's) the lower bound holds, whenever the procedure stopped.
    """
    procedure = stages(n, sequence, thresholds, radius_tolerance=radius_tolerance, radius=radius)
    wanted = next(procedure)
    while True:
        try:
            wanted = procedure.send(draw(wanted))
        except StopIteration as done:
            return done.value


def stages(
    n: int,
    sequence: ConfidenceSequence,
    thresholds: Sequence[float] = (),
    *,
    radius_tolerance: float | None = None,
    radius: Callable[[float], float] | None = None,
) -> Generator[int, int, tuple[int, int, float]]:
    """:func:`estimate` as a generator that yields how many more samples it wants and is sent how many of them
    succeeded, so that several examples' procedures can share forward passes; returns what :func:`estimate`
    returns."""
    if radius_tolerance is not None and radius is None:
        raise ValueError("radius: a radius tolerance needs the function from a bound on p to a radius")
    count = drawn = 0
    lower = 0.0
    for point in sequence.checkpoints(n):
        count += yield point - drawn
        drawn = point
        lower = sequence.lower(count, drawn)
        if drawn == n or not (radius_tolerance is not None or any(lower < t for t in thresholds)):
            break
        rate = upper_confidence_bound(count, drawn, drawn / (2 * n))
        projected = sequence.lower(count + round((n - drawn) * rate), n)
        if settled(lower, projected, thresholds, radius_tolerance, radius):
            break
    return count, drawn, lower


def settled(
    now: float,
    projected: float,
    thresholds: Sequence[float],
    radius_tolerance: float | None,
    radius: Callable[[float], float] | None,
) -> bool:
    """The stopping rule of :func:`estimate` at a checkpoint: every threshold is decided (certified, ``now >= t``, or
    out of reach, ``projected < t``) and, with ``radius_tolerance``, ``radius(projected) - radius(now)`` is at most
    it. ``now`` and ``projected`` are the bound now and its projection at the horizon."""
    if any(now < t <= projected for t in thresholds):
        return False
    return radius_tolerance is None or radius(projected) - radius(now) <= radius_tolerance


class SoftBounds:
    """The bounds behind a soft certificate: a lower bound on the selected class's mean softmax and an upper bound on
    the runner-up's, each the betting bound (:func:`rs_plugin.bounds.mean_lower_bound`) at level ``alpha / 2`` with
    horizon ``n``, read at :meth:`checkpoints`.

    Guarantee: with probability at least ``1 - alpha`` both bounds hold at every checkpoint at once (each is a
    confidence sequence up to its horizon, and the union bound joins the two), so at whatever checkpoint sampling
    stops. With ``stops_early`` False there is one checkpoint, ``n`` (fixed-n soft CERTIFY); otherwise every 10% of
    samples (:class:`BettingSequence`'s checkpoints).
    """

    def __init__(self, alpha: float, n: int, stops_early: bool) -> None:
        self.alpha, self.n, self.stops_early = alpha, n, stops_early

    def __repr__(self) -> str:
        return f"SoftBounds(alpha={self.alpha}, n={self.n}, stops_early={self.stops_early})"

    def checkpoints(self) -> list[int]:
        """The sample counts at which the bounds are read, ending at ``n``."""
        return _geometric(self.n, BettingSequence.growth) if self.stops_early else [self.n]

    def bounds(self, pairs: np.ndarray) -> tuple[float, float]:
        """``(lower, upper)`` from the pairs ``(t, 2)`` of the first ``t`` samples (selected class's softmax,
        runner-up's)."""
        level = self.alpha / 2
        return (
            mean_lower_bound(pairs[:, 0], level, horizon=self.n),
            mean_upper_bound(pairs[:, 1], level, horizon=self.n),
        )


def soft_stages(
    bounds: SoftBounds,
    target_radii: Sequence[float],
    radius: Callable[[float, float], float],
    *,
    radius_tolerance: float | None = None,
) -> Generator[int, np.ndarray, tuple[np.ndarray, float, float]]:
    """Soft CERTIFY's estimation as a generator, like :func:`stages`: it yields how many more samples it wants and is
    sent their pairs ``(m, 2)`` (selected class's softmax, runner-up's); it returns ``(pairs drawn, lower, upper)``.

    ``radius(lower, upper)`` is the certified radius of two bounds (0 when none). At each checkpoint of ``bounds`` the
    radius now and its projection at ``n`` are compared by :func:`settled`, each target radius playing a threshold's
    part. The projection is a heuristic that only decides when to stop: the bounds' widths shrunk by ``2 t / (t + n)``
    (the width of a betting bound with horizon ``n`` after ``t`` samples is about ``1 / t + 1 / n`` times a constant)
    around optimistic means, each sample mean moved ``z`` standard errors in the selected class's favour, ``z`` the
    ``1 - t / (2 n)`` normal quantile (as :func:`estimate`'s optimistic rate: far ahead early, the mean itself at
    ``t = n``). Whenever it stops, the returned bounds hold with probability at least
    ``1 - alpha`` (:class:`SoftBounds`).
    """
    n, drawn, parts = bounds.n, 0, []
    lower, upper = 0.0, 1.0
    for point in bounds.checkpoints():
        parts.append((yield point - drawn))
        drawn = point
        seen = np.concatenate(parts)
        lower, upper = bounds.bounds(seen)
        if drawn == n:
            break
        shrink, (top, other) = 2 * drawn / (drawn + n), seen.mean(axis=0)
        ahead = norm.ppf(1 - drawn / (2 * n)) * seen.std(axis=0) / math.sqrt(drawn)
        projected = radius(
            min(top + ahead[0], 1.0) - (top - lower) * shrink, max(other - ahead[1], 0.0) + (upper - other) * shrink
        )
        if settled(radius(lower, upper), projected, target_radii, radius_tolerance, lambda r: r):
            break
    return seen, lower, upper


def _log_likelihood(k: int, t: int, m: float) -> float:
    """``log(m^k (1 - m)^(t - k))``."""
    return k * math.log(m) + ((t - k) * math.log1p(-m) if t > k else 0.0)


def _geometric(n: int, growth: float) -> list[int]:
    """``FIRST_CHECKPOINT``, then each times ``growth`` (rounded, strictly increasing), ending at ``n``."""
    points: list[int] = []
    t = float(FIRST_CHECKPOINT)
    while round(t) < n:
        if not points or round(t) > points[-1]:
            points.append(round(t))
        t *= growth
    return [*points, n]
