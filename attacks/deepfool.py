"""The paper's empirical baseline: DeepFool (l2) on an undefended network, through torchattacks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torchattacks
from torch import nn
from tqdm.auto import tqdm

from rs_plugin.checks import positive_int

from ..adapters.torch import check_batch, check_labels, eval_mode, module_device, num_logits


def deepfool_radii(
    model: nn.Module,
    x: Any,
    y: Any,
    *,
    steps: int = 50,
    overshoot: float = 0.02,
    batch_size: int = 100,
    progress: bool = False,
) -> np.ndarray:
    """Each example's l2 distance to the adversarial input DeepFool finds for ``model`` (logits; inputs in
    ``[0, 1]``): ``0`` where ``model`` already misclassifies it, ``inf`` where DeepFool failed (still correct
    after ``steps`` steps). Each finite radius is that of a misclassified input, so the network is not
    robust beyond it: radii give an upper bound on robust accuracy (:func:`empirical_robust_accuracy`).

    torchattacks' DeepFool applies the overshoot to each step; where [0, 1] clamps part of the steps its
    iterates can approach the boundary from inside without crossing it. Where its result is still classified
    correctly, the total perturbation is scaled by ``1 + overshoot`` once (the original DeepFool's final step,
    Moosavi-Dezfooli et al. 2016) before the example counts as a failure.

    ``x`` is a batch ``(N, *shape)`` (numpy or torch), ``y`` its ``N`` labels. Runs on the model's device, in
    eval mode; the model's parameters get no gradients.
    """
    steps, batch_size = positive_int("steps", steps), positive_int("batch_size", batch_size)
    if not overshoot >= 0:
        raise ValueError(f"overshoot must be >= 0, got {overshoot}")
    device = module_device(model)
    x = torch.as_tensor(x, dtype=torch.float32) if not isinstance(x, torch.Tensor) else x.detach()
    y = torch.as_tensor(y) if not isinstance(y, torch.Tensor) else y.detach()
    check_batch("x", x, unit_range=True)
    radii = np.empty(len(x))
    trainable = [p for p in model.parameters() if p.requires_grad]
    try:
        with eval_mode(model):
            check_labels("y", y, len(x), num_logits(model, x))
            attack = torchattacks.DeepFool(model, steps=steps, overshoot=overshoot)
            for p in trainable:
                p.requires_grad_(False)
            for start in tqdm(range(0, len(x), batch_size), desc="deepfool", disable=not progress, unit="batch"):
                images, labels = x[start : start + batch_size].to(device), y[start : start + batch_size].to(device)
                adv = attack(images, labels)
                with torch.no_grad():
                    clean_correct = model(images).argmax(1) == labels
                    fooled = model(adv).argmax(1) != labels
                    extended = (images + (1 + overshoot) * (adv - images)).clamp(0, 1)
                    rescued = ~fooled & (model(extended).argmax(1) != labels)
                adv = torch.where(rescued.view(-1, *[1] * (adv.dim() - 1)), extended, adv)
                fooled |= rescued
                distance = (adv - images).flatten(1).norm(dim=1)
                inf = torch.full_like(distance, float("inf"))
                batch = torch.where(clean_correct, torch.where(fooled, distance, inf), torch.zeros_like(distance))
                radii[start : start + len(images)] = batch.double().cpu().numpy()
    finally:
        for p in trainable:
            p.requires_grad_(True)
    return radii


def empirical_robust_accuracy(radii: Any, at: float | Sequence[float]) -> np.ndarray:
    """The fraction of examples whose DeepFool radius exceeds each radius in ``at``: an upper bound on the
    network's robust accuracy there (the dashed curve of Cohen et al.'s figure 6); at ``0``, clean accuracy."""
    radii = np.asarray(radii, dtype=float)
    at = np.atleast_1d(np.asarray(at, dtype=float))
    if radii.ndim != 1 or len(radii) == 0 or np.isnan(radii).any() or (radii < 0).any():
        raise ValueError("radii must be a non-empty 1-D array of radii >= 0 (inf allowed)")
    if np.isnan(at).any() or (at < 0).any():
        raise ValueError(f"at must hold radii >= 0, got {at.tolist()}")
    return (radii[None, :] > at[:, None]).mean(axis=1)
