"""``rs-plugin train``: a method, a dataset and an architecture put together, resumable through its checkpoint."""

from __future__ import annotations

import os
from typing import Any

import torch

from rs_plugin.datasets import digits_arrays, load_dataset, num_classes
from rs_plugin.seeding import stream_seed

from ..checkpoints import load_checkpoint
from ..models import get_architecture
from ..plugins import architectures, make_trainer
from .checkpoint import read_checkpoint
from .fit import TrainConfig, fit

CLASSIFIERS = {"digits": "digits_cnn", "cifar10": "cifar_resnet110", "imagenet": "resnet50"}
"""The default architecture of a classifier for each dataset; a denoiser's is ``dncnn_<dataset>``."""


def train_dataset(
    dataset: str,
    method: str,
    sigma: float | None,
    out: str | os.PathLike,
    *,
    noise: str = "gaussian",
    options: dict[str, Any] | None = None,
    data_dir: str | None = None,
    arch: str | None = None,
    classifier: str | None = None,
    config: TrainConfig | None = None,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``method`` on the training split of ``dataset`` into the checkpoint ``out`` (resuming it if it exists);
    returns the checkpoint. ``classifier`` is the frozen classifier's checkpoint for the denoiser method. The model
    starts from ``stream_seed(seed, "init")``: the digits CNN trained with ``gaussian`` is ``digits_model``'s."""
    classes = num_classes(dataset)
    config = config or TrainConfig()
    extra = {} if classifier is None else {"classifier": load_checkpoint(classifier, option="--classifier")[0]}
    trainer = make_trainer(method, sigma, noise=noise, **(options or {}), **extra)
    arch = arch or (CLASSIFIERS[dataset] if trainer.trains == "classifier" else f"dncnn_{dataset}")
    known = architectures().get(arch)
    if known is not None and known.num_classes not in (None, classes):
        raise ValueError(f"arch: {arch} has {known.num_classes} classes, {dataset} has {classes}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(config.seed, "init"))
        model = get_architecture(arch)
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    if dataset == "digits":
        data: Any = tuple(torch.from_numpy(a) for a in digits_arrays("train"))
    else:
        order = torch.Generator().manual_seed(stream_seed(config.seed, "shuffle"))
        data = torch.utils.data.DataLoader(
            load_dataset(dataset, "train", data_dir), batch_size=config.inputs_per_step, shuffle=True,
            generator=order, num_workers=min(8, os.cpu_count() or 1), pin_memory=device.startswith("cuda"),
        )
    fit(trainer, model, data, config, checkpoint=out, arch=arch, settings={"dataset": dataset}, progress=progress)
    return read_checkpoint(out)
