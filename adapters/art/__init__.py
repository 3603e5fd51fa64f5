"""ART support: :class:`SmoothedEstimator` (:mod:`.estimator`), the smoothed classifier of any ART classifier as an
ART estimator; the backend through which :class:`rs_plugin.SmoothedClassifier` evaluates ART classifiers
(:mod:`.backend`); the noisy averages behind the estimator's predictions and gradients (:mod:`.averages`) and its
losses (:mod:`.losses`); :func:`soft_smoothed_classifier` (:mod:`.soft`), the soft smoothed classifier of a torch model
as a genuine ART ``PyTorchClassifier``, for ART's code paths that accept only its own classifiers (AutoAttack's
defaults)."""

from .backend import ArtTorchModel, art_backend, torch_model
from .estimator import SmoothedEstimator
from .soft import smoothed_module, soft_smoothed_classifier

__all__ = [
    "ArtTorchModel", "SmoothedEstimator", "art_backend", "smoothed_module", "soft_smoothed_classifier", "torch_model"
]
