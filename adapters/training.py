"""Training base classifiers with noise augmentation, and the cached digits models: classifiers and the denoiser
of denoised smoothing."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from rs_plugin.atomic import write_atomically
from rs_plugin.deprecation import renamed
from rs_plugin.seeding import stream_seed

from .checkpoints import load_checkpoint, save_checkpoint
from .models import get_architecture
from .plugins import make_trainer
from .trainers import TrainConfig, fit
from .trainers.denoiser import fingerprint

CACHE_ENV = "RS_PLUGIN_CACHE"


def train_with_noise(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    sigma: float,
    *,
    noise: str = "gaussian",
    epochs: int = 30,
    inputs_per_step: int | None = None,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = False,
    batch_size: int | None = None,
) -> nn.Module:
    """Train ``model`` on ``(x, y)`` with Adam on noisy copies of the inputs (Cohen et al.'s recipe, the ``gaussian``
    method of :mod:`rs_plugin.adapters.trainers`): every input of every batch gets fresh ``noise`` of standard
    deviation ``sigma`` from the torch noisy-evaluation loop (``sigma=0`` trains on clean data, the ``standard``
    method). The noise is added to the raw input, before the model's own normalisation layer. The noise, the order
    of the examples and any randomness inside the model (dropout) come from streams of ``seed`` (torch's global
    generator is left as it was), so training is deterministic for a given ``seed`` and initial model on CPU.
    Returns ``model`` in eval mode. (``batch_size`` is the deprecated name of ``inputs_per_step``.)
    """
    inputs_per_step = renamed("train_with_noise", "inputs_per_step", inputs_per_step, "batch_size", batch_size) or 64
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    trainer = make_trainer("gaussian", sigma, noise=noise) if sigma > 0 else make_trainer("standard")
    return fit(trainer, model, (x, y), TrainConfig(epochs, inputs_per_step, lr, seed), progress=progress)


def cache_dir() -> Path:
    """Where trained models are cached: ``$RS_PLUGIN_CACHE``, else ``~/.cache/rs-plugin``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "rs-plugin")


def cached_model(name: str, arch: str, seed: int, train: Callable[[nn.Module], object]) -> nn.Module:
    """The model cached as ``name`` (a checkpoint in the paper's format in :func:`cache_dir`), else ``arch``
    initialised from ``stream_seed(seed, "init")``, trained in place by ``train``, then cached (written atomically,
    so a crash never leaves a partial file where a later call would read it). Returns the model in eval mode."""
    path = cache_dir() / name
    if path.exists():
        return load_checkpoint(path)[0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(seed, "init"))
        model = get_architecture(arch)
    train(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda partial: save_checkpoint(model, arch, partial))
    return model.eval()


def digits_model(
    sigma: float,
    *,
    noise: str = "gaussian",
    epochs: int = 30,
    seed: int = 0,
    progress: bool = False,
    resolution: int = 8,
    channels: int = 1,
) -> nn.Module:
    """The digits CNN trained with ``noise`` of standard deviation ``sigma`` (0: undefended) on the digits
    training split, at ``channels x resolution x resolution`` (upsampled, :func:`~.datasets.digits_at`; the
    network is :func:`~.models.digits_architecture_name`'s).

    Initialised and trained from ``seed`` alone (the same weights in every process on CPU), once (seconds at 8x8,
    minutes at 64x64), and cached per size, noise, sigma, epochs and seed; later calls load the cached weights.
    """
    from .datasets import digits_at
    from .models import digits_architecture_name

    arch = digits_architecture_name(resolution, channels)

    def train(model: nn.Module) -> None:
        x, y = digits_at("train", resolution, channels)
        train_with_noise(model, x, y, sigma, noise=noise, epochs=epochs, seed=seed, progress=progress)

    tag = "" if sigma == 0 else f"{noise}-"
    key = hashlib.sha256(f"{arch}/{tag}{sigma!r}/{epochs}/{seed}/v3".encode()).hexdigest()[:16]
    return cached_model(f"{arch}-{tag}sigma{sigma:g}-{key}.pt", arch, seed, train)


def digits_denoiser(
    classifier: nn.Module, sigma: float, *, epochs: int = 60, seed: int = 0, progress: bool = False
) -> nn.Module:
    """A ``dncnn_digits`` denoiser (initialised from ``seed``) trained for ``classifier`` at ``sigma`` on the
    digits training split with the ``denoiser`` trainer (Salman et al.'s stability objective; Adam, batch 64, streams
    of ``seed``), the classifier left as it was.

    Cached like :func:`~rs_plugin.adapters.training.digits_model`, per classifier weights, sigma, epochs and seed,
    as a checkpoint in the paper's format (``rs-plugin certify --denoiser FILE`` reads it).
    """
    from .datasets import digits_arrays

    def train(denoiser: nn.Module) -> None:
        data = tuple(torch.from_numpy(a) for a in digits_arrays("train"))
        trainer = make_trainer("denoiser", sigma, classifier=classifier)
        fit(trainer, denoiser, data, TrainConfig(epochs=epochs, seed=seed), progress=progress)

    key = hashlib.sha256(f"dncnn_digits/{sigma!r}/{epochs}/{seed}/{fingerprint(classifier)}/v3".encode())
    return cached_model(f"dncnn_digits-sigma{sigma:g}-{key.hexdigest()[:16]}.pt", "dncnn_digits", seed, train)
