"""Entry-point plugin: the built-in denoiser ``dncnn``, a denoiser checkpoint in the paper's format
(``{"arch": "dncnn_digits" | "dncnn_cifar10", "state_dict": ...}``), given as ``--denoiser FILE`` or
``--denoiser dncnn:FILE``. Imports torch only when a denoiser is made.

A third party adds a denoiser exactly like this module, in its own distribution with an entry point in the
group ``rs_plugin``. For example an off-the-shelf diffusion model, run for one step at the timestep whose noise
level matches sigma (Carlini et al., ICLR 2023), with
:class:`~rs_plugin.adapters.denoise.DiffusionDenoiser`::

    from rs_plugin import hookimpl
    from rs_plugin.adapters.denoise import DiffusionDenoiser

    def ddpm(sigma, source):
        eps_model, alphas_cumprod = load_my_ddpm(source)  # the noise predictor eps(x_t, t), inputs in [-1, 1]
        return DiffusionDenoiser(eps_model, alphas_cumprod, sigma)

    @hookimpl
    def rs_plugin_add_denoisers():
        return {"ddpm": ddpm}

and then ``rs-plugin certify --checkpoint CLASSIFIER.pt --denoiser ddpm:WEIGHTS --sigma 0.25 ...``. The timestep:
a noisy input ``x + sigma delta`` in ``[0, 1]`` is ``(2x - 1) + 2 sigma delta`` in ``[-1, 1]``; scaled by
``sqrt(a_t)`` it is the DDPM's ``x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps`` exactly when
``(1 - a_t) / a_t = (2 sigma)^2``, i.e. at the ``t`` with ``a_t = 1 / (1 + 4 sigma^2)``.
"""

from __future__ import annotations

from typing import Any

from rs_plugin.hookspecs import hookimpl


def dncnn(sigma: float, source: str | None) -> Any:
    """The denoiser saved in the checkpoint file ``source`` (an architecture without classes), in eval mode;
    ``sigma`` is the noise it was trained for (not checked)."""
    if not source:
        raise ValueError("denoiser: dncnn needs a checkpoint file: --denoiser FILE or --denoiser dncnn:FILE")
    from .checkpoints import load_checkpoint
    from .plugins import architecture

    model, arch = load_checkpoint(source)
    if not architecture(arch).is_denoiser:
        raise ValueError(f"denoiser: {source!r} holds the classifier {arch!r}, not a denoiser; give it as --checkpoint")
    return model


@hookimpl
def rs_plugin_add_denoisers() -> dict[str, Any]:
    return {"dncnn": dncnn}
