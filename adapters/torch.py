"""Torch support: the torch noisy-evaluation loop (device samplers for the built-in noises, numpy sampling for any
other), the backend that certifies ``nn.Module`` base classifiers with it, and the differentiable soft smoothed
classifier that attacks and training take as their model."""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from rs_plugin import checks
from rs_plugin.backends import check_finite, check_scores, diverged, run_base
from rs_plugin.checks import positive_int
from rs_plugin.checks import seed as check_seed
from rs_plugin.engine import NumpyStream, owners, per_example, plan
from rs_plugin.noises import Gaussian, Laplace, Noise, Uniform
from rs_plugin.plugins import make_noise
from rs_plugin.seeding import stream_seed


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


def _laplace(noise: Laplace, out: torch.Tensor, generator: torch.Generator) -> None:
    pairs = out.new_empty((*out.shape, 2)).exponential_(1.0, generator=generator)
    torch.sub(pairs[..., 0], pairs[..., 1], out=out).mul_(noise.scale)


DEVICE_SAMPLERS: dict[type[Noise], Callable[[Any, torch.Tensor, torch.Generator], Any]] = {
    Gaussian: lambda noise, out, generator: out.normal_(0.0, noise.sigma, generator=generator),
    Laplace: _laplace,
    Uniform: lambda noise, out, generator: out.uniform_(-noise.half_width, noise.half_width, generator=generator),
}
"""Samplers that draw a built-in noise on the tensor's own device; any other noise is sampled by numpy."""


class TorchStream:
    """One random stream of one noise for tensors on ``device``, seeded with ``seed`` (None: fresh entropy).

    Built-in noises are drawn on the device by a ``torch.Generator`` (:attr:`generator`); any other noise by its
    numpy sampler, copied to the device, so a noise plugin needs no torch code. The device samplers always draw
    whole blocks of :data:`BLOCK` values (leftovers are kept for the next :meth:`fill`), so the values a stream
    yields do not depend on how they are asked for: results do not depend on the batch size.
    """

    BLOCK: ClassVar[dict[str, int]] = {"cpu": 16, "cuda": 1 << 20}
    """Values per sampler call, per device type. On CPU, 16 (the width of torch's CPU normal sampler): its samplers
    draw the same values whether asked for one block at a time or all at once, so a small block only saves the
    draws a short fill (an input's few noisy copies) would discard."""

    def __init__(self, noise: Noise, seed: int | None, device: Any = "cpu") -> None:
        self.noise = noise
        self._sampler = DEVICE_SAMPLERS.get(type(noise))
        self.generator: torch.Generator | None = None
        self._numpy: NumpyStream | None = None
        if self._sampler is None:
            self._numpy = NumpyStream(noise, seed)
            return
        self.generator = torch.Generator(device=device)
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)
        device = torch.device(device)
        self._block = self.BLOCK.get(device.type, self.BLOCK["cuda"])
        self._carry = torch.empty(self._block, device=device)
        self._carried = 0  # values still unused at the end of _carry

    def fill(self, out: torch.Tensor) -> torch.Tensor:
        """Fill ``out`` in place with the stream's next noise values; returns ``out``."""
        if self._numpy is not None:
            out.copy_(torch.from_numpy(self._numpy.fill(np.empty(tuple(out.shape), dtype=np.float32))))
            return out
        flat = out.view(-1) if out.is_contiguous() else torch.empty(out.numel(), dtype=out.dtype, device=out.device)
        taken = min(self._carried, len(flat))
        flat[:taken] = self._carry[self._block - self._carried : self._block - self._carried + taken]
        self._carried -= taken
        whole = (len(flat) - taken) // self._block * self._block
        self._draw(flat[taken : taken + whole])
        rest = len(flat) - taken - whole
        if rest:
            self._draw(self._carry)
            flat[taken + whole :] = self._carry[:rest]
            self._carried = self._block - rest
        if flat.data_ptr() != out.data_ptr():
            out.copy_(flat.view(out.shape))
        return out

    def _draw(self, flat: torch.Tensor) -> None:
        """Fill ``flat`` (a whole number of blocks): one sampler call per block (on CPU one call for all, which
        draws the same values)."""
        step = len(flat) if flat.device.type == "cpu" else self._block
        for start in range(0, len(flat), max(step, 1)):
            self._sampler(self.noise, flat[start : start + step], self.generator)


