"""Base classifiers from the torch plugin's model options: checkpoints in the paper's format (several: their
ensemble), the built-in digits network, a denoiser in front, reduced precision and channels_last."""

from __future__ import annotations

import sys
from typing import Any

from torch import nn

from rs_plugin.models import ModelRequest, load_callable

from .checkpoints import load_checkpoint
from .denoise import Denoised, Ensemble
from .plugins import architectures, make_denoiser
from .torch import FastModel, label_agreement


def load_torch_model(request: ModelRequest) -> Any:
    """The base classifier ``request`` describes, or None when it names none of the torch plugin's options and
    no network of its own is needed (``--model`` alone is the core's)."""
    checkpoint, spec = request.option("checkpoint"), request.option("model")
    wrapped = bool(request.option("denoiser")) or request.option("precision") not in (None, "fp32") or bool(
        request.option("channels_last")) or bool(request.option("compile")) or bool(request.option("convert_weights"))
    if checkpoint is not None and spec is not None:
        raise ValueError("model and checkpoint: give one of them, not both")
    if checkpoint is not None:
        network = _classifiers(checkpoint, request)
    elif spec is not None:
        if not wrapped:
            return None
        network = load_callable(spec)()
    elif request.dataset == "digits":
        from .training import digits_model

        channels, resolution = request.input_shape[:2] if request.input_shape else (1, 8)
        network = digits_model(request.sigma, noise=request.noise, resolution=resolution, channels=channels)
    else:
        return None
    return _wrapped(network, request) if wrapped else network


def _classifiers(checkpoint: str | list[str], request: ModelRequest) -> nn.Module:
    """The network of one checkpoint, or the :class:`Ensemble` of several."""
    paths = [checkpoint] if isinstance(checkpoint, str) else list(checkpoint)
    if not paths:
        raise ValueError("checkpoint: give at least one checkpoint file")
    members = []
    for path in paths:
        network, arch = load_checkpoint(path)
        classes = architectures()[arch].num_classes
        if classes is None:
            raise ValueError(f"checkpoint: {path} holds the denoiser {arch}; give it with --denoiser")
        if classes != request.num_classes:
            raise ValueError(f"checkpoint: {arch} has {classes} classes, {request.dataset} has {request.num_classes}")
        members.append(network)
    return members[0] if len(members) == 1 else Ensemble(members)


def _wrapped(network: Any, request: ModelRequest) -> nn.Module:
    """``network`` behind the denoiser, in reduced precision, channels_last and/or compiled, as the options ask;
    reports the reduced precision's agreement with float32 on the request's sample."""
    if not isinstance(network, nn.Module):
        raise ValueError("denoiser, precision, channels_last and compile apply to a torch model (an nn.Module)")
    if request.option("denoiser"):
        network = Denoised(make_denoiser(request.option("denoiser"), request.sigma), network)
    precision = request.option("precision") or "fp32"
    if request.option("convert_weights") and precision == "fp32":
        raise ValueError("convert_weights: converts the weights to --precision bf16 or fp16; the precision is fp32")
    if precision == "fp32" and not request.option("channels_last") and not request.option("compile"):
        return network
    fast = FastModel(network, precision, bool(request.option("channels_last")), request.option("compile") or False,
                     autocast=not request.option("convert_weights"))
    if precision != "fp32" and request.report and len(request.sample):
        from rs_plugin.plugins import make_noise

        sample = list(request.sample)
        agreement = label_agreement(network, fast, sample, make_noise(request.noise, request.sigma), 100)
        print(f"rs-plugin: {precision} predicts the float32 label on {agreement:.1%} of {100 * len(sample)} noisy "
              f"inputs of the first {len(sample)} examples", file=sys.stderr)
    return fast
