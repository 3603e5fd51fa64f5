"""Fuzzing with hypothesis: what any input, any argument and a crash at any byte do, beyond the hand-picked cases of
the other tests. Every test is derandomized (hypothesis draws the same examples on every run)."""

from __future__ import annotations

import contextlib
import functools
import io
import math
import numbers
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import binomtest

from rs_plugin import ABSTAIN, SmoothedClassifier
from rs_plugin.bounds import lower_confidence_bound, two_sided_pvalue, upper_confidence_bound
from rs_plugin.diagnostics import PreflightWarning
from rs_plugin.results import CERTIFY_COLUMNS, ResultsError, ResultsWriter, format_row, read_results

FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=150,
                suppress_health_check=[HealthCheck.too_slow])
"""The same examples on every run (no example database), no time limit per example."""


class Sign:
    """A base classifier on inputs of any shape: class 1 where the values sum to more than 0.1; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        return (batch.reshape(len(batch), -1).sum(1) > 0.1).astype(np.int64)


def one_line(err: Exception) -> str:
    message = str(err)
    assert message and "\n" not in message, f"not a one-line error: {message!r}"
    return message


def base_of(backend: str) -> Any:
    """The ``Sign`` classifier as a numpy callable, or as a torch module (logits)."""
    if backend == "numpy":
        return Sign()
    torch = pytest.importorskip("torch")

    class SignNet(torch.nn.Module):
        def forward(self, batch: Any) -> Any:
            score = batch.reshape(len(batch), -1).sum(1) - 0.1
            return torch.stack([-score, score], 1)

    return SignNet()


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """``rs-plugin ARGS`` in this process: its exit status (argparse's usage errors included), stdout and stderr."""
    from rs_plugin.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            code = main(args)
        except SystemExit as exit_:  # argparse's usage error
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


# Inputs ------------------------------------------------------------------------------------------------------------

DTYPES = st.sampled_from([np.float16, np.float32, np.float64, np.int8, np.uint8, np.int64, np.bool_, np.complex64])
INPUTS = hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))


@FUZZ
@given(x=INPUTS)
def test_any_array_is_certified_as_its_float32_copy_or_refused_with_one_line_naming_x(x: np.ndarray) -> None:
    """Whatever array a user passes (any dtype, shape, NaN, infinity, no values at all): a certificate equal to the
    one of its float32 copy, or a one-line ``ValueError`` saying what is wrong with ``x``, before any sample."""
    base = Sign()
    g = SmoothedClassifier(base, 2, 0.5, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning on the way
        warnings.simplefilter("ignore", PreflightWarning)  # 0-255 integers: warned about, still certified
        try:
            cert = g.certify(x, 10, 100, 0.01, index=0)
        except ValueError as err:
            message = one_line(err)
            assert base.calls == 0
            if np.iscomplexobj(x):
                assert message.startswith("x must hold real numbers")
            elif x.ndim == 0:
                assert message.startswith("x must be one input without batch dimension")
            elif x.size == 0:
                assert message.startswith(f"x holds no values (shape {x.shape})")
            else:
                with np.errstate(over="ignore"):
                    assert not np.isfinite(x.astype(np.float32)).all()
                assert message.startswith("x contains NaN or infinite values")
            return
        twin = SmoothedClassifier(Sign(), 2, 0.5, seed=0).certify(x.astype(np.float32), 10, 100, 0.01, index=0)
    assert x.ndim > 0 and x.size > 0 and not np.iscomplexobj(x)
    assert cert.prediction in (ABSTAIN, 0, 1) and math.isfinite(cert.radius) and cert.radius >= 0
    assert cert == twin


@FUZZ
@given(x=INPUTS)
def test_any_tensor_is_certified_as_its_numpy_twin_or_refused_alike(x: np.ndarray) -> None:
    """The torch backend gives the numpy backend's answer on the same values: the same certificate, or the same
    one-line error."""
    torch = pytest.importorskip("torch")

    def outcome(g: SmoothedClassifier, value: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PreflightWarning)
            try:
                cert = g.certify(value, 10, 100, 0.01, index=0)
            except ValueError as err:
                return one_line(err).split(" (")[0]  # the dtype's name is torch's or numpy's
        return cert.prediction

    tensor = torch.from_numpy(x.copy())
    expected = outcome(SmoothedClassifier(Sign(), 2, 0.5, seed=0), x)
    got = outcome(SmoothedClassifier(base_of("torch"), 2, 0.5, seed=0), tensor)
    # the noise is drawn by torch, not numpy: the two may predict differently only near the boundary (6 sigmas)
    refused = isinstance(expected, str) or isinstance(got, str)  # then x is not complex: its sum is real
    if refused or abs(float(x.astype(np.float64).sum()) - 0.1) > 3.0 * math.sqrt(x.size):
        assert got == expected


# Arguments ---------------------------------------------------------------------------------------------------------

ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 300), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=2), st.just([10]), st.just(np.int64(50)), st.just(np.float32(0.5)),
)


