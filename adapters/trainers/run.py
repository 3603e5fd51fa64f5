"""``rs-plugin train``: a method, a dataset and an architecture put together, resumable through its checkpoint."""

from __future__ import annotations

import os
from typing import Any

import torch

from rs_plugin.datasets import NUM_CLASSES
from rs_plugin.plugins import make_trainer
from rs_plugin.seeding import stream_seed

from ..datasets import digits_arrays, image_folder_dataset
from ..models import ARCHITECTURES, get_architecture, load_checkpoint
from .loop import TrainConfig, fit, read_checkpoint

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
    if dataset not in NUM_CLASSES:
        raise ValueError(f"dataset: unknown dataset {dataset!r}; known: {', '.join(NUM_CLASSES)}")
    config = config or TrainConfig()
    extra = {} if classifier is None else {"classifier": load_checkpoint(classifier, option="--classifier")[0]}
    trainer = make_trainer(method, sigma, noise=noise, **(options or {}), **extra)
    arch = arch or (CLASSIFIERS[dataset] if trainer.trains == "classifier" else f"dncnn_{dataset}")
    if arch in ARCHITECTURES and ARCHITECTURES[arch][3] not in (None, NUM_CLASSES[dataset]):
        raise ValueError(f"arch: {arch} has {ARCHITECTURES[arch][3]} classes, {dataset} has {NUM_CLASSES[dataset]}")
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
            image_folder_dataset(dataset, "train", data_dir), batch_size=config.batch_size, shuffle=True,
            generator=order, num_workers=min(8, os.cpu_count() or 1), pin_memory=device.startswith("cuda"),
        )
    fit(trainer, model, data, config, checkpoint=out, arch=arch, settings={"dataset": dataset}, progress=progress)
    return read_checkpoint(out)
