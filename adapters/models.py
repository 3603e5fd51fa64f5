"""Architectures and checkpoints: the digits CNN, the paper's CIFAR-10 ResNets and ImageNet ResNet-50.

Every architecture starts with its :class:`Normalize` layer, so that smoothing noise is added in
``[0, 1]`` pixel space (as in the paper). Checkpoints use the paper's format,
``{"arch": name, "state_dict": ...}``, and load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .denoise import DnCNN

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
DIGITS_MEAN, DIGITS_STD = (0.3,), (0.4,)


class Normalize(nn.Module):
    """Per-channel standardisation ``(x - mean) / std`` as the model's first layer (no state_dict entries)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(-1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def digits_cnn(num_classes: int = 10) -> nn.Sequential:
    """A small CNN for scikit-learn's 1x8x8 digits (inputs in [0, 1])."""
    return nn.Sequential(
        Normalize(DIGITS_MEAN, DIGITS_STD),
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 128),
        nn.ReLU(),
        nn.Linear(128, num_classes),
    )


class _Block(nn.Module):
    """Two 3x3 convolutions with a residual connection (projected when the shape changes)."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + shortcut)


class CifarResNet(nn.Module):
    """The CIFAR ResNet of depth ``6k + 2`` used by the paper (parameter names match its checkpoints)."""

    def __init__(self, depth: int, num_classes: int = 10) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"depth must be 6k + 2 (20, 110, ...), got {depth}")
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        widths = [(16, 16, 1), (16, 32, 2), (32, 64, 2)]
        self.layer1, self.layer2, self.layer3 = (
            nn.Sequential(_Block(i, o, s), *(_Block(o, o, 1) for _ in range(blocks - 1))) for i, o, s in widths
        )
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def _resnet50() -> nn.Module:
    from torchvision.models import resnet50

    return resnet50(weights=None)


ARCHITECTURES: dict[str, tuple[Callable[[], nn.Module], tuple | None, tuple | None, int | None]] = {
    "digits_cnn": (digits_cnn, DIGITS_MEAN, DIGITS_STD, 10),
    "cifar_resnet20": (lambda: CifarResNet(20), CIFAR10_MEAN, CIFAR10_STD, 10),
    "cifar_resnet110": (lambda: CifarResNet(110), CIFAR10_MEAN, CIFAR10_STD, 10),
    "resnet50": (_resnet50, IMAGENET_MEAN, IMAGENET_STD, 1000),
    # Denoisers: [0, 1] in, [0, 1] out, no normalisation and no classes.
    "dncnn_digits": (lambda: DnCNN(1, depth=5, width=32), None, None, None),
    "dncnn_cifar10": (lambda: DnCNN(3), None, None, None),
}


def get_architecture(arch: str) -> nn.Module:
    """A randomly initialised ``arch``: a classifier with its normalisation layer in front, ``Sequential(Normalize,
    net)``; a denoiser (no classes) as it is."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch: unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    build, mean, std, _ = ARCHITECTURES[arch]
    net = build()
    if arch == "digits_cnn" or mean is None:
        return net
    return nn.Sequential(Normalize(mean, std), net)


def save_checkpoint(model: nn.Module, arch: str, path: str | os.PathLike) -> None:
    """Save ``model`` in the paper's checkpoint format, ``{"arch": arch, "state_dict": ...}``."""
    torch.save({"arch": arch, "state_dict": model.state_dict()}, path)


