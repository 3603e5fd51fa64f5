"""Torch support: the backend that certifies ``nn.Module`` base classifiers."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch
from torch import nn

from rs_plugin.backends import base_failed, check_finite, check_scores
from rs_plugin.noises import Noise


def module_device(model: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (CPU for a module without any)."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


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
        training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
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
        finally:
            self.model.train(training)
        return counts.cpu().numpy()
