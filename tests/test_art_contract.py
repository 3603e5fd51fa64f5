"""The ART estimator contract that evaluation suites rely on, checked the way ART's own test suites check its
deep-learning classifiers and its randomized-smoothing estimators, for SmoothedEstimator around every kind of ART
classifier it accepts: a PyTorchClassifier (evaluated in torch), one behind ART's numpy SpatialSmoothing defence
(through ART's predict and class_gradient), a scikit-learn logistic regression (with gradients) and a random
forest (without)."""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pytest

pytest.importorskip("art")
pytest.importorskip("sklearn")
torch = pytest.importorskip("torch")

import art.config  # noqa: E402
from art.defences.detector.poison import ActivationDefence  # noqa: E402
from art.defences.preprocessor import SpatialSmoothing  # noqa: E402
from art.estimators.classification import DeepPartitionEnsemble, PyTorchClassifier, SklearnClassifier  # noqa: E402
from art.utils import to_categorical  # noqa: E402
from scipy.stats import norm  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from torch import nn  # noqa: E402

from rs_plugin.adapters.art import SmoothedEstimator, torch_model  # noqa: E402
from rs_plugin.adapters.datasets import digits_arrays  # noqa: E402
from rs_plugin.adapters.models import digits_cnn  # noqa: E402

SIGMA = 0.25
KINDS = ("torch", "torch-numpy-defence", "sklearn-logistic", "sklearn-forest")
DIFFERENTIABLE = ("torch", "torch-numpy-defence", "sklearn-logistic")


@pytest.fixture(autouse=True)
def art_data_path(tmp_path, monkeypatch):
    """ART writes a PyTorchClassifier's weights to ART_DATA_PATH whenever it is pickled or copied: a temporary one."""
    monkeypatch.setattr(art.config, "ART_DATA_PATH", str(tmp_path / "art-data"))
    return tmp_path / "art-data"


@pytest.fixture(scope="module")
def sklearn_models() -> dict[str, object]:
    x, y = digits_arrays("train")
    x = x.reshape(len(x), -1)
    return {
        "sklearn-logistic": LogisticRegression(max_iter=300).fit(x, y),
        "sklearn-forest": RandomForestClassifier(n_estimators=30, random_state=0).fit(x, y),
    }


def make_classifier(kind: str, net: nn.Module | None = None, sklearn_models: dict | None = None, optimizer=True):
    """A fresh ART classifier of ``kind`` (a torch one around ``net``, a scikit-learn one around a copy of the
    fitted model)."""
    if kind.startswith("torch"):
        defence = SpatialSmoothing(window_size=2, clip_values=(0, 1)) if kind == "torch-numpy-defence" else None
        return PyTorchClassifier(
            net, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(net.parameters()) if optimizer else None,
            input_shape=(1, 8, 8), nb_classes=10, clip_values=(0, 1), device_type="cpu", preprocessing_defences=defence,
        )
    return SklearnClassifier(copy.deepcopy(sklearn_models[kind]), clip_values=(0, 1))


@pytest.fixture(params=KINDS)
def case(request, noisy_digits_net, sklearn_models, digits_test):
    """``(kind, classifier, x, y)``: a fresh classifier of each kind and 8 test digits shaped for it."""
    kind = request.param
    x, y = (a[:8] for a in digits_test)
    classifier = make_classifier(kind, copy.deepcopy(noisy_digits_net), sklearn_models)
    return kind, classifier, (x if kind.startswith("torch") else x.reshape(len(x), -1)), y


