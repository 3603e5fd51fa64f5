"""Standard training: no noise (the undefended network, the baseline every smoothing method is compared to)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .trainer import Step, Trainer


class Standard(Trainer):
    """Empirical risk minimisation on clean inputs: ``L = CE(f(x), y)``. ``sigma`` and ``noise`` are ignored."""

    name = "standard"
    uses_noise = False

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: Step) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        return F.cross_entropy(logits, y), logits
