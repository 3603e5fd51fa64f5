"""SmoothAdv PGD: l2 PGD on the soft smoothed classifier (Salman et al. 2019), as a torchattacks ``Attack``."""

from __future__ import annotations

import numbers
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchattacks.attack import Attack

from rs_plugin.checks import positive_int

from ..adapters.torch import SmoothedModule, num_logits


def per_example(name: str, value: Any, batch: int | None, device: Any = "cpu") -> torch.Tensor:
    """``value`` (a number, or one number per example) as a float tensor ``(batch,)`` (any length when ``batch``
    is None); ``ValueError`` unless every value is finite and positive."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, torch.Tensor, list, tuple)):
        raise TypeError(f"{name} must be a number or a 1-D tensor with one per example, got {type(value).__name__}")
    tensor = torch.as_tensor(value, dtype=torch.float32, device=device)
    if tensor.dim() == 0:
        tensor = tensor.expand(1 if batch is None else batch)
    if tensor.dim() != 1 or len(tensor) == 0 or (batch is not None and len(tensor) != batch):
        wanted = "1-D" if batch is None else f"({batch},), one per example"
        raise ValueError(f"{name} must be a number or of shape {wanted}; got shape {tuple(tensor.shape)}")
    if not bool(torch.isfinite(tensor).all() and (tensor > 0).all()):
        raise ValueError(f"{name} must be finite and > 0, got {tensor.min().item():g} as its smallest value")
    return tensor


def check_images(images: Any) -> None:
    """``TypeError``/``ValueError`` unless ``images`` is a non-empty float batch ``(B, *shape)`` in ``[0, 1]``."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise TypeError(f"images must be a floating-point torch.Tensor, got {type(images).__name__}")
    if images.dim() < 2 or len(images) == 0:
        raise ValueError(f"images must be a non-empty batch (B, *shape), got shape {tuple(images.shape)}")
    if not bool(torch.isfinite(images).all()) or images.min() < 0 or images.max() > 1:
        raise ValueError("images must be finite and lie in [0, 1] (put normalisation inside the model)")


def check_labels(name: str, labels: Any, batch: int, num_classes: int) -> None:
    """``TypeError``/``ValueError`` unless ``labels`` holds ``batch`` integer classes in ``[0, num_classes)``."""
    if not isinstance(labels, torch.Tensor) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer torch.Tensor, got {getattr(labels, 'dtype', type(labels))}")
    if labels.shape != (batch,):
        raise ValueError(f"{name} must have shape ({batch},), one per image, got {tuple(labels.shape)}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"{name} must lie in [0, num_classes={num_classes}), got values in "
            f"[{labels.min().item()}, {labels.max().item()}]"
        )


def project_l2(images: torch.Tensor, adv: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """``adv`` moved onto the l2 ball of radius ``eps`` (one per example) around ``images``, then into ``[0, 1]``
    (clamping only moves it closer to ``images`` in [0, 1], so both constraints hold)."""
    delta = adv - images
    norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    scale = torch.minimum(torch.ones_like(norms), eps / norms)
    return (images + delta * scale.view(-1, *[1] * (images.dim() - 1))).clamp(0, 1)


class SmoothAdvPGD(Attack):
    """PGD in l2 on the soft smoothed classifier of ``model``: ascends the cross-entropy of
    :class:`~rs_plugin.adapters.torch.SmoothedModule` (``num_noise`` draws per input), with each step's
    gradient normalised per example, ``steps`` steps of size ``alpha`` (default ``2 eps / steps``), and
    projection on the l2 ball of radius ``eps`` (a number or one per example) and on ``[0, 1]``.

    Guarantee: every returned input lies within ``eps`` (l2) of its original and in ``[0, 1]``.

    Each step draws fresh noise by default (``reuse_noise=False``): the result must fool the smoothed
    classifier on noise it has never seen (PREDICT's), and a sample kept for all steps (``reuse_noise=True``,
    as in Salman et al.'s code) lets PGD fit that sample; redrawing averages the gradient over ``steps *
    num_noise`` draws at the same cost. Measured on the digits model (successes at 1.25 R among 147 certified
    examples, redrawn vs reused): 51 vs 38 with 8 draws and 20 steps, 55 vs 50 with 32 draws and 10 steps,
    55 vs 53 with 32 draws and 20 steps.

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
        batch_size: int = 1000,
        seed: int | None = None,
    ) -> None:
        smoothed = SmoothedModule(model, sigma, num_noise=num_noise, noise=noise, batch_size=batch_size, seed=seed)
        super().__init__("SmoothAdvPGD", smoothed)
        per_example("eps", eps, None)
        if alpha is not None:
            per_example("alpha", alpha, None)
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
        check_images(images)
        images = images.detach().to(self.device)
        num_classes = num_logits(smoothed.base, images)
        check_labels("labels", labels, len(images), num_classes)
        labels = labels.detach().to(self.device)
        eps = per_example("eps", self.eps, len(images), images.device)
        alpha = (
            2 * eps / self.steps if self.alpha is None else per_example("alpha", self.alpha, len(images), images.device)
        )
        target = self.get_target_label(images, labels) if self.targeted else labels
        check_labels("target labels", target, len(images), num_classes)
        sign = -1.0 if self.targeted else 1.0
        noise = smoothed.sample_noise(images) if self.reuse_noise else None
        shape = (-1, *[1] * (images.dim() - 1))
        adv = images.clone()
        if self.random_start:  # a random direction at a uniform fraction of eps, as torchattacks' PGDL2
            generator = smoothed.generator(images.device)
            start = torch.randn(images.shape, device=images.device, generator=generator)
            radius = eps * torch.rand(len(images), device=images.device, generator=generator)
            adv = project_l2(images, images + start * (radius / start.flatten(1).norm(dim=1)).view(shape), eps)
        for _ in range(self.steps):
            adv.requires_grad_(True)
            loss = F.nll_loss(smoothed(adv, noise), target, reduction="sum")
            (grad,) = torch.autograd.grad(sign * loss, adv)
            grad = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
            adv = project_l2(images, adv.detach() + alpha.view(shape) * grad, eps)
        return adv.detach()
