"""CIFAR-10 and ImageNet from a local folder as torch datasets of ``(x in [0, 1], label)`` (nothing is ever
downloaded; the torch plugin registers them), and small helpers between datasets and tensors. Digits lives in
:mod:`rs_plugin.datasets` (re-exported here for torch users)."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch.utils.data import Dataset

from rs_plugin.datasets import DIGITS_TEST_SIZE, digits_arrays, load_dataset

__all__ = ["DIGITS_TEST_SIZE", "as_tensors", "digits_arrays", "image_folder_dataset", "load_dataset"]


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
