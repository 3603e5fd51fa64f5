"""SmoothAdv: Salman et al., *Provably robust deep learning via adversarially trained smoothed classifiers*,
NeurIPS 2019."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from rs_plugin.checks import positive_int, positive_number

from ..torch import SmoothedModule
from .loop import Step, Trainer


@dataclasses.dataclass(frozen=True)
class SmoothAdvConfig:
    """``eps`` the attack's l2 radius, ``steps`` its PGD steps (T), ``m`` the noise samples per input (m_train),
    ``warmup`` the epochs over which ``eps`` grows linearly from ``eps / warmup`` to ``eps``. Scaled for digits from
    the paper's CIFAR-10 grid (eps 0.25 to 2, T 1 to 10, m 1 to 8, a 10-epoch warm-up): one step on four noise
    samples did best on digits at sigma 0.5 among (T, m) = (2, 2), (1, 4), (1, 8) for its cost."""

    eps: float = 0.5
    steps: int = 1
    m: int = 4
    warmup: int = 10

    def __post_init__(self) -> None:
        positive_number("eps", self.eps)
        positive_int("steps", self.steps)
        positive_int("m", self.m)
        positive_int("warmup", self.warmup)


class SmoothAdv(Trainer):
    """Adversarial training of the smoothed classifier: each input is first attacked, then trained on under noise,

        ``x' = argmax_{||x' - x||_2 <= eps} CE(G(x'), y)``,  ``G(x') = 1/m sum_i softmax(f(x' + delta_i))``,
        ``L = 1/m sum_i CE(f(x' + delta_i), y)``,

    the attack being :class:`~rs_plugin.attacks.SmoothAdvPGD` (``steps`` normalised-gradient steps of size
    ``2 eps / steps``) on the soft smoothed classifier with the ``m`` noise samples ``delta_i`` held fixed, and the
    loss using those same samples, as in the paper's code. ``eps`` warms up over the first ``warmup`` epochs.
    """

    name = "smoothadv"
    Config = SmoothAdvConfig

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: Step) -> tuple[torch.Tensor, torch.Tensor]:
        from rs_plugin.attacks import SmoothAdvPGD

        c, seed, noise = self.config, step.seed(), self.noise.name
        attack = SmoothAdvPGD(model, step.sigma, eps=c.eps * step.warmup(c.warmup), steps=c.steps, num_noise=c.m,
                              reuse_noise=True, noise=noise, batch_size=c.m * len(x), seed=seed)
        attacked = attack(x, y)
        # The attack's one noise sample: that of the first call of a SmoothedModule seeded like it.
        noise_seed = SmoothedModule(model, step.sigma, noise=noise, seed=seed).next_noise_seed()
        logits = model(step.noisy(attacked, c.m, seed=noise_seed).flatten(0, 1)).view(len(x), c.m, -1)
        return F.cross_entropy(logits.flatten(0, 1), y.repeat_interleave(c.m)), logits