def load_checkpoint(
    path: str | os.PathLike, map_location: Any = "cpu", *, option: str = "--checkpoint"
) -> tuple[nn.Module, str]:
    """Load a checkpoint in the paper's format; returns ``(model in eval mode, arch)``.

    Accepts the paper's released files (ImageNet ones carry ``DataParallel``'s ``module.`` prefix). Loads with
    ``torch.load(weights_only=True)``, which never runs code from the file. Every failure is one line naming
    ``option`` (the command-line flag that gave ``path``) and what to do: ``FileNotFoundError`` for a missing
    file, ``ValueError`` for a file that is not a torch file, holds pickled Python objects (e.g. a whole model
    saved with ``torch.save(model)``), is not in the paper's format, names an unknown architecture, or whose
    ``state_dict`` does not fit its architecture (counts and the first few keys).
    """
    where = f"{option} {os.fspath(path)!r}"
    checkpoint = _load_weights(path, map_location, where)
    if not isinstance(checkpoint, dict) or not {"arch", "state_dict"} <= checkpoint.keys():
        bare = isinstance(checkpoint, dict) and all(isinstance(v, torch.Tensor) for v in checkpoint.values())
        raise ValueError(
            f"{where}: {'a bare state_dict, ' if bare and checkpoint else ''}not in the paper's format: expected a "
            f"dict with 'arch' and 'state_dict'; save {{'arch': ARCH, 'state_dict': model.state_dict()}} "
            "(rs_plugin.adapters.models.save_checkpoint; ARCH as listed by get_architecture's error)"
        )
    if checkpoint["arch"] not in ARCHITECTURES:
        raise ValueError(f"{where}: unknown architecture {checkpoint['arch']!r}; known: {', '.join(ARCHITECTURES)}")
    if not isinstance(checkpoint["state_dict"], dict):
        raise ValueError(f"{where}: its 'state_dict' is a {type(checkpoint['state_dict']).__name__}, not a dict")
    model = get_architecture(checkpoint["arch"])
    state = {str(key).replace("module.", "", 1): value for key, value in checkpoint["state_dict"].items()}
    mismatch = _state_dict_mismatch(model.state_dict(), state)
    try:
        if not mismatch:
            model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:  # e.g. values that are not tensors
        mismatch = str(err).strip().splitlines()[-1].strip()
    if mismatch:
        raise ValueError(f"{where}: its state_dict does not fit {checkpoint['arch']!r}: {mismatch}")
    return model.eval(), checkpoint["arch"]


def _load_weights(path: str | os.PathLike, map_location: Any, where: str) -> Any:
    """``torch.load(path, weights_only=True)`` with every failure as one line."""
    not_torch = f"{where}: not a file saved by torch.save (a checkpoint {{'arch': ..., 'state_dict': ...}})"
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{where}: a folder, not a checkpoint file") from None
    except OSError as err:
        raise OSError(f"{where}: cannot read it: {err.strerror or err}") from None
    except pickle.UnpicklingError as err:
        pickled = re.search(r"GLOBAL (\S+) was not an allowed global", str(err))
        if pickled is None:
            raise ValueError(not_torch) from None
        raise ValueError(
            f"{where}: holds a pickled {pickled.group(1)} (e.g. a whole model saved with torch.save(model)), which "
            "is not loaded since unpickling can run any code; save {'arch': ARCH, 'state_dict': model.state_dict()} "
            "instead"
        ) from None
    except Exception:  # torch reports a file that is not its format in many ways (KeyError, RuntimeError, ...)
        raise ValueError(not_torch) from None


def _state_dict_mismatch(expected: dict[str, Any], given: dict[str, Any], shown: int = 3) -> str:
    """How ``given`` differs from ``expected`` (missing and unexpected keys, other shapes), briefly; "" when
    it fits."""

    def first(keys: list[str]) -> str:
        return ", ".join(keys[:shown]) + (", ..." if len(keys) > shown else "")

    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    reshaped = [
        f"{key} {tuple(getattr(given[key], 'shape', ()))} instead of {tuple(expected[key].shape)}"
        for key in expected
        if key in given and getattr(given[key], "shape", None) != expected[key].shape
    ]
    parts = [
        f"{len(keys)} {what} ({first(keys)})"
        for keys, what in ((missing, "missing keys"), (unexpected, "unexpected keys"), (reshaped, "of other shapes"))
        if keys
    ]
    return "; ".join(parts)