def count_ok(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def level_ok(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 < value < 1


@FUZZ
@given(n0=ANY_VALUE, n=ANY_VALUE, alpha=ANY_VALUE)
def test_any_n0_n_and_alpha_certify_or_are_refused_naming_an_argument_that_is_wrong(n0, n, alpha) -> None:
    """CERTIFY takes any valid ``n0``, ``n``, ``alpha``; for any other value it raises a one-line ``TypeError`` or
    ``ValueError`` naming an argument that is indeed wrong, before drawing a sample."""
    base = Sign()
    g = SmoothedClassifier(base, 2, 0.5, seed=0)
    x = np.full(3, 0.4, dtype=np.float32)
    valid = {"n0": count_ok(n0), "n": count_ok(n), "alpha": level_ok(alpha)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreflightWarning)
        try:
            cert = g.certify(x, n0, n, alpha)
        except (TypeError, ValueError) as err:
            message = one_line(err)
            assert base.calls == 0
            named = message.split(" must ")[0].split("=")[0]
            if all(valid.values()):  # refused as a whole: n and alpha that can certify nothing
                assert f"n={n}" in message and f"alpha={alpha}" in message
            else:
                assert named in valid and not valid[named], message
            return
    assert all(valid.values())
    assert cert.prediction in (ABSTAIN, 0, 1) and cert.radius >= 0


@FUZZ
@given(n=ANY_VALUE, alpha=ANY_VALUE, batch_size=ANY_VALUE)
def test_any_n_alpha_and_batch_size_predict_or_are_refused_naming_an_argument_that_is_wrong(n, alpha,
                                                                                           batch_size) -> None:
    base = Sign()
    valid = {"n": count_ok(n), "alpha": level_ok(alpha), "batch_size": batch_size is None or count_ok(batch_size)}
    try:
        g = SmoothedClassifier(base, 2, 0.5, seed=0, batch_size=batch_size)
        answer = g.predict(np.full(3, 0.4, dtype=np.float32), n, alpha)
    except (TypeError, ValueError) as err:
        message = one_line(err)
        assert base.calls == 0
        if all(valid.values()):  # n too small for alpha: PREDICT would always abstain
            assert f"n={n} with alpha={alpha}" in message and "always abstains" in message
        else:
            named = message.split(" must ")[0]
            assert named in valid and not valid[named], message
        return
    assert all(valid.values()) and answer in (ABSTAIN, 0, 1)


# The engine --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", "torch"])
@settings(FUZZ, max_examples=40)
@given(
    batch_size=st.integers(1, 300),
    n0=st.integers(1, 40),
    n=st.integers(8, 500),  # fewer samples certify nothing at alpha 0.01 (refused; see above)
    indices=st.lists(st.integers(0, 10**9), min_size=1, max_size=4, unique=True),
    sequence=st.sampled_from([None, "betting"]),
    noise=st.sampled_from(["gaussian", "laplace", "uniform"]),
)
def test_certificates_depend_on_neither_the_batch_size_nor_the_other_inputs(backend, batch_size, n0, n, indices,
                                                                            sequence, noise) -> None:
    """Any batch size, any packing of several inputs into shared passes (fixed n, or sequential CERTIFY stopping at
    different stages), on either backend (the torch streams carry part-used blocks of noise between fills): each
    input's certificate is the one it gets alone (its noise depends on its index only)."""
    xs = np.linspace(-0.3, 0.6, 3 * len(indices), dtype=np.float32).reshape(len(indices), 3)
    options = {} if sequence is None else {"target_radius": [0.1, 0.3], "sequence": sequence}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreflightWarning)
        packed = SmoothedClassifier(base_of(backend), 2, 0.5, noise=noise, seed=3, batch_size=batch_size).certify_many(
            xs, n0, n, 0.01, indices=indices, progress=False, **options)
        alone = SmoothedClassifier(base_of(backend), 2, 0.5, noise=noise, seed=3, batch_size=7)
        assert packed == [alone.certify(x, n0, n, 0.01, index=i, **options) for x, i in zip(xs, indices, strict=True)]


# Bounds ------------------------------------------------------------------------------------------------------------

@FUZZ
@given(n=st.integers(1, 10**7), fraction=st.floats(0, 1), alpha=st.floats(1e-12, 0.5))
def test_clopper_pearson_bounds_bracket_the_frequency_and_agree_with_statsmodels(n, fraction, alpha) -> None:
    proportion_confint = pytest.importorskip("statsmodels.stats.proportion").proportion_confint
    k = round(fraction * n)
    low, high = lower_confidence_bound(k, n, alpha), upper_confidence_bound(k, n, alpha)
    assert 0 <= low <= k / n <= high <= 1
    ref_low, ref_high = proportion_confint(k, n, 2 * alpha, method="beta")
    assert low == pytest.approx(ref_low, rel=1e-9, abs=1e-300)
    assert high == pytest.approx(ref_high, rel=1e-9, abs=1e-300)


@FUZZ
@given(count1=st.integers(0, 5000), count2=st.integers(0, 5000))
def test_predicts_p_value_is_scipys_binomtest(count1, count2) -> None:
    if count1 + count2 == 0:
        return
    assert two_sided_pvalue(count1, count2) == pytest.approx(binomtest(count1, count1 + count2, 0.5).pvalue,
                                                            rel=1e-9, abs=1e-300)


# Results files -----------------------------------------------------------------------------------------------------

ROWS = st.lists(
    st.tuples(st.integers(0, 9), st.integers(-1, 9), st.floats(0, 1e4, allow_subnormal=False),
              st.floats(0, 2e5, allow_subnormal=False)),
    min_size=1, max_size=6,
)


def certify_rows(drawn: list[tuple[int, int, float, float]]) -> list[dict]:
    return [{"idx": idx, "label": label, "predict": predict, "radius": 0.0 if predict < 0 else radius,
             "correct": int(predict == label), "time": seconds}
            for idx, (label, predict, radius, seconds) in enumerate(drawn)]


@FUZZ
@given(drawn=ROWS, cut=st.floats(0, 1))
def test_a_run_killed_at_any_byte_resumes_to_the_file_an_uninterrupted_run_writes(drawn, cut) -> None:
    """Whatever byte a crash stops the file at: resuming keeps every complete row (and only those: ``done``), cuts
    the half-written one, and finishing the run gives, byte for byte, the file of a run that never stopped."""
    with tempfile.TemporaryDirectory() as folder:  # a fresh folder for each example
        killed_and_resumed(Path(folder), certify_rows(drawn), cut)


def killed_and_resumed(tmp_path: Path, rows: list[dict], cut: float) -> None:
    whole = tmp_path / "whole.tsv"
    with ResultsWriter(whole, CERTIFY_COLUMNS) as writer:
        for row in rows:
            writer.write(row)
    content = whole.read_bytes()
    killed = tmp_path / "killed.tsv"
    kept = content[: round(cut * len(content))]
    killed.write_bytes(kept)
    header = len(content) - sum(len(format_row(row, CERTIFY_COLUMNS)) for row in rows)
    complete = kept[header:].count(b"\n") if len(kept) >= header else 0
    with ResultsWriter(killed, CERTIFY_COLUMNS) as writer:
        assert writer.done == set(range(complete))
        for row in rows:
            if row["idx"] not in writer.done:
                writer.write(row)
    assert killed.read_bytes() == content
    read = read_results(killed)
    assert read["idx"].tolist() == list(range(len(rows)))
    assert read["predict"].tolist() == [row["predict"] for row in rows]


SHAPED_NOISES = ["laplace", "uniform", "lowpass:shape=1x4x4", "ablation:k=5,shape=1x4x4", "columns:b=2,shape=1x4x4",
                 "blocks:b=2,shape=1x4x4"]


@pytest.mark.parametrize("noise", SHAPED_NOISES)
@settings(FUZZ, max_examples=60)
@given(x=hnp.arrays(st.sampled_from([np.float32, np.float64]),
                    st.sampled_from([(1, 4, 4), (4, 4), (1, 4, 5), (2, 4, 4), (16,), (1, 0, 4)]),
                    elements=st.floats(-2, 2, width=16) | st.sampled_from([np.nan, np.inf])))
def test_every_randomization_certifies_its_inputs_or_refuses_them_with_one_line(noise: str, x: np.ndarray) -> None:
    """Each noise and randomization (additive, correlated, ablation, derandomized bands and blocks), given inputs of
    its shape or of another, with or without NaN: a certificate in its own norm, or a one-line ``ValueError`` before
    any sample; never another exception."""
    base = Sign()
    g = SmoothedClassifier(base, 2, 0.5, noise=noise, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", PreflightWarning)
        try:
            cert = g.certify(x, 10, 100, 0.01, index=0)
        except ValueError as err:
            one_line(err)
            assert base.calls == 0
            shaped = "shape=" not in noise or x.shape == (1, 4, 4)
            assert not (shaped and x.size and np.isfinite(x.astype(np.float32)).all()), str(err)
            return
    assert "shape=" not in noise or x.shape == (1, 4, 4)  # a randomization made for one shape refuses others
    assert cert.prediction in (ABSTAIN, 0, 1) and math.isfinite(cert.radius) and cert.radius >= 0
    assert cert.norm == g.noise.norm


@settings(FUZZ, max_examples=80)
@given(x=hnp.arrays(st.sampled_from([np.float32, np.float64, np.float16, np.int64, np.bool_]),
                    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)))
def test_the_smoothed_module_takes_any_float32_batch_and_refuses_anything_else_with_one_line(x: np.ndarray) -> None:
    """``SmoothedModule`` (the torchattacks and foolbox face) on any tensor: log-probabilities ``(B, 2)`` that sum to
    one for a finite float32 batch the base takes, else a one-line ``TypeError`` or ``ValueError``."""
    torch = pytest.importorskip("torch")
    from rs_plugin.adapters.torch import SmoothedModule

    base = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 2))  # any (B, ...) of 3 values each

    def takes(x: np.ndarray) -> bool:
        return x.dtype == np.float32 and x.ndim >= 2 and len(x) > 0 and math.prod(x.shape[1:]) == 3

    module = SmoothedModule(base, 0.5, num_noise=4, batch_size=5, seed=0)
    tensor = torch.from_numpy(x.copy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            with torch.no_grad():
                out = module(tensor)
        except (TypeError, ValueError) as err:
            one_line(err)
            assert not (takes(x) and np.isfinite(x).all()), str(err)
            return
    assert takes(x)
    assert out.shape == (len(x), 2) and torch.allclose(out.exp().sum(1), torch.ones(len(x)))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # hypothesis making 1e39 float32
@settings(FUZZ, max_examples=60)
@given(x=hnp.arrays(st.sampled_from([np.float32, np.float64, np.complex64]),
                    st.sampled_from([(2, 1, 2, 2), (0, 1, 2, 2), (1, 4), (2, 1, 2, 3), (1,)]),
                    elements=st.floats(-0.25, 1.25, width=16) | st.sampled_from([np.nan, -np.inf, 1e39])))
def test_the_art_estimator_predicts_any_batch_of_its_shape_or_refuses_it_with_one_line(x: np.ndarray) -> None:
    """``SmoothedEstimator`` (the ART face) on any array: votes ``(N, nb_classes)`` summing to one for a finite batch
    of its input shape (an empty batch gets ``(0, nb_classes)``; it once raised ``IndexError``), else a one-line
    ``ValueError``."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("art")
    from art.estimators.classification import PyTorchClassifier

    from rs_plugin.adapters.art import SmoothedEstimator

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    classifier = PyTorchClassifier(net, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 2, 2), nb_classes=3,
                                   clip_values=(0, 1))
    estimator = SmoothedEstimator(classifier, sigma=0.25, num_noise=8, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            votes = estimator.predict(x)
        except ValueError as err:
            one_line(err)
            with np.errstate(over="ignore", invalid="ignore"):
                finite = not np.iscomplexobj(x) and np.isfinite(x.astype(np.float32)).all()
            assert not (finite and x.shape[1:] == (1, 2, 2) and len(x)), str(err)
            return
    assert x.shape[1:] == (1, 2, 2) and not np.iscomplexobj(x)
    assert votes.shape == (len(x), 3) and np.allclose(votes.sum(1), 1)


FIELDS = st.sampled_from(["0", "1", "7", "-1", "0.5", "1.2e-05", "nan", "inf", "-0.3", "0:00:01.5", "1 day, 2:03:04",
                          "", " ", "x", "é", "\uff11", "1_0"])
LINES = st.lists(FIELDS, min_size=0, max_size=7).map("\t".join)


@FUZZ
@given(lines=st.lists(LINES, max_size=5), ending=st.sampled_from(["\n", "\r\n"]), header=st.booleans())
def test_any_results_file_is_read_or_refused_with_one_line_naming_the_file_and_line(lines, ending, header) -> None:
    """``read_results`` (what ``rs-plugin analyze`` reads) on any text: the rows, each one a row CERTIFY could have
    written, or one ``ResultsError`` line ``file:line: ...`` pointing into the file; never another exception."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results.tsv"
        path.write_text(ending.join((["\t".join(CERTIFY_COLUMNS)] if header else []) + lines) + ending,
                        encoding="utf-8")
        try:
            results = read_results(path)
        except ResultsError as err:
            message = one_line(err)
            where, line = message.split(":")[:2]
            assert where == str(path) and 1 <= int(line) <= len(lines) + 1
            return
    assert header
    assert len(set(results["idx"].tolist())) == len(results) == sum(bool(line.strip()) for line in lines)
    assert (results["idx"] >= 0).all() and (results["predict"] >= -1).all()
    assert np.isfinite(results["radius"]).all() and (results["radius"] >= 0).all()
    assert (results["correct"] == (results["predict"] == results["label"])).all()


# The command line --------------------------------------------------------------------------------------------------

CLI_OPTIONS = {"--n0": "10", "--n": "100", "--alpha": "0.01", "--max-examples": "1", "--batch-size": "50",
               "--seed": "0", "--skip": "1", "--sigma": "0.25", "--target-radius": "0.1"}
CLI_VALUES = st.sampled_from(["0", "-1", "2", "3.5", "nan", "inf", "-inf", "1e400", "x", "", "0.5.1", " 7", "1e-400"])


@settings(FUZZ, max_examples=60)
@given(option=st.sampled_from(sorted(CLI_OPTIONS)), value=CLI_VALUES)
def test_any_value_of_a_numeric_option_runs_or_is_refused_on_one_line_before_any_file_is_made(noisy_digits_net,
                                                                                              option, value) -> None:
    """``rs-plugin certify`` with any value of a numeric option: it certifies (the file holds its rows), or it
    exits with status 1 or 2 (argparse) and the last line of stderr names the option, before the output file or its
    settings record exist; never a traceback."""
    if option == "--sigma" and value in ("2", "3.5", " 7", "1e-400"):
        return  # a valid sigma would train another digits model (seconds each); sigma's checks are above
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out.tsv"
        args = ["certify", "--no-progress", "--out", str(out)]
        for name, default in CLI_OPTIONS.items():
            args += [name, value if name == option else default]
        code, _, text = run_cli(args)
        assert "Traceback" not in text
        if code == 0:  # only for a value the option takes
            number = float(value)
            if option in ("--alpha",):
                assert 0 < number < 1
            elif option in ("--target-radius", "--sigma"):
                assert math.isfinite(number) and number >= 0
            else:  # counts; the seed may be 0
                assert number == int(value) and number >= (0 if option == "--seed" else 1)
            assert len(read_results(out)) == (int(value) if option == "--max-examples" else 1)
            return
        assert code in (1, 2) and os.listdir(folder) == [], text
        last = text.strip().splitlines()[-1]
        assert option.lstrip("-").replace("-", "_") in last.replace("-", "_"), last


# Noise specs -------------------------------------------------------------------------------------------------------

SPEC_NAMES = st.sampled_from(["gaussian", "laplace", "uniform", "lowpass", "diagonal", "ablation", "columns", "blocks",
                              "Gaussian", "", "nois", " gaussian "])
SPEC_KEYS = st.sampled_from(["shape", "k", "b", "ratio", "cutoff", "value", "profile", "sigma", "", "k "])
SPEC_VALUES = st.sampled_from(["1x8x8", "8x8", "1x8", "0x8x8", "-1x8x8", "axb", "3", "0", "-2", "0.5", "nan", "inf",
                               "", "1e9", "64", "65", "missing.npy"])
FAMILY_KEYS = {"gaussian": ([], ["k"]), "laplace": ([], ["k"]), "uniform": ([], ["k"]),  # k: an option they lack
               "lowpass": (["shape"], ["ratio", "cutoff"]), "ablation": (["k", "shape"], ["value"]),
               "columns": (["b", "shape"], ["value"]), "blocks": (["b", "shape"], ["value"])}
"""Each family's required options and some optional ones."""
KEY_VALUES = {"shape": ["1x8x8", "8x8", "1x4x4", "2x4x4", "0x8x8", "axb", "1x8"],
              "k": ["3", "20", "0", "65", "-2", "x"], "b": ["1", "2", "3", "0", "9", "x"],
              "ratio": ["4", "0.5", "1", "0", "-1", "nan"], "cutoff": ["0.25", "0.9", "0", "2", "nan"],
              "value": ["-1", "0", "nan", "inf", "x"]}


def spec_text(name: str, options: list[tuple[str, str]], separator: bool) -> str:
    return name + (":" if options or separator else "") + ",".join(f"{key}={value}" for key, value in options)


def family_spec(name: str) -> st.SearchStrategy[str]:
    """Specs of the family ``name`` with its required options and any of its optional ones (or one it lacks), each
    from values valid and not."""
    required, optional = FAMILY_KEYS[name]
    options = st.lists(st.sampled_from(optional), unique=True, max_size=len(optional)).flatmap(
        lambda keys: st.tuples(*(st.tuples(st.just(key), st.sampled_from(KEY_VALUES[key]))
                                 for key in [*required, *keys])))
    return st.builds(spec_text, st.just(name), options.map(list), st.booleans())


SPECS = st.one_of(
    st.builds(spec_text, SPEC_NAMES, st.lists(st.tuples(SPEC_KEYS, SPEC_VALUES), max_size=3), st.booleans()),
    st.sampled_from(sorted(FAMILY_KEYS)).flatmap(family_spec),
)


@FUZZ
@given(spec=SPECS, sigma=st.sampled_from([0.25, 1.0, 0.0, -1.0, float("nan")]))
def test_any_noise_spec_makes_its_noise_or_is_refused_with_one_line_naming_noise_or_sigma(spec: str, sigma) -> None:
    """A noise spec as a user types it (``--noise``, ``noise=``): the noise, whose certificate works on an input of
    its shape, or one ``ValueError``/``TypeError`` line naming ``noise``, ``sigma`` or the family's option."""
    try:
        g = SmoothedClassifier(Sign(), 2, sigma, noise=spec, seed=0)
    except (TypeError, ValueError) as err:
        message = one_line(err)
        event(f"refused: {message.split(':')[0].split(' ')[0]}")
        assert message.startswith(("noise", "sigma", "shape", "k ", "k=", "b ", "b=", "ratio", "cutoff", "value",
                                   "profile")), message
        return
    assert sigma > 0
    event(f"made: {g.noise.name}")
    shape = getattr(g.noise, "shape", None) or (1, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreflightWarning)
        cert = g.certify(np.full(shape, 0.5, dtype=np.float32), 10, 100, 0.01, index=0)
    assert cert.radius >= 0 and cert.norm == g.noise.norm


@FUZZ
@given(
    target_radius=st.one_of(st.none(), st.floats(-1, 3), st.sampled_from([math.nan, math.inf]),
                            st.lists(st.floats(-1, 3), max_size=3), st.just("0.5"), st.booleans()),
    radius_tolerance=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.just("x")),
    sequence=st.sampled_from(["betting", "bonferroni", "Betting", "", "union"]),
    smoothing=st.sampled_from(["hard", "soft", "Hard", "", None]),
)
def test_any_sequential_option_certifies_or_is_refused_with_one_line_naming_it(target_radius, radius_tolerance,
                                                                              sequence, smoothing) -> None:
    """CERTIFY's options as a user may pass them: a certificate, or one line naming the option that is wrong
    (``target_radius``, ``radius_tolerance``, ``sequence``, ``smoothing``), before any sample."""
    base = Sign()
    g = SmoothedClassifier(base, 2, 0.5, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreflightWarning)
        try:
            cert = g.certify(np.full(3, 0.4, dtype=np.float32), 10, 500, 0.01, target_radius=target_radius,
                             radius_tolerance=radius_tolerance, sequence=sequence, smoothing=smoothing)
        except (TypeError, ValueError) as err:
            message = one_line(err)
            assert base.calls == 0
            assert message.split(" ")[0].rstrip(":") in ("target_radius", "radius_tolerance", "sequence",
                                                          "smoothing"), message
            return
    assert cert.radius >= 0 and cert.prediction in (ABSTAIN, 0, 1)


