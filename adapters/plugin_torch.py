"""Entry-point plugin: torch. ``nn.Module`` base classifiers (:class:`rs_plugin.adapters.torch.TorchBackend`), the
model options ``--checkpoint``, ``--denoiser``, ``--precision``, ``--convert-weights``, ``--channels-last`` and
``--compile``, the built-in digits network, CIFAR-10 and ImageNet from a local folder, the built-in architectures,
``rs-plugin train``, and the hooks of its own (:mod:`rs_plugin.adapters.hookspecs`: denoisers, trainers, architectures).

Imports torch only when it is used (a model could be a torch module only once torch is imported), so that the
core works without torch installed.
"""

from __future__ import annotations

import sys
from typing import Any

from rs_plugin.datasets import DatasetSpec
from rs_plugin.extras import require
from rs_plugin.hookspecs import hookimpl
from rs_plugin.models import ModelOption, ModelRequest

from . import hookspecs
from .train_command import TrainCommand

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
"""``torch.compile``'s modes (``--compile MODE``, :class:`rs_plugin.adapters.torch.FastModel`'s ``compile``):
``"reduce-overhead"`` and ``"max-autotune"`` replay CUDA graphs on a GPU, which helps most at small batches, where
launching kernels costs more than running them."""


@hookimpl
def rs_plugin_addhooks(pluginmanager: Any) -> None:
    pluginmanager.add_hookspecs(hookspecs)


@hookimpl
def rs_plugin_make_backend(model: Any, num_classes: int, device: Any) -> Any:
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(model, torch.nn.Module):
        return None
    from .torch import TorchBackend

    return TorchBackend(model, num_classes, device)


def _image_folder(name: str) -> Any:
    def load(split: str, data_dir: Any) -> Any:
        require("torchvision", "torch", f"the {name} dataset")
        from .datasets import image_folder_dataset

        return image_folder_dataset(name, split, data_dir)

    return load


@hookimpl
def rs_plugin_add_datasets() -> dict[str, DatasetSpec]:
    return {"cifar10": DatasetSpec(10, _image_folder("cifar10")),
            "imagenet": DatasetSpec(1000, _image_folder("imagenet"))}


@hookimpl
def rs_plugin_add_model_options() -> list[ModelOption]:
    return [
        ModelOption("--checkpoint", "a checkpoint in the paper's format {arch, state_dict}; several: their ensemble "
                                    "(the members' averaged softmax)", {"nargs": "+", "metavar": "FILE"}, files=True),
        ModelOption("--denoiser", "put a denoiser in front of the model: a denoiser checkpoint (e.g. arch "
                                  "dncnn_digits) or a denoiser plugin's name (see rs-plugin plugins)",
                    {"metavar": "FILE|NAME[:SOURCE]"}, files=True),
        ModelOption("--precision", "torch: evaluate the network in reduced precision (reports its agreement with "
                                   "float32 at start; default: fp32)",
                    {"choices": ("fp32", "bf16", "fp16"), "default": "fp32"}),
        ModelOption("--convert-weights", "torch: with --precision bf16 or fp16, run a copy of the network with its "
                                         "weights converted to that precision instead of under autocast (faster on "
                                         "GPUs; the noise is still drawn and added in float32)",
                    {"action": "store_true", "default": False}),
        ModelOption("--channels-last", "torch: run a convolutional network in the channels_last memory format",
                    {"action": "store_true", "default": False}),
        ModelOption("--compile", "torch: compile the network with torch.compile (it compiles at the first batches; "
                                 "worth it for long runs, mostly on a GPU); optionally in a mode: reduce-overhead "
                                 "replays CUDA graphs (for small batches)",
                    {"nargs": "?", "const": True, "default": False, "metavar": "MODE",
                     "choices": COMPILE_MODES}),
    ]


@hookimpl
def rs_plugin_load_model(request: ModelRequest) -> Any:
    torch_options = ("checkpoint", "denoiser", "convert_weights", "channels_last", "compile")
    needs_torch = any(request.option(name) for name in torch_options) or request.option("precision") not in (
        None, "fp32") or (request.option("model") is None and request.dataset == "digits")
    if not needs_torch:
        return None
    require("torch", "torch", "the digits network, --checkpoint, --denoiser and --precision (or give --model)")
    from .loading import load_torch_model

    return load_torch_model(request)


@hookimpl
def rs_plugin_add_architectures() -> dict[str, Any]:
    from .models import ARCHITECTURES

    return dict(ARCHITECTURES)


@hookimpl
def rs_plugin_add_commands() -> dict[str, Any]:
    return {"train": TrainCommand()}
