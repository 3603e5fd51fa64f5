""":class:`SmoothedEstimator`: the smoothed classifier of any ART classifier as an ART estimator.

Noise is always added to the raw input, before the classifier's own preprocessing (ART's ``preprocessing``
mean/std and its preprocessing defences): in ``predict``, the gradients, ``certify`` and ``fit`` alike.
"""

from __future__ import annotations

import json
import numbers
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from art import config
from art.estimators.classification.classifier import ClassGradientsMixin, ClassifierMixin
from art.estimators.classification.scikitlearn import ScikitlearnLogisticRegression
from art.estimators.estimator import BaseEstimator, LossGradientsMixin, NeuralNetworkMixin

from rs_plugin import checks, engine
from rs_plugin.atomic import write_atomically
from rs_plugin.backends import check_scores
from rs_plugin.checks import positive_int, probability
from rs_plugin.checks import seed as check_seed
from rs_plugin.core import SmoothedClassifier
from rs_plugin.deprecation import renamed
from rs_plugin.engine import NumpyStream
from rs_plugin.noises import Noise
from rs_plugin.plugins import make_noise
from rs_plugin.seeding import fresh_entropy, stream_seed

from ..torch import module_device
from .averages import ArtSoftmax, TorchSoftmax
from .backend import check_classifier, torch_model
from .losses import dlr

_TINY = 1e-20  # floor of an averaged probability before its logarithm or a division by it
_OUTPUTS, _LOSSES = ("votes", "logits"), ("cross_entropy", "difference_logits_ratio")
_BASE_OUTPUTS = ("logits", "probabilities")



def _base_output(classifier: Any, base_output: str | None) -> str:
    """``"probabilities"`` or ``"logits"``: what ``classifier.predict`` returns (inferred from one input when
    ``base_output`` is None: probabilities when its scores are non-negative and sum to 1)."""
    if base_output is not None:
        return _choice("base_output", base_output, _BASE_OUTPUTS)
    shape = tuple(classifier.input_shape)
    if classifier.clip_values is None:
        probe = np.zeros((1, *shape), dtype=np.float32)
    else:
        low, high = (np.broadcast_to(np.asarray(v, dtype=np.float32), shape) for v in classifier.clip_values)
        probe = ((low + high) / 2)[None]
    scores = np.asarray(classifier.predict(probe), dtype=np.float64)
    check_scores(scores.shape, 1, classifier.nb_classes)
    is_distribution = (scores >= 0).all() and (scores <= 1).all() and np.allclose(scores.sum(axis=1), 1, atol=1e-3)
    return "probabilities" if is_distribution else "logits"


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def _per_input(values: np.ndarray, ndim: int) -> np.ndarray:
    """``values`` (one per input, or per input and class) shaped to broadcast against gradients of ``ndim`` axes."""
    return values.reshape(values.shape + (1,) * (ndim - values.ndim))


