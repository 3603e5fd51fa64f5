"""The backend that counts the votes of an ``nn.Module`` base classifier on noisy copies (:mod:`.loop`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from rs_plugin.backends import check_finite, check_scores, diverged, run_base, split_rows
from rs_plugin.checks import real_input
from rs_plugin.noises import Noise

from .loop import eval_mode, module_device, noisy_batches
from .streams import TorchStream


def check_logits(logits: Any, batch: int, num_classes: int | None, input_shape: tuple[int, ...] = ()) -> None:
    """``ValueError`` unless ``logits`` are finite scores ``(batch, num_classes)`` (any number of classes when
    ``num_classes`` is None): a diverged model's output is never used."""
    shape = tuple(getattr(logits, "shape", ()))
    if num_classes is None and len(shape) != 2:
        raise ValueError(f"base returned an output of shape {shape} for {batch} inputs; expected logits ({batch}, K)")
    check_scores(shape, batch, shape[1] if num_classes is None else num_classes, input_shape)
    if not bool(torch.isfinite(logits).all()):
        raise diverged("logits", batch)


class TorchBackend:
    """Evaluates an ``nn.Module`` returning logits ``(B, num_classes)`` on the batches of :func:`noisy_batches`.

    Noise is drawn on the model's device into one reused batch buffer, under ``torch.inference_mode`` and with the
    model in eval mode (its mode is restored afterwards); counts stay on the device until the end. ``device``
    (if given) moves the model there; ``"auto"`` means CUDA when available, else where the model is.
    """

    def __init__(self, model: nn.Module, num_classes: int, device: Any = None) -> None:
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else None
        if device is not None:
            model.to(device)
        self.model = model
        self.num_classes = num_classes
        self.device = module_device(model)
        self._buffer: torch.Tensor | None = None

    def prepare(self, x: Any) -> torch.Tensor:
        real_input(x)
        if isinstance(x, torch.Tensor):
            x = x.detach()
        try:
            tensor = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"x must be one numeric input, got {type(x).__name__}: {err}") from err
        check_finite(bool(torch.isfinite(tensor).all()), tuple(tensor.shape))
        return tensor

    def stream(self, noise: Noise, seed: int) -> TorchStream:
        return TorchStream(noise, seed, self.device)

    def identity(self) -> tuple:
        """The architecture (class, parameter names, shapes and dtypes) and the device: copies of a network, which
        run as fast as it does, share one measured batch size."""
        layout = tuple((name, tuple(p.shape), str(p.dtype)) for name, p in self.model.named_parameters())
        return (type(self.model).__module__, type(self.model).__qualname__, layout, str(self.device))

    def counts(self, xs: Sequence[Any], nums: Sequence[int], streams: Sequence[Any], batch_size: int) -> np.ndarray:
        k = self.num_classes
        counts = torch.zeros(len(xs) * k, dtype=torch.int64, device=self.device)
        for logits, owner in self._logits(xs, nums, streams, batch_size):
            counts += torch.bincount(owner * k + logits.argmax(1), minlength=len(xs) * k)
        return counts.view(len(xs), k).cpu().numpy()

    def soft_sums(self, xs: Sequence[Any], nums: Sequence[int], streams: Sequence[Any], batch_size: int) -> np.ndarray:
        sums = torch.zeros(len(xs), self.num_classes, dtype=torch.float64, device=self.device)
        for logits, owner in self._logits(xs, nums, streams, batch_size):
            sums.index_add_(0, owner, logits.double().softmax(1))
        return sums.cpu().numpy()

    def soft_pairs(
        self, xs: Sequence[Any], nums: Sequence[int], streams: Sequence[Any], batch_size: int, classes: Sequence[int]
    ) -> list[np.ndarray]:
        chosen, rows = torch.as_tensor(np.asarray(classes), device=self.device), []
        for logits, owner in self._logits(xs, nums, streams, batch_size):
            probs = logits.double().softmax(1)
            mine = chosen[owner]
            top = probs.gather(1, mine[:, None])[:, 0]
            others = probs.scatter(1, mine[:, None], -1.0).max(1).values
            rows.append(torch.stack([top, others], 1))
        return split_rows(torch.cat(rows).cpu().numpy(), nums)

    def _logits(self, xs: Sequence[Any], nums: Sequence[int], streams: Sequence[Any], batch_size: int) -> Any:
        """The base's logits on each batch of the torch noisy-evaluation loop and the batch's owners, under
        ``inference_mode`` with the model in eval mode; ``ValueError`` after the loop when any logit was not finite
        (nothing a diverged model says is used)."""
        stacked, k = torch.stack(list(xs)), self.num_classes
        with eval_mode(self.model), torch.inference_mode():
            finite = torch.ones((), dtype=torch.bool, device=self.device)
            for batch, owner in noisy_batches(stacked, nums, streams, batch_size, buffer=self._buffer):
                self._buffer = batch if self._buffer is None or len(batch) > len(self._buffer) else self._buffer
                logits = run_base(self.model, batch, (torch.OutOfMemoryError,))
                check_scores(tuple(getattr(logits, "shape", ())), len(batch), k, tuple(stacked.shape[1:]))
                finite &= torch.isfinite(logits).all()
                yield logits, owner
            if not bool(finite):
                raise diverged("logits", batch_size)
