"""Datasets as ``(x, label)`` sequences with inputs in ``[0, 1]``: digits built in, CIFAR-10 and ImageNet
from a local folder (nothing is ever downloaded)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

NUM_CLASSES = {"digits": 10, "cifar10": 10, "imagenet": 1000}
DIGITS_TEST_SIZE = 360


def digits_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as ``(x (N, 1, 8, 8) float32 in [0, 1], y (N,) int64)``.

    A fixed shuffle (seed 0) puts 360 examples in ``test`` and the other 1437 in ``train``.
    """
    from sklearn.datasets import load_digits

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    data = load_digits()
    order = np.random.default_rng(0).permutation(len(data.target))
    chosen = order[:DIGITS_TEST_SIZE] if split == "test" else order[DIGITS_TEST_SIZE:]
    x = (data.images[chosen] / 16.0).astype(np.float32)[:, None]
    return x, data.target[chosen].astype(np.int64)


def load_dataset(name: str, split: str = "test", data_dir: str | os.PathLike | None = None) -> Dataset:
    """The dataset ``name`` (``digits``, ``cifar10`` or ``imagenet``) as a torch ``Dataset`` of ``(x, label)``.

    CIFAR-10 is read from ``data_dir`` as torchvision stores it (``cifar-10-batches-py``); ImageNet from
    ``data_dir/train`` or ``data_dir/val`` as class folders (resized to 256, centre-cropped to 224).
    """
    if name not in NUM_CLASSES:
        raise ValueError(f"dataset: unknown dataset {name!r}; known: {', '.join(NUM_CLASSES)}")
    if name == "digits":
        x, y = digits_arrays(split)
        return TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
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
    return torch.stack(list(xs)), torch.as_tensor(ys)
