"""Running a network faster than float32 in NCHW: reduced precision, the channels_last memory format and
``torch.compile``, and the check that reduced precision keeps the labels."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from rs_plugin.noises import Noise
from rs_plugin.seeding import stream_seed

from .loop import eval_mode, module_device, noisy_batches
from .streams import TorchStream

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class FastModel(nn.Module):
    """``model`` run in reduced ``precision`` (``"bf16"`` or ``"fp16"``: autocast on the input's device), in the
    ``channels_last`` memory format for convolutional models, and/or compiled (``compile``: ``torch.compile`` with
    dynamic shapes, so that a run's last, smaller batch does not compile again), returning float32 logits.

    Reduced precision may change predicted labels, so it is never the default for certification: measure
    :func:`label_agreement` with float32 first (``rs-plugin certify --precision`` reports it at start).
    """

    def __init__(
        self, model: nn.Module, precision: str = "fp32", channels_last: bool = False, compile: bool = False
    ) -> None:
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.model, self.precision, self.channels_last = model, precision, bool(channels_last)
        self.compiled = bool(compile)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self._run = torch.compile(model.forward, dynamic=True) if self.compiled else model.forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        dtype = PRECISIONS[self.precision]
        with torch.autocast(device_type=x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return self._run(x).float()


def label_agreement(reference: nn.Module, fast: nn.Module, xs: Any, noise: Noise, copies: int, seed: int = 0) -> float:
    """The fraction of ``copies`` noisy copies of each input of ``xs`` on which ``fast`` predicts the label that
    ``reference`` (float32) predicts, both on the same noisy inputs from the torch noisy-evaluation loop."""
    device = module_device(reference)
    xs = torch.as_tensor(np.asarray(xs), dtype=torch.float32, device=device)
    streams = [TorchStream(noise, stream_seed(seed, "agreement", e), device) for e in range(len(xs))]
    agree = total = 0
    with eval_mode(reference), eval_mode(fast), torch.inference_mode():
        for batch, _ in noisy_batches(xs, [copies] * len(xs), streams, 1000):
            agree += int((reference(batch).argmax(1) == fast(batch).argmax(1)).sum())
            total += len(batch)
    return agree / total
