"""Every bad input gets an error naming the argument and the problem, before any work is done."""

from __future__ import annotations

import numpy as np
import pytest

from rs_plugin import SmoothedClassifier


def zeros(batch: np.ndarray) -> np.ndarray:
    return np.zeros(len(batch), dtype=np.int64)


X = np.zeros((1, 4, 4), dtype=np.float32)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sigma": 0.0}, ValueError, "sigma must be a positive finite number, got 0.0"),
        ({"sigma": -1}, ValueError, "sigma must be a positive finite number"),
        ({"sigma": float("nan")}, ValueError, "sigma must be a positive finite number"),
        ({"sigma": float("inf")}, ValueError, "sigma must be a positive finite number"),
        ({"sigma": "0.5"}, TypeError, "sigma must be a number"),
        ({"num_classes": 1}, ValueError, "num_classes must be at least 2, got 1"),
        ({"num_classes": 2.5}, TypeError, "num_classes must be an int"),
        ({"noise": "cauchy"}, ValueError, "unknown noise 'cauchy'; known noises: ablation, blocks, columns"),
        ({"batch_size": 0}, ValueError, "batch_size must be at least 1"),
        ({"seed": -3}, ValueError, "seed must be None or a non-negative int"),
    ],
)
def test_constructor_rejects(kwargs: dict, error: type, match: str) -> None:
    args = {"base": zeros, "num_classes": 3, "sigma": 0.5} | kwargs
    with pytest.raises(error, match=match):
        SmoothedClassifier(**args)


def test_a_base_no_plugin_accepts_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"base: no plugin can evaluate a builtins\.str"):
        SmoothedClassifier("resnet50.pt", 10, 0.5)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda g: g.certify(X, 0, 100, 0.01), ValueError, "n0 must be at least 1, got 0"),
        (lambda g: g.certify(X, 10, -5, 0.01), ValueError, "n must be at least 1, got -5"),
        (lambda g: g.certify(X, 10, 100.0, 0.01), TypeError, "n must be an int"),
        (lambda g: g.predict(X, 0, 0.01), ValueError, "n must be at least 1"),
        (lambda g: g.certify(X, 10, 100, 0.0), ValueError, "alpha must lie strictly between 0 and 1, got 0.0"),
        (lambda g: g.certify(X, 10, 100, 1.0), ValueError, "alpha must lie strictly between 0 and 1"),
        (lambda g: g.predict(X, 10, -0.1), ValueError, "alpha must lie strictly between 0 and 1"),
        (lambda g: g.certify(X, 10, 100, 0.01, target_radius=-1), ValueError, "target_radius must be"),
        (lambda g: g.certify(X, 10, 100, 0.01, target_radius=[]), ValueError, "target_radius must be"),
        (lambda g: g.certify(X, 10, 100, 0.01, index=-1), ValueError, "index must be None or a non-negative"),
        (lambda g: g.certify(np.full_like(X, np.nan), 10, 100, 0.01), ValueError, "x contains NaN or infinite"),
        (lambda g: g.predict(np.full_like(X, np.inf), 10, 0.01), ValueError, "x contains NaN or infinite"),
        (lambda g: g.predict(np.float32(1.0), 10, 0.01), ValueError, "x must be one input"),
        (lambda g: g.certify(X[:, :0], 10, 100, 0.01), ValueError, r"^x holds no values \(shape \(1, 0, 4\)\)"),
        (lambda g: g.predict_many([X[:0]], 100, 0.01), ValueError, r"^x holds no values \(shape \(0, 4, 4\)\)"),
        (lambda g: g.certify(X, 10, 7, 0.01, target_radius=0.1), ValueError, r"n=7 .*betting.*use n >= 8$"),
        (lambda g: g.certify_many([X, X], 10, 100, 0.01, indices=[0]), ValueError, "indices has 1 entries"),
    ],
)
def test_calls_reject_before_sampling(call, error: type, match: str) -> None:
    evaluated: list[int] = []

    def base(batch: np.ndarray) -> np.ndarray:
        evaluated.append(len(batch))
        return np.zeros(len(batch), dtype=np.int64)

    g = SmoothedClassifier(base, 3, 0.5, seed=0)
    with pytest.raises(error, match=match):
        call(g)
    assert evaluated == [] and g._calls == 0  # nothing half-done: no sample drawn, no stream used


def shaped_for(shape: tuple[int, ...]):
    """A base that, like a network, fails on inputs of another shape."""

    def base(batch: np.ndarray) -> np.ndarray:
        return batch.reshape(len(batch), *shape).sum(axis=(1, 2)).astype(np.int64) % 2

    return base


def test_x_of_the_wrong_shape_names_x_and_the_shapes() -> None:
    g = SmoothedClassifier(shaped_for((4, 4)), 2, 0.5, batch_size=8)
    with pytest.raises(ValueError, match=r"raised \w+ on a batch of noisy inputs of shape \(8, 3, 3\)"):
        g.predict(np.zeros((3, 3), np.float32), 20, 0.01)


@pytest.mark.parametrize(
    ("output", "match"),
    [
        (lambda b: np.full(len(b), 3), r"labels outside \[0, num_classes=3\): \[3\]"),
        (lambda b: np.full(len(b), -1), r"labels outside \[0, num_classes=3\): \[-1\]"),
        (lambda b: np.zeros(len(b) + 1, dtype=np.int64), "returned 11 labels for a batch of 10"),
        (lambda b: np.zeros((len(b), 4)), r"scores of shape \(10, 4\) for a batch of 10; expected \(10, num_cl"),
        (lambda b: np.zeros(len(b)), "labels of dtype float64; expected integer class labels"),
        (lambda b: np.zeros((len(b), 3, 1)), r"output of shape \(10, 3, 1\)"),
    ],
)
def test_bad_base_outputs_are_reported(output, match: str) -> None:
    g = SmoothedClassifier(output, 3, 0.5, batch_size=10)
    with pytest.raises(ValueError, match=match):
        g.certify(X, 10, 10, 0.01)
