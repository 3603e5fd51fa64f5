"""The training loop every method shares: shuffled batches, the run's noise, a checkpoint after every epoch.

A method (:class:`~rs_plugin.adapters.trainers.Trainer`) only writes its loss on one batch; :func:`fit` does the
rest. Every random stream of a run comes from its seed: the training noise from ``stream_seed(seed, "train")``
(through the torch noisy-evaluation loop), the order of the examples from ``"shuffle"``, the methods' own draws
(attack noise, mixing coefficients) from ``"steps"``, and randomness inside the model (dropout) from ``"model"``;
torch's global generator is left as it was. A run is therefore deterministic on CPU for a given seed and initial
model, and a run resumed from its checkpoint ends with the weights of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from rs_plugin.checks import positive_int, positive_number
from rs_plugin.checks import seed as check_seed
from rs_plugin.deprecation import renamed
from rs_plugin.noises import Noise
from rs_plugin.seeding import stream_seed

from ..torch import TorchStream, module_device
from .checkpoint import FORMAT, read_checkpoint, resume_from, save
from .trainer import Step, Trainer


@dataclasses.dataclass(frozen=True, init=False)
class TrainConfig:
    """How a run optimises: ``epochs`` passes over the data, ``inputs_per_step`` inputs per optimisation step (each
    method evaluates its noisy copies of every one; the deprecated name is ``batch_size``), Adam with learning rate
    ``lr``, and the ``seed`` of every random stream."""

    epochs: int = 30
    inputs_per_step: int = 64
    lr: float = 1e-3
    seed: int = 0

    def __init__(self, epochs: int = 30, inputs_per_step: int | None = None, lr: float = 1e-3, seed: int = 0, *,
                 batch_size: int | None = None) -> None:
        inputs_per_step = renamed("TrainConfig", "inputs_per_step", inputs_per_step, "batch_size", batch_size)
        for name, value in (("epochs", epochs), ("inputs_per_step", 64 if inputs_per_step is None else inputs_per_step),
                            ("lr", lr), ("seed", seed)):
            object.__setattr__(self, name, value)
        self.__post_init__()

    def __post_init__(self) -> None:
        positive_int("epochs", self.epochs)
        positive_int("inputs_per_step", self.inputs_per_step)
        positive_number("lr", self.lr)
        check_seed("seed", self.seed)


class _CountedStream:
    """The run's noise stream, counting the values it has given so that a resumed run can skip exactly those
    (a stream's values do not depend on how they are asked for)."""

    def __init__(self, stream: TorchStream, dtype: torch.dtype = torch.float32) -> None:
        self.stream, self.drawn, self.dtype = stream, 0, dtype
        self._pending = 0  # values still to skip, for a randomization that is not additive (at its first copies)

    @property
    def noise(self) -> Noise:
        return self.stream.noise

    def fill(self, out: torch.Tensor) -> torch.Tensor:
        self.drawn += out.numel()
        self.dtype = out.dtype
        return self.stream.fill(out)

    def randomize(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The stream's next randomized copies of ``x`` (a randomization that is not additive), after the copies a
        resumed run skips."""
        if self._pending:
            skipped, self._pending = self._pending, 0
            rows = skipped // max(x.numel(), 1)
            for start in range(0, rows, 4096):
                self.randomize(x, torch.empty((min(4096, rows - start), *x.shape), dtype=x.dtype, device=x.device))
        self.drawn += out.numel()
        self.dtype = out.dtype
        return self.stream.randomize(x, out)

    def skip(self, count: int, device: torch.device, chunk: int = 1 << 22) -> None:
        """Draw and discard ``count`` values (a whole number of the noise's rows, as drawn), a multiple of the noise's
        :attr:`~rs_plugin.noises.Noise.row_size` at a time; for a randomization that is not additive, the copies
        those values were, when the next copies are asked for (their shape is known then)."""
        if not self.noise.additive:
            self._pending = count
            return
        row = self.stream.noise.row_size
        chunk = max(chunk // row, 1) * row
        if count:
            scratch = torch.empty(min(count, chunk), dtype=self.dtype, device=device)
        while count:
            take = min(count, chunk)
            self.fill(scratch[:take])
            count -= take


def fit(
    trainer: Trainer,
    model: nn.Module,
    data: tuple[torch.Tensor, torch.Tensor] | Iterable[tuple[torch.Tensor, torch.Tensor]],
    config: TrainConfig | None = None,
    *,
    checkpoint: str | os.PathLike | None = None,
    arch: str | None = None,
    settings: dict[str, Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    progress: bool = False,
) -> nn.Module:
    """Train ``model`` (on its device) with ``trainer``'s loss; returns it in eval mode.

    ``data`` is ``(x, y)`` tensors (shuffled every epoch from the seed) or any iterable of ``(x, y)`` batches such as
    a ``DataLoader`` (its own order; seeded by the run when it has no generator of its own). ``optimizer`` defaults
    to Adam at ``config.lr``. With ``checkpoint`` a file in the paper's format, ``{arch, state_dict, epoch,
    optimizer}`` plus ``method``, ``sigma``, ``noise``, the run's ``settings`` (``settings`` adds entries) and its
    random state, is written atomically after every epoch; if the file exists, the run resumes from it. It is
    refused (``ValueError``) when it is not such a checkpoint (nothing is overwritten) or was made with other
    settings (naming the first difference), and training stops with ``ValueError`` when the loss is not finite
    (nothing is saved).
    """
    config = config or TrainConfig()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    run_settings = {**trainer.settings(), **dataclasses.asdict(config), "arch": arch, **(settings or {})}
    saved = resume_from(checkpoint, run_settings) if checkpoint is not None else None
    tensors = _tensors(data)
    random = _Randomness(trainer.noise, config.seed, module_device(model), getattr(data, "generator", None))
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=config.lr)
    total = math.ceil(len(tensors[0]) / config.inputs_per_step) if tensors is not None else _length(data)
    trainer.history, start, owned = [], 0, saved is not None
    with trainer.training(model), torch.random.fork_rng(devices=[random.device] if random.cuda else []):
        torch.manual_seed(stream_seed(config.seed, "model"))
        if saved is not None:
            start, trainer.history = saved["epoch"], list(saved["history"])
            model.load_state_dict(saved["state_dict"])
            optimizer.load_state_dict(saved["optimizer"])
            random.restore(saved["rng"])
        model.train()
        for epoch in range(start, config.epochs):
            began = time.perf_counter()
            batches = _batches(tensors, data, config.inputs_per_step, random.shuffle, random.device)
            step = Step(trainer.noise, random.stream, random.steps, epoch, config.epochs)
            loss, accuracy = _epoch(trainer, model, optimizer, batches, total, step, progress)
            if not math.isfinite(loss):
                raise ValueError(f"training diverged: the loss of epoch {epoch + 1} is {loss}; nothing was saved "
                                 "for it (try a lower learning rate)")
            trainer.history.append({"epoch": epoch + 1, "loss": loss, "accuracy": accuracy,
                                    "seconds": time.perf_counter() - began})
            if checkpoint is not None:
                if not owned and os.path.exists(checkpoint):
                    read_checkpoint(checkpoint)  # a file that appeared since the run began must be ours too
                save(checkpoint, {
                    "arch": arch, "state_dict": model.state_dict(), "epoch": epoch + 1,
                    "optimizer": optimizer.state_dict(), "method": trainer.name, "sigma": run_settings["sigma"],
                    "noise": run_settings["noise"], "format": FORMAT, "settings": run_settings,
                    "history": trainer.history, "rng": random.state(),
                })
                owned = True
    return model.eval()


class _Randomness:
    """A run's random streams, all from its seed: the training noise (``"train"``), the order of the examples
    (``"shuffle"``), the methods' own draws (``"steps"``) and a data loader's own generator, if it has one."""

    def __init__(self, noise: Noise | None, seed: int, device: torch.device, loader: Any) -> None:
        self.device, self.cuda = device, device.type == "cuda"
        self.stream = None if noise is None else _CountedStream(TorchStream(noise, stream_seed(seed, "train"), device))
        self.shuffle = torch.Generator(device=device).manual_seed(stream_seed(seed, "shuffle"))
        self.steps = torch.Generator(device=device).manual_seed(stream_seed(seed, "steps"))
        self.generators = {"shuffle": self.shuffle, "steps": self.steps}
        if isinstance(loader, torch.Generator):
            self.generators["loader"] = loader

    def state(self) -> dict[str, Any]:
        """Everything needed to continue the streams (and torch's global generator) where they are."""
        state: dict[str, Any] = {name: g.get_state() for name, g in self.generators.items()}
        state["torch"] = torch.get_rng_state()
        if self.cuda:
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        state["noise_drawn"] = 0 if self.stream is None else self.stream.drawn
        state["noise_dtype"] = str(torch.float32 if self.stream is None else self.stream.dtype).removeprefix("torch.")
        return state

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state` (the noise stream by skipping the values it had drawn)."""
        for name, g in self.generators.items():
            g.set_state(state[name])
        torch.set_rng_state(state["torch"])
        if self.cuda:
            torch.cuda.set_rng_state(state["cuda"], self.device)
        if self.stream is not None:
            self.stream.dtype = getattr(torch, state["noise_dtype"])
            self.stream.skip(state["noise_drawn"], self.device)


def _length(data: Any) -> int | None:
    try:
        return len(data)
    except TypeError:
        return None


def _epoch(
    trainer: Trainer, model: nn.Module, optimizer: torch.optim.Optimizer, batches: Any, total: int | None, step: Step,
    progress: bool,
) -> tuple[float, float]:
    """One pass over ``batches``; returns the mean loss and the accuracy under noise."""
    total_loss = torch.zeros((), dtype=torch.float64)
    correct, seen, count = 0, 0, 0
    name = f"{trainer.name} epoch {step.epoch + 1}/{step.epochs}"
    with tqdm(batches, desc=name, total=total, unit="batch", disable=not progress, leave=True) as bar:
        for x, y in bar:
            loss, logits = trainer.loss(model, x, y, step)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                predictions = logits.argmax(-1).view(len(y), -1)
                correct += int((predictions == y[:, None]).sum())
                seen += predictions.numel()
                total_loss += loss.detach().double().cpu()
                count += 1
            if progress:
                bar.set_postfix(loss=f"{float(total_loss) / count:.4f}", acc=f"{correct / seen:.3f}", refresh=False)
    return float(total_loss) / max(count, 1), correct / max(seen, 1)


def _tensors(data: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``data`` as ``(x, y)`` tensors, or None for an iterable of batches."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(d, torch.Tensor) for d in data):
        x, y = data
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(f"data: got {len(y)} labels for {len(x)} inputs")
        return x, y
    if isinstance(data, Iterable):
        return None
    raise TypeError(f"data must be (x, y) tensors or an iterable of (x, y) batches, got {type(data).__name__}")


def _batches(
    tensors: tuple[torch.Tensor, torch.Tensor] | None, data: Any, batch_size: int, shuffle: torch.Generator,
    device: torch.device,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """An epoch's batches on ``device``: shuffled ``tensors`` by ``shuffle``, or the iterable's own."""
    if tensors is None:
        for x, y in data:
            yield torch.as_tensor(x).to(device), torch.as_tensor(y).to(device)
        return
    x, y = tensors
    order = torch.randperm(len(x), generator=shuffle, device=device)
    for begin in range(0, len(x), batch_size):
        batch = order[begin : begin + batch_size]
        yield x[batch.to(x.device)].to(device), y[batch.to(y.device)].to(device)
