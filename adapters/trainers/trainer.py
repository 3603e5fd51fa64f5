"""What a training method is: :class:`Trainer` (a loss on one batch, hyperparameters in a config dataclass) and
:class:`Step`, what its loss sees of the run besides the batch."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from rs_plugin.noises import Noise
from rs_plugin.plugins import make_noise
from rs_plugin.seeding import stream_seed

from ..torch import TorchStream, noisy_batches
from .options import NoOptions, make_config


class Step:
    """What a method's loss sees of the run besides the batch: the training noise, the epoch, and the run's
    random streams (:meth:`noisy` for noisy copies, :meth:`seed` and :attr:`generator` for its own draws)."""

    def __init__(self, noise: Noise | None, stream: Any, generator: torch.Generator, epoch: int, epochs: int) -> None:
        self.noise, self.stream, self.generator, self.epoch, self.epochs = noise, stream, generator, epoch, epochs

    @property
    def sigma(self) -> float:
        """The training noise's standard deviation."""
        return self.noise.sigma

    def noisy(self, x: torch.Tensor, m: int = 1, *, seed: int | None = None) -> torch.Tensor:
        """``m`` noisy copies ``x + delta`` of each input, ``(B, m, *shape)``, differentiable in ``x``: from the run's
        noise stream, or with ``seed`` from one stream per input, ``stream_seed(seed, "input", b)`` (the noise of
        ``SmoothedModule(..., num_noise=m)(x, noise_seed=seed)``, so an attack and the loss can share their noise)."""
        streams: Any = self.stream
        if seed is not None:
            streams = [TorchStream(self.noise, stream_seed(seed, "input", b), x.device) for b in range(len(x))]
        inputs, _ = next(noisy_batches(x, [m] * len(x), streams, m * len(x), differentiable=True))
        return inputs.view(len(x), m, *x.shape[1:])

    def seed(self) -> int:
        """A fresh seed (for an attack's noise, say) from the run's generator."""
        return int(torch.randint(0, 2**62, (), generator=self.generator, device=self.generator.device))

    def warmup(self, epochs: int) -> float:
        """``min(1, (epoch + 1) / epochs)``: a hyperparameter's fraction during a linear warm-up of ``epochs``."""
        return min(1.0, (self.epoch + 1) / epochs)


class Trainer:
    """A training method for smoothing: the loss of one batch, hyperparameters in a :attr:`Config` dataclass.

    ``Trainer(sigma, noise="gaussian", **options)``: ``options`` are :attr:`Config`'s fields (strings are converted
    to their type). The training noise is the noise plugin ``noise`` at ``sigma``; :attr:`uses_noise` False means a
    method without noise (``sigma`` is then ignored). After :func:`fit`, :attr:`history` holds one entry per epoch:
    ``epoch``, the mean ``loss``, the ``accuracy`` under noise and the ``seconds`` it took.
    """

    name: ClassVar[str]
    Config: ClassVar[type] = NoOptions
    uses_noise: ClassVar[bool] = True
    trains: ClassVar[str] = "classifier"
    """What the trained module is: ``"classifier"`` or ``"denoiser"``."""
    attacks_through_noise: ClassVar[bool] = False
    """Whether the method differentiates through the noise to the input (an attack): only an additive noise has
    that gradient (not ablation, :mod:`rs_plugin.ablation`)."""
    maximises_soft_radius: ClassVar[bool] = False
    """Whether the method's objective is the noise's soft certified radius
    (:meth:`rs_plugin.noises.Noise.soft_radius`)."""

    def __init__(self, sigma: float | None = None, *, noise: str | Noise = "gaussian", **options: Any) -> None:
        self.config = make_config(self.Config, options, self.name)
        self.history: list[dict[str, float]] = []
        if self.uses_noise and sigma is None:
            raise ValueError(f"sigma: the {self.name} method trains under noise; give its standard deviation")
        self.noise: Noise | None = make_noise(noise, sigma) if self.uses_noise else None
        if self.noise is not None and self.attacks_through_noise and not self.noise.additive:
            raise ValueError(f"noise: the {self.name} method attacks through the noise, and the {self.noise.name} "
                             "randomization has no gradient in the input; train it with gaussian or consistency")
        if self.noise is not None and self.maximises_soft_radius and type(self.noise).soft_radius is Noise.soft_radius:
            raise ValueError(f"noise: the {self.name} method maximises the soft certified radius, which the "
                             f"{self.noise.name} noise does not have; train it with gaussian or consistency")

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(self.config).items())
        return f"{type(self).__name__}({self.noise!r}{', ' if options else ''}{options})"

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: Step) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, logits)`` on the batch ``(x, y)``: the scalar to minimise, and the logits ``(B, K)`` or
        ``(B, m, K)`` of the base classifier on the noisy inputs it trained on (for the accuracy under noise)."""
        raise NotImplementedError

    def training(self, model: nn.Module) -> contextlib.AbstractContextManager:
        """A context held while ``model`` trains (e.g. to freeze a second network)."""
        return contextlib.nullcontext()

    def settings(self) -> dict[str, Any]:
        """What identifies the method's run: its name, noise and hyperparameters."""
        noise = self.noise
        return {"method": self.name, "sigma": noise.sigma if noise else 0.0, "noise": noise.spec if noise else None,
                **{f"option.{k}": v for k, v in dataclasses.asdict(self.config).items()}}
