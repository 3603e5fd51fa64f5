"""Training base classifiers with Gaussian noise augmentation, and the cached digits models."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .models import digits_cnn

CACHE_ENV = "RS_PLUGIN_CACHE"


def train_with_noise(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    sigma: float,
    *,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = False,
) -> nn.Module:
    """Train ``model`` on ``(x, y)`` with Adam, adding N(0, sigma^2) noise to every input (Cohen et al.'s
    recipe; ``sigma=0`` trains on clean data). The noise is added to the raw input, before the model's
    own normalisation layer. Deterministic for a given ``seed`` on CPU. Returns ``model`` in eval mode.
    """
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in tqdm(range(epochs), desc=f"train sigma={sigma}", disable=not progress, unit="epoch"):
        order = torch.randperm(len(x), generator=generator, device=device)
        for start in range(0, len(x), batch_size):
            batch = order[start : start + batch_size]
            inputs = x[batch] + sigma * torch.randn(x[batch].shape, generator=generator, device=device)
            loss = nn.functional.cross_entropy(model(inputs), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def cache_dir() -> Path:
    """Where trained models are cached: ``$RS_PLUGIN_CACHE``, else ``~/.cache/rs-plugin``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "rs-plugin")


def digits_model(sigma: float, *, epochs: int = 30, seed: int = 0, progress: bool = False) -> nn.Module:
    """The digits CNN trained with noise ``sigma`` (0: undefended) on the digits training split.

    Trained once (a few seconds on a CPU) and cached; later calls load the cached weights.
    """
    from .datasets import digits_arrays

    key = hashlib.sha256(f"digits_cnn/{sigma!r}/{epochs}/{seed}/v1".encode()).hexdigest()[:16]
    path = cache_dir() / f"digits_cnn-sigma{sigma:g}-{key}.pt"
    model = digits_cnn()
    if path.exists():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval()
    x, y = digits_arrays("train")
    train_with_noise(model, torch.from_numpy(x), torch.from_numpy(y), sigma, epochs=epochs, seed=seed,
                     progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(model.state_dict(), partial)
    os.replace(partial, path)
    return model
