"""Shared fixtures: a per-session model cache and small digits models trained in seconds."""

from __future__ import annotations

import os

import numpy as np
import pytest


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Trained models go to a fresh cache for the session (also seen by subprocesses)."""
    path = str(tmp_path_factory.mktemp("model-cache"))
    os.environ["RS_PLUGIN_CACHE"] = path
    return path


@pytest.fixture(scope="session")
def digits_test() -> tuple[np.ndarray, np.ndarray]:
    """The digits test split: x (360, 1, 8, 8) in [0, 1], y (360,)."""
    pytest.importorskip("sklearn")
    from rs_plugin.adapters.datasets import digits_arrays

    return digits_arrays("test")


@pytest.fixture(scope="session")
def noisy_digits_net(model_cache: str):
    """The digits CNN trained with Gaussian noise sigma = 0.25 (clean test accuracy about 0.99)."""
    pytest.importorskip("torch")
    from rs_plugin.adapters.training import digits_model

    return digits_model(0.25)


@pytest.fixture(scope="session")
def clean_digits_net(model_cache: str):
    """The digits CNN trained without noise (the undefended network)."""
    pytest.importorskip("torch")
    from rs_plugin.adapters.training import digits_model

    return digits_model(0.0)
