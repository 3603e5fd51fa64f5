"""Datasets as sequences of ``(x in [0, 1], label)``: scikit-learn's digits in numpy (no framework needed),
CIFAR-10 and ImageNet from a local folder through the torch adapter (nothing is ever downloaded)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .extras import require

NUM_CLASSES = {"digits": 10, "cifar10": 10, "imagenet": 1000}
DIGITS_TEST_SIZE = 360


def digits_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as ``(x (N, 1, 8, 8) float32 in [0, 1], y (N,) int64)``.

    A fixed shuffle (seed 0) puts 360 examples in ``test`` and the other 1437 in ``train``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    require("sklearn", "examples", "the digits dataset")
    from sklearn.datasets import load_digits

    data = load_digits()
    order = np.random.default_rng(0).permutation(len(data.target))
    chosen = order[:DIGITS_TEST_SIZE] if split == "test" else order[DIGITS_TEST_SIZE:]
    x = (data.images[chosen] / 16.0).astype(np.float32)[:, None]
    return x, data.target[chosen].astype(np.int64)


class ArrayDataset(Sequence):
    """Inputs and labels held in two arrays, as a sequence of ``(x, label)`` pairs."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        if len(x) != len(y):
            raise ValueError(f"y has {len(y)} labels for {len(x)} inputs")
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: Any) -> tuple[np.ndarray, int]:
        return self.x[index], int(self.y[index])


def load_dataset(name: str, split: str = "test", data_dir: str | os.PathLike | None = None) -> Sequence:
    """The dataset ``name`` (``digits``, ``cifar10`` or ``imagenet``) as a sequence of ``(x, label)``.

    Digits needs only scikit-learn. CIFAR-10 is read from ``data_dir`` as torchvision stores it
    (``cifar-10-batches-py``); ImageNet from ``data_dir/train`` or ``data_dir/val`` as class folders (resized to
    256, centre-cropped to 224); both need the torch extra.
    """
    if name not in NUM_CLASSES:
        raise ValueError(f"dataset: unknown dataset {name!r}; known: {', '.join(NUM_CLASSES)}")
    if name == "digits":
        return ArrayDataset(*digits_arrays(split))
    require("torchvision", "torch", f"the {name} dataset")
    from .adapters.datasets import image_folder_dataset

    return image_folder_dataset(name, split, data_dir)
