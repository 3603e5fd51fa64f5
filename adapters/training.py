"""Training base classifiers with noise augmentation, and the cached digits models."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from rs_plugin.plugins import make_trainer
from rs_plugin.seeding import stream_seed

from .models import get_architecture, load_checkpoint, save_checkpoint
from .trainers import TrainConfig, fit

CACHE_ENV = "RS_PLUGIN_CACHE"


def train_with_noise(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    sigma: float,
    *,
    noise: str = "gaussian",
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = False,
) -> nn.Module:
    """Train ``model`` on ``(x, y)`` with Adam on noisy copies of the inputs (Cohen et al.'s recipe, the ``gaussian``
    method of :mod:`rs_plugin.adapters.trainers`): every input of every batch gets fresh ``noise`` of standard
    deviation ``sigma`` from the torch noisy-evaluation loop (``sigma=0`` trains on clean data, the ``standard``
    method). The noise is added to the raw input, before the model's own normalisation layer. The noise, the order
    of the examples and any randomness inside the model (dropout) come from streams of ``seed`` (torch's global
    generator is left as it was), so training is deterministic for a given ``seed`` and initial model on CPU.
    Returns ``model`` in eval mode.
    """
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    trainer = make_trainer("gaussian", sigma, noise=noise) if sigma > 0 else make_trainer("standard")
    return fit(trainer, model, (x, y), TrainConfig(epochs, batch_size, lr, seed), progress=progress)


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
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    save_checkpoint(model, arch, partial)
    os.replace(partial, path)
    return model.eval()


def digits_model(
    sigma: float, *, noise: str = "gaussian", epochs: int = 30, seed: int = 0, progress: bool = False
) -> nn.Module:
    """The digits CNN trained with ``noise`` of standard deviation ``sigma`` (0: undefended) on the digits
    training split.

    Initialised and trained from ``seed`` alone (the same weights in every process on CPU), once (a few seconds),
    and cached per noise, sigma, epochs and seed; later calls load the cached weights.
    """
    from .datasets import digits_arrays

    def train(model: nn.Module) -> None:
        x, y = digits_arrays("train")
        train_with_noise(model, torch.from_numpy(x), torch.from_numpy(y), sigma, noise=noise, epochs=epochs,
                         seed=seed, progress=progress)

    tag = "" if sigma == 0 else f"{noise}-"
    key = hashlib.sha256(f"digits_cnn/{tag}{sigma!r}/{epochs}/{seed}/v3".encode()).hexdigest()[:16]
    return cached_model(f"digits_cnn-{tag}sigma{sigma:g}-{key}.pt", "digits_cnn", seed, train)
