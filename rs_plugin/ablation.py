"""Ablation: smoothing that keeps part of the input and ablates the rest, certifying sparse and patch perturbations.

These randomizations are not additive (:attr:`rs_plugin.noises.Noise.additive` is False): a randomized copy keeps
some positions of ``x`` and sets every other one to :attr:`Masking.value` (default ``-1``, outside the ``[0, 1]``
range of rs-plugin's inputs, so that a network trained on ablated inputs tells an ablated pixel from a dark one;
Levine & Feizi encode it with extra channels instead, which needs a network with twice the input channels). A
*position* is a pixel (all its channels together) of an image ``(C, H, W)``, and a coordinate of any other input.

* ``"ablation"`` (randomized ablation, Levine & Feizi, AAAI 2020): keep ``k`` of the ``d`` positions, uniformly at
  random. Changing ``rho`` positions changes the probability of any class by at most
  ``Delta(rho) = 1 - C(d - rho, k) / C(d, k)`` (the chance that a kept position is a changed one), so CERTIFY's
  lower bound ``p_lower`` certifies every input differing from ``x`` in at most ``rho`` positions, for the largest
  ``rho`` with ``p_lower - Delta(rho) > 1/2``: the ``"l0"`` radius.
* ``"columns"`` and ``"blocks"`` (derandomized smoothing, Levine & Feizi, NeurIPS 2020): a deterministic enumeration.
  The base classifier sees each band of ``b`` consecutive columns (wrapping around; ``W`` bands), or each ``b x b``
  block (wrapping around; ``H W`` blocks), once. The smoothed classifier is the class with the most votes (ties to
  the smaller class index), counted exactly: no sampling, no alpha. A perturbation confined to ``m`` consecutive
  columns touches at most ``Delta = m + b - 1`` bands (an ``m x m`` patch at most ``(m + b - 1)^2`` blocks), each of
  which can move one vote from the top class ``c`` to another class ``c'``; so the class stays ``c`` whenever
  ``n_c - n_c' >= 2 Delta + [c' < c]`` for every ``c' != c`` (:meth:`Bands.votes_radius`). The certificate's radius
  is the largest such ``m`` (norm ``"columns"``: any change within ``m`` consecutive columns; ``"patch"``: any
  change within an ``m x m`` square, both wrapping around).

Each takes the input ``shape`` in its spec string, as the correlated noises do (``"ablation:k=20,shape=1x8x8"``,
``"columns:b=2,shape=1x8x8"``), and refuses inputs of another shape. ``sigma`` plays no part in them (any positive
number is accepted and recorded, as for every noise). This module is a built-in plugin providing them through
``rs_plugin_add_noises``.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from fractions import Fraction

import numpy as np

from .hookspecs import hookimpl
from .noises import Noise

ABLATED = -1.0
"""The default value of an ablated position (outside the ``[0, 1]`` range of the inputs)."""


class Masking(Noise):
    """A randomization that keeps some positions of inputs of :attr:`shape` and sets the others to :attr:`value`.

    Subclasses give :attr:`positions` (the shape of a mask; positions broadcast over the leading axes of the input)
    and :meth:`keep`, the masks of a stream's copies.
    """

    additive = False
    positions: tuple[int, ...]

    def __init__(self, sigma: float, shape: str | tuple[int, ...], value: float | str = ABLATED) -> None:
        super().__init__(sigma)
        self.shape = _dims(shape)
        try:
            self.value = float(value)
        except (TypeError, ValueError):
            self.value = math.nan
        if not math.isfinite(self.value):
            raise ValueError(f"value must be a finite number, got {value!r}")

    @property
    def row_size(self) -> int:
        return math.prod(self.shape)

    @property
    def size(self) -> int:
        """The number of positions, ``d``."""
        return math.prod(self.positions)

    def sample(self, rng: np.random.Generator, out: np.ndarray) -> None:
        raise TypeError(f"the {self.name} randomization is not additive noise: use randomize(rng, x, out, first)")

    @abstractmethod
    def keep(self, rng: np.random.Generator, rows: int, first: int) -> np.ndarray:
        """The masks ``(rows, *positions)`` (bool, True: kept) of copies ``first .. first + rows - 1`` of a stream;
        ``a`` then ``b`` rows give the masks of ``a + b`` rows at once."""

    def randomize(self, rng: np.random.Generator, x: np.ndarray, out: np.ndarray, first: int) -> None:
        """Fill ``out`` with copies of ``x`` whose positions outside :meth:`keep`'s masks are :attr:`value`;
        ``ValueError`` naming ``x`` for an input of another shape."""
        if tuple(np.shape(x)) != self.shape:
            raise ValueError(f"x: the {self.name} randomization is for inputs of shape {self.shape}, got {np.shape(x)}")
        masks = self.keep(rng, len(out), first)
        masks = masks.reshape(len(out), *(1,) * (len(self.shape) - len(self.positions)), *self.positions)
        np.copyto(out, np.where(masks, np.asarray(x, dtype=np.float32), np.float32(self.value)))


class Ablation(Masking):
    """Randomized ablation (Levine & Feizi 2020): keep ``k`` of the ``d`` positions uniformly at random; certifies
    the ``"l0"`` radius, a number of changed positions (see the module).

    Options: ``k`` (1 <= k <= d), ``shape`` (``"1x8x8"`` or a tuple), ``value`` (default ``-1``).
    """

    name = "ablation"
    norm = "l0"

    def __init__(self, sigma: float, k: int | str, shape: str | tuple[int, ...], value: float | str = ABLATED) -> None:
        super().__init__(sigma, shape, value)
        self.positions = self.shape[1:] if len(self.shape) == 3 else self.shape
        self.k = _count("k", k)
        if self.k > self.size:
            raise ValueError(f"k must be at most the number of positions d={self.size} of shape {self.shape}, "
                             f"got {self.k}")

    def __repr__(self) -> str:
        return f"Ablation(k={self.k}, shape={self.shape})"

    def keep(self, rng: np.random.Generator, rows: int, first: int) -> np.ndarray:
        """Each row keeps the ``k`` positions of smallest i.i.d. uniform keys (``d`` doubles per row, in row order):
        a uniformly random ``k``-subset."""
        keys = rng.random((rows, self.size))
        kept = np.argpartition(keys, self.k - 1, axis=1)[:, : self.k]
        masks = np.zeros((rows, self.size), dtype=bool)
        np.put_along_axis(masks, kept, True, axis=1)
        return masks.reshape(rows, *self.positions)

    def delta(self, rho: int) -> Fraction:
        """``Delta(rho) = 1 - C(d - rho, k) / C(d, k)``, exactly: the probability that a random ``k``-subset of the
        ``d`` positions meets a given set of ``rho`` positions, which bounds how much changing ``rho`` positions
        changes the probability of any class."""
        if not 0 <= rho <= self.size:
            raise ValueError(f"rho must lie in [0, d={self.size}], got {rho}")
        return 1 - Fraction(math.comb(self.size - rho, self.k), math.comb(self.size, self.k))

    def radius(self, p_lower: float) -> float:
        """The largest ``rho`` with ``p_lower - Delta(rho) > 1/2`` (exact rational arithmetic; 0 when none): every
        input differing from ``x`` in at most ``rho`` positions gets the class."""
        p = Fraction(p_lower)
        if p - self.delta(0) <= Fraction(1, 2):
            return 0.0
        low, high = 0, self.size - self.k + 1  # Delta(low) certifies; Delta(d - k + 1) = 1 never does
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (mid, high) if p - self.delta(mid) > Fraction(1, 2) else (low, mid)
        return float(low)

    def p_needed(self, radius: float) -> float:
        """The smallest double ``p`` with ``p - Delta(ceil(radius)) > 1/2`` (above 1 when ``radius > d - k``)."""
        rho = math.ceil(radius)
        if rho > self.size - self.k:
            return 1.5
        threshold = Fraction(1, 2) + self.delta(max(rho, 0))
        p = float(threshold)  # the nearest double: step to the smallest one above the threshold
        while Fraction(math.nextafter(p, 0)) > threshold:
            p = math.nextafter(p, 0)
        while Fraction(p) <= threshold:
            p = math.nextafter(p, math.inf)
        return p

    def radii(self, radius: float, dim: int) -> dict[str, float]:
        return {"l0": radius}


class Bands(Masking):
    """Derandomized smoothing (Levine & Feizi 2020): an enumeration of bands of width ``b`` on images ``(..., H, W)``
    (the last two axes), every band once, in order (copy ``t`` of a stream is band ``t mod count``). See the module
    for the certificate."""

    def __init__(self, sigma: float, b: int | str, shape: str | tuple[int, ...], value: float | str = ABLATED) -> None:
        super().__init__(sigma, shape, value)
        if len(self.shape) < 2:
            raise ValueError(f"shape must be an image shape such as 1x8x8 (at least H and W), got {shape!r}")
        self.positions = self.shape[-2:]
        self.b = _count("b", b)
        height, width = self.positions
        if self.b > min(self.reach):
            raise ValueError(f"b must be at most {min(self.reach)} for images {height}x{width}, got {self.b}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(b={self.b}, shape={self.shape})"

    @property
    @abstractmethod
    def reach(self) -> tuple[int, ...]:
        """The lengths of the axes the bands slide along (columns: ``(W,)``; blocks: ``(H, W)``)."""

    def enumerated(self, shape: tuple[int, ...]) -> int:
        return math.prod(self.reach)

    @abstractmethod
    def touched(self, m: int) -> int:
        """``Delta(m)``: how many bands a perturbation within ``m`` consecutive columns (an ``m x m`` patch) meets at
        most (0 for ``m = 0``)."""

    def votes_radius(self, counts: np.ndarray) -> tuple[int, float]:
        """``(c, m)`` from the exact vote counts of every band: ``c`` the class with the most votes (ties to the
        smaller index), ``m`` the largest patch size with ``n_c - n_c' >= 2 Delta(m) + [c' < c]`` for every
        ``c' != c`` (0 when none): the smoothed classifier returns ``c`` at every input that differs from ``x`` only
        within ``m`` consecutive columns (an ``m x m`` patch)."""
        counts = np.asarray(counts, dtype=np.int64)
        top = int(np.argmax(counts))
        others = np.delete(np.arange(len(counts)), top)
        gap = int(np.min(counts[top] - counts[others] - (others < top))) if len(others) else math.inf
        m = 0
        while m < max(self.reach) and gap >= 2 * self.touched(m + 1):
            m += 1
        return top, float(m)

    def radius(self, p_lower: float) -> float:
        """The patch size certified when the top class has at least a share ``p_lower`` of the votes, whatever the
        other classes' counts (the runner-up has at most ``1 - p_lower``, and may win ties): the largest ``m`` with
        ``count (2 p_lower - 1) - 1 >= 2 Delta(m)``. CERTIFY uses the exact counts (:meth:`votes_radius`)."""
        gap = math.prod(self.reach) * (2 * p_lower - 1) - 1
        m = 0
        while m < max(self.reach) and gap >= 2 * self.touched(m + 1):
            m += 1
        return float(m)

    def p_needed(self, radius: float) -> float:
        m = math.ceil(radius)
        return (2 * self.touched(m) + 1 + math.prod(self.reach)) / (2 * math.prod(self.reach)) if m > 0 else 0.5


class Columns(Bands):
    """Column ablation: band ``t`` keeps columns ``t, ..., t + b - 1`` (mod ``W``), all rows; ``W`` bands. Certifies
    ``"columns"``: any change within ``m`` consecutive columns (so any ``m x m`` patch, ``"patch"``).

    Options: ``b`` (1 <= b <= W), ``shape`` (``"1x32x32"``), ``value`` (default ``-1``).
    """

    name = "columns"
    norm = "columns"

    @property
    def reach(self) -> tuple[int, ...]:
        return (self.positions[1],)

    def keep(self, rng: np.random.Generator, rows: int, first: int) -> np.ndarray:
        height, width = self.positions
        starts = (first + np.arange(rows)) % width
        columns = (starts[:, None] + np.arange(self.b)) % width
        masks = np.zeros((rows, width), dtype=bool)
        np.put_along_axis(masks, columns, True, axis=1)
        return np.repeat(masks[:, None, :], height, axis=1)

    def touched(self, m: int) -> int:
        return min(m + self.b - 1, self.positions[1]) if m > 0 else 0

    def radii(self, radius: float, dim: int) -> dict[str, float]:
        return {"columns": radius, "patch": radius}


class Blocks(Bands):
    """Block ablation: block ``t`` (row ``i``, column ``j`` with ``t = i W + j``) keeps rows ``i .. i + b - 1`` (mod
    ``H``) of columns ``j .. j + b - 1`` (mod ``W``); ``H W`` blocks. Certifies ``"patch"``: any change within an
    ``m x m`` square.

    Options: ``b`` (1 <= b <= min(H, W)), ``shape``, ``value`` (default ``-1``).
    """

    name = "blocks"
    norm = "patch"

    @property
    def reach(self) -> tuple[int, ...]:
        return self.positions

    def keep(self, rng: np.random.Generator, rows: int, first: int) -> np.ndarray:
        height, width = self.positions
        tops, lefts = np.divmod((first + np.arange(rows)) % (height * width), width)
        inside_rows = ((np.arange(height)[None] - tops[:, None]) % height) < self.b
        inside_columns = ((np.arange(width)[None] - lefts[:, None]) % width) < self.b
        return inside_rows[:, :, None] & inside_columns[:, None, :]

    def touched(self, m: int) -> int:
        height, width = self.positions
        return min(m + self.b - 1, height) * min(m + self.b - 1, width) if m > 0 else 0

    def radii(self, radius: float, dim: int) -> dict[str, float]:
        return {"patch": radius}


def _count(name: str, value: int | str) -> int:
    """``value`` (an int or its text) as an int >= 1; ``ValueError`` naming ``name`` otherwise."""
    try:
        number = int(value) if isinstance(value, str) or float(value).is_integer() else math.nan
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if isinstance(value, bool) or not isinstance(number, int) or number < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return number


def _dims(shape: str | tuple[int, ...]) -> tuple[int, ...]:
    """An input shape from ``"1x8x8"`` or a tuple: at least one positive int; ``ValueError`` naming ``shape``."""
    try:
        dims = tuple(int(d) for d in (shape.split("x") if isinstance(shape, str) else shape))
    except (TypeError, ValueError):
        dims = ()
    if not dims or min(dims) < 1:
        raise ValueError(f"shape must be an input shape such as 1x8x8, got {shape!r}")
    return dims


@hookimpl
def rs_plugin_add_noises() -> dict[str, type[Noise]]:
    return {cls.name: cls for cls in (Ablation, Columns, Blocks)}