def noisy_batches(
    xs: torch.Tensor,
    nums: Sequence[int],
    streams: TorchStream | Sequence[TorchStream],
    batch_size: int,
    *,
    differentiable: bool = False,
    buffer: torch.Tensor | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The torch noisy-evaluation loop: batches ``(inputs, owner)`` of ``nums[e]`` copies of ``xs[e] + noise`` from
    ``streams[e]`` (one stream, or one per example), ``owner[i]`` the example of row ``i``, at most ``batch_size``
    rows each, on ``xs``'s device, in the order of :func:`rs_plugin.engine.plan`.

    With ``differentiable`` each batch is a new tensor through which gradients flow back to ``xs``; otherwise the
    noisy copies are written into one reused buffer (``buffer`` if it is large enough): consume each batch
    before asking for the next.
    """
    streams = per_example(streams, len(xs))
    rows, shape = min(batch_size, sum(nums)), tuple(xs.shape[1:])
    if not differentiable and (buffer is None or len(buffer) < rows or tuple(buffer.shape[1:]) != shape):
        buffer = torch.empty((rows, *shape), dtype=xs.dtype, device=xs.device)
    for segments in plan(nums, batch_size):
        size = sum(count for _, count in segments)
        noise = torch.empty((size, *shape), dtype=xs.dtype, device=xs.device) if differentiable else buffer[:size]
        start = 0
        for stream, group in itertools.groupby(segments, key=lambda segment: streams[segment[0]]):
            shared = list(group)  # consecutive examples sharing one stream: one fill for all of them
            stream.fill(noise[start : start + sum(count for _, count in shared)])
            for example, count in shared:
                if not differentiable:
                    noise[start : start + count].add_(xs[example])
                start += count
        owner = torch.as_tensor(owners(segments), device=xs.device)
        yield (xs[owner] + noise if differentiable else noise), owner


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

    def counts(self, xs: Sequence[Any], nums: Sequence[int], streams: Sequence[Any], batch_size: int) -> np.ndarray:
        stacked, k = torch.stack(list(xs)), self.num_classes
        with eval_mode(self.model), torch.inference_mode():
            counts = torch.zeros(len(xs) * k, dtype=torch.int64, device=self.device)
            finite = torch.ones((), dtype=torch.bool, device=self.device)
            for batch, owner in noisy_batches(stacked, nums, streams, batch_size, buffer=self._buffer):
                self._buffer = batch if self._buffer is None or len(batch) > len(self._buffer) else self._buffer
                logits = run_base(self.model, batch, (torch.OutOfMemoryError,))
                check_scores(tuple(getattr(logits, "shape", ())), len(batch), k, tuple(stacked.shape[1:]))
                finite &= torch.isfinite(logits).all()
                counts += torch.bincount(owner * k + logits.argmax(1), minlength=len(xs) * k)
            if not bool(finite):
                raise diverged("logits", batch_size)
        return counts.view(len(xs), k).cpu().numpy()


class SmoothedModule(nn.Module):
    """The soft smoothed classifier of Salman et al. (2019) as a differentiable ``nn.Module``.

    ``forward(x)`` maps a batch ``(B, *shape)`` in ``[0, 1]`` to ``log(mean_k softmax(base(x + noise_k)))``
    over ``num_noise`` noise draws per input: log-probabilities, so the cross-entropy on the output (what
    any torchattacks attack minimises or maximises) is the SmoothAdv loss, and its argmax estimates the
    smoothed classifier's class. Gradients flow to ``x`` (and to the base's parameters).

    ``base`` must take inputs in ``[0, 1]`` (normalisation inside it: noise lives in pixel space) and
    return logits; it is a submodule, so ``eval()`` (which every torchattacks attack calls) reaches it,
    and the module starts in the base's mode. The base sees at most ``batch_size`` noisy inputs per call
    (the torch noisy-evaluation loop, :func:`noisy_batches`); with gradients enabled and several batches, each
    is recomputed in the backward pass (activation checkpointing) so that memory stays bounded by one batch.
    Each call draws fresh noise, input ``b`` from its own stream: from ``seed`` and the call's number when
    ``seed`` is an int, from torch's global generator when it is None (so ``torch.manual_seed`` fixes it).
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
        self.seed = check_seed("seed", seed)
        self.noise = make_noise(noise, sigma)
        self.sigma = self.noise.sigma
        self.num_noise = positive_int("num_noise", num_noise)
        self.batch_size = positive_int("batch_size", batch_size)
        self.base = base
        self.training = base.training
        self._calls = 0

    def extra_repr(self) -> str:
        return f"noise={self.noise!r}, num_noise={self.num_noise}, batch_size={self.batch_size}, seed={self.seed}"

    def next_noise_seed(self) -> int:
        """The seed of the next call's noise (what :meth:`forward` uses when given none); advances the calls."""
        if self.seed is None:
            return int(torch.empty((), dtype=torch.int64).random_().item())
        self._calls += 1
        return stream_seed(self.seed, "smoothed-module", self._calls - 1)

    def streams(self, count: int, device: Any, noise_seed: int) -> list[TorchStream]:
        """The noise streams of ``count`` inputs for the noise of ``noise_seed``: input ``b``'s is seeded with
        ``stream_seed(noise_seed, "input", b)``."""
        return [TorchStream(self.noise, stream_seed(noise_seed, "input", b), device) for b in range(count)]

    def forward(self, x: torch.Tensor, noise_seed: int | None = None) -> torch.Tensor:
        """Log-probabilities ``(B, K)`` of the soft smoothed classifier at each input of ``x``, averaged over
        ``num_noise`` draws: fresh ones, or those of ``noise_seed`` (the same seed gives every input of the same
        position the same noise, e.g. to evaluate PGD's iterates on one sample of noise)."""
        check_batch("x", x)
        dtype = next((p.dtype for p in self.base.parameters() if p.is_floating_point()), x.dtype)
        if x.dtype != dtype:
            raise TypeError(f"x must have the base's dtype {dtype}, got {x.dtype}; convert it with x.to({dtype})")
        seed = self.next_noise_seed() if noise_seed is None else check_seed("noise_seed", noise_seed)
        draws = self.num_noise
        batches = noisy_batches(
            x, [draws] * len(x), self.streams(len(x), x.device, seed), self.batch_size, differentiable=True
        )
        chunked = torch.is_grad_enabled() and draws * len(x) > self.batch_size
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


def check_batch(name: str, x: Any) -> None:
    """``TypeError``/``ValueError`` naming ``name`` unless ``x`` is a non-empty, finite float32 tensor batch."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a floating-point torch.Tensor batch (B, *shape), got {type(x).__name__}")
    checks.batch(name, x)


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class FastModel(nn.Module):
    """``model`` run in reduced ``precision`` (``"bf16"`` or ``"fp16"``: autocast on the input's device) and/or in
    the ``channels_last`` memory format for convolutional models, returning float32 logits.

    Reduced precision may change predicted labels, so it is never the default for certification: measure
    :func:`label_agreement` with float32 first (``rs-plugin certify --precision`` reports it at start).
    """

    def __init__(self, model: nn.Module, precision: str = "fp32", channels_last: bool = False) -> None:
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.model, self.precision, self.channels_last = model, precision, bool(channels_last)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        dtype = PRECISIONS[self.precision]
        with torch.autocast(device_type=x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return self.model(x).float()


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
