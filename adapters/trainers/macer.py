"""MACER: Zhai et al., *MACER: attack-free and scalable robust training via maximizing certified radius*,
ICLR 2020."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from rs_plugin.checks import non_negative, positive_int, positive_number

from .trainer import Step, Trainer

_TINY = 1e-10  # the paper's floor under the smoothed probability before its logarithm


@dataclasses.dataclass(frozen=True)
class MacerConfig:
    """``num_noise`` Gaussian samples per input (the paper's k; ``k`` is its deprecated name), ``beta`` the inverse
    temperature of the soft radius, ``gamma`` the hinge's margin, ``lbd`` (lambda) the weight of the robustness term.
    Scaled for digits from the MNIST setting of Jeong et al.'s reproduction (k 16, beta 16, gamma 8, lambda 16): half
    the samples, beta 4 and gamma 4 (why: the documentation's measured results)."""

    RENAMED: ClassVar[dict[str, str]] = {"k": "num_noise"}
    num_noise: int = 8
    beta: float = 4.0
    gamma: float = 4.0
    lbd: float = 16.0

    def __post_init__(self) -> None:
        positive_int("num_noise", self.num_noise)
        positive_number("beta", self.beta)
        positive_number("gamma", self.gamma)
        non_negative("lbd", self.lbd)


def soft_radius_gap(logits: torch.Tensor, y: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(xi, counted)`` from logits ``(B, k, K)``: ``xi = Phi^-1(G_y) - Phi^-1(max_{c != y} G_c)`` of the
    soft smoothed classifier ``G = mean_i softmax(beta * f(x + delta_i))`` (``sigma / 2 * xi`` is its certified
    radius), and whether it counts: ``y`` is G's top class and both probabilities are strictly inside (0, 1)
    (elsewhere ``Phi^-1`` is infinite; ``xi`` is 0 there and carries no gradient)."""
    soft = (beta * logits).softmax(-1).mean(1)
    top, classes = soft.topk(2, dim=-1)
    counted = (classes[:, 0] == y) & (top[:, 0] < 1) & (top[:, 1] > 0)
    safe = torch.where(counted[:, None], top, torch.full_like(top, 0.5))
    return torch.special.ndtri(safe[:, 0]) - torch.special.ndtri(safe[:, 1]), counted


class Macer(Trainer):
    """The cross-entropy of the soft smoothed classifier plus a hinge on its certified radius:

        ``L = -log G_theta(x)_y + lbd * sigma / 2 * max(gamma - xi, 0) * 1[G's top class is y]``,

    ``G_theta(x) = 1/k sum_i softmax(f(x + delta_i))`` over ``k = num_noise`` Gaussian samples, ``xi`` the gap of
    :func:`soft_radius_gap` on the inverse-temperature ``beta`` version of ``G``. The hinge pushes correctly
    classified inputs' radius ``sigma / 2 * xi`` up to ``sigma / 2 * gamma`` and is 0 beyond it. Without an attack,
    its cost is the ``k`` forward and backward passes per input.
    """

    name = "macer"
    maximises_soft_radius = True
    Config = MacerConfig

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: Step) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        k = c.num_noise
        logits = model(step.noisy(x, k).flatten(0, 1)).view(len(x), k, -1)
        smoothed = logits.softmax(-1).mean(1)
        classification = F.nll_loss((smoothed + _TINY).log(), y)
        xi, counted = soft_radius_gap(logits, y, c.beta)
        hinge = torch.where(counted, (c.gamma - xi).clamp_min(0), torch.zeros_like(xi))
        return classification + c.lbd * step.sigma / 2 * hinge.mean(), logits
