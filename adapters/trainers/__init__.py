"""Training for randomized smoothing: one module per method, one loop for all (:func:`fit`).

Methods are plugins (hook ``rs_plugin_add_trainers``; ``rs_plugin.adapters.plugins.trainers()`` lists them); the
built-in ones are ``standard``, ``gaussian``, ``smoothadv``, ``consistency``, ``macer``, ``smoothmix`` and
``denoiser``::

    from rs_plugin.adapters.plugins import make_trainer
    from rs_plugin.adapters.trainers import TrainConfig, fit

    trainer = make_trainer("consistency", sigma=0.5, lbd=5.0)
    fit(trainer, model, (x, y), TrainConfig(epochs=30), checkpoint="consistency.pt", arch="digits_cnn")

Layout: :mod:`.options` (hyperparameters), :mod:`.trainer` (the method's interface), :mod:`.fit` (the loop),
:mod:`.checkpoint` (resumable checkpoints), :mod:`.run` (a dataset and an architecture put together).
"""

from __future__ import annotations

from .checkpoint import FORMAT, read_checkpoint
from .fit import TrainConfig, fit
from .options import NoOptions
from .trainer import Step, Trainer

__all__ = ["FORMAT", "NoOptions", "Step", "TrainConfig", "Trainer", "fit", "read_checkpoint"]
