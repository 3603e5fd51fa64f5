"""The differentiable soft smoothed classifier that attacks and training take as their model."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from rs_plugin.backends import run_base
from rs_plugin.calibration import best_batch_size
from rs_plugin.checks import positive_int
from rs_plugin.checks import seed as check_seed
from rs_plugin.noises import Noise
from rs_plugin.plugins import make_noise
from rs_plugin.seeding import fresh_entropy, stream_seed

from .backend import TorchBackend, check_logits
from .checks import check_batch
from .loop import eval_mode, noisy_batches, num_logits
from .precision import FastModel
from .streams import TorchStream


class SmoothedModule(nn.Module):
    """The soft smoothed classifier of Salman et al. (2019) as a differentiable ``nn.Module``.

    ``forward(x)`` maps a batch ``(B, *shape)`` in ``[0, 1]`` to ``log(mean_k softmax(base(x + noise_k)))``
    over ``num_noise`` noise draws per input: log-probabilities, so the cross-entropy on the output (what
    any torchattacks attack minimises or maximises) is the SmoothAdv loss, and its argmax estimates the
    smoothed classifier's class. Gradients flow to ``x`` (and to the base's parameters).

    ``base`` must take inputs in ``[0, 1]`` (normalisation inside it: noise lives in pixel space) and
    return logits; it is a submodule, so ``eval()`` (which every torchattacks attack calls) reaches it,
    and the module starts in the base's mode. The base sees at most ``batch_size`` noisy inputs per pass
    (the torch noisy-evaluation loop, :func:`noisy_batches`; None: the fastest size, measured once per input shape
    by :mod:`rs_plugin.calibration`, and with gradients enabled the largest below it whose backward pass fits in the
    device's memory: :meth:`batch_size_for`); with gradients enabled and several batches, each is recomputed in the
    backward pass (activation checkpointing) so that memory stays bounded by one batch. Each call draws fresh noise,
    input ``b`` from its own stream, derived from ``seed`` and the call's number (``seed=None``: a root seed drawn from
    fresh entropy when the module is made, as on every face of rs-plugin).
    """

    def __init__(
        self,
        base: nn.Module,
        sigma: float,
        *,
        num_noise: int = 32,
        noise: str | Noise = "gaussian",
        batch_size: int | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(base, nn.Module):
            raise TypeError(f"base must be a torch.nn.Module returning logits, got {type(base).__name__}")
        self.seed = check_seed("seed", seed)
        self.noise = make_noise(noise, sigma)
        self.sigma = self.noise.sigma
        self.num_noise = positive_int("num_noise", num_noise)
        self.batch_size = None if batch_size is None else positive_int("batch_size", batch_size)
        self.base = base
        self.training = base.training
        self._root = fresh_entropy() if seed is None else seed
        self._calls = 0
        self._calibrated: dict[tuple, int] = {}

    def extra_repr(self) -> str:
        return f"noise={self.noise!r}, num_noise={self.num_noise}, batch_size={self.batch_size}, seed={self.seed}"

    def next_noise_seed(self) -> int:
        """The seed of the next call's noise (what :meth:`forward` uses when given none); advances the calls."""
        self._calls += 1
        return stream_seed(self._root, "smoothed-module", self._calls - 1)

    def batch_size_for(self, x: torch.Tensor) -> int:
        """Noisy copies per forward pass for inputs like those of the batch ``x``: ``batch_size``, or the fastest
        size measured by :func:`rs_plugin.calibration.best_batch_size` (once per input shape and device, with the
        base in eval mode and no gradient; on a GPU from the largest size its free memory allows, never above a size
        that ran out of memory). With gradients enabled (a backward pass follows: an attack, training),
        that size halved until one batch's forward and backward pass run without the device running out of memory
        (:meth:`_fits_backward`): a backward pass holds every activation of its batch, inference only a layer's."""
        if self.batch_size is not None:
            return self.batch_size
        backward = torch.is_grad_enabled()
        inputs = (tuple(x.shape[1:]), x.dtype, str(x.device))
        key = (*inputs, backward)
        if key not in self._calibrated:
            try:
                size = self._calibrated.get((*inputs, False))
                if size is None:
                    backend = TorchBackend(self.base, num_logits(self.base, x))
                    size = self._calibrated[(*inputs, False)] = best_batch_size(backend, self.noise, x[0].detach())[0]
                while backward and size > 1 and not self._fits_backward(x[0].detach(), size):
                    size //= 2
                self._calibrated[key] = size
            except (TypeError, ValueError, RuntimeError, IndexError):
                # The base cannot run on these inputs: the call itself reports why (run_base's one-line error).
                return self.num_noise * len(x)
        return self._calibrated[key]

    def _fits_backward(self, x: torch.Tensor, size: int) -> bool:
        """Whether a forward and backward pass of the base on ``size`` noisy copies of ``x`` runs without
        ``torch.OutOfMemoryError``: with the base in eval mode (no running statistic moves) and the gradient taken
        in the copies only (nothing is added to any parameter's ``.grad``), on a throwaway stream."""
        stream = TorchStream(self.noise, 0, x.device)
        copies = x.unsqueeze(0).requires_grad_(True)
        try:
            with eval_mode(self.base):
                inputs, _ = next(noisy_batches(copies, [size], [stream], size, differentiable=True))
                torch.autograd.grad(self._log_softmax(inputs).sum(), copies)
        except torch.OutOfMemoryError:
            if x.device.type == "cuda":
                torch.cuda.empty_cache()
            return False
        return True

    def streams(self, count: int, device: Any, noise_seed: int) -> list[TorchStream]:
        """The noise streams of ``count`` inputs for the noise of ``noise_seed``: input ``b``'s is seeded with
        ``stream_seed(noise_seed, "input", b)``."""
        return [TorchStream(self.noise, stream_seed(noise_seed, "input", b), device) for b in range(count)]

    def forward(self, x: torch.Tensor, noise_seed: int | None = None) -> torch.Tensor:
        """Log-probabilities ``(B, K)`` of the soft smoothed classifier at each input of ``x``, averaged over
        ``num_noise`` draws: fresh ones, or those of ``noise_seed`` (the same seed gives every input of the same
        position the same noise, e.g. to evaluate PGD's iterates on one sample of noise)."""
        check_batch("x", x)
        # a FastModel takes float32 (noise is never drawn in reduced precision) whatever its weights' dtype
        dtype = torch.float32 if isinstance(self.base, FastModel) else next(
            (p.dtype for p in self.base.parameters() if p.is_floating_point()), x.dtype)
        if x.dtype != dtype:
            raise TypeError(f"x must have the base's dtype {dtype}, got {x.dtype}; convert it with x.to({dtype})")
        seed = self.next_noise_seed() if noise_seed is None else check_seed("noise_seed", noise_seed)
        draws, batch_size = self.num_noise, self.batch_size_for(x)
        batches = noisy_batches(
            x, [draws] * len(x), self.streams(len(x), x.device, seed), batch_size, differentiable=True
        )
        chunked = torch.is_grad_enabled() and draws * len(x) > batch_size
        log_probs = [
            checkpoint(self._log_softmax, inputs, use_reentrant=False) if chunked else self._log_softmax(inputs)
            for inputs, _ in batches
        ]
        return torch.logsumexp(torch.cat(log_probs).view(len(x), draws, -1), 1) - math.log(draws)

    def _log_softmax(self, inputs: torch.Tensor) -> torch.Tensor:
        """``log_softmax(base(inputs))``: ``(rows, K)``; ``ValueError`` for anything but finite logits."""
        logits = run_base(self.base, inputs, (torch.OutOfMemoryError,))
        check_logits(logits, len(inputs), None)
        return logits.log_softmax(-1)
