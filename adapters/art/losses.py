"""The losses the estimator measures on the smoothed classifier's logits, with their derivatives: AutoAttack's
difference-of-logits ratio (Croce & Hein 2020)."""

from __future__ import annotations

import numpy as np

DLR_FLOOR = 1e-12  # added to the DLR's denominator, as by Croce & Hein


def dlr(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The difference-of-logits ratio of Croce & Hein (2020), ``-(z_y - max_{i != y} z_i) / (z_(1) - z_(3))`` for each
    row ``z`` of ``logits``, and its derivative in ``z`` with the ranking held fixed: ``(loss (N,), slope (N, K))``."""
    rows = np.arange(len(logits))
    order = np.argsort(-logits, axis=1, kind="stable")
    other = np.where(order[:, 0] == labels, order[:, 1], order[:, 0])
    margin = logits[rows, labels] - logits[rows, other]
    scale = logits[rows, order[:, 0]] - logits[rows, order[:, 2]] + DLR_FLOOR
    slope = np.zeros_like(logits)
    for column, value in ((labels, -1 / scale), (other, 1 / scale), (order[:, 0], margin / scale**2),
                          (order[:, 2], -margin / scale**2)):
        np.add.at(slope, (rows, column), value)
    return -margin / scale, slope
