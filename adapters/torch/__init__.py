"""Torch support: random streams (:mod:`.streams`), the torch noisy-evaluation loop (:mod:`.loop`), the backend
that certifies ``nn.Module`` base classifiers (:mod:`.backend`), the differentiable soft smoothed classifier
(:mod:`.module`), its frozen-noise view for decision-based attacks (:mod:`.frozen`) and reduced precision
(:mod:`.precision`)."""

from .backend import TorchBackend, check_logits
from .checks import as_numpy, check_batch, check_labels
from .frozen import FrozenNoise
from .loop import eval_mode, module_device, noisy_batches, num_logits
from .module import SmoothedModule
from .precision import PRECISIONS, FastModel, label_agreement
from .streams import DEVICE_SAMPLERS, TorchStream

__all__ = [
    "DEVICE_SAMPLERS",
    "PRECISIONS",
    "FastModel",
    "FrozenNoise",
    "SmoothedModule",
    "TorchBackend",
    "TorchStream",
    "as_numpy",
    "check_batch",
    "check_labels",
    "check_logits",
    "eval_mode",
    "label_agreement",
    "module_device",
    "noisy_batches",
    "num_logits",
]
