"""Datasets as sequences of ``(x in [0, 1], label)``, by name through the hook ``rs_plugin_add_datasets``.

This module is also the built-in plugin that provides scikit-learn's digits in numpy (no framework needed); the
torch plugin adds CIFAR-10 and ImageNet, read from a local folder (nothing is ever downloaded).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .extras import require
from .hookspecs import hookimpl
from .plugins import collect, lookup

DIGITS_TEST_SIZE = 360


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset a plugin provides: its ``num_classes`` and ``load(split, data_dir)``, which returns a sequence of
    ``(x in [0, 1], label)`` for ``split`` (``"train"`` or ``"test"``), read from ``data_dir`` when it needs one."""

    num_classes: int
    load: Callable[[str, str | os.PathLike | None], Sequence[Any]]


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


def datasets() -> dict[str, DatasetSpec]:
    """Every dataset provided by a plugin, by name."""
    return collect("rs_plugin_add_datasets")


def dataset_spec(name: str) -> DatasetSpec:
    """The dataset ``name``; ``ValueError`` listing the known datasets otherwise."""
    return lookup("dataset", name, datasets())


def num_classes(name: str) -> int:
    """How many classes the dataset ``name`` has."""
    return dataset_spec(name).num_classes


def load_dataset(name: str, split: str = "test", data_dir: str | os.PathLike | None = None) -> Sequence:
    """The dataset ``name`` (``digits``, or a plugin's: ``cifar10``, ``imagenet``) as a sequence of ``(x, label)``."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return dataset_spec(name).load(split, data_dir)


@hookimpl
def rs_plugin_add_datasets() -> dict[str, DatasetSpec]:
    return {"digits": DatasetSpec(10, lambda split, data_dir: ArrayDataset(*digits_arrays(split)))}
