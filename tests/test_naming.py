"""One name per concept on every face (docs/naming.md): the new names work, and every old name still works for
one release with a DeprecationWarning naming its replacement."""

from __future__ import annotations

import numpy as np
import pytest

from rs_plugin import SmoothedClassifier
from rs_plugin.cli import main


def halfspace(batch: np.ndarray) -> np.ndarray:
    return (batch[:, 0] > 0).astype(np.int64)


def test_counts_takes_n_and_the_old_num_warns() -> None:
    g = SmoothedClassifier(halfspace, 2, 0.5, seed=0)
    x = np.array([1.0, 0.0], dtype=np.float32)
    new = g.counts(x, 500, index=3)
    with pytest.warns(DeprecationWarning, match="num is deprecated, use n"):
        old = g.counts(x, num=500, index=3)
    np.testing.assert_array_equal(new, old)
    with pytest.raises(TypeError, match="give n, not both n and its old name num"):
        g.counts(x, 500, num=500)


def buckets(batch: np.ndarray) -> np.ndarray:
    """Ten classes by the first coordinate (width 0.4): two independent streams' counts of 200 noisy copies of
    ``(0.1, 0)`` at sigma 0.5 agree by chance with probability of order 1e-7 (two halfspace counts: about 4%)."""
    return np.clip(((batch[:, 0] + 2) * 2.5).astype(np.int64), 0, 9)


def test_seed_none_draws_a_fixed_root_from_fresh_entropy_on_every_face() -> None:
    x = np.array([0.1, 0.0], dtype=np.float32)
    g = SmoothedClassifier(buckets, 10, 0.5)
    assert g.seed is None
    assert not np.array_equal(g.counts(x, 200, index=0), SmoothedClassifier(buckets, 10, 0.5).counts(x, 200, index=0))
    np.testing.assert_array_equal(g.counts(x, 200, index=0), g.counts(x, 200, index=0))  # fixed for its life


def test_the_command_line_says_batch_size_and_the_old_batch_warns(tmp_path, capsys) -> None:
    pytest.importorskip("torch")
    common = ["certify", "--sigma", "0.25", "--n0", "20", "--n", "100", "--max-examples", "1", "--no-progress"]
    assert main([*common, "--batch-size", "64", "--out", str(tmp_path / "a.tsv")]) == 0
    with pytest.warns(DeprecationWarning, match="--batch is deprecated, use --batch-size"):
        assert main([*common, "--batch", "64", "--out", str(tmp_path / "b.tsv")]) == 0
    rows = [(tmp_path / name).read_text().splitlines()[1].split("\t")[:5] for name in ("a.tsv", "b.tsv")]
    assert rows[0] == rows[1]


def test_torch_faces_follow_the_table() -> None:
    torch = pytest.importorskip("torch")
    from rs_plugin.adapters.plugins import make_trainer
    from rs_plugin.adapters.torch import SmoothedModule
    from rs_plugin.adapters.trainers import TrainConfig
    from rs_plugin.noises import Noise

    module = SmoothedModule(torch.nn.Linear(2, 2), 0.5)
    assert isinstance(module.noise, Noise) and module.batch_size is None and module.seed is None
    assert TrainConfig(inputs_per_step=32).inputs_per_step == 32
    with pytest.warns(DeprecationWarning, match="batch_size is deprecated, use inputs_per_step"):
        assert TrainConfig(batch_size=32) == TrainConfig(inputs_per_step=32)
    for method, old in (("smoothadv", "m"), ("consistency", "m"), ("smoothmix", "m"), ("macer", "k")):
        assert make_trainer(method, 0.5, num_noise=3).config.num_noise == 3
        with pytest.warns(DeprecationWarning, match=f"{old} is deprecated, use num_noise"):
            assert make_trainer(method, 0.5, **{old: 3}).config.num_noise == 3


def test_the_art_estimator_follows_the_table(digits_test) -> None:
    pytest.importorskip("art")
    torch = pytest.importorskip("torch")
    from art.estimators.classification import PyTorchClassifier

    from rs_plugin.adapters.art import SmoothedEstimator
    from rs_plugin.noises import Noise

    network = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    classifier = PyTorchClassifier(network, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10,
                                   clip_values=(0, 1))
    estimator = SmoothedEstimator(classifier, 0.25, num_noise=8, seed=0)
    assert isinstance(estimator.noise, Noise) and estimator.get_params()["noise"] == "gaussian"
    assert estimator.batch_size is None
    x = digits_test[0][:2]
    new = estimator.certify(x, 50, progress=False)
    with pytest.warns(DeprecationWarning, match="verbose is deprecated, use progress"):
        old = SmoothedEstimator(classifier, 0.25, num_noise=8, seed=0).certify(x, 50, verbose=False)
    np.testing.assert_array_equal(new[0], old[0])


@pytest.mark.parametrize("face", ["core", "torch", "art"])
def test_complex_inputs_are_refused_on_every_face(face: str) -> None:
    x = np.array([[0.5 + 1j, 0.1]])
    if face == "core":
        with pytest.raises(ValueError, match="x must hold real numbers"):
            SmoothedClassifier(halfspace, 2, 0.5, seed=0).certify(x[0], 20, 100, 0.01)
        return
    torch = pytest.importorskip("torch")
    network = torch.nn.Linear(2, 2)
    if face == "torch":
        with pytest.raises(ValueError, match="x must hold real numbers"):
            SmoothedClassifier(network, 2, 0.5, seed=0).certify(torch.tensor(x[0]), 20, 100, 0.01)
        return
    pytest.importorskip("art")
    from art.estimators.classification import PyTorchClassifier

    from rs_plugin.adapters.art import SmoothedEstimator

    classifier = PyTorchClassifier(network, loss=torch.nn.CrossEntropyLoss(), input_shape=(2,), nb_classes=2)
    with pytest.raises(ValueError, match="x must hold real numbers"):
        SmoothedEstimator(classifier, 0.5, seed=0).predict(x)


def test_a_single_certify_that_can_only_abstain_is_refused_like_a_packed_one() -> None:
    g = SmoothedClassifier(halfspace, 2, 0.5, seed=0)
    x = np.array([1.0, 0.0], dtype=np.float32)
    for call in (lambda: g.certify(x, 10, 5, 0.001), lambda: g.certify_many([x], 10, 5, 0.001)):
        with pytest.raises(ValueError, match="cannot certify any radius"):
            call()
