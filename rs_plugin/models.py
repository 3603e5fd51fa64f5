"""Base classifiers by description: the options that describe a model, and loading it through the hook
``rs_plugin_load_model``.

This module is also the built-in plugin for ``--model MODULE:FUNCTION`` (any base classifier a backend accepts:
a numpy callable, or a model of a plugin's framework). The torch plugin adds ``--checkpoint``, ``--denoiser``,
``--precision`` and ``--channels-last``, and the built-in digits network.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .hookspecs import hookimpl
from .plugins import get_plugin_manager


@dataclass(frozen=True)
class ModelOption:
    """One option that describes a model: ``--flag`` on the command line, ``options[dest]`` in a
    :class:`ModelRequest`. ``argparse`` holds :meth:`argparse.ArgumentParser.add_argument`'s keyword arguments.
    ``files``: its value names model files, recorded in a run's settings by their SHA-256 (so a file may move);
    ``recorded``: whether it changes what a result means (False for how a model runs, e.g. a memory format)."""

    flag: str
    help: str
    argparse: Mapping[str, Any] = field(default_factory=dict)
    files: bool = False
    recorded: bool = True

    @property
    def dest(self) -> str:
        """The option's name in :attr:`ModelRequest.options` (``--channels-last``: ``channels_last``)."""
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class ModelRequest:
    """What describes a base classifier: the ``dataset`` (and its ``num_classes``), the smoothing ``noise`` at
    ``sigma`` (a built-in network may be trained for it), the model ``options`` (:class:`ModelOption` dests to
    values; None where not given), the ``input_shape`` of one input when it is not the dataset's own (e.g. digits
    upsampled: a built-in network is made for it) and, for a start-up report on stderr when ``report``, a few
    inputs (``sample``)."""

    dataset: str
    num_classes: int
    sigma: float
    noise: str = "gaussian"
    options: Mapping[str, Any] = field(default_factory=dict)
    sample: Sequence[Any] = ()
    report: bool = False
    input_shape: tuple[int, ...] | None = None

    def option(self, name: str) -> Any:
        """``options[name]``, None when it was not given."""
        return self.options.get(name)


def model_options() -> list[ModelOption]:
    """Every model option of every plugin, the core's ``--model`` first."""
    answers = get_plugin_manager().hook.rs_plugin_add_model_options()
    return [option for options in reversed(answers) for option in options]


def load_model(request: ModelRequest) -> Any:
    """The base classifier ``request`` describes, in eval mode when it has one; ``ValueError`` when no plugin
    can build it (e.g. no model given for a dataset without a built-in one)."""
    unknown = set(request.options) - {option.dest for option in model_options()}
    if unknown:
        raise ValueError(f"model options: unknown {', '.join(sorted(unknown))}; known: "
                         f"{', '.join(option.dest for option in model_options())}")
    model = get_plugin_manager().hook.rs_plugin_load_model(request=request)
    if model is None:
        flags = ", ".join(option.flag for option in model_options())
        raise ValueError(f"model: give a model for {request.dataset} (no plugin has a built-in one); the options "
                         f"that describe one: {flags}")
    if hasattr(model, "eval"):
        model.eval()
    return model


def load_callable(spec: str) -> Any:
    """The object named by ``module:attribute`` (an importable module) or ``path/to/file.py:attribute``."""
    module_name, sep, attribute = spec.rpartition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"model: expected module:function or file.py:function, got {spec!r}")
    if module_name.endswith(".py"):
        if not os.path.isfile(module_name):
            raise FileNotFoundError(f"model: no such file: {module_name!r}")
        module_spec = importlib.util.spec_from_file_location(os.path.basename(module_name)[:-3], module_name)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ValueError(f"model: cannot import module {module_name!r}: {err}") from err
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"model: module {module_name!r} has no attribute {attribute!r}") from None


@hookimpl
def rs_plugin_add_model_options() -> list[ModelOption]:
    return [ModelOption("--model", "a function returning the base classifier (e.g. a numpy callable, or an nn.Module "
                                   "taking inputs in [0, 1]); MODULE may be a file.py",
                        {"metavar": "MODULE:FUNCTION"})]


@hookimpl(trylast=True)
def rs_plugin_load_model(request: ModelRequest) -> Any:
    spec = request.option("model")
    return None if spec is None else load_callable(spec)()
