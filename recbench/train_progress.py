"""What a training run shows while it runs, on a terminal and in a log.

The trainer keeps one task, "train", whose `completed` is the epochs done and whose fields say where
the current epoch is (`epoch`, `step` of `steps`, the epoch's mean `loss` so far, `samples`, the
monotonic times the epoch `started` and its steps `ended`) and what the last validation gave
(`valid`: value, epoch, best, best_epoch of the metric named `metric`). Validation adds its own
ranking task to the same display (recbench.evaluate).

On a terminal: a row for the run (epoch, bar, time, the named validation metric) and a row for the
steps of the epoch (count, bar, running loss, samples/s, time left), fitted to the width. In a log:
a line at the end of every epoch and, within a long one, a line every RECBENCH_PROGRESS_SECONDS
(30 by default). Nothing is shown for a value not computed yet: no loss before the first step.
"""

from __future__ import annotations

import time

from .progress import Part, clock, counted, counted_rows, duration, fitted


def display(console=None):
    """The training display: rows on a terminal, plain lines elsewhere (a context manager with rich's Progress interface)."""
    return fitted(rows, line, console=console)


def pace(fields: dict) -> tuple[float | None, float | None]:
    """(samples/s, seconds left in the epoch) of the steps so far; None where no step is done yet."""
    step, steps = fields.get("step", 0), fields.get("steps", 0)
    if not step or fields.get("started") is None:
        return None, None
    seconds = max(1e-9, (fields.get("ended") or time.monotonic()) - fields["started"])
    return fields.get("samples", 0) / seconds, seconds / step * max(0, steps - step)


def validation(fields: dict) -> tuple[str, str] | None:
    """('valid 0.8*ndcg@10+0.2*recall@10 = 0.0166', '(epoch 3, best so far)'), or None before the first validation."""
    valid = fields.get("valid")
    if not valid:
        return None
    if valid["epoch"] == valid["best_epoch"]:
        where = f"(epoch {valid['epoch']}, best so far)"
    else:
        where = f"(epoch {valid['epoch']}; best {valid['best']:.4f}, epoch {valid['best_epoch']})"
    return f"valid {fields['metric']} = {valid['value']:.4f}", where


def rows(task) -> list[list[Part]]:
    if task.description != "train":  # a validation's ranking, added to this display by recbench.evaluate
        return counted_rows(task, task.fields.get("unit", ""))
    f = task.fields
    step, steps = f.get("step", 0), f.get("steps", 0) or 1
    done = (task.completed + (step / steps if task.completed < f["epoch"] else 0)) / (task.total or 1)
    run = [Part(f"epoch {f['epoch']}/{task.total:.0f}", style="bold"), Part(bar=done, drop=3), Part(clock(task.elapsed), drop=1)]
    valid = validation(f)
    if valid:
        run += [Part(valid[0]), Part(valid[1], drop=2)]
    speed, left = pace(f)
    epoch = [Part(f"  step {step:,}/{steps:,}"), Part(bar=step / steps, drop=4)]
    if f.get("loss") is None:
        epoch.append(Part("first step running", style="dim", drop=1))
    else:
        epoch += [Part(f"loss {f['loss']:.4f}"), Part(f"{speed:,.0f} samples/s", drop=2)]
        if step < steps:
            epoch.append(Part(f"{clock(left)} left", drop=1))
    return [run, epoch]


def line(task) -> str | None:
    """'epoch 3/8: step 1,234/5,000 (25%), loss 4.2311, 812 samples/s, about 3 min 12 s left in the epoch' within an
    epoch, 'epoch 3/8: loss 4.2311, 812 samples/s, valid ... = 0.0166 (epoch 3, best so far), 12 min 1 s' at its end."""
    if task.description != "train":
        return counted(task, task.fields.get("unit", ""))
    f = task.fields
    if f.get("loss") is None:
        return None  # no step done: nothing to say yet
    speed, left = pace(f)
    head = f"epoch {f['epoch']}/{task.total:.0f}: "
    if task.completed < f["epoch"]:
        return (head + f"step {f['step']:,}/{f['steps']:,} ({f['step'] / f['steps']:.0%}), loss {f['loss']:.4f}, "
                f"{speed:,.0f} samples/s, about {duration(left)} left in the epoch")
    valid = validation(f)
    return (head + f"loss {f['loss']:.4f}, {speed:,.0f} samples/s, " + (" ".join(valid) + ", " if valid else "")
            + duration(task.elapsed))
