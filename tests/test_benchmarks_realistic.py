"""benchmarks/resnets.py, memory.py, start_size.py and channels_last.py at their smallest sizes, with the scripts' own
functions: the side-by-side comparison on a real ResNet reports every ratio, one rs-plugin certification's peak
memory does not grow with n while ART's does, the start-size comparison starts where it is told and forgets the
sizers it made, both ``--plot`` options write an image, and the channels-last comparison reports both ways and
certifies what the network as given certifies."""

from __future__ import annotations

import math
import re

import pytest
from benchmark_scripts import load

from rs_plugin import calibration

pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("art")

memory, resnets, start_size = load("memory"), load("resnets"), load("start_size")
channels_last = load("channels_last")

RATIOS = ("rs-plugin / limit", "ART default / limit", "ART best / limit", "rs-plugin / ART best")


def test_resnet20_side_by_side_reports_the_sweep_and_every_ratio() -> None:
    """ResNet-20 on 3x32x32 with n = 16: the sweep covers the sizes asked for, the best size is one of them, and
    the table has the parameters, the sweep and the four ratios, each a positive finite number."""
    comparison = resnets.compare("resnet20", n0=8, n=16, repeats=1, sweep=(1, 8, 1024), seconds=0.0)
    assert list(comparison.sweep) == [1, 8]  # 1024 is above ResNet-20's cap
    assert comparison.best in (1, 8)
    assert all(len(rates) == 1 and rates[0] > 0 for rates in comparison.rates.values())
    table = comparison.table()
    assert "resnet20: 272,474 parameters" in table
    assert re.search(r"by batch size: 1: [\d,.]+, 8: [\d,.]+", table)
    for label in RATIOS:
        found = re.search(rf"ratio {re.escape(label)}\s+([\d.]+)$", table, re.MULTILINE)
        assert found and 0 < float(found.group(1)) < math.inf, (label, table)


def test_start_size_comparison_starts_each_sequence_where_asked() -> None:
    """Two start sizes on ResNet-20 with n = 16: each sequence ends at its own start or a neighbour of it (a few
    dozen rows leave the sizer one trial at most), the report has a line per pair and the ratio, and the start rule
    is untouched and the process's sizers forgotten."""
    before = calibration.START_BYTES
    lines = start_size.compare("resnet20", (4, 32), pairs=2, calls=1, n0=4, n=16)
    assert len(lines) == 3 and before == calibration.START_BYTES and not calibration._SIZERS
    for line in lines[:2]:
        assert re.search(r"start 4: [\d.]+ s, ended at (2|4|8)\b", line), line
        assert re.search(r"start 32: [\d.]+ s, ended at (16|32|64)\b", line), line
    assert re.match(r"time from start 32 / time from start 4: [\d.]+ \(standard error [\d.]+", lines[2])


def test_rs_plugin_certification_memory_does_not_grow_with_n() -> None:
    """In a fresh process, a certification with 4 times the samples (256 against 64, 3x64x64 inputs, batch 16)
    adds no more to rs-plugin's peak resident memory, and neither adds 8 MB (192 noisy copies alone would take
    9 MB; ART holds them all, in float64 and float32: over 40 MB)."""
    peaks = memory.measure(memory.Job("rs-plugin", "stand-in", (3, 64, 64), (64, 256), batch=16))
    assert peaks.added(1) - peaks.added(0) < 8, peaks
    assert peaks.added(1) < 8, peaks


@pytest.mark.slow
def test_art_certification_memory_grows_with_n() -> None:
    """The same measurement sees ART's growth: 768 more samples of 3x64x64 add at least 100 MB (all noisy copies
    are drawn at once), and the growth per 1,000 samples is computed from it."""
    job = memory.Job("ART", "stand-in", (3, 64, 64), (256, 1024), batch=16)
    peaks = memory.measure(job)
    assert peaks.added(1) - peaks.added(0) > 100, peaks
    slope, at_4096 = memory.art_growth([(256, peaks.added(0)), (1024, peaks.added(1))], 4096)
    assert slope > 100 and at_4096 > peaks.added(1) + 3 * 100


def test_the_memory_table_has_a_row_per_job() -> None:
    """A row gives the framework, network, input, batch, n and the memory added; the header names the columns."""
    job = memory.Job("ART", "stand-in", (3, 224, 224), (250,), batch=32)
    peaks = memory.Peaks(500.0, 600.0, [600.0], [1350.0], None, None, "VmHWM")
    line = memory.row(job, peaks)
    assert line.split() == ["ART", "stand-in", "3x224x224", "32", "250", "750.0", "1350"]
    assert memory.header(gpu=False).split()[-4:] == ["added", "MB", "peak", "MB"]
    assert memory.art_growth([(250, 700.0), (1000, 2950.0)], 100_000) == (3000.0, 2950.0 + 3000.0 * 99)


def test_the_stand_in_runs_a_ladder_of_n_and_the_plot_shows_both_frameworks(tmp_path) -> None:
    """rs-plugin's stand-in is measured at n / 100, n / 10 and n (those of one batch at least) in one process, and
    ``--plot`` draws its points beside ART's and ART's straight line out to n, as a PNG image."""
    assert memory.ladder(100_000, 32) == (1_000, 10_000, 100_000)
    assert memory.ladder(1_000, 32) == (100, 1_000) and memory.ladder(1_000, 200) == (1_000,)
    assert memory.ladder(16, 32) == (16,)  # below one batch: n alone
    pytest.importorskip("matplotlib")
    path = tmp_path / "figures" / "memory.png"
    memory.save_plot(path, [(100_000, 5.0), (1_000, 0.0)], [(250, 754.0), (1_000, 2_871.0)], 100_000)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_resnet_plot_draws_a_panel_per_network(tmp_path) -> None:
    """``resnets.py --plot``: the sweeps and the runs' medians of several networks in one PNG image."""
    pytest.importorskip("matplotlib")
    rates = {resnets.LIMIT: [100.0, 102.0], resnets.RS_PLUGIN: [97.0, 99.0], resnets.ART_DEFAULT: [80.0, 81.0],
             resnets.ART_BEST: [95.0, 96.0]}
    comparisons = [resnets.Comparison(name, 1, 8, 16, {1: 40.0, 8: 90.0, 64: 101.0}, [64, 8], 64, "batch size 64",
                                      rates) for name in ("resnet20", "resnet50")]
    path = tmp_path / "resnets.png"
    resnets.save_plot(path, comparisons)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_channels_last_comparison_reports_both_ways_and_certifies_alike() -> None:
    """The tiny CNN with n = 200: a line each for the forward pass and CERTIFY with both rates and their ratio, and
    the two certificates select the same class with counts within 2 (the layout changes only the rounding)."""
    lines = channels_last.compare("cnn16", n=200, repeats=1)
    assert lines[0].startswith("cnn16: 108,618 parameters")
    for kind, line in zip(("forward", "certify"), lines[1:3], strict=True):
        assert re.match(rf"  {kind} +as given +[\d,]+/s  channels last +[\d,]+/s  ratio [\d.]+", line), line
    found = re.search(r"as given (\d+) of 200 for class (\d+), channels last (\d+) of 200 for class (\d+); "
                      r"labels agree on [\d.]+% of 200", lines[3])
    assert found and found.group(2) == found.group(4) and abs(int(found.group(1)) - int(found.group(3))) <= 2
