"""Networks that behave like a device running out of memory, for the tests of what the batch size does then."""

from __future__ import annotations

import torch
from torch import nn


class OutOfMemoryAbove64(nn.Module):
    """A linear network (3 values, 4 classes) that raises torch's out-of-memory error for a batch above 64 copies,
    as a GPU without room for more would."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) > 64:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.linear(x)
