"""The backend that counts the votes of an ``nn.Module`` base classifier on noisy copies (:mod:`.loop`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from rs_plugin.backends import check_finite, check_input, check_scores, diverged, run_base, split_rows
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

    Nothing waits for the device between batches: owners come from the loop's device arithmetic, votes are added
    with ``scatter_add_`` (``bincount`` on CUDA reads its input's maximum back to the host) and finiteness is
    kept on the device (each batch's smallest and largest logit, which are finite exactly when all are), so the
    host is only waited for once per call, when the counts are read. A model
    with an ``input_dtype`` attribute other than float32 (:class:`.precision.FastModel` with converted weights)
    gets each float32 noisy batch rounded once into a second reused buffer of that dtype (in its
    ``memory_format`` for 4-D inputs): the noise itself is never drawn or added in reduced precision.
    """

    FOLD = 512
    """Per-batch extremes of the logits kept before they are folded into one pair (bounds the memory of a long
    call)."""

    def __init__(self, model: nn.Module, num_classes: int, device: Any = None) -> None:
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else None
        if device is not None:
            model.to(device)
        self.model = model
        self.num_classes = num_classes
        self.device = module_device(model)
        self._buffer: torch.Tensor | None = None
        self._cast_buffer: torch.Tensor | None = None
        self.max_batch_size: int | None = None
        """Below the smallest batch that ran out of device memory (None: none has)."""
        self.device_memory: int | None = None
        """The free memory of the GPU the model runs on, in bytes, when the backend was made (None on a CPU): the
        batch sizer starts at the largest batch it allows (:meth:`rs_plugin.calibration.BatchSizer.for_input`)."""
        if self.device.type == "cuda":
            self.device_memory = torch.cuda.mem_get_info(self.device)[0]

    def prepare(self, x: Any) -> torch.Tensor:
        """``x`` as a float32 tensor on the model's device; ``ValueError`` for an input that is complex, not numeric,
        a scalar, or holds a NaN or infinity. The values are checked where they are: on the host for anything but a
        tensor on a device (:func:`rs_plugin.backends.check_input` before any copy to the device, which then need not
        be waited for), on the device for a tensor already there."""
        if not isinstance(x, torch.Tensor):
            return torch.as_tensor(check_input(x), device=self.device)
        real_input(x)
        try:
            tensor = torch.as_tensor(x.detach(), dtype=torch.float32, device=self.device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"x must be one numeric input, got {type(x).__name__}: {err}") from err
        if tensor.device.type == "cpu":  # numpy(force=True): zero-copy; resolves a lazily negated or conjugated view
            finite = bool(np.isfinite(tensor.numpy(force=True)).all())
        else:
            finite = bool(torch.isfinite(tensor).all())
        check_finite(finite, tuple(tensor.shape))
        return tensor

    def stream(self, noise: Noise, seed: int) -> TorchStream:
        return TorchStream(noise, seed, self.device)

    def identity(self) -> tuple:
        """The architecture (class, parameter names, shapes and dtypes), how it runs (a
        :class:`.precision.FastModel`'s precision, autocast, memory format and compile mode) and the device: copies
        of a network, which run as fast as it does, share one measured batch size."""
        layout = tuple((name, tuple(p.shape), str(p.dtype)) for name, p in self.model.named_parameters())
        how = tuple(str(getattr(self.model, name, None)) for name in ("precision", "autocast", "memory_format",
                                                                       "compile_mode"))
        return (type(self.model).__module__, type(self.model).__qualname__, layout, how, str(self.device))

    def counts(self, xs: Sequence[Any], nums: Sequence[int], streams: Sequence[Any], batch_size: int) -> np.ndarray:
        k = self.num_classes
        counts = torch.zeros(len(xs) * k, dtype=torch.int64, device=self.device)
        ones = torch.ones(min(batch_size, sum(nums)), dtype=torch.int64, device=self.device)
        owner_seen, offsets = None, None  # the loop hands the same owner tensor again for a batch of the same layout
        for logits, owner in self._logits(xs, nums, streams, batch_size):
            if owner is not owner_seen:
                owner_seen, offsets = owner, owner * k
            counts.scatter_add_(0, offsets + logits.argmax(1), ones[: len(owner)])
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
            extremes: list[torch.Tensor] = []  # each batch's smallest and largest logit: all finite iff these are
            for batch, owner in noisy_batches(stacked, nums, streams, batch_size, buffer=self._buffer):
                self._buffer = batch if self._buffer is None or len(batch) > len(self._buffer) else self._buffer
                logits = self._forward(self._in_model_dtype(batch))
                check_scores(tuple(getattr(logits, "shape", ())), len(batch), k, tuple(stacked.shape[1:]))
                extremes.extend(torch.aminmax(logits))  # NaN propagates; one reduction, no wait for the device
                if len(extremes) >= self.FOLD:
                    extremes = list(torch.aminmax(torch.stack(extremes)))
                yield logits, owner
            if extremes and not bool(torch.stack(extremes).isfinite().all()):
                raise diverged("logits", batch_size)

    def _forward(self, batch: torch.Tensor) -> Any:
        """The model's logits on ``batch``. When the device runs out of memory, the same batch (its noise already
        drawn, so no stream moves) runs in two halves, and :attr:`max_batch_size` records that this size does not
        fit (the batch sizer keeps below it): a batch size that is too large costs time, never the run."""
        try:
            return run_base(self.model, batch, (torch.OutOfMemoryError,))
        except torch.OutOfMemoryError:
            if len(batch) == 1:
                raise
            if batch.device.type == "cuda":
                torch.cuda.empty_cache()
            half, below = len(batch) // 2, len(batch) - 1
            self.max_batch_size = min(self.max_batch_size or below, below)
            return torch.cat([self._forward(batch[:half]), self._forward(batch[half:])])

    def _in_model_dtype(self, batch: torch.Tensor) -> torch.Tensor:
        """``batch`` (float32 noisy copies) as the model takes it: itself, or, for a model whose ``input_dtype`` is
        another, rounded once into a reused buffer of that dtype and the model's ``memory_format`` (one copy does
        both; the rounding is a deterministic function of the noisy input, so it is part of the base classifier)."""
        dtype = getattr(self.model, "input_dtype", batch.dtype)
        if dtype == batch.dtype:
            return batch
        layout = getattr(self.model, "memory_format", torch.contiguous_format) if batch.dim() == 4 else None
        cast = self._cast_buffer
        if cast is None or len(cast) < len(batch) or cast.shape[1:] != batch.shape[1:] or cast.dtype != dtype:
            cast = torch.empty(batch.shape, dtype=dtype, device=batch.device,
                               memory_format=layout or torch.contiguous_format)
            self._cast_buffer = cast
        return cast[: len(batch)].copy_(batch)
