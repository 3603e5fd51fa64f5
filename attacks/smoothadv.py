"""SmoothAdv PGD: l2 PGD on the soft smoothed classifier (Salman et al. 2019), as a torchattacks ``Attack``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchattacks.attack import Attack

from rs_plugin import checks
from rs_plugin.checks import positive_int

from ..adapters.torch import SmoothedModule, as_numpy, check_batch, check_labels, num_logits
from ..adapters.torch.pgd import smoothed_pgd


def per_input_values(name: str, value: Any, batch: int | None, device: Any = "cpu") -> torch.Tensor:
    """``value`` (a number, or one per input) as a float32 tensor ``(batch,)`` on ``device``, checked by
    :func:`rs_plugin.checks.positive_numbers`."""
    return torch.as_tensor(checks.positive_numbers(name, as_numpy(value), batch), dtype=torch.float32, device=device)


class SmoothAdvPGD(Attack):
    """PGD in l2 on the soft smoothed classifier of ``model``: ascends the cross-entropy of
    :class:`~rs_plugin.adapters.torch.SmoothedModule` (``num_noise`` draws per input), with each step's
    gradient normalised per example, ``steps`` steps of size ``alpha`` (default ``2 eps / steps``), and
    projection on the l2 ball of radius ``eps`` (a number or one per example) and on ``[0, 1]``.

    Guarantee: every returned input lies within ``eps`` (l2) of its original and in ``[0, 1]``.

    Each step draws fresh noise by default (``reuse_noise=False``): the result must fool the smoothed
    classifier on noise it has never seen (PREDICT's), and a sample kept for all steps (``reuse_noise=True``,
    as in Salman et al.'s code) lets PGD fit that sample; redrawing averages the gradient over ``steps *
    num_noise`` draws at the same cost (the documentation's measured results compare the two on digits).
    ``batch_size`` (noisy copies per forward pass; None: measured) and ``seed`` (None: fresh entropy) are those of
    the :class:`~rs_plugin.adapters.torch.SmoothedModule` it attacks; ``alpha`` is the step size (torchattacks' name).

    Call it like any torchattacks attack: ``adv = SmoothAdvPGD(model, sigma=0.25, eps=0.5)(images, labels)``
    with ``images`` in ``[0, 1]`` (``model`` normalises inside); targeted mode through ``set_mode_targeted_*``.
    """

    def __init__(
        self,
        model: nn.Module,
        sigma: float,
        eps: float | torch.Tensor,
        alpha: float | torch.Tensor | None = None,
        steps: int = 20,
        num_noise: int = 32,
        random_start: bool = False,
        reuse_noise: bool = False,
        noise: str = "gaussian",
        batch_size: int | None = None,
        seed: int | None = None,
    ) -> None:
        smoothed = SmoothedModule(model, sigma, num_noise=num_noise, noise=noise, batch_size=batch_size, seed=seed)
        super().__init__("SmoothAdvPGD", smoothed)
        per_input_values("eps", eps, None)
        if alpha is not None:
            per_input_values("alpha", alpha, None)
        self.eps = eps
        self.alpha = alpha
        self.steps = positive_int("steps", steps)
        self.random_start = bool(random_start)
        self.reuse_noise = bool(reuse_noise)
        self.supported_mode = ["default", "targeted"]

    def set_normalization_used(self, mean: Any, std: Any) -> None:
        raise ValueError(
            "SmoothAdvPGD adds smoothing noise in [0, 1] pixel space: put the normalisation inside the model "
            "(e.g. rs_plugin.adapters.models.Normalize) instead of set_normalization_used"
        )

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Adversarial versions of ``images`` (see the class docstring)."""
        smoothed: SmoothedModule = self.model
        check_batch("images", images, unit_range=True)
        images = images.detach().to(self.device)
        num_classes = num_logits(smoothed.base, images)
        check_labels("labels", labels, len(images), num_classes)
        labels = labels.detach().to(self.device)
        eps = per_input_values("eps", self.eps, len(images), images.device)
        given = self.alpha
        alpha = 2 * eps / self.steps if given is None else per_input_values("alpha", given, len(images), images.device)
        target = self.get_target_label(images, labels) if self.targeted else labels
        check_labels("target labels", target, len(images), num_classes)
        return smoothed_pgd(smoothed, images, target, eps, alpha, self.steps, targeted=self.targeted,
                            reuse_noise=self.reuse_noise, random_start=self.random_start)
