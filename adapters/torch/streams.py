"""Random streams of noise for tensors: device samplers for the built-in noises (the correlated ones of
:mod:`rs_plugin.correlated` too), numpy sampling for any other."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from scipy.fft import dct

from rs_plugin.correlated import Correlated, Diagonal, LowPass
from rs_plugin.engine import NumpyStream
from rs_plugin.noises import Gaussian, Laplace, Noise, Uniform


def _laplace(noise: Laplace, out: torch.Tensor, generator: torch.Generator) -> None:
    pairs = out.new_empty((*out.shape, 2)).exponential_(1.0, generator=generator)
    torch.sub(pairs[..., 0], pairs[..., 1], out=out).mul_(noise.scale)


DEVICE_SAMPLERS: dict[type[Noise], Callable[[Any, torch.Tensor, torch.Generator], Any]] = {
    Gaussian: lambda noise, out, generator: out.normal_(0.0, noise.sigma, generator=generator),
    Laplace: _laplace,
    Uniform: lambda noise, out, generator: out.uniform_(-noise.half_width, noise.half_width, generator=generator),
}
"""Samplers that draw a built-in noise on the tensor's own device; any other noise is sampled by numpy."""


def _lowpass(noise: LowPass, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """``z -> B (stds * z)`` for rows ``(R, ..., H, W)`` of standard normals: the inverse orthonormal 2-D DCT as two
    matrix products, ``D_H^T Z D_W`` (an ``H x H`` and a ``W x W`` matrix; no ``d x d`` one)."""
    height, width = noise.shape[-2:]
    stds = torch.as_tensor(noise.stds, dtype=torch.float32, device=device)
    rows_t = torch.as_tensor(dct(np.eye(height), axis=0, norm="ortho").T, dtype=torch.float32, device=device)
    cols = torch.as_tensor(dct(np.eye(width), axis=0, norm="ortho"), dtype=torch.float32, device=device)
    return lambda z: rows_t.to(z.dtype) @ (z * stds.to(z.dtype)) @ cols.to(z.dtype)


def _diagonal(noise: Diagonal, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    stds = torch.as_tensor(noise.stds, dtype=torch.float32, device=device)
    return lambda z: z * stds.to(z.dtype)


DEVICE_TRANSFORMS: dict[type[Correlated], Callable[[Any, torch.device], Callable[[torch.Tensor], torch.Tensor]]] = {
    LowPass: _lowpass,
    Diagonal: _diagonal,
}
"""For correlated noises N(0, Sigma): given the noise and a device, the map from rows of standard normals (drawn on the
device like Gaussian noise) to rows of the noise, ``z -> B (stds * z)``."""


def _standard_normal(noise: Any, out: torch.Tensor, generator: torch.Generator) -> None:
    out.normal_(0.0, 1.0, generator=generator)


class TorchStream:
    """One random stream of one noise for tensors on ``device``, seeded with ``seed`` (None: fresh entropy).

    Built-in noises are drawn on the device by a ``torch.Generator`` (:attr:`generator`), the correlated ones as
    standard normals mapped row by row (:data:`DEVICE_TRANSFORMS`); any other noise by its numpy sampler, copied to
    the device, so a noise plugin needs no torch code. The device samplers always draw
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
        self._transform: Callable[[torch.Tensor], torch.Tensor] | None = None
        if type(noise) in DEVICE_TRANSFORMS:
            self._sampler = _standard_normal
            self._transform = DEVICE_TRANSFORMS[type(noise)](noise, torch.device(device))
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
        if self._transform is not None:
            self.noise.check_fill(tuple(out.shape))
        flat = out.view(-1) if out.is_contiguous() else torch.empty(out.numel(), dtype=out.dtype, device=out.device)
        taken = min(self._carried, len(flat))
        if taken:
            flat[:taken] = self._carry[self._block - self._carried : self._block - self._carried + taken]
            self._carried -= taken
        whole = (len(flat) - taken) // self._block * self._block
        self._draw(flat[taken : taken + whole])
        rest = len(flat) - taken - whole
        if rest:
            self._draw(self._carry)
            flat[taken + whole :] = self._carry[:rest]
            self._carried = self._block - rest
        if self._transform is not None:  # whole rows of standard normals -> rows of the correlated noise
            flat.copy_(self._transform(flat.view(-1, *self.noise.shape)).reshape(-1))
        if flat.data_ptr() != out.data_ptr():
            out.copy_(flat.view(out.shape))
        return out

    def randomize(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Fill ``out`` (``(rows, *x.shape)``) in place with the stream's next randomized copies of ``x``, for a noise
        that is not additive (:attr:`rs_plugin.noises.Noise.additive`): drawn by the noise's numpy
        :meth:`~rs_plugin.noises.Noise.randomize`, copied to ``out``'s device; returns ``out``."""
        if self._numpy is None:
            raise TypeError(f"the {self.noise.name} noise is additive: fill its noise and add the input")
        copies = self._numpy.randomize(x.detach().cpu().numpy().astype(np.float32, copy=False),
                                       np.empty(tuple(out.shape), dtype=np.float32))
        out.copy_(torch.from_numpy(copies))
        return out

    def _draw(self, flat: torch.Tensor) -> None:
        """Fill ``flat`` (a whole number of blocks): one sampler call per block (on CPU one call for all, which
        draws the same values)."""
        step = len(flat) if flat.device.type == "cpu" else self._block
        for start in range(0, len(flat), max(step, 1)):
            self._sampler(self.noise, flat[start : start + step], self.generator)
