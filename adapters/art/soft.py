"""The soft smoothed classifier of a torch model as a genuine ART ``PyTorchClassifier``, so that ART's own code paths
for its PyTorch classifiers (AutoPGD's ``loss_type`` losses, AutoAttack's default attacks) attack the smoothed
classifier rather than the base network."""

from __future__ import annotations

import math

import torch
from art.estimators.classification import PyTorchClassifier
from torch import nn

from rs_plugin.checks import positive_int

from ..torch import SmoothedModule, module_device
from .backend import torch_model


class _ArtSmoothedModule(SmoothedModule):
    """:class:`SmoothedModule` as ART's ``PyTorchClassifier`` expects its network to behave on non-finite inputs: a
    row with NaN or infinite values gives NaN log-probabilities, as a plain network's logits would, where
    :class:`SmoothedModule` raises ``ValueError``. ART 1.20.1's l2 Square attack (one of AutoAttack's defaults) sends
    NaN rows on inputs under 10 pixels wide (its first step divides zero by zero) and discards them on their NaN
    scores. Every finite row is evaluated exactly as :class:`SmoothedModule` evaluates it (the same noise for the same
    position and noise seed)."""

    def forward(self, x: torch.Tensor, noise_seed: int | None = None) -> torch.Tensor:
        if not (isinstance(x, torch.Tensor) and x.is_floating_point() and x.dim() > 1 and len(x)):
            return super().forward(x, noise_seed)
        bad = ~torch.isfinite(x.detach().flatten(1)).all(1)
        if not bad.any():
            return super().forward(x, noise_seed)
        rows = bad.view(-1, *[1] * (x.dim() - 1))
        log_probs = super().forward(torch.where(rows, torch.zeros_like(x), x), noise_seed)
        return log_probs.masked_fill(bad[:, None], math.nan)


def soft_smoothed_classifier(
    model: nn.Module | PyTorchClassifier,
    sigma: float,
    *,
    num_noise: int = 32,
    noise: str = "gaussian",
    batch_size: int | None = None,
    seed: int | None = None,
    input_shape: tuple[int, ...] | None = None,
    nb_classes: int | None = None,
    clip_values: tuple[float, float] | None = (0.0, 1.0),
) -> PyTorchClassifier:
    """A ``PyTorchClassifier`` whose ``model`` is :class:`~rs_plugin.adapters.torch.SmoothedModule` ``(base, sigma,
    num_noise=..., noise=..., batch_size=..., seed=...)``: its ``predict`` returns the soft smoothed classifier's
    log-probabilities ``log(mean_k softmax(base(x + noise_k)))`` (its logits, fresh noise at every call), and its
    ``loss`` is the cross-entropy of those, so ``loss_gradient`` is the gradient of the SmoothAdv objective and the
    cross-entropy and DLR losses that ART builds for its own ``PyTorchClassifier`` (AutoPGD's ``loss_type``, and so
    AutoAttack's default attacks, which rebuild a ``PyTorchClassifier`` around ``model``) apply to the smoothed
    classifier, never to the base network.

    ``model`` is a torch module taking inputs in ``clip_values`` (normalisation inside) and returning logits, with
    ``input_shape`` and ``nb_classes`` given; or a ``PyTorchClassifier``, whose torch preprocessing and network
    (:func:`~rs_plugin.adapters.art.torch_model`) become the base, and whose ``input_shape``, ``nb_classes`` and
    ``clip_values`` are taken (noise is added before its preprocessing; the returned classifier has none). It runs
    on the base's device. Pickling and ``copy.deepcopy`` follow ART's ``PyTorchClassifier``: the copy keeps the seed
    and the position in the random streams of its :class:`SmoothedModule`.

    Its predictions are the soft classifier's, not PREDICT's: judge an attack with
    :meth:`rs_plugin.SmoothedClassifier.predict_many` (PREDICT, which may abstain) on the base network.
    """
    if isinstance(model, PyTorchClassifier):
        base = torch_model(model)
        if base is None:
            raise ValueError(
                "model: this PyTorchClassifier's preprocessing does not run in torch or it has postprocessing "
                "defences; pass its torch network (with normalisation inside) instead"
            )
        given = {"input_shape": input_shape, "nb_classes": nb_classes}
        clashing = [name for name, value in given.items() if value is not None]
        if clashing:
            raise ValueError(f"{clashing[0]}: taken from the PyTorchClassifier given as model; leave it None")
        input_shape, nb_classes, clip_values = tuple(model.input_shape), model.nb_classes, model.clip_values
    elif isinstance(model, nn.Module):
        base = model
        if input_shape is None or not all(isinstance(d, int) and d > 0 for d in input_shape):
            raise ValueError(f"input_shape must be the shape of one input (no batch dimension), got {input_shape!r}")
        nb_classes = positive_int("nb_classes", nb_classes)
        input_shape = tuple(input_shape)
    else:
        raise TypeError(
            f"model must be a torch.nn.Module returning logits or an ART PyTorchClassifier, got {type(model).__name__}"
        )
    smoothed = _ArtSmoothedModule(base, sigma, num_noise=num_noise, noise=noise, batch_size=batch_size, seed=seed)
    device = module_device(base)
    return PyTorchClassifier(
        model=smoothed,
        loss=nn.CrossEntropyLoss(),
        input_shape=input_shape,
        nb_classes=nb_classes,
        clip_values=clip_values,
        channels_first=True,
        device_type="cpu" if device.type == "cpu" else "gpu",
    )


def smoothed_module(classifier: PyTorchClassifier) -> SmoothedModule:
    """The :class:`SmoothedModule` of a classifier made by :func:`soft_smoothed_classifier` (``ValueError`` for any
    other)."""
    module = getattr(classifier, "model", None)
    if not isinstance(module, SmoothedModule):
        raise ValueError("classifier must be made by soft_smoothed_classifier (its model is a SmoothedModule)")
    return module

