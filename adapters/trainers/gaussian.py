"""Gaussian noise augmentation: Cohen, Rosenfeld & Kolter, *Certified adversarial robustness via randomized
smoothing*, ICML 2019: train the base classifier on noisy inputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .trainer import Step, Trainer


class Gaussian(Trainer):
    """Noise augmentation: the cross-entropy of the base classifier on one noisy copy of each input,

        ``L = CE(f(x + delta), y)``,  ``delta ~ N(0, sigma^2 I)`` (or any noise plugin),

    a fresh draw at every step. Training on the noise the smoothed classifier averages over makes
    ``f(x + delta)`` right often, which is what the smoothed classifier's certified radius needs.
    """

    name = "gaussian"

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: Step) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(step.noisy(x).flatten(0, 1))
        return F.cross_entropy(logits, y), logits
