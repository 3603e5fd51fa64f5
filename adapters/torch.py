"""Torch support: the backend that certifies ``nn.Module`` base classifiers, and the differentiable soft smoothed
classifier that attacks take as their model."""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from rs_plugin.backends import base_failed, check_finite, check_scores
from rs_plugin.checks import positive_int
from rs_plugin.checks import seed as check_seed
from rs_plugin.noises import Noise
from rs_plugin.plugins import make_noise


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block with every submodule of ``model`` in eval mode; afterwards each submodule is back in its
    own mode (a wrapper's flag is never pushed down onto the modules it wraps)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def module_device(model: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (CPU for a module without any)."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def num_logits(model: nn.Module, x: torch.Tensor) -> int:
    """How many logits ``model`` returns: one forward pass on the first input of the batch ``x`` (on the model's
    device, every submodule in eval mode, no gradient)."""
    with torch.no_grad(), eval_mode(model):
        return int(model(x[:1].to(module_device(model))).shape[-1])


class TorchBackend:
    """Evaluates an ``nn.Module`` returning logits ``(B, num_classes)`` on noisy batches.

    Noise is drawn on the model's device by a seeded ``torch.Generator`` into one reused batch buffer,
    under ``torch.inference_mode`` and with the model in eval mode (its mode is restored afterwards);
    counts stay on the device until the end. ``device`` (if given) moves the model there.
    """

    def __init__(self, model: nn.Module, num_classes: int, device: Any = None) -> None:
        if device is not None:
            model.to(device)
        self.model = model
        self.num_classes = num_classes
        self.device = module_device(model)
        self._buffer: torch.Tensor | None = None

    def prepare(self, x: Any) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            x = x.detach()
        tensor = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        check_finite(bool(torch.isfinite(tensor).all()), tuple(tensor.shape))
        return tensor

    def generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(seed)

    def _batch_buffer(self, shape: tuple[int, ...]) -> torch.Tensor:
        if self._buffer is None or tuple(self._buffer.shape) != shape:
            self._buffer = torch.empty(shape, device=self.device)
        return self._buffer

    def counts(self, x: torch.Tensor, num: int, noise: Noise, generator: Any, batch_size: int) -> np.ndarray:
        with eval_mode(self.model), torch.inference_mode():
            buffer = self._batch_buffer((min(batch_size, num), *x.shape))
            counts = torch.zeros(self.num_classes, dtype=torch.int64, device=self.device)
            for start in range(0, num, batch_size):
                batch = buffer[: min(batch_size, num - start)]
                noise.sample_torch(batch, generator)
                batch.add_(x)
                try:
                    logits = self.model(batch)
                except torch.OutOfMemoryError:
                    raise
                except (TypeError, ValueError, RuntimeError, IndexError) as err:
                    raise base_failed(err, tuple(batch.shape)) from err
                check_scores(tuple(getattr(logits, "shape", ())), len(batch), self.num_classes)
                counts += torch.bincount(logits.argmax(1), minlength=self.num_classes)
        return counts.cpu().numpy()


class SmoothedModule(nn.Module):
    """The soft smoothed classifier of Salman et al. (2019) as a differentiable ``nn.Module``.

    ``forward(x)`` maps a batch ``(B, *shape)`` in ``[0, 1]`` to ``log(mean_k softmax(base(x + noise_k)))``
    over ``num_noise`` noise draws per input: log-probabilities, so the cross-entropy on the output (what
    any torchattacks attack minimises or maximises) is the SmoothAdv loss, and its argmax estimates the
    smoothed classifier's class. Gradients flow to ``x`` (and to the base's parameters).

    ``base`` must take inputs in ``[0, 1]`` (normalisation inside it: noise lives in pixel space) and
    return logits; it is a submodule, so ``eval()`` (which every torchattacks attack calls) reaches it,
    and the module starts in the base's mode. The base sees at most ``max(batch_size, B)`` noisy inputs
    per call; with gradients enabled and several chunks, each chunk is recomputed in the backward pass
    (activation checkpointing) so that memory stays bounded by one chunk. Noise is drawn on ``x``'s
    device from ``seed`` (a ``torch.Generator``), or from torch's global generator when ``seed`` is None.
    """

    def __init__(
        self,
        base: nn.Module,
        sigma: float,
        *,
        num_noise: int = 32,
        noise: str = "gaussian",
        batch_size: int = 1000,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(base, nn.Module):
            raise TypeError(f"base must be a torch.nn.Module returning logits, got {type(base).__name__}")
        check_seed("seed", seed)
        self.noise = make_noise(noise, sigma)
        self.sigma = self.noise.sigma
        self.num_noise = positive_int("num_noise", num_noise)
        self.batch_size = positive_int("batch_size", batch_size)
        self.seed = seed
        self.base = base
        self.training = base.training
        self._generator: torch.Generator | None = None

    def extra_repr(self) -> str:
        return f"noise={self.noise!r}, num_noise={self.num_noise}, batch_size={self.batch_size}, seed={self.seed}"

    def generator(self, device: torch.device) -> torch.Generator | None:
        """The generator noise is drawn from on ``device`` (seeded once per device; None: torch's global one)."""
        if self.seed is None:
            return None
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        return self._generator

    def sample_noise(self, x: torch.Tensor) -> torch.Tensor:
        """``num_noise`` fresh noise draws for every input of the batch ``x``: shape ``(num_noise, *x.shape)``.

        Pass the result to :meth:`forward` to evaluate several inputs (e.g. PGD's iterates) on the same noise.
        """
        _check_batch(x)
        out = torch.empty((self.num_noise, *x.shape), dtype=x.dtype, device=x.device)
        self.noise.sample_torch(out, self.generator(x.device))
        return out

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Log-probabilities ``(B, K)`` of the soft smoothed classifier at each input of ``x``, averaged over
        ``noise`` (shape ``(m, *x.shape)``, any ``m >= 1``) or over ``num_noise`` fresh draws."""
        _check_batch(x)
        if noise is None:
            noise = self.sample_noise(x)
        elif not isinstance(noise, torch.Tensor) or noise.dim() != x.dim() + 1 or noise.shape[1:] != x.shape:
            raise ValueError(
                f"noise must have shape (m, *x.shape) = (m, {', '.join(map(str, x.shape))}), "
                f"got {tuple(getattr(noise, 'shape', ()))}"
            )
        draws, per_chunk = len(noise), max(1, self.batch_size // len(x))
        if draws == 0:
            raise ValueError("noise must hold at least one draw, got an empty tensor")
        chunked = torch.is_grad_enabled() and draws > per_chunk
        parts = [
            checkpoint(self._log_mass, x, chunk, use_reentrant=False) if chunked else self._log_mass(x, chunk)
            for chunk in torch.split(noise, per_chunk)
        ]
        return torch.logsumexp(torch.stack(parts), 0) - math.log(draws)

    def _log_mass(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``log sum_k softmax(base(x + noise_k))`` over the draws in ``noise``: ``(B, K)``."""
        logits = self.base((x.unsqueeze(0) + noise).flatten(0, 1))
        if logits.dim() != 2 or len(logits) != noise.shape[0] * len(x):
            raise ValueError(
                f"base returned an output of shape {tuple(logits.shape)} for {noise.shape[0] * len(x)} inputs; "
                "expected logits (batch, num_classes)"
            )
        return torch.logsumexp(logits.log_softmax(-1).view(len(noise), len(x), -1), 0)


def _check_batch(x: Any) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor batch (B, *shape), got {type(x).__name__}")
    if x.dim() < 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty batch (B, *shape) with a batch dimension, got shape {tuple(x.shape)}")
