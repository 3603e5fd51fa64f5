"""The issue's criteria for off-the-shelf networks on digits at sigma 0.25, on fewer test digits and samples than
the benchmark (benchmarks/denoised_smoothing.py) and with the same code."""

from __future__ import annotations

import pytest
from benchmark_scripts import load

pytest.importorskip("torch")
pytest.importorskip("sklearn")
off_the_shelf = load("off_the_shelf")
OffTheShelfConfig, off_the_shelf_experiment = off_the_shelf.OffTheShelfConfig, off_the_shelf.off_the_shelf_experiment


@pytest.mark.slow
def test_denoiser_recovers_gaussian_training_and_the_ensemble_beats_its_members() -> None:
    """An undefended network behind a denoiser trained for it certifies at r = 0.25 at least 0.85 of what a
    Gaussian-trained network does and clearly more than alone; an ensemble of three Gaussian-trained networks has
    an ACR at least that of its best member."""
    result = off_the_shelf_experiment(OffTheShelfConfig(num_examples=120, n=500), progress=False)
    criteria = result.criteria()
    assert criteria["denoised / gaussian"] >= 0.85, criteria
    assert criteria["denoised - undefended"] >= 0.05, criteria
    assert criteria["ensemble ACR / best member's"] >= 1.0, criteria
