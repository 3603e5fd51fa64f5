"""Network architectures by name: the digits CNN, the paper's CIFAR-10 ResNets and ImageNet ResNet-50, DnCNN
denoisers; a registry that plugins extend (hook ``rs_plugin_add_architectures``).

Every classifier starts with its :class:`Normalize` layer, so that smoothing noise is added in ``[0, 1]`` pixel
space (as in the paper). Checkpoints (:mod:`.checkpoints`) name their architecture.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .denoise import DnCNN
from .plugins import architecture

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


def _digits_head(num_classes: int) -> list[nn.Module]:
    """The digits CNN's layers after its first convolution: 32 channels at 8x8 in, logits out."""
    return [
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 128),
        nn.ReLU(),
        nn.Linear(128, num_classes),
    ]


def digits_cnn(num_classes: int = 10) -> nn.Sequential:
    """A small CNN for scikit-learn's 1x8x8 digits (inputs in [0, 1])."""
    return nn.Sequential(
        Normalize(DIGITS_MEAN, DIGITS_STD), nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), *_digits_head(num_classes)
    )


def upsampled_digits_cnn(resolution: int, channels: int, num_classes: int = 10) -> nn.Sequential:
    """The digits CNN for digits upsampled to ``channels x resolution x resolution`` (``resolution`` a power of two
    above 8): a stem of stride-2 3x3 convolutions brings the input to 8x8 (it can learn to average the noise away
    over the neighbourhood that upsampling made redundant), followed by :func:`digits_cnn`'s layers."""
    if resolution < 16 or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two >= 16, got {resolution}")
    stem: list[nn.Module] = []
    width = channels
    while resolution > 8:
        stem += [nn.Conv2d(width, 32, 3, stride=2, padding=1), nn.ReLU()]
        width, resolution = 32, resolution // 2
    return nn.Sequential(
        Normalize(DIGITS_MEAN * channels, DIGITS_STD * channels),
        *stem,
        nn.Conv2d(32, 32, 3, padding=1),
        nn.ReLU(),
        *_digits_head(num_classes),
    )


def digits_architecture_name(resolution: int, channels: int) -> str:
    """The architecture of the digits CNN for inputs ``channels x resolution x resolution``: ``digits_cnn`` at
    1x8x8, else ``digits_cnn_{resolution}x{resolution}x{channels}``."""
    if (resolution, channels) == (8, 1):
        return "digits_cnn"
    return f"digits_cnn_{resolution}x{resolution}x{channels}"


DIGITS_SIZES = tuple((resolution, channels) for resolution in (16, 32, 64, 128, 256) for channels in (1, 3))
"""The upsampled digits sizes with an architecture (:func:`digits_architecture_name`)."""


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


@dataclass(frozen=True)
class Architecture:
    """A network a checkpoint can name: ``build()`` makes it randomly initialised; a classifier has its input
    normalisation ``mean`` and ``std`` (put in front of it by :func:`get_architecture`, unless ``normalized``: it
    has its own) and ``num_classes``; a denoiser (``[0, 1]`` in, ``[0, 1]`` out) has none of them."""

    build: Callable[[], nn.Module]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    num_classes: int | None = None
    normalized: bool = False

    @property
    def is_denoiser(self) -> bool:
        """Whether the network is a denoiser (it has no classes)."""
        return self.num_classes is None


ARCHITECTURES: dict[str, Architecture] = {
    "digits_cnn": Architecture(digits_cnn, DIGITS_MEAN, DIGITS_STD, 10, normalized=True),
    "cifar_resnet20": Architecture(lambda: CifarResNet(20), CIFAR10_MEAN, CIFAR10_STD, 10),
    "cifar_resnet110": Architecture(lambda: CifarResNet(110), CIFAR10_MEAN, CIFAR10_STD, 10),
    "resnet50": Architecture(_resnet50, IMAGENET_MEAN, IMAGENET_STD, 1000),
    **{
        digits_architecture_name(r, c): Architecture(
            functools.partial(upsampled_digits_cnn, r, c), DIGITS_MEAN * c, DIGITS_STD * c, 10, normalized=True
        )
        for r, c in DIGITS_SIZES
    },
    "dncnn_digits": Architecture(lambda: DnCNN(1, depth=5, width=32)),
    "dncnn_cifar10": Architecture(lambda: DnCNN(3)),
}
"""The built-in architectures (registered by the torch plugin like any other plugin's)."""


def get_architecture(arch: str) -> nn.Module:
    """A randomly initialised ``arch`` (of any plugin): a classifier with its normalisation layer in front,
    ``Sequential(Normalize, net)``; a denoiser as it is."""
    spec = architecture(arch)
    net = spec.build()
    if spec.normalized or spec.is_denoiser:
        return net
    return nn.Sequential(Normalize(spec.mean, spec.std), net)
