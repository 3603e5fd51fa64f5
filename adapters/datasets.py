"""CIFAR-10 and ImageNet from a local folder as torch datasets of ``(x in [0, 1], label)`` (nothing is ever
downloaded; the torch plugin registers them), and small helpers between datasets and tensors. Digits lives in
:mod:`rs_plugin.datasets` (re-exported here for torch users)."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch.utils.data import Dataset

from rs_plugin.datasets import DIGITS_TEST_SIZE, digits_arrays, load_dataset

__all__ = ["DIGITS_TEST_SIZE", "as_tensors", "digits_arrays", "digits_at", "image_folder_dataset", "load_dataset",
           "upsample"]


def image_folder_dataset(name: str, split: str, data_dir: str | os.PathLike | None) -> Dataset:
    """``cifar10`` from ``data_dir`` as torchvision stores it, or ``imagenet`` from ``data_dir/{train,val}``."""
    if data_dir is None:
        raise ValueError(f"data_dir: the {name} dataset is read from a local folder; give its path")
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"data_dir: no such folder: {os.fspath(data_dir)!r}")
    from torchvision import datasets, transforms

    if name == "cifar10":
        try:
            return datasets.CIFAR10(
                os.fspath(data_dir), train=split == "train", download=False, transform=transforms.ToTensor()
            )
        except RuntimeError as err:
            raise FileNotFoundError(f"data_dir: no CIFAR-10 in {os.fspath(data_dir)!r}: {err}") from err
    folder = os.path.join(data_dir, "train" if split == "train" else "val")
    transform = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])
    return datasets.ImageFolder(folder, transform)


def as_tensors(dataset: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """All of a small ``(x, label)`` dataset stacked into two tensors."""
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return torch.stack([torch.as_tensor(x) for x in xs]), torch.as_tensor(ys)


def upsample(x: torch.Tensor, resolution: int, channels: int = 1) -> torch.Tensor:
    """Grey images ``x`` ``(N, 1, h, w)`` in ``[0, 1]`` resized bilinearly to ``resolution x resolution`` (torch's
    ``interpolate``, ``align_corners=False``) and repeated over ``channels``; the values stay in ``[0, 1]``."""
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"x must be grey images (N, 1, H, W), got shape {tuple(x.shape)}")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive int, got {resolution!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    if resolution != x.shape[-1] or resolution != x.shape[-2]:
        x = torch.nn.functional.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return x.clamp(0.0, 1.0).expand(-1, channels, -1, -1).contiguous()


def digits_at(split: str, resolution: int = 8, channels: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's digits (:func:`~rs_plugin.datasets.digits_arrays`'s split) at ``channels x resolution x
    resolution`` (:func:`upsample`): ``(x float32 in [0, 1], y int64)``; 8 and 1 are the original images."""
    x, y = digits_arrays(split)
    return upsample(torch.from_numpy(x), resolution, channels), torch.from_numpy(y)
