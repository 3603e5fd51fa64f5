"""l2 PGD on the soft smoothed classifier (Salman et al. 2019): the attack of :class:`rs_plugin.attacks.SmoothAdvPGD`
and the adversary of SmoothAdv training, in one place."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rs_plugin.noises import Gaussian

from .module import SmoothedModule
from .streams import TorchStream


def project_l2(images: torch.Tensor, adv: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """``adv`` moved onto the l2 ball of radius ``eps`` (one per example) around ``images``, then into ``[0, 1]``
    (clamping only moves it closer to ``images`` in [0, 1], so both constraints hold)."""
    delta = adv - images
    norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    scale = torch.minimum(torch.ones_like(norms), eps / norms)
    return (images + delta * scale.view(-1, *[1] * (images.dim() - 1))).clamp(0, 1)


def smoothed_pgd(
    smoothed: SmoothedModule,
    images: torch.Tensor,
    target: torch.Tensor,
    eps: torch.Tensor,
    alpha: torch.Tensor,
    steps: int,
    *,
    targeted: bool = False,
    reuse_noise: bool = False,
    random_start: bool = False,
) -> torch.Tensor:
    """``steps`` normalised-gradient steps of size ``alpha`` (one per example) on the cross-entropy of ``smoothed``
    at ``target`` (ascending it, or descending with ``targeted``), each projected on the l2 ball of radius ``eps``
    around ``images`` and on ``[0, 1]``.

    Guarantee: every returned input lies within ``eps`` (l2) of its original and in ``[0, 1]``. The noise is
    ``smoothed``'s: fresh at every step, or one sample for all steps with ``reuse_noise``; a random start is a random
    direction at a uniform fraction of ``eps`` (as torchattacks' PGDL2), drawn from ``smoothed``'s next seed.
    """
    sign = -1.0 if targeted else 1.0
    noise_seed = smoothed.next_noise_seed() if reuse_noise else None
    shape = (-1, *[1] * (images.dim() - 1))
    adv = images.clone()
    if random_start:
        direction = TorchStream(Gaussian(1.0), smoothed.next_noise_seed(), images.device)
        start = direction.fill(torch.empty_like(images))
        radius = eps * torch.rand(len(images), device=images.device, generator=direction.generator)
        adv = project_l2(images, images + start * (radius / start.flatten(1).norm(dim=1)).view(shape), eps)
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = F.nll_loss(smoothed(adv, noise_seed), target, reduction="sum")
        (grad,) = torch.autograd.grad(sign * loss, adv)
        grad = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
        adv = project_l2(images, adv.detach() + alpha.view(shape) * grad, eps)
    return adv.detach()
