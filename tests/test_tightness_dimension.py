"""The tightness study against input dimension: upsampled digits, their networks, the command's new options
(``--resolution``, ``--channels``, ``--restarts``) and the sweep in benchmarks/tightness_dimension.py."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from benchmark_scripts import load

torch = pytest.importorskip("torch")
pytest.importorskip("torchattacks")

from scipy.stats import norm  # noqa: E402

from rs_plugin.adapters.datasets import digits_at, upsample  # noqa: E402
from rs_plugin.adapters.models import (  # noqa: E402
    DIGITS_SIZES,
    digits_architecture_name,
    get_architecture,
)
from rs_plugin.attacks import ExampleResult, TightnessConfig, TightnessResult, tightness_experiment  # noqa: E402
from rs_plugin.attacks.command import parse_args  # noqa: E402
from rs_plugin.bounds import lower_confidence_bound  # noqa: E402
from rs_plugin.noises import Gaussian  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_upsampled_digits_keep_the_images_and_the_range():
    small, labels = digits_at("test")
    big, same_labels = digits_at("test", 32, 3)
    assert big.shape == (360, 3, 32, 32) and big.dtype == torch.float32
    assert torch.equal(labels, same_labels)
    assert float(big.min()) >= 0.0 and float(big.max()) <= 1.0
    assert torch.equal(big[:, 0], big[:, 1]) and torch.equal(big[:, 0], big[:, 2])
    # Averaging each 4x4 block gives back the 8x8 image, up to the blur of bilinear interpolation.
    back = torch.nn.functional.avg_pool2d(big[:, :1], 4)
    assert np.corrcoef(back.flatten().numpy(), small.flatten().numpy())[0, 1] > 0.95
    assert torch.equal(upsample(small, 8), small)


@pytest.mark.parametrize(
    ("x", "resolution", "channels", "message"),
    [
        (torch.zeros(2, 3, 8, 8), 16, 1, "grey images"),
        (torch.zeros(2, 1, 8, 8), 0, 1, "resolution"),
        (torch.zeros(2, 1, 8, 8), 16, 2, "channels"),
    ],
)
def test_upsample_refuses_bad_input(x, resolution, channels, message):
    with pytest.raises(ValueError, match=message):
        upsample(x, resolution, channels)


@pytest.mark.parametrize(("resolution", "channels"), [(16, 1), (32, 3), (64, 3)])
def test_each_size_has_a_network_that_takes_it(resolution, channels):
    assert (resolution, channels) in DIGITS_SIZES
    network = get_architecture(digits_architecture_name(resolution, channels)).eval()
    with torch.no_grad():
        logits = network(torch.rand(2, channels, resolution, resolution))
    assert logits.shape == (2, 10)
    assert digits_architecture_name(8, 1) == "digits_cnn"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--resolution", "12"], "--resolution must be 8 or a power of two"),
        (["--dataset", "cifar10", "--data-dir", ".", "--checkpoint", "x.pt", "--resolution", "16"], "upsample digits"),
        (["--restarts", "0"], "--restarts must be at least 1"),
    ],
)
def test_the_command_refuses_a_bad_size_in_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        parse_args(argv)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_restarts_are_checked_and_kept_out_of_old_records():
    with pytest.raises(ValueError, match="restarts"):
        TightnessConfig(0.25, restarts=0)
    assert "restarts" not in TightnessConfig(0.25).to_dict()  # rows files of earlier versions stay valid
    assert TightnessConfig(0.25, restarts=3).to_dict()["restarts"] == 3


def test_saturated_counts_the_certificates_at_the_largest_radius_n_allows():
    config = TightnessConfig(0.25, n=1000, alpha=0.001)
    cap = lower_confidence_bound(1000, 1000, 0.001)
    below = lower_confidence_bound(999, 1000, 0.001)
    noise = Gaussian(0.25)
    rows = [
        ExampleResult(0, 1, 1, noise.radius(cap), cap),
        ExampleResult(1, 1, 1, noise.radius(below), below),
        ExampleResult(2, 1, 2, noise.radius(cap), cap),  # wrong: not attacked, not counted
    ]
    result = TightnessResult(config, rows, 10, 64)
    assert result.largest_radius == pytest.approx(0.25 * norm.ppf(0.001 ** (1 / 1000)))
    assert result.saturated == 1


def test_restarts_judge_an_input_within_the_ball(noisy_digits_net, digits_test):
    """The best of several restarts is still within factor * R, and the experiment stays deterministic."""
    x, y = (torch.from_numpy(a[:3]) for a in digits_test)
    config = TightnessConfig(0.25, factors=(2.0,), n=500, predict_n=100, steps=2, num_noise=4, restarts=3)
    first = tightness_experiment(noisy_digits_net, x, y, config, progress=False)
    again = tightness_experiment(noisy_digits_net, x, y, config, progress=False)
    assert first.rows == again.rows
    attacks = [row.attacks["2.0"] for row in first.rows if row.attacked]
    assert attacks and all(a.distance <= a.eps * (1 + 1e-5) for a in attacks)
    assert first.dimension == 64
    one = tightness_experiment(noisy_digits_net, x, y, dataclasses.replace(config, restarts=1), progress=False)
    assert [r.radius for r in one.rows] == [r.radius for r in first.rows]  # CERTIFY does not depend on the attack


@pytest.mark.slow
def test_the_sweep_runs_two_sizes_resumes_and_plots(tmp_path, model_cache, capsys):
    """The study's machinery at a small size: two resolutions, a few examples; a rerun resumes (no row rewritten)."""
    sweep = load("tightness_dimension")
    argv = ["--quick", "--sizes", "8", "16", "--parts", "dimension", "scaled", "--num-examples", "3",
            "--out-dir", str(tmp_path), "--no-progress"]  # fmt: skip
    assert sweep.main(argv) == 0
    rows = json.loads((tmp_path / "summary.json").read_text())
    assert [(r["part"], r["dimension"]) for r in rows] == [("dimension", 64), ("dimension", 256), ("scaled", 256)]
    assert [r["sigma"] for r in rows] == [0.25, 0.25, 0.5]
    for row in rows:
        assert row["examples"] == 3 and set(row["factors"]) == {"0.5", "1.0", "1.5", "2.0"}
        assert 0 <= row["saturated"] <= row["certified"] <= 3
    assert (tmp_path / "tightness_dimension.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "summary.md").read_text()
    runs = [line for line in table.splitlines() if line.startswith(("| dimension |", "| scaled |"))]
    assert len(runs) == 3 and runs[2].startswith("| scaled | 16 | 256 |")
    assert "| noise_0.25/sigma_0.25 | 0.25 | 0.978 | 285 | 114 (40%) |" in table  # the paper's log, beside
    files = sorted(tmp_path.glob("*.jsonl"))
    before = {path: path.read_bytes() for path in files}
    capsys.readouterr()
    assert sweep.main(argv) == 0
    assert {path: path.read_bytes() for path in files} == before
    assert json.loads((tmp_path / "summary.json").read_text()) == rows
    assert np.isfinite([r["mean_radius"] for r in rows if r["certified"]]).all()
