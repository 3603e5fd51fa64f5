"""ART classifiers as base classifiers of :class:`rs_plugin.SmoothedClassifier`: a ``PyTorchClassifier`` whose
preprocessing runs in torch is evaluated by the torch backend on its device, any other ART classifier through its
own ``predict``. Noise is always added before the classifier's preprocessing."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier
from art.estimators.classification.classifier import ClassifierMixin
from art.estimators.estimator import BaseEstimator
from torch import nn

from rs_plugin.backends import Backend, CallableBackend

from ..torch import TorchBackend, module_device


def check_classifier(classifier: Any) -> None:
    if not (isinstance(classifier, ClassifierMixin) and isinstance(classifier, BaseEstimator)):
        raise TypeError(
            f"classifier must be an ART classifier (e.g. art.estimators.classification.PyTorchClassifier or "
            f"SklearnClassifier), got {type(classifier).__module__}.{type(classifier).__qualname__}"
        )


class ArtTorchModel(nn.Module):
    """What a ``PyTorchClassifier`` computes at predict time, as one ``nn.Module``: its torch preprocessing
    (preprocessing defences, then ``preprocessing`` mean/std), then its model. Noise added to this module's
    input is added before ART's preprocessing, and gradients flow through it."""

    def __init__(self, classifier: PyTorchClassifier) -> None:
        super().__init__()
        self.classifier = classifier
        self.model = classifier.model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for operation in self.classifier.preprocessing_operations:
            if operation.apply_predict:
                x, _ = operation.forward(x)
        return self.model(x)


def torch_model(classifier: Any) -> ArtTorchModel | None:
    """The :class:`ArtTorchModel` of a ``PyTorchClassifier``, or ``None`` for any other classifier and for one
    whose preprocessing does not run in torch or that has postprocessing defences (those go through ``predict``)."""
    if (
        not isinstance(classifier, PyTorchClassifier)
        or not classifier.all_framework_preprocessing
        or classifier.postprocessing_defences
    ):
        return None
    return ArtTorchModel(classifier)


class _CheckedShape:
    """A backend that first checks each input against the ART classifier's ``input_shape``; everything else is the
    wrapped backend's."""

    def __init__(self, backend: Backend, input_shape: tuple[int, ...]) -> None:
        self.backend = backend
        self.input_shape = tuple(input_shape)

    def prepare(self, x: Any) -> Any:
        if tuple(np.shape(x)) != self.input_shape:
            raise ValueError(
                f"x must be one input of the ART classifier's input_shape {self.input_shape} (no batch "
                f"dimension), got shape {tuple(np.shape(x))}"
            )
        return self.backend.prepare(x)

    def __getattr__(self, name: str) -> Any:
        if name == "backend":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.backend, name)


def art_backend(classifier: Any, num_classes: int, device: Any = None) -> Backend:
    """The backend for an ART classifier: :class:`~rs_plugin.adapters.torch.TorchBackend` on its
    :func:`torch_model` when it has one, else its ``predict`` on numpy batches. Noise comes before its preprocessing.

    Raises ``ValueError`` when ``num_classes`` differs from its ``nb_classes`` or ``device`` from its device.
    """
    check_classifier(classifier)
    if classifier.input_shape is None:
        raise ValueError("classifier: its input_shape is unknown (a scikit-learn model must be fitted first)")
    if num_classes != classifier.nb_classes:
        raise ValueError(
            f"num_classes={num_classes} differs from the ART classifier's nb_classes={classifier.nb_classes}"
        )
    model = torch_model(classifier)
    if model is None:
        if device is not None:
            raise ValueError(f"device={device!r}: this ART classifier runs where it is; pass device=None")
        backend: Backend = CallableBackend(classifier.predict, num_classes)
    else:
        where = module_device(model)
        if device is not None and not _same_device(torch.device(device), where):
            raise ValueError(f"device={device!r}: the PyTorchClassifier runs on {where}; create it there instead")
        backend = TorchBackend(model, num_classes)
    return _CheckedShape(backend, classifier.input_shape)


def _same_device(wanted: torch.device, actual: torch.device) -> bool:
    return wanted.type == actual.type and wanted.index in (None, actual.index)