# Constructors of the three faces -----------------------------------------------------------------------------------

SETTING = st.one_of(st.none(), st.booleans(), st.integers(-2, 200), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=3), st.just([1]))


@FUZZ
@given(face=st.sampled_from(["SmoothedClassifier", "SmoothedModule", "SmoothedEstimator"]),
       values=st.fixed_dictionaries({}, optional={"sigma": SETTING, "count": SETTING, "batch_size": SETTING,
                                                  "seed": SETTING, "alpha": SETTING, "n0": SETTING}))
def test_the_faces_are_built_or_refuse_a_setting_with_one_line_naming_it(face: str, values: dict) -> None:
    """``SmoothedClassifier``, ``SmoothedModule`` and ``SmoothedEstimator`` given any values of their settings (the
    count being ``num_classes`` or ``num_noise``): built, or one ``TypeError``/``ValueError`` line whose first word is
    a setting that was given."""
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    sigma, count = values.pop("sigma", 0.5), values.pop("count", None)
    counted = "num_classes" if face == "SmoothedClassifier" else "num_noise"
    if face != "SmoothedEstimator":  # alpha and n0 are the estimator's settings only
        values.pop("alpha", None), values.pop("n0", None)
    if count is not None and face != "SmoothedClassifier":
        values["num_noise"] = count
    if face == "SmoothedClassifier":
        build = functools.partial(SmoothedClassifier, net, 3 if count is None else count, sigma)
    elif face == "SmoothedModule":
        from rs_plugin.adapters.torch import SmoothedModule

        build = functools.partial(SmoothedModule, net, sigma)
    else:
        pytest.importorskip("art")
        from art.estimators.classification import PyTorchClassifier

        from rs_plugin.adapters.art import SmoothedEstimator

        classifier = PyTorchClassifier(net, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 2, 2), nb_classes=3)
        build = functools.partial(SmoothedEstimator, classifier, sigma)
    try:
        build(**values)
    except (TypeError, ValueError) as err:
        message = one_line(err)
        named = message.split(" ")[0].rstrip(":")
        assert named in {*values, "sigma", counted}, message
        return
    assert isinstance(sigma, numbers.Real) and not isinstance(sigma, bool) and math.isfinite(sigma) and sigma > 0
    assert count is None or count_ok(count)
    assert values.get("batch_size") is None or count_ok(values["batch_size"])
    seed = values.get("seed")
    assert seed is None or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and seed >= 0)
    assert "n0" not in values or count_ok(values["n0"])
    assert "alpha" not in values or level_ok(values["alpha"])


