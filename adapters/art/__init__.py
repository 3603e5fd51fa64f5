"""ART support: :class:`SmoothedEstimator` (:mod:`.estimator`), the smoothed classifier of any ART classifier as an
ART estimator; the backend through which :class:`rs_plugin.SmoothedClassifier` evaluates ART classifiers
(:mod:`.backend`); the noisy averages behind the estimator's predictions and gradients (:mod:`.averages`) and its
losses (:mod:`.losses`)."""

from .backend import ArtTorchModel, art_backend, torch_model
from .estimator import SmoothedEstimator

__all__ = ["ArtTorchModel", "SmoothedEstimator", "art_backend", "torch_model"]
