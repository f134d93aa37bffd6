"""The training loss of each optimizer step, read back to the host once per interval.

Reading a loss on the GPU (`loss.item()`) waits for every kernel queued before it: one read per
step keeps the host from queueing the next step's work while the GPU runs this one. The trainer
keeps each step's loss tensor here instead, with the step's number and learning rate (known on
the host), and reads them all at once every `every` steps and at the end of the epoch; the running
loss, the trackers' per-step values and the divergence check are served from that one read. On the
CPU nothing runs ahead of the host, so `every` is 1 there and a run is step for step what it was:
the same values summed in the same order, each checked before its backward pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from . import distributed as dist

# steps between reads on a GPU: a progress display and trackers a few seconds behind, at most
GPU_READ_EVERY = 50


def read_every(device: torch.device) -> int:
    return GPU_READ_EVERY if device.type == "cuda" else 1


@dataclass
class StepLosses:
    every: int
    pending: list[tuple[int, torch.Tensor, float]] = field(default_factory=list)  # (batch of the epoch, loss, lr after the step)
    total: float = 0.0  # the sum of the losses read so far, added in step order

    @property
    def checks_each_step(self) -> bool:
        """Whether the caller checks each loss for NaN/inf before its backward pass (reads every step
        cost nothing), or `read` checks the interval's losses together."""
        return self.every == 1

    def add(self, batch: int, loss: torch.Tensor, lr: float) -> None:
        self.pending.append((batch, loss.detach(), lr))

    def due(self) -> bool:
        return len(self.pending) >= self.every

    def read(self) -> tuple[list[tuple[int, float, float]], int | None]:
        """The pending steps as (batch, loss, lr), in order, and the first batch whose loss is NaN or inf
        (None where every process's losses are finite; 0 where only another process's are not),
        in one transfer from the device; their losses are added to `total` and they are cleared."""
        if not self.pending:
            return [], None
        stacked = torch.stack([loss for _, loss, _ in self.pending])
        values = stacked.tolist()  # the one wait for the device
        steps = [(batch, value, lr) for (batch, _, lr), value in zip(self.pending, values)]
        self.pending = []
        for _, value, _ in steps:
            self.total += value
        bad = None
        if not self.checks_each_step and dist.any_nonfinite(stacked.double().sum()):  # every process takes part
            bad = next((batch for batch, value, _ in steps if not math.isfinite(value)), 0)
        return steps, bad
