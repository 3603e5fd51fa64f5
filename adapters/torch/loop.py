"""The torch noisy-evaluation loop: the one place where torch models meet noisy copies of their inputs (the plan of
:func:`rs_plugin.engine.plan`, noise from each input's own stream, on the inputs' device); and the model-mode helpers
every torch face shares."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from rs_plugin.engine import plan, streams_per_input

from .streams import TorchStream


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block with every submodule of ``model`` in eval mode; afterwards each submodule is back in its
    own mode (a wrapper's flag is never pushed down onto the modules it wraps)."""
    training = [module for module in model.modules() if module.training]
    if training:  # a model already in eval mode everywhere is left untouched
        model.eval()
    try:
        yield model
    finally:
        for module in training:
            module.training = True


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
    before asking for the next. A randomization that is not additive (ablation,
    :attr:`rs_plugin.noises.Noise.additive`) writes ``xs[e]`` randomized instead (:meth:`TorchStream.randomize`); it
    has no gradient in ``xs``, so ``differentiable`` is refused (``ValueError``) when ``xs`` requires one.

    A batch laid out like the one before it (the same examples, the same number of rows each: every batch of one
    input's copies) gets the same ``owner`` tensor again: read it, never write to it.

    Nothing in the loop waits for the device (for an additive noise with a device sampler): ``owner`` is computed
    on the device from the rows' positions in the plan (one copy of the plan's boundaries per call, none per
    batch), so on a GPU the host queues the next batch's noise while the device still runs the model on this one.
    Noise is drawn and added in ``xs``'s dtype (float32 from the backend) whatever the model runs in: a network in
    reduced precision gets each noisy copy rounded once, after the noise is added (:class:`.precision.FastModel`).
    """
    streams = streams_per_input(streams, len(xs))
    additive = not streams or streams[0].noise.additive
    if not additive and differentiable and xs.requires_grad:
        raise ValueError(f"x: the {streams[0].noise.name} randomization has no gradient in the input; it trains "
                         "and certifies, but gradient-based attacks and methods need an additive noise")
    rows, shape = min(batch_size, sum(nums)), tuple(xs.shape[1:])
    if not differentiable and (buffer is None or len(buffer) < rows or tuple(buffer.shape[1:]) != shape):
        buffer = torch.empty((rows, *shape), dtype=xs.dtype, device=xs.device)
    ends = torch.as_tensor(list(itertools.accumulate(nums)), dtype=torch.int64, device=xs.device)
    first = 0  # the plan's row at which this batch starts
    layout, owner = None, None  # the previous batch's segments and owners
    for segments in plan(nums, batch_size):
        size = sum(count for _, count in segments)
        noise = torch.empty((size, *shape), dtype=xs.dtype, device=xs.device) if differentiable else buffer[:size]
        start = 0
        for stream, group in itertools.groupby(segments, key=lambda segment: streams[segment[0]]):
            shared = list(group)  # consecutive examples sharing one stream: one fill for all of them
            if additive:
                stream.fill(noise[start : start + sum(count for _, count in shared)])
            for example, count in shared:
                if not additive:
                    stream.randomize(xs[example], noise[start : start + count])
                elif not differentiable:
                    noise[start : start + count].add_(xs[example])
                start += count
        if segments != layout:  # the same segments own their rows alike: the last owner tensor serves again
            # row r of the plan belongs to the first example e with r < ends[e] (rs_plugin.engine.owners), on the device
            owner = torch.searchsorted(ends, torch.arange(first, first + size, device=xs.device), right=True)
            layout = segments
        first += size
        yield (xs[owner] + noise if differentiable and additive else noise), owner