@FUZZ
@given(n=st.integers(1, 100_000), fraction=st.floats(0, 1), alpha=st.floats(1e-10, 0.5),
       sequence=st.sampled_from(["betting", "bonferroni"]))
def test_an_anytime_valid_bound_is_never_tighter_than_clopper_pearson_at_the_same_n(n, fraction, alpha,
                                                                                     sequence) -> None:
    """What the refusal's ``smallest_n`` rests on (and what an anytime guarantee costs): at its last checkpoint a
    sequence's lower bound is at most the fixed-n Clopper-Pearson bound at the same level, and at least 0."""
    from rs_plugin.sequential import make_sequence

    k = round(fraction * n)
    bound = make_sequence(sequence, alpha, n).lower(k, n)
    assert 0 <= bound <= lower_confidence_bound(k, n, alpha) + 1e-12


@settings(FUZZ, max_examples=60)
@given(values=st.fixed_dictionaries({}, optional={"eps": SETTING, "alpha": SETTING, "steps": SETTING,
                                                  "num_noise": SETTING, "sigma": SETTING}))
def test_smoothadv_pgd_attacks_or_refuses_a_setting_with_one_line_naming_it(values: dict) -> None:
    """``SmoothAdvPGD`` (a torchattacks ``Attack``) given any values of its settings: adversarial examples in
    ``[0, 1]`` within ``eps`` of the inputs, or one line whose first word is a setting that was given."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchattacks")
    from rs_plugin.attacks import SmoothAdvPGD

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    images, labels = torch.rand(2, 1, 2, 2), torch.tensor([0, 2])
    sigma, eps = values.pop("sigma", 0.25), values.pop("eps", 0.5)
    values["steps"] = values.get("steps", 2)
    if count_ok(values["steps"]) and values["steps"] > 5:
        values["steps"] = 5  # any number works alike; keep it quick
    try:
        adversarial = SmoothAdvPGD(net, sigma, eps, batch_size=16, seed=0, **values)(images, labels)
    except (TypeError, ValueError) as err:
        message = one_line(err)
        assert message.split(" ")[0].rstrip(":") in {*values, "sigma", "eps"}, message
        return
    assert adversarial.shape == images.shape and 0 <= float(adversarial.min()) <= float(adversarial.max()) <= 1
    assert float((adversarial - images).flatten(1).norm(dim=1).max()) <= float(eps) + 1e-5


@FUZZ
@given(option=st.sampled_from(["--radii", "--max-radius", "--alpha", "--rho"]), value=CLI_VALUES,
       high_prob=st.booleans())
def test_any_value_of_an_analyze_option_gives_the_table_or_one_line_naming_it(option, value, high_prob) -> None:
    """``rs-plugin analyze`` on one of the paper authors' released logs with any value of a numeric option: the
    table (exit 0) for a value the option takes, or exit 1/2 with the option named on stderr's last line, even for an
    option this run does not use (``--rho`` without ``--high-prob`` once let any value pass); never a traceback."""
    log = Path(__file__).parent / "data" / "cohen2019" / "data" / "certify" / "cifar10" / "resnet110" / "noise_0.25" / \
        "test" / "sigma_0.25"
    args = ["analyze", str(log), option, value, *(["--high-prob"] if high_prob else [])]
    code, out, text = run_cli(args)
    assert "Traceback" not in text
    if code == 0:  # only for a value the option takes, whether or not this run uses it
        number = float(value)
        assert math.isfinite(number) and number >= 0 and (option != "--max-radius" or number > 0)
        assert option in ("--radii", "--max-radius") or number < 1
        assert out.strip()
        return
    assert code in (1, 2), text
    last = text.strip().splitlines()[-1]
    assert option.lstrip("-").replace("-", "_") in last.replace("-", "_"), last


TRAINER_KEYS = st.sampled_from(["num_noise", "k", "beta", "gamma", "lbd", "eps", "steps", "alpha", "weight", "eta",
                                "lam", "w", "m", "noise", "warmup", "unknown"])


@FUZZ
@given(method=st.sampled_from(["consistency", "denoiser", "gaussian", "macer", "smoothadv", "smoothmix", "standard"]),
       sigma=st.one_of(st.just(0.25), SETTING), options=st.dictionaries(TRAINER_KEYS, SETTING | CLI_VALUES, max_size=3))
def test_any_training_method_options_build_it_or_are_refused_with_one_line(method, sigma, options) -> None:
    """A training method with any hyperparameters (as ``--option NAME=VALUE`` strings or Python values): built, or
    one ``TypeError``/``ValueError`` line naming the option, sigma, the noise, the method or what it needs."""
    pytest.importorskip("torch")
    from rs_plugin.adapters.plugins import make_trainer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # k: num_noise's old name
        try:
            make_trainer(method, sigma, **options)
        except (TypeError, ValueError) as err:
            named = one_line(err).split(" ")[0].rstrip(":")
            renamed = {"num_noise"} if {"k", "m"} & set(options) else set()  # old names, reported by the new one
            assert named in {"option", "sigma", "noise", "classifier", method, *options, *renamed}, str(err)
