"""The result of CERTIFY."""

from __future__ import annotations

from dataclasses import dataclass, field

ABSTAIN = -1
"""The class returned by PREDICT and CERTIFY when they abstain."""


@dataclass(frozen=True)
class Certificate:
    """What CERTIFY returns for one input.

    With probability at least ``1 - alpha`` over the noise, ``prediction`` is the smoothed classifier's (hard or
    soft: :attr:`smoothing`) class at the input and it returns that class everywhere within ``radius`` (in ``norm``).
    On abstention, ``prediction`` is :data:`ABSTAIN` and ``radius`` is ``0.0``.
    """

    prediction: int
    radius: float
    norm: str
    p_lower: float
    """One-sided lower confidence bound on the probability of the selected class."""
    num_samples: int
    """Base-classifier evaluations used: selection samples plus estimation samples."""
    count: int
    """Estimation samples that voted for the selected class."""
    n: int
    """Estimation samples drawn (``n`` for fixed-n CERTIFY; fewer when a sequential test stopped early)."""
    selected: int
    """The class picked by the selection samples (kept also when CERTIFY abstains)."""
    radii: dict[str, float] = field(default_factory=dict)
    """The certified radius in every norm it implies (``l1``, ``l2``, ``linf``)."""
    smoothing: str = "hard"
    """Which smoothed classifier the certificate is about: ``"hard"``, the majority vote ``g`` (Cohen et al.), or
    ``"soft"``, ``G = argmax E[softmax(f(x + noise))]`` (Salman et al.); their classes can differ."""
    p_upper: float | None = None
    """For ``"soft"``: an upper bound on every other class's mean softmax (``p_lower`` bounds the selected one's)."""

    @property
    def abstained(self) -> bool:
        """Whether CERTIFY abstained."""
        return self.prediction == ABSTAIN
