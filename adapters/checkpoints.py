"""Checkpoints in the paper's format, ``{"arch": name, "state_dict": ...}``, loaded with
``torch.load(weights_only=True)`` so that no code in a file ever runs; every failure is one line."""

from __future__ import annotations

import os
import pickle
import re
from typing import Any

import torch
from torch import nn

from .models import get_architecture
from .plugins import architectures


def save_checkpoint(model: nn.Module, arch: str, path: str | os.PathLike) -> None:
    """Save ``model`` in the paper's checkpoint format, ``{"arch": arch, "state_dict": ...}``."""
    torch.save({"arch": arch, "state_dict": model.state_dict()}, path)


def load_checkpoint(
    path: str | os.PathLike, map_location: Any = "cpu", *, option: str = "--checkpoint"
) -> tuple[nn.Module, str]:
    """Load a checkpoint in the paper's format; returns ``(model in eval mode, arch)``.

    Accepts the paper's released files (ImageNet ones carry ``DataParallel``'s ``module.`` prefix). Loads with
    ``torch.load(weights_only=True)``, which never runs code from the file. Every failure is one line naming
    ``option`` (the command-line flag that gave ``path``) and what to do: ``FileNotFoundError`` for a missing
    file, ``ValueError`` for a file that is not a torch file, holds pickled Python objects (e.g. a whole model
    saved with ``torch.save(model)``), is not in the paper's format, names an unknown architecture, or whose
    ``state_dict`` does not fit its architecture (counts and the first few keys).
    """
    where = f"{option} {os.fspath(path)!r}"
    checkpoint = _load_weights(path, map_location, where)
    if not isinstance(checkpoint, dict) or not {"arch", "state_dict"} <= checkpoint.keys():
        bare = isinstance(checkpoint, dict) and all(isinstance(v, torch.Tensor) for v in checkpoint.values())
        raise ValueError(
            f"{where}: {'a bare state_dict, ' if bare and checkpoint else ''}not in the paper's format: expected a "
            f"dict with 'arch' and 'state_dict'; save {{'arch': ARCH, 'state_dict': model.state_dict()}} "
            "(rs_plugin.adapters.checkpoints.save_checkpoint; ARCH as listed by get_architecture's error)"
        )
    known = architectures()
    if checkpoint["arch"] not in known:
        raise ValueError(f"{where}: unknown architecture {checkpoint['arch']!r}; known: {', '.join(known)}")
    if not isinstance(checkpoint["state_dict"], dict):
        raise ValueError(f"{where}: its 'state_dict' is a {type(checkpoint['state_dict']).__name__}, not a dict")
    model = get_architecture(checkpoint["arch"])
    state = {str(key).replace("module.", "", 1): value for key, value in checkpoint["state_dict"].items()}
    mismatch = _state_dict_mismatch(model.state_dict(), state)
    try:
        if not mismatch:
            model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:  # e.g. values that are not tensors
        mismatch = str(err).strip().splitlines()[-1].strip()
    if mismatch:
        raise ValueError(f"{where}: its state_dict does not fit {checkpoint['arch']!r}: {mismatch}")
    return model.eval(), checkpoint["arch"]


def _load_weights(path: str | os.PathLike, map_location: Any, where: str) -> Any:
    """``torch.load(path, weights_only=True)`` with every failure as one line."""
    not_torch = f"{where}: not a file saved by torch.save (a checkpoint {{'arch': ..., 'state_dict': ...}})"
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{where}: a folder, not a checkpoint file") from None
    except OSError as err:
        raise OSError(f"{where}: cannot read it: {err.strerror or err}") from None
    except pickle.UnpicklingError as err:
        pickled = re.search(r"GLOBAL (\S+) was not an allowed global", str(err))
        if pickled is None:
            raise ValueError(not_torch) from None
        raise ValueError(
            f"{where}: holds a pickled {pickled.group(1)} (e.g. a whole model saved with torch.save(model)), which "
            "is not loaded since unpickling can run any code; save {'arch': ARCH, 'state_dict': model.state_dict()} "
            "instead"
        ) from None
    except Exception:  # torch reports a file that is not its format in many ways (KeyError, RuntimeError, ...)
        raise ValueError(not_torch) from None


def _state_dict_mismatch(expected: dict[str, Any], given: dict[str, Any], shown: int = 3) -> str:
    """How ``given`` differs from ``expected`` (missing and unexpected keys, other shapes), briefly; "" when
    it fits."""

    def first(keys: list[str]) -> str:
        return ", ".join(keys[:shown]) + (", ..." if len(keys) > shown else "")

    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    reshaped = [
        f"{key} {tuple(getattr(given[key], 'shape', ()))} instead of {tuple(expected[key].shape)}"
        for key in expected
        if key in given and getattr(given[key], "shape", None) != expected[key].shape
    ]
    parts = [
        f"{len(keys)} {what} ({first(keys)})"
        for keys, what in ((missing, "missing keys"), (unexpected, "unexpected keys"), (reshaped, "of other shapes"))
        if keys
    ]
    return "; ".join(parts)
