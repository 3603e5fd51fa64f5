"""Consistency regularization: Jeong & Shin, *Consistency regularization for certified robustness of smoothed
classifiers*, NeurIPS 2020."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from rs_plugin.checks import non_negative, positive_int

from .trainer import Step, Trainer


@dataclasses.dataclass(frozen=True)
class ConsistencyConfig:
    """``num_noise`` noisy copies per input (the paper's m; ``m`` is its deprecated name), ``lbd`` (lambda) the weight
    of the consistency term, ``eta`` that of the entropy term. The paper's MNIST setting at sigma 0.5 (m = 2,
    lambda = 5, eta = 0.5)."""

    RENAMED: ClassVar[dict[str, str]] = {"m": "num_noise"}
    num_noise: int = 2
    lbd: float = 5.0
    eta: float = 0.5

    def __post_init__(self) -> None:
        if positive_int("num_noise", self.num_noise) < 2:
            raise ValueError(f"num_noise must be at least 2 (consistency compares noisy copies), got {self.num_noise}")
        non_negative("lbd", self.lbd)
        non_negative("eta", self.eta)


class Consistency(Trainer):
    """Cross-entropy on ``m = num_noise`` noisy copies plus the consistency of their predictions:

        ``L = 1/m sum_i CE(f(x + delta_i), y) + lbd * 1/m sum_i KL(F_bar || F(x + delta_i)) + eta * H(F_bar)``,

    ``F = softmax(f)``, ``F_bar = 1/m sum_i F(x + delta_i)`` the copies' mean prediction (a Monte-Carlo estimate
    of the smoothed classifier's), ``H`` the entropy. The KL term is 0 exactly when every copy predicts the
    same distribution; the entropy term keeps that common prediction confident.
    """

    name = "consistency"
    Config = ConsistencyConfig

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: Step) -> tuple[torch.Tensor, torch.Tensor]:
        m, lbd, eta = self.config.num_noise, self.config.lbd, self.config.eta
        logits = model(step.noisy(x, m).flatten(0, 1)).view(len(x), m, -1)
        log_probs = logits.log_softmax(-1)
        mean = log_probs.exp().mean(1)  # F_bar, (B, K)
        cross_entropy = F.cross_entropy(logits.flatten(0, 1), y.repeat_interleave(m))
        kl = (torch.special.xlogy(mean, mean)[:, None] - mean[:, None] * log_probs).sum(-1).mean()
        entropy = -torch.special.xlogy(mean, mean).sum(-1).mean()
        return cross_entropy + lbd * kl + eta * entropy, logits
