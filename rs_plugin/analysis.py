"""Certified accuracy from CERTIFY results, as tables (the paper's markdown and LaTeX, CSV, text) and plots.

Certified accuracy at radius ``r`` is the fraction of examples that CERTIFY classified correctly with
a radius of at least ``r`` (abstentions count as wrong), as in the paper's ``analyze.py``: the tables
below reproduce the published ones from the authors' released logs character for character.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence

import numpy as np

from .checks import probability
from .checks import radii as check_radii
from .results import Results, ResultsError


def _certified_radii(results: Results) -> np.ndarray:
    """The radius of every example, 0 (rather than its radius) where it is not correct, sorted."""
    if "radius" not in results.columns:
        raise ResultsError(f"{results.path}: no radius column; certified accuracy needs the output of certify")
    if not len(results):
        raise ResultsError(f"{results.path}: no rows")
    return np.sort(np.where(results["correct"] == 1, results["radius"], -np.inf))


def certified_accuracy(results: Results, radii: Sequence[float]) -> np.ndarray:
    """Fraction of rows with ``correct == 1`` and ``radius >= r``, for each ``r`` in ``radii``.

    This is the paper's "approximate certified accuracy": each counted example is certified with
    probability at least ``1 - alpha`` (see :func:`high_probability_accuracy` for a bound that holds
    for all of them at once).
    """
    sorted_radii = _certified_radii(results)
    counts = len(sorted_radii) - np.searchsorted(sorted_radii, check_radii("radii", radii), side="left")
    return counts / len(sorted_radii)


def saturated(results: Results, largest_radius: float, *, digits: int | None = 3) -> np.ndarray:
    """Which rows are certified correct at ``largest_radius``, the largest radius CERTIFY's ``n`` can give (every
    sample for the class: ``noise.radius(lower_confidence_bound(n, n, alpha))``): their true radius may be far
    larger. The paper's files print radii to ``digits`` significant digits, so a row counts when its radius is at
    least ``largest_radius`` rounded so (None: compared as is). A boolean mask over the rows."""
    if not (math.isfinite(largest_radius) and largest_radius > 0):
        raise ValueError(f"largest_radius must be a positive finite number, got {largest_radius}")
    cap = float(f"{largest_radius:.{digits}g}") if digits is not None else largest_radius
    certified = (results["correct"] == 1) & (results["radius"] > 0)
    return certified & (results["radius"] >= min(cap, largest_radius) * (1 - 1e-12))


def high_probability_accuracy(
    results: Results, radii: Sequence[float], alpha: float = 0.001, rho: float = 0.001
) -> np.ndarray:
    """A lower bound on the true certified accuracy at each radius, valid with probability ``1 - rho``.

    The paper's appendix D: when each of the ``m`` rows comes from CERTIFY at level ``alpha``, the
    number of wrongly certified rows is at most a Binomial(m, alpha), and Bernstein's inequality gives
    ``accuracy - alpha - sqrt(alpha (1 - alpha) log(1/rho) / m) - log(1/rho) / (3 m)``, the bound
    computed by the paper's ``analyze.py``; values below 0 are reported as 0 (still a valid bound).
    """
    probability("alpha", alpha)
    probability("rho", rho)
    accuracy = certified_accuracy(results, radii)
    m, log = len(results), math.log(1 / rho)
    bound = accuracy - alpha - math.sqrt(alpha * (1 - alpha) * log / m) - log / (3 * m)
    return np.maximum(bound, 0.0)


def _best(accuracies: np.ndarray) -> np.ndarray:
    """For each radius (column), the row of the best accuracy (the first one on ties, as the paper)."""
    return np.asarray(accuracies).argmax(axis=0)


def markdown_table(labels: Sequence[str], radii: Sequence[float], accuracies: np.ndarray) -> str:
    """The paper's markdown table: a row per label, a column per radius, the best per radius starred."""
    best = _best(accuracies)
    lines = ["|  | " + "".join(f"r = {r:.3} |" for r in radii), "| --- | " + " --- |" * len(radii)]
    for i, label in enumerate(labels):
        cells = (f"{a:.2f}<b>*</b> |" if best[j] == i else f"{a:.2f} |" for j, a in enumerate(accuracies[i]))
        lines.append(f"<b> {label} </b>| " + "".join(cells))
    return "\n".join(lines) + "\n"


def latex_table(labels: Sequence[str], radii: Sequence[float], accuracies: np.ndarray) -> str:
    """The paper's LaTeX table body (for a ``tabular`` with a ``booktabs`` rule), the best per radius bold."""
    best = _best(accuracies)
    lines = ["".join(f"& $r = {r:.3}$" for r in radii) + "\\\\", "\\midrule"]
    for i, label in enumerate(labels):
        cells = (
            f" & \\textbf{{{a:.2f}}}" if best[j] == i else f" & {a:.2f}" for j, a in enumerate(accuracies[i])
        )
        lines.append(label + "".join(cells) + "\\\\")
    return "\n".join(lines) + "\n"


def csv_table(labels: Sequence[str], radii: Sequence[float], accuracies: np.ndarray) -> str:
    """A CSV table with full-precision accuracies: a ``label`` column, then one column per radius."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["label", *(f"{r:g}" for r in radii)])
    for label, row in zip(labels, accuracies, strict=True):
        writer.writerow([label, *(repr(float(a)) for a in row)])
    return out.getvalue()


def text_table(labels: Sequence[str], radii: Sequence[float], accuracies: np.ndarray) -> str:
    """An aligned plain-text table for the terminal; with several rows, the best per radius marked ``*``."""
    best = _best(accuracies) if len(labels) > 1 else np.full(len(radii), -1)
    header = ["", *(f"r = {r:g}" for r in radii)]
    rows = [
        [label, *(f"{a:.3f}" + ("*" if best[j] == i else " ") for j, a in enumerate(accuracies[i]))]
        for i, label in enumerate(labels)
    ]
    widths = [max(len(row[k]) for row in [header, *rows]) for k in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0]), *(cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True))]
        lines.append("  ".join(cells).rstrip() + "\n")
    return "".join(lines)


FORMATS = {"text": text_table, "markdown": markdown_table, "latex": latex_table, "csv": csv_table}


def plot_certified_accuracy(
    results: Sequence[Results],
    labels: Sequence[str],
    path: str | os.PathLike,
    *,
    max_radius: float | None = None,
    step: float = 0.01,
    high_prob: tuple[float, float] | None = None,
    title: str | None = None,
) -> None:
    """Save a figure of certified accuracy against radius, one line per results file (as the paper's).

    ``max_radius`` defaults to the largest certified radius in the files; ``high_prob=(alpha, rho)``
    plots :func:`high_probability_accuracy` instead. The format follows ``path``'s extension.
    Needs matplotlib (imported here only).
    """
    from matplotlib.figure import Figure

    if max_radius is None:
        max_radius = max(float(np.max(r["radius"], initial=0.0)) for r in results) or 1.0
    grid = np.arange(0, max_radius + step, step)
    figure = Figure(figsize=(6.4, 4.8))
    axes = figure.subplots()
    for result, label in zip(results, labels, strict=True):
        values = certified_accuracy(result, grid) if high_prob is None else high_probability_accuracy(
            result, grid, *high_prob
        )
        axes.plot(grid, values, label=label)
    axes.set(xlim=(0, max_radius), ylim=(0, 1), xlabel="radius", ylabel="certified accuracy")
    if title:
        axes.set_title(title)
    axes.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(os.fspath(path), dpi=150)