def train_data(kind: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = digits_arrays("train")
    return (x if kind.startswith("torch") else x.reshape(len(x), -1)), to_categorical(y, 10)


def without_classifier(params: dict) -> dict:
    return {k: v for k, v in params.items() if k != "classifier"}


def test_the_kinds_take_the_paths_they_name(case):
    kind, classifier, _, _ = case
    assert (torch_model(classifier) is not None) == (kind == "torch")


def test_pickle_and_deepcopy_continue_the_same_random_streams(case):
    """Suites pickle estimators, copy them before attacks and send them to workers: a copy, seeded or not, goes on
    exactly as the original, in predict, the gradients, PREDICT and CERTIFY."""
    kind, classifier, x, y = case
    if kind.startswith("torch") and torch.cuda.is_available():
        pytest.skip("ART's PyTorchClassifier unpickles onto cuda:0 when a GPU is present, whatever its device was")

    def run(estimator: SmoothedEstimator) -> list[np.ndarray]:
        certified = estimator.certify(x[:2], 50, progress=False)
        outputs = [estimator.predict(x), estimator.predict_class(x, n=50), *certified]
        if kind in DIFFERENTIABLE:
            outputs += [estimator.loss_gradient(x[:3], y[:3]), estimator.class_gradient(x[:3], label=y[:3])]
        return outputs

    for seed in (0, None):
        original = SmoothedEstimator(classifier, SIGMA, num_noise=16, n0=20, seed=seed, output="logits")
        original.predict(x)  # the copies start from the second call on
        copies = [pickle.loads(pickle.dumps(original)), copy.deepcopy(original)]
        expected = run(original)
        for duplicate in copies:
            assert type(duplicate) is SmoothedEstimator and duplicate.classifier is not classifier
            assert without_classifier(duplicate.get_params()) == without_classifier(original.get_params())
            for got, want in zip(run(duplicate), expected, strict=True):
                np.testing.assert_array_equal(got, want)
    shallow = copy.copy(original)
    assert shallow.classifier is classifier and shallow.get_params() == original.get_params()


def test_save_writes_the_classifier_and_the_smoothing_parameters(case, tmp_path, art_data_path, noisy_digits_net):
    """save: the wrapped classifier in its framework's format plus the smoothing parameters as JSON; a classifier
    reloaded from the former and wrapped with the latter is the same smoothed classifier."""
    kind, classifier, x, _ = case
    estimator = SmoothedEstimator(classifier, SIGMA, num_noise=16, n0=50, alpha=0.01, seed=3, output="logits")
    estimator.save("smoothed", path=str(tmp_path))
    params = json.loads((tmp_path / "smoothed.smoothing.json").read_text())
    assert params == without_classifier(estimator.get_params())
    if kind.startswith("torch"):
        net = digits_cnn()
        net.load_state_dict(torch.load(tmp_path / "smoothed.model", weights_only=True))
        reloaded = make_classifier(kind, net.eval())
    else:
        with open(tmp_path / "smoothed.pickle", "rb") as file:
            reloaded = SklearnClassifier(pickle.load(file), clip_values=(0, 1))
    again, fresh = SmoothedEstimator(reloaded, **params), SmoothedEstimator(**estimator.get_params())
    np.testing.assert_array_equal(again.predict(x), fresh.predict(x))
    certified = (e.certify(x[:3], 100, progress=False) for e in (again, fresh))
    for got, want in zip(*certified, strict=True):
        np.testing.assert_array_equal(got, want)
    estimator.save("default-place")
    assert (art_data_path / "default-place.smoothing.json").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_clone_for_refitting_is_an_unfitted_copy_that_fit_trains(kind, noisy_digits_net, sklearn_models, digits_test):
    """What DeepPartitionEnsemble, shadow models and ActivationDefence call: the same smoothing parameters around
    the classifier's own refit-ready clone; fit trains it (with noise) and leaves the original alone."""
    net = copy.deepcopy(noisy_digits_net)
    estimator = SmoothedEstimator(make_classifier(kind, net, sklearn_models), SIGMA, num_noise=32, seed=0)
    weights = copy.deepcopy(net.state_dict())
    clone = estimator.clone_for_refitting()
    assert type(clone) is SmoothedEstimator and type(clone.classifier) is type(estimator.classifier)
    assert clone.classifier is not estimator.classifier
    assert without_classifier(clone.get_params()) == without_classifier(estimator.get_params())
    x_test, y_test = digits_test
    x_test = x_test[:40] if kind.startswith("torch") else x_test[:40].reshape(40, -1)
    if kind.startswith("torch"):  # the same architecture with its weights reset
        assert not torch.equal(clone.classifier.model[1].weight, net[1].weight)
    else:  # scikit-learn's clone is unfitted
        assert clone.input_shape is None and clone.smoothed is None
        with pytest.raises(ValueError, match="not fitted; call fit first"):
            clone.predict(x_test)
    clone.fit(*train_data(kind), batch_size=32, nb_epochs=4 if kind.startswith("torch") else 2)
    assert np.mean(clone.predict_class(x_test, n=100) == y_test[:40]) >= 0.5  # chance: 0.1
    for name, tensor in net.state_dict().items():
        assert torch.equal(tensor, weights[name])
    if kind.startswith("torch"):
        without_optimizer = SmoothedEstimator(make_classifier(kind, net, optimizer=False), SIGMA)
        with pytest.raises(ValueError, match="optimizer is needed"):
            without_optimizer.clone_for_refitting()


def test_layer_names_and_activations_are_the_wrapped_networks(case):
    """ART's test_get_activations: every layer by index and by name gives the same activations, here the wrapped
    network's on the inputs as given; a classifier without layers has layer_names None."""
    kind, classifier, x, _ = case
    estimator = SmoothedEstimator(classifier, SIGMA, seed=0)
    if not kind.startswith("torch"):
        assert estimator.layer_names is None
        with pytest.raises(NotImplementedError, match="has no layers"):
            estimator.get_activations(x, 0)
        return
    assert estimator.layer_names == classifier.layer_names and len(estimator.layer_names) >= 5
    for index, name in enumerate(estimator.layer_names):
        by_index = estimator.get_activations(x, index, batch_size=4)
        np.testing.assert_array_equal(by_index, estimator.get_activations(x, name, batch_size=4))
        np.testing.assert_array_equal(by_index, classifier.get_activations(x, index, batch_size=4))
    assert by_index.shape == (len(x), 10)


def test_get_params_and_set_params_round_trip(case):
    _, classifier, x, _ = case
    estimator = SmoothedEstimator(classifier, SIGMA, num_noise=16, seed=1)
    params = estimator.get_params()
    assert set(params) == set(SmoothedEstimator.estimator_params)
    assert SmoothedEstimator(**params).get_params() == params
    estimator.set_params(**params)
    assert estimator.get_params() == params
    changed = {"sigma": 0.5, "noise": "laplace", "num_noise": 8, "n0": 20, "alpha": 0.01, "batch_size": 7,
               "seed": 9, "output": "logits", "loss": "difference_logits_ratio"}
    estimator.set_params(**changed)
    assert estimator.get_params() == {**params, **changed}
    assert estimator.smoothed.sigma == 0.5 and estimator.smoothed.noise.name == "laplace"
    assert estimator.predict(x).shape == (len(x), 10)
    with pytest.raises(ValueError, match="alpha"):
        estimator.set_params(num_noise=4, alpha=2.0)
    assert estimator.get_params() == {**params, **changed}  # nothing changed
    estimator.set_params(classifier=classifier)
    assert estimator.base_output == params["base_output"]  # inferred again from the classifier
    assert repr(estimator).startswith(f"SmoothedEstimator({type(classifier).__name__}, sigma=0.5")


def test_shapes_and_gradient_conventions(case):
    """ART's test_shapes and test_class_gradient: predictions (N, nb_classes), class gradients for every class,
    one class or one class per input, loss gradients shaped as x; compute_loss's reductions agree."""
    kind, classifier, x, y = case
    estimator = SmoothedEstimator(classifier, SIGMA, num_noise=16, seed=0)
    assert estimator.nb_classes == 10 and estimator.input_shape == x.shape[1:]
    assert estimator.predict(x).shape == (len(x), 10)
    if kind not in DIFFERENTIABLE:
        for call in (lambda: estimator.loss_gradient(x, y), lambda: estimator.class_gradient(x)):
            with pytest.raises(NotImplementedError, match="has no class_gradient"):
                call()
        return
    assert estimator.class_gradient(x).shape == (len(x), 10, *x.shape[1:])
    assert estimator.class_gradient(x, label=5).shape == (len(x), 1, *x.shape[1:])
    assert estimator.class_gradient(x, label=list(y)).shape == (len(x), 1, *x.shape[1:])
    assert estimator.loss_gradient(x, to_categorical(y, 10)).shape == x.shape
    none, total = (SmoothedEstimator(**estimator.get_params()).compute_loss(x, y, reduction=r) for r in ("none", "sum"))
    assert none.shape == (len(x),) and total == pytest.approx(none.sum())


def test_a_tiny_sigma_gives_the_base_classifier(case):
    """ART's randomized-smoothing checks, at its scale 0.01: predictions are distributions whose argmax is the base
    classifier's; certified classes are classes and radii stay under what n samples can certify; the smoothed loss
    gradient points where the base classifier's does; ART's keyword calls (sampling=True, fit(x=, y=)) work."""
    kind, classifier, x, y = case
    estimator = SmoothedEstimator(classifier, 0.01, num_noise=64, seed=0)
    votes = estimator.predict(x=x)
    np.testing.assert_allclose(votes.sum(axis=1), 1, atol=1e-6)
    np.testing.assert_array_equal(votes.argmax(axis=1), classifier.predict(x).argmax(axis=1))
    predictions, radii = estimator.certify(x=x, n=250, progress=False)
    assert predictions.shape == radii.shape == (len(x),) and (predictions < 10).all()
    assert (radii <= 0.01 * norm.ppf(0.001 ** (1 / 250)) + 1e-12).all()
    if kind in DIFFERENTIABLE:
        one_hot = to_categorical(y, 10)
        smoothed, base = estimator.loss_gradient(x=x, y=one_hot, sampling=True), classifier.loss_gradient(x, one_hot)
        cosine = np.sum(smoothed * base) / (np.linalg.norm(smoothed) * np.linalg.norm(base))
        assert cosine >= 0.9, cosine
    estimator.fit(x=x, y=to_categorical(y, 10), nb_epochs=1)


def test_art_defences_that_clone_and_read_layers_accept_it(noisy_digits_net, sklearn_models, digits_test):
    """DeepPartitionEnsemble (clone_for_refitting, one clone fitted per partition) of smoothed classifiers, and
    ActivationDefence (layer_names, get_activations) on a smoothed network."""
    x_test, y_test = (a[:40] for a in digits_test)
    x, y = train_data("sklearn-logistic")
    template = SmoothedEstimator(make_classifier("sklearn-logistic", sklearn_models=sklearn_models), SIGMA,
                                 num_noise=32, seed=0)
    with pytest.warns(UserWarning, match="single classifier"):
        ensemble = DeepPartitionEnsemble(template, ensemble_size=3)
    ensemble.fit(x, y)
    accuracy = np.mean(ensemble.predict(x_test.reshape(40, -1)).argmax(axis=1) == y_test)
    assert accuracy >= 0.85 and all(member.smoothed is not None for member in ensemble.classifiers)
    net_estimator = SmoothedEstimator(make_classifier("torch", copy.deepcopy(noisy_digits_net)), SIGMA, seed=0)
    x, y = train_data("torch")
    report, is_clean = ActivationDefence(net_estimator, x[:200], y[:200]).detect_poison(nb_clusters=2, nb_dims=5)
    assert len(is_clean) == 200 and set(is_clean) <= {0, 1} and isinstance(report, dict)