class SmoothedEstimator(ClassGradientsMixin, ClassifierMixin, LossGradientsMixin, NeuralNetworkMixin, BaseEstimator):
    """The smoothed classifier ``g`` of an ART classifier ``f``, as an ART estimator that ART's attacks, metrics and
    defences accept: a classifier with class and loss gradients and, like ART's own randomized smoothing, a neural
    network whatever ``f`` is (``channels_first``, :attr:`layer_names` and :meth:`get_activations` are ``f``'s).

    ``sigma`` and ``noise`` define the smoothing noise, added to raw inputs (before ``f``'s preprocessing).
    ``num_noise`` noisy copies of each input serve :meth:`predict`, the gradients and :meth:`compute_loss`;
    ``n0`` and ``alpha`` are CERTIFY's selection samples and failure probability (:meth:`certify`,
    :meth:`predict_class`); at most ``batch_size`` noisy copies are evaluated at a time. With an integer
    ``seed`` results are reproducible; every call draws fresh noise.

    ``output`` is what :meth:`predict` returns: ``"votes"`` (vote frequencies, as ART's randomized smoothing) or
    ``"logits"`` (the log of the noise-averaged softmax: the logits of Salman et al.'s soft smoothed classifier, which
    AutoPGD and AutoAttack require). ``loss`` is what :meth:`compute_loss` and :meth:`loss_gradient` measure on those
    logits: ``"cross_entropy"`` (SmoothAdv's objective) or ``"difference_logits_ratio"`` (AutoAttack's DLR).
    ``base_output`` says whether ``f.predict`` returns ``"logits"`` (or log-probabilities) or ``"probabilities"``;
    None infers it.

    ``f`` may be unfitted (as :meth:`clone_for_refitting` makes it): predictions, gradients and certificates then
    raise until :meth:`fit` has fitted it. ``nb_classes``, ``input_shape`` and ``clip_values`` are ``f``'s;
    :attr:`smoothed` is the underlying :class:`~rs_plugin.SmoothedClassifier` (None while ``f`` is unfitted).
    Pickling and ``copy.deepcopy`` keep the seed and the position in the random streams, so a copy predicts exactly
    as the original would.
    """

    estimator_params: ClassVar[list[str]] = [
        "classifier", "sigma", "noise", "num_noise", "n0", "alpha", "batch_size", "seed", "output", "loss",
        "base_output",
    ]

    def __init__(
        self,
        classifier: Any,
        sigma: float,
        *,
        noise: str | Noise = "gaussian",
        num_noise: int = 100,
        n0: int = 100,
        alpha: float = 0.001,
        batch_size: int | None = None,
        seed: int | None = None,
        output: str = "votes",
        loss: str = "cross_entropy",
        base_output: str | None = None,
    ) -> None:
        check_classifier(classifier)
        self._noise, self._noise_argument = make_noise(noise, sigma), noise
        self.num_noise = positive_int("num_noise", num_noise)
        self.n0 = positive_int("n0", n0)
        self.alpha = probability("alpha", alpha)
        self._batch_size = None if batch_size is None else positive_int("batch_size", batch_size)
        self._seed = check_seed("seed", seed)
        self.output = _choice("output", output, _OUTPUTS)
        self.loss = _choice("loss", loss, _LOSSES)
        self.base_output = None if base_output is None else _choice("base_output", base_output, _BASE_OUTPUTS)
        super().__init__(
            model=classifier.model,
            clip_values=classifier.clip_values,
            preprocessing=None,
            channels_first=getattr(classifier, "channels_first", False),
        )
        self._classifier = classifier
        self._root = fresh_entropy() if seed is None else seed
        self._calls = 0
        self._build()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({type(self.classifier).__name__}, sigma={self.sigma}, noise={self.noise!r}, "
            f"num_noise={self.num_noise}, n0={self.n0}, alpha={self.alpha}, seed={self.seed}, "
            f"output={self.output!r}, loss={self.loss!r})"
        )

    classifier = property(lambda self: self._classifier, doc="The wrapped ART classifier.")
    sigma = property(lambda self: self._noise.sigma, doc="The noise's standard deviation.")
    noise = property(lambda self: self._noise, doc="The noise (a :class:`~rs_plugin.noises.Noise`).")
    batch_size = property(lambda self: self._batch_size, doc="Noisy copies per forward pass (None: measured).")
    seed = property(lambda self: self._seed, doc="The seed (None: fresh entropy).")
    nb_classes = property(lambda self: self.classifier.nb_classes, doc="The wrapped classifier's.")
    input_shape = property(
        lambda self: None if self.classifier.input_shape is None else tuple(self.classifier.input_shape),
        doc="The wrapped classifier's (None while it is unfitted).",
    )

    def _build(self) -> None:
        """Derive the core smoothed classifier and the noisy evaluation of ``f`` from ``f``, once it is fitted."""
        classifier = self.classifier
        if classifier.input_shape is None:
            self.smoothed, self._softmax = None, None
            return
        if self.loss == "difference_logits_ratio" and classifier.nb_classes < 3:
            raise ValueError(f"loss: 'difference_logits_ratio' needs at least 3 classes, got {classifier.nb_classes}")
        self.base_output = _base_output(classifier, self.base_output)
        self.smoothed = SmoothedClassifier(
            classifier, classifier.nb_classes, self.sigma, noise=self._noise, batch_size=self.batch_size,
            seed=self._root
        )
        probabilities = self.base_output == "probabilities"
        model = torch_model(classifier)
        if model is not None:
            self._softmax: Any = TorchSoftmax(model, classifier.nb_classes, self._noise, probabilities)
        else:
            # ART's logistic regression differentiates log-probabilities (more than two classes) or
            # probabilities (two), whatever its predict returns.
            is_regression = isinstance(classifier, ScikitlearnLogisticRegression)
            logits = classifier.nb_classes > 2 if is_regression else not probabilities
            self._softmax = ArtSoftmax(classifier, classifier.nb_classes, self._noise, probabilities, logits)

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments (ART's contract): ``noise`` as given (a spec string, or a noise object)."""
        return {**{key: getattr(self, key) for key in self.estimator_params}, "noise": self._noise_argument}

    def __getstate__(self) -> dict[str, Any]:
        """What pickling and ``copy.deepcopy`` keep: the constructor arguments (the wrapped classifier pickles as ART
        defines) and the position in the random streams; everything else is rebuilt from them."""
        return {"params": self.get_params(), "root": self._root, "calls": self._calls}

    def __setstate__(self, state: dict[str, Any]) -> None:
        SmoothedEstimator.__init__(self, **state["params"])
        self._root, self._calls = state["root"], state["calls"]
        self._build()

    def set_params(self, **kwargs: Any) -> None:
        """Change constructor arguments, validated as by the constructor; nothing changes if one is invalid. The
        estimator is rebuilt, its random streams restarting as a fresh estimator's."""
        unknown = sorted(set(kwargs) - set(self.estimator_params))
        if unknown:
            raise ValueError(f"unknown parameters {unknown}; known: {self.estimator_params}")
        params = {**self.get_params(), **kwargs}
        if "classifier" in kwargs and "base_output" not in kwargs:
            params["base_output"] = None
        self.__dict__.update(SmoothedEstimator(**params).__dict__)

    def clone_for_refitting(self) -> SmoothedEstimator:
        """An unfitted copy for ART's refitting defences and attacks: the same parameters (seed included) around the
        wrapped classifier's own ``clone_for_refitting()`` (whose errors, e.g. a PyTorchClassifier's without an
        optimizer, propagate). Fit it with :meth:`fit`."""
        return SmoothedEstimator(**{**self.get_params(), "classifier": self.classifier.clone_for_refitting()})

    def save(self, filename: str, path: str | None = None) -> None:
        """Save ``f`` with its own ``save`` (its framework's format: ``<filename>.model`` for a PyTorchClassifier,
        ``<filename>.pickle`` for an SklearnClassifier) and, beside it, ``<filename>.smoothing.json``: every
        :meth:`get_params` entry but ``classifier``. Both go to ``path`` (default ART's ``ART_DATA_PATH``).
        ``SmoothedEstimator(f_reloaded, **json.load(file))`` is then the same smoothed classifier."""
        self.classifier.save(filename, path)
        target = Path(config.ART_DATA_PATH if path is None else path, f"{filename}.smoothing.json")
        text = json.dumps({k: v for k, v in self.get_params().items() if k != "classifier"}, indent=2)
        write_atomically(target, lambda partial: Path(partial).write_text(text))

    @property
    def layer_names(self) -> list[str] | None:
        """The wrapped network's layer names (None when ``f`` has none, e.g. a scikit-learn model): ``g`` has no
        layers of its own; ART's randomized smoothing answers the same."""
        return getattr(self.classifier, "layer_names", None)

    def get_activations(self, x: np.ndarray, layer: int | str, batch_size: int = 128, framework: bool = False) -> Any:
        """The wrapped network's activations at ``layer`` (an index into :attr:`layer_names`, or a name) on the
        inputs ``x`` as given, without noise, as ART's randomized smoothing answers; ``NotImplementedError`` when
        ``f`` is not a neural network."""
        if not isinstance(self.classifier, NeuralNetworkMixin):
            raise NotImplementedError(f"the wrapped {type(self.classifier).__name__} has no layers")
        return self.classifier.get_activations(x, layer, batch_size=batch_size, framework=framework)

    def predict(self, x: np.ndarray, batch_size: int | None = None, **kwargs: Any) -> np.ndarray:
        """``(N, nb_classes)`` over ``num_noise`` noisy copies of each input. ``output="votes"``: the fraction of
        copies ``f`` assigns to each class (rows sum to 1; the argmax estimates g's class, and :meth:`predict_class`
        adds PREDICT's abstention). ``output="logits"``: the log of ``f``'s softmax averaged over the copies (float32,
        floored at log 1e-20). ART's ``batch_size`` and other arguments are ignored."""
        probs, votes, _ = self._average(self._inputs(x), None, gradient=False)
        return votes if self.output == "votes" else np.log(np.maximum(probs, _TINY)).astype(np.float32)

    def predict_class(self, x: np.ndarray, n: int | None = None, alpha: float | None = None) -> np.ndarray:
        """PREDICT of Cohen et al. on each input with ``n`` samples (default ``num_noise``) at level ``alpha``
        (default the estimator's): g's class, correct with probability at least ``1 - alpha``, or
        :data:`~rs_plugin.ABSTAIN` (-1). Example ``i`` draws the noise of index ``i``."""
        x = self._inputs(x)
        n = self.num_noise if n is None else n
        return self.smoothed.predict_many(x, n, self.alpha if alpha is None else alpha, progress=False)

    def certify(
        self, x: np.ndarray, n: int, batch_size: int | None = None, *, smoothing: str = "hard",
        progress: bool | None = None, verbose: bool | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """CERTIFY on each input (``n0`` selection samples, ``n`` estimation samples, level ``alpha``), with the
        calling convention of ART's ``RandomizedSmoothing.certify``: ``(predictions, radii)``, ABSTAIN (-1)
        with radius 0. Each radius (in the noise's norm) holds with probability at least ``1 - alpha``.
        ``batch_size`` overrides the estimator's for this call; ``smoothing="soft"`` certifies the soft smoothed
        classifier (the one ``output="logits"`` predicts; :meth:`rs_plugin.SmoothedClassifier.certify`); ``progress``
        shows a progress bar (``verbose`` is its deprecated name)."""
        progress = renamed("SmoothedEstimator.certify", "progress", progress, "verbose", verbose) is not False
        x = self._inputs(x)
        default = self.smoothed.batch_size
        self.smoothed.batch_size = default if batch_size is None else positive_int("batch_size", batch_size)
        try:
            certificates = self.smoothed.certify_many(x, self.n0, n, self.alpha, smoothing=smoothing, progress=progress)
        finally:
            self.smoothed.batch_size = default
        predictions = np.array([c.prediction for c in certificates], dtype=np.int64)
        return predictions, np.array([c.radius for c in certificates], dtype=np.float64)

    def loss_gradient(self, x: np.ndarray, y: np.ndarray, **kwargs: Any) -> np.ndarray:
        """Gradient in ``x`` of :meth:`compute_loss` (labels ``y`` as indices or one-hot) over ``num_noise`` fresh
        noise draws: for the cross-entropy, of ``-log(mean_k softmax(f(x + noise_k))_y)``. Same shape as ``x``."""
        x = self._inputs(x)
        labels = self._labels(y, len(x))
        if self.loss == "cross_entropy":
            probs, _, grads = self._average(x, labels, gradient=True)
            chosen = np.maximum(probs[np.arange(len(x)), labels], _TINY)
            return (-grads / _per_input(chosen, grads.ndim)).astype(np.float32)
        probs, _, jacobian = self._average(x, None, gradient=True)
        probs = np.maximum(probs.astype(np.float64), _TINY)
        slope = dlr(np.log(probs), labels)[1] / probs  # d loss / d p = d loss / d log p divided by p
        return np.einsum("nk,nk...->n...", slope, jacobian).astype(np.float32)

    def class_gradient(
        self, x: np.ndarray, label: int | list[int] | np.ndarray | None = None, **kwargs: Any
    ) -> np.ndarray:
        """Gradients in ``x`` of the noise-averaged softmax ``mean_k softmax(f(x + noise_k))_c`` (``num_noise``
        fresh draws) with ``output="votes"`` (the differentiable counterpart of the vote frequencies), of its log
        with ``output="logits"`` (what :meth:`predict` returns): for every class ``(N, nb_classes, *input_shape)``,
        or for ``label`` (one class, or one per input) ``(N, 1, *input_shape)``."""
        x = self._inputs(x)
        labels = None if label is None else self._class_labels(label, len(x))
        probs, _, grads = self._average(x, labels, gradient=True)
        if self.output == "logits":
            chosen = probs if labels is None else probs[np.arange(len(x)), labels]
            grads = (grads / _per_input(np.maximum(chosen, _TINY), grads.ndim)).astype(np.float32)
        return grads if labels is None else grads[:, None]

    def compute_loss(self, x: np.ndarray, y: np.ndarray, reduction: str = "none", **kwargs: Any) -> np.ndarray:
        """The loss of each input on the logits ``log(mean_k softmax(f(x + noise_k)))`` (``loss``: the cross-entropy
        ``-log(mean_k softmax(f(x + noise_k))_y)`` or the DLR), ``reduction`` ``"none"``, ``"mean"`` or ``"sum"``: the
        objective :meth:`loss_gradient` differentiates."""
        if reduction not in ("none", "mean", "sum"):
            raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
        x = self._inputs(x)
        labels = self._labels(y, len(x))
        logits = np.log(np.maximum(self._average(x, labels, gradient=False)[0].astype(np.float64), _TINY))
        loss = -logits[np.arange(len(x)), labels] if self.loss == "cross_entropy" else dlr(logits, labels)[0]
        return loss if reduction == "none" else getattr(np, reduction)(loss)

    def fit(
        self, x: np.ndarray, y: np.ndarray, batch_size: int = 128, nb_epochs: int = 10, method: str = "gaussian",
        method_options: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:
        """Train ``f`` with noise augmentation, the noise added to raw inputs (before ``f``'s preprocessing) as
        in :meth:`predict` and :meth:`certify`. A neural network trains ``nb_epochs`` epochs, each on a fresh
        noisy copy of ``x``; another classifier (refitted from scratch by each ``fit``) fits once on ``nb_epochs``
        noisy copies. Other keyword arguments go to ``f.fit``. An unfitted ``f`` is usable afterwards.

        Any other ``method`` of :func:`rs_plugin.adapters.plugins.trainers` (``smoothadv``, ``consistency``, ``macer``,
        ``smoothmix``, ...; hyperparameters in ``method_options``) trains a ``PyTorchClassifier``'s model with its
        own optimizer in rs-plugin's training loop, at this estimator's noise and a seed drawn from its own."""
        x, y = self._inputs(x, fitting=True), np.asarray(y)
        nb_epochs = positive_int("nb_epochs", nb_epochs)
        if len(y) != len(x):
            raise ValueError(f"y has {len(y)} labels for {len(x)} inputs")
        if method != "gaussian":
            from ..plugins import make_trainer
            from ..trainers import TrainConfig, fit

            model = torch_model(self.classifier)
            if model is None or self.classifier.optimizer is None:
                raise ValueError(f"method: {method!r} trains a PyTorchClassifier with an optimizer (and its "
                                 "preprocessing in torch); use method='gaussian' for this classifier")
            trainer = make_trainer(method, self.sigma, noise=self._noise, **(method_options or {}))
            device = module_device(model)
            data = (torch.from_numpy(x).to(device), torch.from_numpy(self._labels(y, len(x))).to(device))
            config = TrainConfig(nb_epochs, positive_int("batch_size", batch_size), seed=self._next_seed())
            fit(trainer, model, data, config, optimizer=self.classifier.optimizer)
            return
        stream = NumpyStream(self._noise, self._next_seed())

        def noisy(copies: int) -> np.ndarray:
            """``copies`` noisy copies of ``x`` one after the other, from the engine's numpy loop."""
            batches = (next(engine.noisy_batches(x, [1] * len(x), stream, len(x)))[0] for _ in range(copies))
            return np.concatenate(list(batches))

        if isinstance(self.classifier, NeuralNetworkMixin):
            for _ in range(nb_epochs):
                self.classifier.fit(noisy(1), y, batch_size=batch_size, nb_epochs=1, **kwargs)
        else:
            self.classifier.fit(noisy(nb_epochs), np.concatenate([y] * nb_epochs), **kwargs)
        self._build()

    def _next_seed(self) -> int:
        """The seed of the next call's noise: ``stream_seed(seed, "estimator", call)``."""
        self._calls += 1
        return stream_seed(self._root, "estimator", self._calls - 1)

    def _average(self, x: np.ndarray, labels: np.ndarray | None, gradient: bool) -> tuple[np.ndarray, ...]:
        """Averaged softmax, vote frequencies and (``gradient``) gradients, over ``num_noise`` fresh draws (over every
        copy once for a deterministic enumeration: derandomized smoothing's exact votes)."""
        if gradient and not self._noise.additive:
            raise ValueError(f"noise: the {self._noise.name} randomization has no gradient in the input; "
                             "gradient-based attacks need an additive noise (attack it with a black-box attack)")
        if gradient and not isinstance(self.classifier, ClassGradientsMixin):
            raise NotImplementedError(
                f"the wrapped {type(self.classifier).__name__} has no class_gradient, so the smoothed classifier has "
                "no gradients: attack it with a black-box attack (e.g. HopSkipJump)"
            )
        if not len(x):  # an empty batch: empty answers of the right shapes, as numpy and ART's class_gradient give
            batch_size = 1
        else:
            batch_size = self.batch_size or self.smoothed.batch_size_for(self.smoothed.backend.prepare(x[0]))
        copies = self._noise.enumerated(tuple(x.shape[1:])) or self.num_noise
        return self._softmax.average(x, copies, self._next_seed(), batch_size, labels, gradient)

    def _inputs(self, x: Any, *, fitting: bool = False) -> np.ndarray:
        x = checks.float32_array(x, "a numeric batch")
        shape = self.input_shape
        if shape is None and not fitting:
            raise ValueError(f"classifier: the wrapped {type(self.classifier).__name__} is not fitted; call fit first")
        if x.ndim < 2 or (shape is not None and x.shape[1:] != shape):
            expected = "(N, *features)" if shape is None else f"(N, {', '.join(map(str, shape))})"
            raise ValueError(f"x must be a batch of shape {expected}, got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError(f"x contains NaN or infinite values (shape {x.shape})")
        if self.clip_values is not None:
            low, high = float(np.min(self.clip_values[0])), float(np.max(self.clip_values[1]))
            slack = 0.25 * (high - low)  # attacks and finite differences may step a little outside
            if x.size and (x.min() < low - slack or x.max() > high + slack):
                raise ValueError(
                    f"x has values in [{x.min():g}, {x.max():g}], outside the classifier's clip_values "
                    f"[{low:g}, {high:g}]: scale x to that range (sigma={self.sigma} is measured in it)"
                )
        return x

    def _labels(self, y: Any, n: int) -> np.ndarray:
        y = np.asarray(y)
        if y.shape == (n, self.nb_classes):
            y = y.argmax(axis=1)
        elif y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"y must be {n} class indices or ({n}, {self.nb_classes}) one-hot rows, got {y.shape}")
        return self._class_labels(y, n)

    def _class_labels(self, label: Any, n: int) -> np.ndarray:
        labels = np.full(n, label) if isinstance(label, numbers.Integral) else label
        return checks.labels("label", labels, n, self.nb_classes)
