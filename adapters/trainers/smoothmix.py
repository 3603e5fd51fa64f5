"""SmoothMix: Jeong et al., *SmoothMix: training confidence-calibrated smoothed classifiers for certified
robustness*, NeurIPS 2021."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from rs_plugin.checks import non_negative, positive_int, positive_number

from ..torch import SmoothedModule, eval_mode
from .trainer import Step, Trainer


@dataclasses.dataclass(frozen=True)
class SmoothMixConfig:
    """``num_noise`` noise samples per input (the paper's m; ``m`` is its deprecated name), ``eta`` the weight of the
    mixup term, ``steps`` (T) and ``alpha`` the SmoothMix adversary's steps and step size (the paper's names),
    ``mix_step`` the adversary's iterate used as the clean end of the mix (0: the input itself), ``warmup`` the epochs
    over which ``eta`` and the clean end's radius grow linearly. The paper's MNIST settings (alpha 1, mix_step 0,
    eta 5) with T 2 and m 2 (it used 4 and 4 at sigma 0.5)."""

    RENAMED: ClassVar[dict[str, str]] = {"m": "num_noise"}
    num_noise: int = 2
    eta: float = 5.0
    steps: int = 2
    alpha: float = 1.0
    mix_step: int = 0
    warmup: int = 10

    def __post_init__(self) -> None:
        positive_int("num_noise", self.num_noise)
        non_negative("eta", self.eta)
        positive_int("steps", self.steps)
        positive_number("alpha", self.alpha)
        if not 0 <= self.mix_step < self.steps:
            raise ValueError(f"mix_step must lie in [0, steps={self.steps}), got {self.mix_step}")
        positive_int("warmup", self.warmup)


def mixup(
    start: torch.Tensor, end: torch.Tensor, probabilities: torch.Tensor, lam: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_mix, y_mix)``: the point ``lam`` of the way from ``start`` to ``end`` (one ``lam`` per input), and its
    label, ``probabilities`` (``(B, K)``) moved the same fraction ``lam`` towards the uniform distribution."""
    weight = lam.view(-1, *[1] * (start.dim() - 1))
    uniform = 1 / probabilities.shape[-1]
    return (1 - weight) * start + weight * end, (1 - lam)[:, None] * probabilities + lam[:, None] * uniform


class SmoothMix(Trainer):
    """Cross-entropy under noise plus a mixup between each input and its adversary on the smoothed classifier:

        ``L = 1/m sum_i CE(f(x + delta_i), y) + eta * 1[G(x) = y] * 1/m sum_i KL(y_mix || F(x_mix + delta_i))``,
        ``x_mix = (1 - lam) x_0 + lam x_T``,  ``y_mix = (1 - lam) G(x) + lam / K``,  ``lam ~ U[0, 1/2]``,

    ``F = softmax(f)``, ``G(x) = 1/m sum_i F(x + delta_i)``, ``x_T`` the adversary after ``steps`` normalised
    gradient steps of size ``alpha`` ascending ``CE(G(x_t), y)`` (no radius; inputs kept in [0, 1]), ``x_0`` its
    iterate ``mix_step`` moved within ``alpha * mix_step`` of ``x``. The same ``m`` noise samples serve the
    adversary, the clean and the mixed copies; ``eta`` and ``x_0``'s radius warm up over ``warmup`` epochs.
    """

    name = "smoothmix"
    attacks_through_noise = True
    Config = SmoothMixConfig

    def adversary(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> list[torch.Tensor]:
        """The SmoothMix adversary's iterates ``x_0 = x, x_1, ..., x_T`` on the noise of ``seed`` (model in eval
        mode, no gradient to its parameters)."""
        smoothed = SmoothedModule(model, self.noise.sigma, num_noise=self.config.num_noise,
                                  noise=self.noise, batch_size=self.config.num_noise * len(x))
        iterates = [x.detach()]
        with eval_mode(model):
            for _ in range(self.config.steps):
                adv = iterates[-1].clone().requires_grad_(True)
                loss = F.nll_loss(smoothed(adv, noise_seed=seed), y, reduction="sum")
                (grad,) = torch.autograd.grad(loss, adv)
                grad = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
                iterates.append((adv.detach() + self.config.alpha * grad).clamp(0, 1))
        return iterates

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: Step) -> tuple[torch.Tensor, torch.Tensor]:
        c, seed = self.config, step.seed()
        warmup = step.warmup(c.warmup)
        iterates = self.adversary(model, x, y, seed)
        start = (x + (iterates[c.mix_step] - x).renorm(2, 0, c.alpha * c.mix_step * warmup)).clamp(0, 1)
        end = iterates[-1]
        m = c.num_noise
        logits = model(step.noisy(x, m, seed=seed).flatten(0, 1)).view(len(x), m, -1)
        smoothed = logits.softmax(-1).mean(1)  # G(x)
        cross_entropy = F.cross_entropy(logits.flatten(0, 1), y.repeat_interleave(m))
        lam = torch.rand(len(x), generator=step.generator, device=x.device) / 2
        x_mix, y_mix = mixup(start, end, smoothed, lam)
        log_mix = model(step.noisy(x_mix, m, seed=seed).flatten(0, 1)).view(len(x), m, -1).log_softmax(-1)
        kl = (torch.special.xlogy(y_mix, y_mix)[:, None] - y_mix[:, None] * log_mix).sum(-1).mean(1)
        correct = (smoothed.argmax(-1) == y).float()
        return cross_entropy + c.eta * warmup * (correct * kl).mean(), logits
