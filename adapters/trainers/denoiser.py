"""Denoised smoothing: Salman et al., *Denoised smoothing: a provable defense for pretrained classifiers*,
NeurIPS 2020. A denoiser ``D`` is trained in front of a frozen classifier ``f``, so that ``f(D(x + delta))``
is a base classifier worth smoothing although ``f`` never saw noise."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from rs_plugin.noises import Noise

from ..torch import eval_mode, module_device
from .trainer import Step, Trainer

OBJECTIVES = ("stability", "mse")


@dataclasses.dataclass(frozen=True)
class DenoiserConfig:
    """``objective``: ``"stability"`` (the classifier's decision kept under noise, the paper's best for a classifier
    it can query) or ``"mse"`` (reconstruct the clean input; needs no classifier)."""

    objective: str = "stability"

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")


def fingerprint(module: nn.Module) -> str:
    """A SHA-256 of ``module``'s state (names, shapes, dtypes and values): the same weights, the same string."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class Denoiser(Trainer):
    """Trains the denoiser ``D`` (the model given to :func:`~rs_plugin.adapters.trainers.fit`) for the frozen
    ``classifier`` ``f`` (an ``nn.Module`` returning logits on ``[0, 1]`` inputs) with one of the paper's objectives:

        stability: ``L = CE(f(D(x + delta)), f(x))``, ``f(x)`` the classifier's own label on the clean input;
        mse:       ``L = mean ||D(x + delta) - x||^2`` (per pixel).

    Gradients reach ``D`` through ``f``, whose parameters stay unchanged (no gradient, eval mode, moved to ``D``'s
    device while training). The accuracy under noise reported is ``f(D(x + delta))``'s.
    """

    name = "denoiser"
    Config = DenoiserConfig
    trains = "denoiser"

    def __init__(self, sigma: float | None = None, *, noise: str | Noise = "gaussian",
                 classifier: nn.Module | None = None, **options: object) -> None:
        super().__init__(sigma, noise=noise, **options)
        if not isinstance(classifier, nn.Module):
            raise TypeError(f"classifier: the denoiser method needs the frozen classifier, an nn.Module returning "
                            f"logits; got {type(classifier).__name__}")
        self.classifier = classifier

    def settings(self) -> dict[str, object]:
        return {**super().settings(), "classifier": fingerprint(self.classifier)}

    @contextlib.contextmanager
    def training(self, model: nn.Module) -> Iterator[None]:
        self.classifier.to(module_device(model))
        trainable = [p for p in self.classifier.parameters() if p.requires_grad]
        with eval_mode(self.classifier):
            try:
                for parameter in trainable:
                    parameter.requires_grad_(False)
                yield
            finally:
                for parameter in trainable:
                    parameter.requires_grad_(True)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: Step) -> tuple[torch.Tensor, torch.Tensor]:
        denoised = model(step.noisy(x).flatten(0, 1))
        logits = self.classifier(denoised)
        if self.config.objective == "mse":
            return F.mse_loss(denoised, x), logits
        with torch.no_grad():
            labels = self.classifier(x).argmax(-1)
        return F.cross_entropy(logits, labels), logits
