"""Running a network faster than float32 in NCHW: reduced precision (autocast, or the network's own weights in
bf16/fp16), the channels_last memory format and ``torch.compile`` (with a mode: ``"reduce-overhead"`` uses CUDA
graphs on a GPU), and the check that reduced precision keeps the labels.

Soundness of reduced precision: a certificate is a statement about ``f(x + e)`` with ``e`` exactly the smoothing
noise. The noise is therefore always drawn and added in float32 (the noisy-evaluation loop's buffer), never in
bf16 or fp16: a bf16 draw keeps 8 bits of mantissa, which changes the noise's distribution, and the radius
formula would no longer be about the noise that was drawn. Reduced precision begins after the addition: the noisy
input ``x + e`` is rounded once to the network's dtype, a deterministic function of ``x + e`` and so part of the
base classifier ``f``, as is everything the network computes in reduced precision. What reduced precision may
change is which labels ``f`` predicts, never the validity of the certificate for that ``f``:
:func:`label_agreement` measures how often it agrees with float32.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from rs_plugin.noises import Noise
from rs_plugin.seeding import stream_seed

from ..plugin_torch import COMPILE_MODES
from .loop import eval_mode, module_device, noisy_batches
from .streams import TorchStream

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

CUDA_GRAPH_MODES = frozenset({"reduce-overhead", "max-autotune"})
"""The modes of :data:`COMPILE_MODES` that replay CUDA graphs on a GPU."""


def compile_mode(compile: bool | str | None) -> str | None:
    """The ``torch.compile`` mode a ``compile`` option asks for: None for no compilation (False, None), ``"default"``
    for True, a mode of :data:`COMPILE_MODES` as it is; ``ValueError`` for anything else."""
    if compile is None or compile is False:
        return None
    if compile is True:
        return "default"
    if compile not in COMPILE_MODES:
        raise ValueError(f"compile must be True, False or a mode ({', '.join(COMPILE_MODES)}), got {compile!r}")
    return compile


class FastModel(nn.Module):
    """``model`` run in reduced ``precision`` (``"bf16"`` or ``"fp16"``), in the ``channels_last`` memory format
    for convolutional models, and/or compiled, returning float32 logits.

    Reduced precision runs under autocast on the input's device (``autocast=True``: the weights stay float32, each
    operation autocast lists runs in the precision), or, with ``autocast=False``, runs a copy of the network whose
    weights and buffers are converted to the precision (``model.to(dtype)``; faster than autocast on GPUs, as no
    weight is cast at each call). With converted weights or ``channels_last`` it runs a copy of ``model``: the
    network passed is left as it was (float32, its own memory format), e.g. as :func:`label_agreement`'s reference.
    Either way the noise is drawn and added in float32 and the noisy input is rounded once to :attr:`input_dtype`
    (see the module's docstring: this keeps the certificate sound). Inputs may come in float32 or already in
    :attr:`input_dtype` and :attr:`memory_format` (the torch backend hands them so, in one copy).

    ``compile``: False, True (``torch.compile``'s default mode) or a mode of :data:`COMPILE_MODES`, always with
    dynamic shapes, so that a run's last, smaller batch does not compile again. In a CUDA-graph mode each call
    marks a new step for torch's CUDA graphs and returns logits that later calls do not overwrite.

    Reduced precision may change predicted labels, so it is never the default for certification: measure
    :func:`label_agreement` with float32 first (``rs-plugin certify --precision`` reports it at start).
    """

    def __init__(
        self,
        model: nn.Module,
        precision: str = "fp32",
        channels_last: bool = False,
        compile: bool | str = False,
        *,
        autocast: bool = True,
    ) -> None:
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        mode = compile_mode(compile)
        dtype = PRECISIONS[precision]
        self.precision, self.channels_last = precision, bool(channels_last)
        self.autocast = bool(autocast) or dtype is None
        """Whether reduced precision runs under autocast (True for fp32, where there is none)."""
        self.input_dtype: torch.dtype = torch.float32 if self.autocast else dtype
        """The dtype the network takes its inputs in: float32, or the precision of converted weights."""
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        """The memory format the network takes 4-D inputs in."""
        if not self.autocast or self.channels_last:  # run a copy: the network passed stays as it was
            model = copy.deepcopy(model)
        if not self.autocast:
            model = model.to(dtype)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.compile_mode = mode
        """``torch.compile``'s mode, or None when not compiled."""
        self.compiled = mode is not None
        self._graphs = mode in CUDA_GRAPH_MODES
        self._run = torch.compile(model.forward, dynamic=True, mode=mode) if mode is not None else model.forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layout = torch.channels_last if self.channels_last and x.dim() == 4 else torch.preserve_format
        x = x.to(self.input_dtype, memory_format=layout)  # the one rounding of x + e (none when it is done already)
        dtype = PRECISIONS[self.precision] if self.autocast else None
        if self._graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with torch.autocast(device_type=x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = self._run(x)
        # a CUDA graph's outputs live in its memory, which the next call overwrites: copy them (B x K values)
        return logits.float().clone() if self._graphs else logits.float()


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
