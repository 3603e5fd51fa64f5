"""Training checkpoints: the paper's format plus the run's settings and random state, written atomically, read
back only when they are rs-plugin's own and were made with the same settings."""

from __future__ import annotations

import os
from typing import Any

import torch

from rs_plugin.atomic import write_atomically
from rs_plugin.results.settings import refuse_other_settings

FORMAT = "rs-plugin training checkpoint 1"
"""The value of a checkpoint's ``"format"`` key: what marks a file as one this loop may overwrite."""


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A training checkpoint written by :func:`fit`; ``ValueError`` for any other file."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception:
        saved = None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"checkpoint {os.fspath(path)!r} exists and is not a training checkpoint of rs-plugin; "
                         "refusing to overwrite it (choose another file)")
    return saved


def resume_from(path: str | os.PathLike, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint at ``path`` to resume from (None when there is none yet): ``ValueError`` when it is not one of
    rs-plugin's or was made with other settings (every difference named; ``epochs`` may grow)."""
    if not os.path.exists(path):
        return None
    saved = read_checkpoint(path)
    refuse_other_settings(f"checkpoint {os.fspath(path)!r}: its {saved['epoch']} epochs", saved["settings"], settings,
                          ignore=frozenset({"epochs"}))
    if saved["epoch"] > settings["epochs"]:
        raise ValueError(f"checkpoint {os.fspath(path)!r} has {saved['epoch']} epochs, more than epochs="
                         f"{settings['epochs']}; give epochs >= {saved['epoch']} or choose another file")
    return saved


def save(path: str | os.PathLike, checkpoint: dict[str, Any]) -> None:
    """Write ``checkpoint`` to ``path`` atomically (a crash leaves the previous epoch's checkpoint)."""
    write_atomically(path, lambda partial: torch.save(checkpoint, partial))
