"""Votes and noise-averaged softmax of an ART classifier's base network, and the softmax's input gradients, from the
noisy-evaluation loops: in torch on the device for a ``PyTorchClassifier`` (:class:`TorchSoftmax`), composed from
the classifier's own ``class_gradient`` otherwise (:class:`ArtSoftmax`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from rs_plugin import engine
from rs_plugin.backends import check_scores, diverged
from rs_plugin.engine import NumpyStream
from rs_plugin.noises import Noise
from rs_plugin.seeding import stream_seed

from ..torch import TorchStream, check_logits, eval_mode, module_device, noisy_batches


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _add_rows(total: np.ndarray, owner: np.ndarray, values: np.ndarray) -> None:
    """``total[owner[i]] += values[i]`` for sorted ``owner`` (noisy copies of one input are consecutive rows)."""
    first = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    total[owner[first]] += np.add.reduceat(values, first, axis=0)


class TorchSoftmax:
    """Votes and noise-averaged softmax of a torch model, and the softmax's input gradients, computed on the
    model's device by the torch noisy-evaluation loop, with at most ``batch_size`` noisy copies (and their autograd
    graph) in memory at a time. Input ``e`` draws from the stream ``stream_seed(seed, "input", e)``."""

    def __init__(self, model: nn.Module, num_classes: int, noise: Noise, probabilities: bool) -> None:
        self.model, self.num_classes, self.noise, self.probabilities = model, num_classes, noise, probabilities

    def average(
        self, x: np.ndarray, num: int, seed: int, batch_size: int, labels: np.ndarray | None, gradient: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        device, k = module_device(self.model), self.num_classes
        inputs = torch.as_tensor(x, device=device).requires_grad_(gradient)
        probs, votes = torch.zeros(len(x), k, device=device), torch.zeros(len(x), k, device=device)
        grads = torch.zeros((len(x), *(() if labels is not None else (k,)), *x.shape[1:]), device=device)
        targets = None if labels is None else torch.as_tensor(labels, device=device)
        streams = [TorchStream(self.noise, stream_seed(seed, "input", e), device) for e in range(len(x))]
        with eval_mode(self.model), torch.set_grad_enabled(gradient):
            for batch, owner in noisy_batches(inputs, [num] * len(x), streams, batch_size, differentiable=gradient):
                scores = self.model(batch)
                check_logits(scores, len(owner), k)
                p = scores if self.probabilities else scores.softmax(1)
                probs.index_add_(0, owner, p.detach())
                votes.index_add_(0, owner, nn.functional.one_hot(scores.detach().argmax(1), k).float())
                if gradient and targets is not None:
                    grads += torch.autograd.grad(p.gather(1, targets[owner, None]).sum(), inputs)[0]
                elif gradient:
                    for c in range(k):
                        grads[:, c] += torch.autograd.grad(p[:, c].sum(), inputs, retain_graph=c < k - 1)[0]
        grads = (grads / num).cpu().numpy() if gradient else None
        return (probs / num).cpu().numpy(), (votes / num).cpu().numpy(), grads


class ArtSoftmax:
    """Votes and noise-averaged softmax of any ART classifier, and the softmax's input gradients composed from
    the classifier's own ``class_gradient`` on the noisy copies, from the numpy noisy-evaluation loop
    (``batch_size`` copies at a time; input ``e`` draws from the stream ``stream_seed(seed, "input", e)``)."""

    def __init__(
        self, classifier: Any, num_classes: int, noise: Noise, probabilities: bool, gradient_of_logits: bool
    ) -> None:
        self.classifier, self.num_classes, self.noise = classifier, num_classes, noise
        self.probabilities, self.gradient_of_logits = probabilities, gradient_of_logits

    def average(
        self, x: np.ndarray, num: int, seed: int, batch_size: int, labels: np.ndarray | None, gradient: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        k = self.num_classes
        probs, votes = np.zeros((len(x), k)), np.zeros((len(x), k))
        grads = np.zeros((len(x), *(() if labels is not None else (k,)), *x.shape[1:])) if gradient else None
        streams = [NumpyStream(self.noise, stream_seed(seed, "input", e)) for e in range(len(x))]
        for batch, owner in engine.noisy_batches(x, [num] * len(x), streams, batch_size):
            scores = np.asarray(self.classifier.predict(batch), dtype=np.float64)
            check_scores(scores.shape, len(owner), k)
            if not np.isfinite(scores).all():
                raise diverged("scores", len(owner))
            p = scores if self.probabilities else _softmax(scores)
            _add_rows(probs, owner, p)
            np.add.at(votes, (owner, scores.argmax(axis=1)), 1)
            if gradient:
                _add_rows(grads, owner, self._gradient(batch, p, None if labels is None else labels[owner]))
        grads = None if grads is None else (grads / num).astype(np.float32)
        return (probs / num).astype(np.float32), (votes / num).astype(np.float32), grads

    def _gradient(self, batch: np.ndarray, p: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        """Gradients of the probabilities ``p`` (of ``labels``, or of every class) at the rows of ``batch``."""
        if not self.gradient_of_logits:
            if labels is None:
                return np.asarray(self.classifier.class_gradient(batch))
            return np.asarray(self.classifier.class_gradient(batch, label=labels))[:, 0]
        jacobian = np.asarray(self.classifier.class_gradient(batch))  # of the logits z: (B, K, *shape)
        p = p.reshape(p.shape + (1,) * (jacobian.ndim - 2))
        jacobian = p * (jacobian - (p * jacobian).sum(axis=1, keepdims=True))  # d softmax_c = p_c (dz_c - E_p[dz])
        return jacobian if labels is None else jacobian[np.arange(len(jacobian)), labels]
