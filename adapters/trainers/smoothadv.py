"""SmoothAdv: Salman et al., *Provably robust deep learning via adversarially trained smoothed classifiers*,
NeurIPS 2019."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from rs_plugin.checks import positive_int, positive_number

from ..torch import SmoothedModule, eval_mode
from ..torch.pgd import smoothed_pgd
from .trainer import Step, Trainer


@dataclasses.dataclass(frozen=True)
class SmoothAdvConfig:
    """``eps`` the attack's l2 radius, ``steps`` its PGD steps (T), ``num_noise`` the noise samples per input (the
    paper's m_train; ``m`` is its deprecated name), ``warmup`` the epochs over which ``eps`` grows linearly from
    ``eps / warmup`` to ``eps``. Scaled for digits from the paper's CIFAR-10 grid (eps 0.25 to 2, T 1 to 10, m 1 to 8,
    a 10-epoch warm-up); how the defaults were chosen is in the documentation's measured results."""

    RENAMED: ClassVar[dict[str, str]] = {"m": "num_noise"}
    eps: float = 0.5
    steps: int = 1
    num_noise: int = 4
    warmup: int = 10

    def __post_init__(self) -> None:
        positive_number("eps", self.eps)
        positive_int("steps", self.steps)
        positive_int("num_noise", self.num_noise)
        positive_int("warmup", self.warmup)


class SmoothAdv(Trainer):
    """Adversarial training of the smoothed classifier: each input is first attacked, then trained on under noise,

        ``x' = argmax_{||x' - x||_2 <= eps} CE(G(x'), y)``,  ``G(x') = 1/m sum_i softmax(f(x' + delta_i))``,
        ``L = 1/m sum_i CE(f(x' + delta_i), y)``,

    the attack being :class:`~rs_plugin.attacks.SmoothAdvPGD`'s (:func:`rs_plugin.adapters.torch.pgd.smoothed_pgd`:
    ``steps`` normalised-gradient steps of size ``2 eps / steps``) on the soft smoothed classifier with the
    ``m = num_noise`` noise samples ``delta_i`` held fixed, and the loss using those same samples, as in the paper's
    code. ``eps`` warms up over the first ``warmup`` epochs.
    """

    name = "smoothadv"
    attacks_through_noise = True
    Config = SmoothAdvConfig

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: Step) -> tuple[torch.Tensor, torch.Tensor]:
        c, seed, noise, m = self.config, step.seed(), self.noise, self.config.num_noise
        smoothed = SmoothedModule(model, step.sigma, num_noise=m, noise=noise, batch_size=m * len(x), seed=seed)
        eps = torch.full((len(x),), c.eps * step.warmup(c.warmup), dtype=torch.float32, device=x.device)
        with eval_mode(model):  # the attack sees the network as the smoothed classifier will (as torchattacks does)
            attacked = smoothed_pgd(smoothed, x.detach(), y, eps, 2 * eps / c.steps, c.steps, reuse_noise=True)
        # The attack's one noise sample: that of the first call of a SmoothedModule seeded like it.
        noise_seed = SmoothedModule(model, step.sigma, noise=noise, seed=seed).next_noise_seed()
        logits = model(step.noisy(attacked, m, seed=noise_seed).flatten(0, 1)).view(len(x), m, -1)
        return F.cross_entropy(logits.flatten(0, 1), y.repeat_interleave(m)), logits
