"""Progress displays: rows fitted to the terminal's width, plain lines at an interval off a terminal,
nothing shown for a value not computed yet."""

import io
import time

import pytest
from rich.console import Console

from recbench import progress, train_progress
from recbench.errors import UsageError
from recbench.progress import Part, fit


def train_task(display, **fields):
    defaults = dict(metric="0.8*ndcg@10+0.2*recall@10", epoch=3, step=0, steps=5000, loss=None, samples=0,
                    started=time.monotonic(), ended=None, valid=None)
    return display.add_task("train", total=8, completed=2, **{**defaults, **fields})


def shown(display, width) -> list[str]:
    console = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
    console.print(display.make_tasks_table(display.tasks))
    return console.file.getvalue().splitlines()


def test_rows_fit_an_80_column_terminal_and_keep_the_epoch_total_the_time_and_the_named_metric():
    display = train_progress.display(Console(file=io.StringIO(), force_terminal=True))
    task = train_task(display, step=1234, loss=4.23114, samples=1234 * 256, started=time.monotonic() - 400,
                      valid={"value": 0.0166, "epoch": 2, "best": 0.0166, "best_epoch": 2})
    wide = shown(display, 200)
    assert "valid 0.8*ndcg@10+0.2*recall@10 = 0.0166 (epoch 2, best so far)" in wide[0] and "━" in wide[0]
    assert wide[1].strip().startswith("step 1,234/5,000 ━") and "loss 4.2311" in wide[1] and "samples/s" in wide[1]
    assert wide[1].endswith(" left")
    narrow = shown(display, 80)
    assert all(len(line) <= 80 for line in narrow) and "…" not in "".join(narrow)
    assert narrow[0].startswith("epoch 3/8 ") and " 0:00:" in narrow[0] and narrow[0].endswith(
        "valid 0.8*ndcg@10+0.2*recall@10 = 0.0166")  # the epoch total, the time and the metric stay; the bar and the best go
    assert "step 1,234/5,000" in narrow[1] and "loss 4.2311" in narrow[1] and " left" in narrow[1]
    display.update(task, valid={"value": 0.0150, "epoch": 3, "best": 0.0166, "best_epoch": 2})
    assert "= 0.0150 (epoch 3; best 0.0166, epoch 2)" in shown(display, 200)[0]


def test_nothing_is_shown_for_a_loss_not_computed_yet():
    display = train_progress.display(Console(file=io.StringIO(), force_terminal=True))
    train_task(display)
    rows = shown(display, 120)
    assert "nan" not in "".join(rows).lower() and "step 0/5,000" in rows[1] and "first step running" in rows[1]
    out = io.StringIO()
    lines = progress.fitted(train_progress.rows, train_progress.line, console=Console(file=out), every=0)
    task = train_task(lines)
    lines.update(task, step=0)  # an update before the first step prints nothing
    assert out.getvalue() == ""
    lines.update(task, step=1, loss=4.5, samples=256)
    assert out.getvalue().startswith("epoch 3/8: step 1/5,000 (0%), loss 4.5000, ") and "left in the epoch" in out.getvalue()


def test_off_a_terminal_lines_come_at_the_interval_and_at_each_epochs_end(monkeypatch):
    monkeypatch.setenv("RECBENCH_PROGRESS_SECONDS", "3600")
    out = io.StringIO()
    lines = train_progress.display(Console(file=out))
    assert isinstance(lines, progress.Lines) and lines.every == 3600
    task = train_task(lines, steps=3)
    for step in (1, 2, 3):
        lines.update(task, step=step, loss=4.0, samples=256 * step)
    assert out.getvalue() == ""  # within the interval: no line
    lines.update(task, completed=3, ended=time.monotonic(), valid={"value": 0.02, "epoch": 3, "best": 0.02, "best_epoch": 3},
                 refresh=True)
    assert out.getvalue().startswith("epoch 3/8: loss 4.0000, ")
    assert "samples/s, valid 0.8*ndcg@10+0.2*recall@10 = 0.0200 (epoch 3, best so far), " in out.getvalue()
    monkeypatch.setenv("RECBENCH_PROGRESS_SECONDS", "0.5")
    assert progress.interval() == 0.5
    monkeypatch.delenv("RECBENCH_PROGRESS_SECONDS")
    assert progress.interval() == 30


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_a_bad_progress_interval_is_a_usage_error(monkeypatch, value):
    monkeypatch.setenv("RECBENCH_PROGRESS_SECONDS", value)
    with pytest.raises(UsageError, match=f"RECBENCH_PROGRESS_SECONDS='{value}': expected a number of seconds >= 0"):
        progress.interval()


def test_fit_drops_the_least_important_parts_first_and_gives_the_bar_the_room_left():
    parts = [Part("epoch 3/8"), Part(bar=0.5, drop=3), Part("0:12:01", drop=1), Part("valid 0.0166"), Part("(best)", drop=2)]
    assert fit(parts, 100).plain == "epoch 3/8 " + "━" * 40 + " 0:12:01 valid 0.0166 (best)"
    assert fit(parts, 50).plain == "epoch 3/8 " + "━" * 12 + " 0:12:01 valid 0.0166 (best)"
    assert fit(parts, 35).plain == "epoch 3/8 0:12:01 valid 0.0166"  # the bar goes, then the best
    assert fit(parts, 23).plain == "epoch 3/8 valid 0.0166"
    assert fit(parts, 15).plain == "epoch 3/8 vali…"  # what must stay is cut, never wrapped
