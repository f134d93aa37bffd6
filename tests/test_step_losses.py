"""The losses of training steps read back once per interval (recbench.step_losses): the same running
loss as reading every step, and a NaN found with the batch it came from."""

import math

import torch

from recbench.step_losses import StepLosses, read_every


def test_reading_every_three_steps_gives_the_values_and_the_sum_of_reading_each():
    losses = [torch.tensor(v) for v in (0.7, 0.31, 0.2999, 1e-3, 2.5)]
    each, grouped, seen = StepLosses(1), StepLosses(3), []
    for batch, loss in enumerate(losses, 1):
        each.add(batch, loss, 0.1)
        each.read()
        grouped.add(batch, loss, 0.1 * batch)
        if grouped.due():
            seen += grouped.read()[0]
    seen += grouped.read()[0]
    assert each.total == grouped.total == sum(float(v) for v in losses)  # bit for bit: the same floats added in the same order
    assert [(b, lr) for b, _, lr in seen] == [(b, 0.1 * b) for b in range(1, 6)] and grouped.read() == ([], None)


def test_a_non_finite_loss_is_found_with_its_batch_when_read():
    losses = StepLosses(4)
    for batch, value in enumerate((0.5, math.nan, 0.4), 1):
        losses.add(batch, torch.tensor(value), 0.1)
    steps, bad = losses.read()
    assert bad == 2 and len(steps) == 3


def test_the_gpu_reads_once_per_interval_and_the_cpu_every_step():
    assert read_every(torch.device("cpu")) == 1 and read_every(torch.device("cuda", 0)) > 1
    assert StepLosses(1).checks_each_step and not StepLosses(50).checks_each_step
