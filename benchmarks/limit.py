"""The forward-pass limit and the timed runs that the CPU throughput benchmarks (``throughput.py``, ``resnets.py``)
share: a network's samples/s on pre-made noisy batches, the best batch size, and ART's CERTIFY ready to time.

The limit is the network's rate at its best batch size, and both are measured, never taken from one lucky timing:
a sweep of interleaved rounds (every round measures each size once) ranks the sizes by their medians; its three
fastest are then measured in every repetition of the benchmark, beside the runs compared with them, and the size
with the best median over the repetitions is the limit. One sweep, or the best of several timings in each
repetition, picks whichever size ran at a fast moment: on a noisy machine that puts the limit at a slow size (too
low) or above what any size sustains (too high). Ratios are then taken within each repetition.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from rs_plugin.adapters.torch import TorchStream, noisy_batches
from rs_plugin.allocator import retain_freed_memory
from rs_plugin.noises import Gaussian


def add_allocator_option(parser: argparse.ArgumentParser) -> None:
    """Give a benchmark's command line ``--default-allocator`` (its value is :func:`allocator`'s ``default``)."""
    parser.add_argument("--default-allocator", action="store_true",
                        help="leave glibc's allocator as it starts (default: freed memory retained, as the CLI does)")


def allocator(default: bool) -> str:
    """Keep freed memory for reuse (what the command line does, ``rs_plugin.allocator``) unless ``default``, before
    anything is measured; returns the setting, to print. Under glibc's default the speed of the network alone depends
    on the process's allocation history (``allocator.py`` measures both)."""
    if default:
        return "glibc's default allocator settings"
    return "freed memory retained (rs_plugin.allocator)" if retain_freed_memory() else "the C library's allocator"


def noisy_batch(x: np.ndarray, batch: int, sigma: float) -> torch.Tensor:
    """``batch`` Gaussian noisy copies (``sigma``) of ``x`` from the torch noisy-evaluation loop, made once, before
    any timing."""
    noisy, _ = next(noisy_batches(torch.from_numpy(x)[None], [batch], TorchStream(Gaussian(sigma), 0), batch))
    return noisy


def forward_rate(
    model: Callable[[torch.Tensor], torch.Tensor], noisy: torch.Tensor, *, samples: int = 0, seconds: float = 0.0
) -> float:
    """Samples/s of the bare network (forward pass and argmax) on the pre-made batch ``noisy``, after one untimed
    pass: the timed passes cover at least ``samples`` samples and ``seconds`` seconds, and are at least one."""
    batch = len(noisy)
    with torch.inference_mode():
        model(noisy).argmax(1)
        done, start = 0, time.perf_counter()
        while True:
            model(noisy).argmax(1)
            done += batch
            spent = time.perf_counter() - start
            if done >= samples and spent >= seconds:
                return done / spent


def noisy_forward_rate(model: nn.Module, x: np.ndarray, batch: int, sigma: float, samples: int) -> float:
    """Samples/s of the network with its noise drawn: a plain torch loop (as ``loop_steps.py``'s plain steps) of
    torch's CPU Gaussian sampler, the one rs-plugin's loop uses, the add of ``x``, the forward pass and the argmax,
    on batches of ``batch`` copies, timed as :func:`forward_rate` times the bare network. Any loop that draws the
    same noise pays this; what a loop costs beyond it is its own."""
    generator, clean = torch.Generator().manual_seed(0), torch.from_numpy(x)

    def with_its_noise(noisy: torch.Tensor) -> torch.Tensor:
        return model(noisy.normal_(0.0, sigma, generator=generator).add_(clean))

    return forward_rate(with_its_noise, torch.empty(batch, *x.shape), samples=samples)


def with_noise(size: int) -> str:
    """The label of the rates of the network with its noise drawn at batch ``size`` (:func:`noisy_forward_rate`)."""
    return f"forward pass + noise, batch {size}"


LIMIT = "forward limit"
"""The label of the limit's rates: those of the fastest candidate size (:func:`with_limit`)."""


def sweep(
    model: nn.Module, x: np.ndarray, sizes: Sequence[int], sigma: float, seconds: float, rounds: int = 3
) -> dict[int, float]:
    """The median samples/s by batch size: :func:`forward_rate` of every size of ``sizes`` for about ``seconds``,
    in ``rounds`` interleaved rounds (so that a slow or fast moment of the machine hits every size alike)."""
    batches = {size: noisy_batch(x, size, sigma) for size in sizes}
    rates: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(rounds):
        for size, noisy in batches.items():
            rates[size].append(forward_rate(model, noisy, seconds=seconds))
    return {size: statistics.median(values) for size, values in rates.items()}


def fastest(rates: dict[int, float], k: int = 1) -> list[int]:
    """The ``k`` sizes of the highest rates, fastest first."""
    return sorted(rates, key=rates.__getitem__, reverse=True)[:k]


def at_batch(size: int) -> str:
    """The label of the forward-pass rates at batch ``size``."""
    return f"forward pass, batch {size}"


def candidate_runs(
    model: nn.Module, x: np.ndarray, sizes: Sequence[int], sigma: float, samples: int, *, noise: bool = False
) -> dict[str, Callable[[], float]]:
    """A timed run of the bare network over ``samples`` samples at each of ``sizes``, by :func:`at_batch` label;
    with ``noise`` also of the network with its noise drawn (:func:`noisy_forward_rate`, :func:`with_noise`)."""
    runs = {
        at_batch(size): functools.partial(forward_rate, model, noisy_batch(x, size, sigma), samples=samples)
        for size in sizes
    }
    if noise:
        runs |= {with_noise(size): functools.partial(noisy_forward_rate, model, x, size, sigma, samples)
                 for size in sizes}
    return runs


def with_limit(rates: dict[str, list[float]], sizes: Sequence[int]) -> tuple[int, dict[str, list[float]]]:
    """``(the limit's batch size, rates with the limit first)``: of the candidate ``sizes`` (measured in every
    repetition, :func:`candidate_runs`), the one of the highest median; its rates under :data:`LIMIT`."""
    best = max(sizes, key=lambda size: statistics.median(rates[at_batch(size)]))
    return best, {LIMIT: rates[at_batch(best)], **rates}


def timed(run: Callable[[], object], samples: int) -> float:
    """Samples/s of one call of ``run`` that evaluates ``samples`` noisy copies."""
    start = time.perf_counter()
    run()
    return samples / (time.perf_counter() - start)


def art_certify(
    model: nn.Module, classes: int, x: np.ndarray, n0: int, n: int, sigma: float, alpha: float, batch: int | None
) -> Callable[[], object]:
    """ART's ``PyTorchRandomizedSmoothing.certify`` of ``x`` with n0 selection and n estimation samples, ready to
    call: at ART's default batch size when ``batch`` is None."""
    from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing

    classifier = PyTorchRandomizedSmoothing(
        model, nn.CrossEntropyLoss(), x.shape, classes, clip_values=(0, 1), device_type="cpu",
        sample_size=n0, scale=sigma, alpha=alpha,
    )  # fmt: skip
    options = {} if batch is None else {"batch_size": batch}
    return lambda: classifier.certify(x[None], n=n, **options)
