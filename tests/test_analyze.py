"""`analyze` reproduces the paper's published tables from the authors' released logs, value for value."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom

from rs_plugin import analysis
from rs_plugin.cli import main
from rs_plugin.results import CERTIFY_COLUMNS, Results, read_results

COHEN = Path(__file__).parent / "data" / "cohen2019"
CERTIFY = COHEN / "data" / "certify"
CIFAR10 = [CERTIFY / f"cifar10/resnet110/noise_{s}/test/sigma_{s}" for s in ("0.12", "0.25", "0.50", "1.00")]
IMAGENET = [CERTIFY / f"imagenet/resnet50/noise_{s}/test/sigma_{s}" for s in ("0.25", "0.50", "1.00")]
TABLES = {
    # name: (files, radii, sigmas) as in the README: CIFAR-10 0.25..1.5 step 0.25, ImageNet 0.5..3.0 step 0.5
    "vary_noise_cifar10": (CIFAR10, ["0.25", "0.5", "0.75", "1.0", "1.25", "1.5"], ["0.12", "0.25", "0.50", "1.00"]),
    "vary_noise_imagenet": (IMAGENET, ["0.5", "1.0", "1.5", "2.0", "2.5", "3.0"], ["0.25", "0.50", "1.00"]),
}
HEADER = "idx\tlabel\tpredict\tradius\tcorrect\ttime\n"
LABELS = {"markdown": "&sigma; = {}", "latex": "$\\sigma = {}$"}


def analyze(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["analyze", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("fmt", ["markdown", "latex"])
@pytest.mark.parametrize("table", sorted(TABLES))
def test_the_published_tables_are_reproduced_byte_for_byte(capsys, table, fmt):
    files, radii, sigmas = TABLES[table]
    labels = [LABELS[fmt].format(s) for s in sigmas]
    code, out, err = analyze(capsys, *files, "--radii", *radii, "--format", fmt, "--labels", *labels)
    assert (code, err) == (0, "")
    assert out == (COHEN / "analysis" / fmt / table).read_text()


def test_table_1_of_the_paper_best_sigma_per_radius():
    radii = [0.5, 1.0, 2.0, 3.0]
    best = np.max([analysis.certified_accuracy(read_results(f), radii) for f in IMAGENET], axis=0)
    assert best.round(2).tolist() == [0.49, 0.37, 0.19, 0.12]


def test_certified_accuracy_counts_correct_rows_with_radius_at_least_r():
    for path in CIFAR10 + IMAGENET:
        results = read_results(path)
        radii = [0.0, 0.25, 1.0, *np.unique(results["radius"])[::7]]  # radii found in the file: ties count
        expected = [
            sum(c == 1 and r >= radius for c, r in zip(results["correct"], results["radius"], strict=True))
            / len(results)
            for radius in radii
        ]
        assert analysis.certified_accuracy(results, radii).tolist() == expected


def test_abstentions_and_wrong_predictions_never_count():
    results = synthetic(correct=[1, 0, 0, 1], radius=[0.5, 2.0, 0.0, 0.25])
    assert analysis.certified_accuracy(results, [0, 0.25, 0.5, 1.0]).tolist() == [0.5, 0.5, 0.25, 0.0]
    with pytest.raises(ValueError, match="radii must be"):
        analysis.certified_accuracy(results, [-1.0])


def synthetic(correct: list[int], radius: list[float]) -> Results:
    m = len(correct)
    data = {
        "idx": np.arange(m), "label": np.zeros(m, np.int64), "predict": np.where(correct, 0, 1),
        "radius": np.asarray(radius, float), "correct": np.asarray(correct), "time": np.ones(m),
    }
    return Results("synthetic", CERTIFY_COLUMNS, data)


def test_high_probability_bound_is_the_papers_bernstein_formula():
    results = read_results(IMAGENET[1])
    radii = [0.0, 0.5, 1.0]
    m, log = len(results), math.log(1000)
    expected = [
        max(a - 0.001 - math.sqrt(0.001 * 0.999 * log / m) - log / (3 * m), 0.0)
        for a in analysis.certified_accuracy(results, radii)
    ]
    assert analysis.high_probability_accuracy(results, radii, 0.001, 0.001) == pytest.approx(expected, rel=1e-12)
    assert analysis.high_probability_accuracy(results, [10.0]).tolist() == [0.0]  # clipped at 0


@pytest.mark.parametrize(("m", "alpha", "rho"), [(500, 0.001, 0.001), (100, 0.05, 0.1), (2000, 0.01, 0.01)])
def test_high_probability_bound_holds_with_probability_one_minus_rho(m, alpha, rho):
    # Worst case of appendix D: all m rows certified, each wrongly with probability alpha, independently.
    # True accuracy (m - W) / m with W ~ Binomial(m, alpha); the bound fails when it exceeds that.
    bound = analysis.high_probability_accuracy(synthetic([1] * m, [1.0] * m), [0.5], alpha, rho)[0]
    largest_safe_w = math.floor(m * (1 - bound) + 1e-9)  # W <= this keeps (m - W) / m >= bound
    assert binom.sf(largest_safe_w, m, alpha) <= rho


def test_json_maps_each_file_to_accuracy_by_radius(capsys):
    code, out, _ = analyze(capsys, CIFAR10[1], "--radii", "0.25", "0.5", "--json")
    assert code == 0
    assert json.loads(out) == {str(CIFAR10[1]): {"0.25": 0.6, "0.5": 0.428}}


def test_high_prob_flag_reports_the_bound(capsys):
    code, out, _ = analyze(capsys, IMAGENET[1], "--radii", "0.5", "--json", "--high-prob", "--rho", "0.01")
    bound = analysis.high_probability_accuracy(read_results(IMAGENET[1]), [0.5], 0.001, 0.01)[0]
    assert (code, json.loads(out)) == (0, {str(IMAGENET[1]): {"0.5": bound}})
    assert bound < 0.46


def test_default_text_and_csv_tables(capsys):
    code, out, _ = analyze(capsys, *IMAGENET, "--radii", "0.5", "1", "--labels", "a", "b", "c")
    assert code == 0
    assert [line.split() for line in out.splitlines()] == [
        ["r", "=", "0.5", "r", "=", "1"], ["a", "0.494*", "0.000"], ["b", "0.458", "0.372*"], ["c", "0.378", "0.326"]
    ]
    code, out, _ = analyze(capsys, *IMAGENET[1:], "--radii", "0.5", "1", "--labels", "b", "c", "--format", "csv")
    assert out == "label,0.5,1\nb,0.458,0.372\nc,0.378,0.326\n"


def test_plot_is_written(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "curves.png"
    code, _, err = analyze(capsys, *IMAGENET, "--plot", plot, "--high-prob")
    assert (code, err) == (0, "")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: ["missing.tsv"], "missing.tsv"),
        (lambda d: [write(d, HEADER + "0\t1\t1\t0.5\t1\n")], "bad.tsv:2: expected 6"),
        (lambda d: [write(d, "idx\tlabel\tpredict\tcorrect\ttime\n0\t1\t1\t1\t0:00:01\n")], "no radius column"),
        (lambda d: [*CIFAR10[:2], "--labels", "only one"], "labels: got 1 labels for 2 files"),
        (lambda d: [CIFAR10[0], "--radii", "-1"], "radii must be"),
        (lambda d: [CIFAR10[0], "--high-prob", "--alpha", "2"], "alpha must lie"),
        (lambda d: [CIFAR10[0], "--rho", "2"], "rho must lie"),  # refused without --high-prob too
        (lambda d: [CIFAR10[0], "--max-radius", "-1"], "max_radius must be a finite number > 0"),
        (lambda d: [write(d, HEADER + "0\t1\t1\t0.5\t1\t1.0\n" * 2)], "bad.tsv:3: idx 0 is already on line 2"),
        (lambda d: [write(d, HEADER + "0\t1\t2\t0.5\t1\t1.0\n")], "bad.tsv:2: correct is 1 but predict 2"),
        (lambda d: [write(d, HEADER + "0\t1\t1\tinf\t1\t1.0\n")], "bad.tsv:2: radius must be finite and >= 0"),
        (lambda d: [write(d, HEADER + "0\t1\t1\t-1\t1\t1.0\n")], "bad.tsv:2: radius must be finite and >= 0"),
        (lambda d: [write(d, HEADER + "0\t1\t1\tnan\t1\t1.0\n")], "bad.tsv:2: radius must be finite and >= 0"),
        (lambda d: [write(d, (HEADER + "0\t1\t1\t0.5\t1\t1.0 é\n").encode("latin-1"))], "bad.tsv:2: not UTF-8"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_a_failure_status(tmp_path, capsys, make, message):
    code, _, err = analyze(capsys, *make(tmp_path))
    assert code == 1
    assert message in err and "Traceback" not in err
    assert err.startswith("rs-plugin analyze: error:") and err.count("\n") == 1


def write(folder: Path, content: str | bytes) -> Path:
    path = folder / "bad.tsv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def test_a_row_counted_twice_is_refused_rather_than_inflating_the_accuracy(tmp_path, capsys):
    """Duplicated rows made 0.974 of 0.967; now the file is refused, naming the line."""
    rows = read_results(CIFAR10[1])
    lines = CIFAR10[1].read_text().splitlines(keepends=True)
    doubled = tmp_path / "doubled.tsv"
    doubled.write_text("".join(lines) + lines[1])
    code, _, err = analyze(capsys, doubled, "--radii", "0")
    assert code == 1 and f"doubled.tsv:{len(lines) + 1}: idx {rows['idx'][0]} is already on line 2" in err


def test_saturated_finds_the_paper_s_imagenet_certificates_at_the_largest_radius_n_allows():
    """In the authors' ImageNet log at sigma 0.25, 114 of the 285 images certified correct sit at the largest radius
    that n = 100,000 samples and alpha = 0.01 can give (0.978, printed to three digits): their true radius may be far
    larger, which bounds how tight any attack can show the certificate to be."""
    from rs_plugin.bounds import lower_confidence_bound
    from rs_plugin.noises import Gaussian

    results = read_results(IMAGENET[0])
    cap = Gaussian(0.25).radius(lower_confidence_bound(100_000, 100_000, 0.01))
    mask = analysis.saturated(results, cap)
    assert round(cap, 3) == 0.978
    assert int(mask.sum()) == 114 and int(((results["correct"] == 1) & (results["radius"] > 0)).sum()) == 285
    assert (results["radius"][mask] == 0.978).all() and (results["correct"][mask] == 1).all()
    assert results["radius"][~mask & (results["correct"] == 1)].max() < 0.978
    # Compared unrounded, the printed 0.978 lies above the exact cap (0.97763) as well: the same rows.
    assert int(analysis.saturated(results, cap, digits=None).sum()) == 114
    # A wrong cap (alpha 0.001: 0.953) counts rows below the paper's largest radius.
    too_small = Gaussian(0.25).radius(lower_confidence_bound(100_000, 100_000, 0.001))
    assert int(analysis.saturated(results, too_small).sum()) > 114
    with pytest.raises(ValueError, match="largest_radius"):
        analysis.saturated(results, 0.0)
