"""The frozen-noise view of a :class:`SmoothedModule`: a deterministic function of the input, for decision-based
attacks (HopSkipJump, Boundary) that re-query the classifier and need the same answer for the same input."""

from __future__ import annotations

import torch
from torch import nn

from rs_plugin.checks import seed as check_seed

from .module import SmoothedModule


class FrozenNoise(nn.Module):
    """``module`` with its noise frozen: ``forward(x)`` is ``module(x, noise_seed=self.noise_seed)``, so the input at
    position ``b`` of a batch always gets the same ``num_noise`` noise draws, on every call. The output is a
    deterministic function of the input and its position (and of the base's mode), which decision-based attacks
    require: they re-check their starting and boundary points in new calls, and on fresh noise a point near the
    boundary flips back and forth (foolbox's ``init_attack failed``).

    What such an attack measures: the robustness of one fixed Monte-Carlo sample of the soft smoothed classifier, a
    deterministic classifier close to the soft classifier, not the smoothed classifier itself. Judge its results with
    PREDICT on fresh noise (:meth:`rs_plugin.SmoothedClassifier.predict_many`, which may abstain); a point that fools
    this view may not fool PREDICT.

    ``noise_seed=None`` draws one seed from ``module.next_noise_seed()`` when the view is made (reproducible when the
    module has a seed). ``module`` is a submodule: ``eval()`` reaches it and its base.
    """

    def __init__(self, module: SmoothedModule, noise_seed: int | None = None) -> None:
        super().__init__()
        if not isinstance(module, SmoothedModule):
            raise TypeError(f"module must be a rs_plugin.adapters.torch.SmoothedModule, got {type(module).__name__}")
        self.module = module
        self.training = module.training
        checked = check_seed("noise_seed", noise_seed)
        self.noise_seed = module.next_noise_seed() if checked is None else checked

    def extra_repr(self) -> str:
        return f"noise_seed={self.noise_seed}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``module(x, noise_seed=self.noise_seed)``: log-probabilities ``(B, K)``, the same for the same input at the
        same position on every call."""
        return self.module(x, noise_seed=self.noise_seed)
