"""Certifying networks trained by someone else: denoisers in front of them, and ensembles of them.

- :class:`DnCNN`, a denoiser by residual learning (Zhang et al. 2017), and :class:`Denoised`, the base classifier
  ``classifier(denoiser(x))`` of denoised smoothing (Salman et al., NeurIPS 2020): an off-the-shelf classifier,
  a denoiser trained for it at the smoothing noise level.
- :class:`DiffusionDenoiser`, one-shot denoising with a DDPM noise predictor at the timestep whose noise level
  matches sigma (Carlini et al., ICLR 2023).
- :class:`Ensemble`, the average of the members' softmax (Horváth et al., ICLR 2022).

Each is an ``nn.Module`` taking a batch in ``[0, 1]`` pixel space (where the smoothing noise is added), so it
is a base classifier everywhere one is accepted: :class:`rs_plugin.SmoothedClassifier`, the ART estimator,
:class:`~rs_plugin.adapters.torch.SmoothedModule`, the attacks and the command line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from rs_plugin.checks import positive_int
from rs_plugin.noises import Gaussian


class DnCNN(nn.Module):
    """A DnCNN denoiser (Zhang et al. 2017): ``depth`` 3x3 convolutions of ``width`` channels (batch normalisation
    and ReLU between them) predict the noise of a batch ``(B, channels, H, W)``, and the output is the input
    minus that prediction, of the same shape. Salman et al. used depth 17, width 64 (the defaults) for CIFAR-10.
    The last convolution starts at zero, so an untrained DnCNN is the identity.
    """

    def __init__(self, channels: int, depth: int = 17, width: int = 64) -> None:
        super().__init__()
        channels, width = positive_int("channels", channels), positive_int("width", width)
        if positive_int("depth", depth) < 2:
            raise ValueError(f"depth must be at least 2, got {depth}")
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        layers.append(nn.Conv2d(width, channels, 3, padding=1, bias=False))
        nn.init.zeros_(layers[-1].weight)
        self.noise = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The denoised batch: ``x`` minus the predicted noise."""
        return x - self.noise(x)


class Denoised(nn.Module):
    """The composition ``classifier(denoiser(x))``: a denoiser (``[0, 1]``-space batch to a batch of the same shape)
    in front of a classifier returning logits. Both are submodules (one ``state_dict``, ``eval()`` and ``.to()``
    reach both); gradients flow through both to ``x``."""

    def __init__(self, denoiser: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        for name, module in (("denoiser", denoiser), ("classifier", classifier)):
            if not isinstance(module, nn.Module):
                raise TypeError(f"{name} must be a torch.nn.Module, got {type(module).__name__}")
        self.denoiser = denoiser
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's logits on the denoised batch."""
        return self.classifier(self.denoiser(x))


class Ensemble(nn.Module):
    """The soft-voting ensemble of classifiers returning logits: ``log(mean_m softmax(member_m(x)))``.

    Its argmax is the class of the averaged probabilities (what the smoothed classifier counts), and the
    cross-entropy of its output is that of the averaged probabilities (log-probabilities are their own
    log-softmax). Each member runs once per batch.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        members = list(members)
        if not members:
            raise ValueError("members must hold at least one classifier, got none")
        for k, member in enumerate(members):
            if not isinstance(member, nn.Module):
                raise TypeError(f"members[{k}] must be a torch.nn.Module, got {type(member).__name__}")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``(B, K)`` of the members' averaged softmax."""
        log_probs = [member(x).log_softmax(-1) for member in self.members]
        for k, scores in enumerate(log_probs[1:], start=1):
            if scores.shape != log_probs[0].shape:
                raise ValueError(
                    f"members: member {k} returned scores of shape {tuple(scores.shape)}, member 0 "
                    f"{tuple(log_probs[0].shape)}; every member must have the same classes"
                )
        return torch.logsumexp(torch.stack(log_probs), 0) - math.log(len(log_probs))


def diffusion_timestep(alphas_cumprod: torch.Tensor, sigma: float) -> int:
    """The DDPM timestep whose noise level matches smoothing noise ``sigma`` on ``[0, 1]`` inputs: the ``t``
    whose cumulative alpha ``a_t`` is nearest ``1 / (1 + 4 sigma^2)``.

    Why: a DDPM sees ``x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps`` with ``x_0`` in ``[-1, 1]``. A noisy input
    ``x + sigma delta`` rescaled to ``[-1, 1]`` is ``(2x - 1) + 2 sigma delta``; times ``sqrt(a_t)`` it is
    ``sqrt(a_t) (2x - 1) + sqrt(a_t) 2 sigma delta``, which is ``x_t`` for ``x_0 = 2x - 1`` exactly when
    ``a_t (2 sigma)^2 = 1 - a_t``, i.e. ``(1 - a_t) / a_t = (2 sigma)^2``.
    """
    Gaussian(sigma)  # a valid sigma
    target = 1.0 / (1.0 + 4.0 * sigma**2)
    return int((torch.as_tensor(alphas_cumprod, dtype=torch.float64) - target).abs().argmin())


class DiffusionDenoiser(nn.Module):
    """One-shot denoising with a DDPM noise predictor (Carlini et al., ICLR 2023), for Gaussian smoothing at
    ``sigma`` on inputs in ``[0, 1]``.

    ``eps_model(x_t, t)`` is the diffusion model's noise prediction (same shape as ``x_t``, inputs in
    ``[-1, 1]``, ``t`` a ``(B,)`` long tensor), ``alphas_cumprod`` its schedule's cumulative alphas. The
    timestep is :func:`diffusion_timestep`'s; the noisy batch is rescaled to ``x_t = sqrt(a_t) (2x - 1)`` and
    the output is the model's estimate of the clean image, ``(x_t - sqrt(1 - a_t) eps) / sqrt(a_t)``, mapped
    back to ``[0, 1]`` (not clipped). On a discrete schedule the matched ``a_t`` is the nearest one, not exact.
    """

    def __init__(self, eps_model: nn.Module, alphas_cumprod: torch.Tensor, sigma: float) -> None:
        super().__init__()
        self.timestep = diffusion_timestep(alphas_cumprod, sigma)
        self.sigma = float(sigma)
        self.eps_model = eps_model
        self.alpha = float(torch.as_tensor(alphas_cumprod, dtype=torch.float64)[self.timestep])

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, timestep={self.timestep}, alpha={self.alpha:.6f}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The estimate of the clean batch in ``[0, 1]`` space."""
        x_t = math.sqrt(self.alpha) * (2 * x - 1)
        t = torch.full((len(x),), self.timestep, dtype=torch.long, device=x.device)
        x_0 = (x_t - math.sqrt(1 - self.alpha) * self.eps_model(x_t, t)) / math.sqrt(self.alpha)
        return (x_0 + 1) / 2
