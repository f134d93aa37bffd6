"""Progress of long steps (training, embedding, evaluation, downloads): a rich bar on a terminal,
plain lines at a sane interval when the output goes to a file or a pipe (a rich bar there shows
nothing until the step ends).

`bar(columns, line, console=..., every=...)` returns an object with rich's Progress interface
(`add_task`, `update`, `advance`, a context manager). Off a terminal, `line(task)` is printed for a
task when `every` seconds have passed since its last line (RECBENCH_PROGRESS_SECONDS, 30 by
default), when an update asks for it (`refresh=True`) and once when it completes; `task` has
`description`, `completed`, `total`, `elapsed`, `time_remaining` and `fields`. A `line` that returns
None has nothing worth a line yet (e.g. no loss computed).

`fitted(rows, line)` is the same for displays with more to say than rich's columns fit: `rows(task)`
gives a task's rows as `Part`s, most of them droppable, and each row is laid out to the terminal's
width (the least important parts go first; a bar takes the room left), so that a narrow terminal
loses detail, never the count or the time at the end of a row.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from rich.cells import cell_len
from rich.console import Console
from rich.progress import Progress
from rich.text import Text

from .errors import UsageError

INTERVAL_VARIABLE = "RECBENCH_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 30.0


def interval() -> float:
    """Seconds between plain progress lines: RECBENCH_PROGRESS_SECONDS, else 30 — often enough that a
    log of a long epoch shows life, seldom enough that it stays readable."""
    raw = os.environ.get(INTERVAL_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_INTERVAL
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not (math.isfinite(seconds) and seconds >= 0):
        raise UsageError(f"{INTERVAL_VARIABLE}={raw!r}: expected a number of seconds >= 0 between progress lines "
                         f"(e.g. {DEFAULT_INTERVAL:.0f}; 0 prints a line at every update).")
    return seconds


@dataclass
class Task:
    description: str
    total: float | None
    completed: float = 0
    fields: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    printed: float = field(default_factory=time.monotonic)
    visible: bool = True

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def finished(self) -> bool:
        return self.total is not None and self.completed >= self.total

    @property
    def time_remaining(self) -> float | None:
        """Seconds left at the mean pace so far; None before anything is done (no pace to go by)."""
        if self.finished:
            return 0.0
        if not self.total or not self.completed:
            return None
        return self.elapsed / self.completed * (self.total - self.completed)


class Lines:
    """rich.progress.Progress's interface, printing `line(task)` at most every `every` seconds per task
    (and when asked, and when the task completes, unless it was added with line_at_end=False)."""

    def __init__(self, line: Callable[[Task], str | None], console: Console, every: float):
        self.line, self.console, self.every = line, console, every
        self.tasks: list[Task] = []

    def __enter__(self) -> "Lines":
        return self

    def __exit__(self, *exc) -> bool:
        return False

    def add_task(self, description: str, total: float | None = None, completed: float = 0, visible: bool = True, **fields) -> int:
        self.tasks.append(Task(description, total, completed, fields, visible=visible))
        return len(self.tasks) - 1

    def update(self, task_id: int, *, total: float | None = None, completed: float | None = None, advance: float | None = None,
               description: str | None = None, visible: bool | None = None, refresh: bool = False, **fields) -> None:
        task = self.tasks[task_id]
        if total is not None:
            task.total = total
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        if description is not None:
            task.description = description
        if visible is not None:
            task.visible = visible
        task.fields.update(fields)
        now = time.monotonic()
        at_end = task.finished and task.fields.get("line_at_end", True)
        if task.visible and (refresh or at_end or now - task.printed >= self.every):
            text = self.line(task)
            if text is not None:
                task.printed = now
                self.console.print(text, soft_wrap=True, highlight=False, markup=False)

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def remove_task(self, task_id: int) -> None:
        self.tasks[task_id].visible = False  # ids stay those add_task gave


def bar(*columns, line: Callable[[Task], str | None], console: Console | None = None, every: float | None = None, disable: bool = False):
    """A rich Progress of `columns` on a terminal; elsewhere plain `line`s at most every `every` seconds
    (default: RECBENCH_PROGRESS_SECONDS, else 30)."""
    console = console or Console(stderr=True)
    if disable or console.is_terminal:
        return Progress(*columns, console=console, disable=disable)
    return Lines(line, console, interval() if every is None else every)


@dataclass(frozen=True)
class Part:
    """A piece of a progress row. A row too wide for the terminal loses its parts of highest `drop`
    first (0: never dropped). A part with `bar` (the completed fraction, 0 to 1) is a bar that takes
    the width the other parts leave, from BAR_MIN to BAR_MAX columns."""

    text: str = ""
    drop: int = 0
    bar: float | None = None
    style: str = ""


BAR_MIN, BAR_MAX = 10, 40


def fit(parts: list[Part], width: int, ascii_only: bool = False) -> Text:
    """`parts` on one line of at most `width` cells, separated by a space: the droppable parts that do
    not fit are left out (highest `drop` first; of equals, the last), the bar takes the room left,
    and a row that is still too wide is cut with an ellipsis."""
    kept = list(parts)

    def needed(row: list[Part]) -> int:
        return sum(BAR_MIN if p.bar is not None else cell_len(p.text) for p in row) + max(0, len(row) - 1)

    dropped = []
    while needed(kept) > width and any(p.drop for p in kept):
        dropped.append(kept.pop(max(range(len(kept)), key=lambda i: (kept[i].drop, i))))
    for part in reversed(dropped):  # the most important first: back where it fits in the room the others left
        row = [p for p in parts if p is part or any(p is k for k in kept)]
        if needed(row) <= width:
            kept = row
    spare = max(0, width - needed(kept))
    text = Text(no_wrap=True, overflow="ellipsis")
    for i, part in enumerate(kept):
        if i:
            text.append(" ")
        if part.bar is None:
            text.append(part.text, part.style)
            continue
        size = min(BAR_MAX, BAR_MIN + spare)
        done = round(min(1.0, max(0.0, part.bar)) * size)
        char = "-" if ascii_only else "━"
        for cells, style in ((done, "bar.finished" if done == size else "bar.complete"), (size - done, "bar.back")):
            if cells:
                text.append(char * cells, style)
    text.truncate(width, overflow="ellipsis")
    return text


class Rows:
    """Rows of parts, each laid out (`fit`) to the width it is rendered at."""

    def __init__(self, rows: list[list[Part]]):
        self.rows = rows

    def __rich_console__(self, console, options):
        for row in self.rows:
            yield fit(row, options.max_width, options.ascii_only)


class Fitted(Progress):
    """A rich Progress whose tasks are drawn as `rows(task)`, fitted to the terminal's width."""

    def __init__(self, rows: Callable[[Any], list[list[Part]]], console: Console):
        super().__init__(console=console, refresh_per_second=4)
        self.rows = rows

    def make_tasks_table(self, tasks) -> Rows:  # rich calls it under its lock, at each refresh
        return Rows([row for task in tasks if task.visible for row in self.rows(task)])


def fitted(rows: Callable[[Any], list[list[Part]]], line: Callable[[Task], str | None], *, console: Console | None = None,
           every: float | None = None, disable: bool = False):
    """`rows` fitted to a terminal's width; elsewhere plain `line`s, as `bar` prints them."""
    console = console or Console(stderr=True)
    if disable:
        return Progress(console=console, disable=True)
    if console.is_terminal:
        return Fitted(rows, console)
    return Lines(line, console, interval() if every is None else every)


def clock(seconds: float | None) -> str:
    """'0:03:20', as rich's time columns write it; '-:--:--' where not known."""
    if seconds is None or not math.isfinite(seconds):
        return "-:--:--"
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def duration(seconds: float) -> str:
    """'41 s', '3 min 20 s', '2 h 05 min': a time for a line in a log."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds // 60 % 60:02d} min"


def counted(task: Task, unit: str = "") -> str:
    """'embedding item text: 3,200/12,101 texts (26%), 41 s, about 1 min 55 s left' — a plain line for a counted task."""
    share = f" ({task.completed / task.total:.0%})" if task.total else ""
    left = getattr(task, "time_remaining", None) if not task.finished else None
    return (f"{task.description}: {task.completed:,.0f}" + (f"/{task.total:,.0f}" if task.total else "") + f"{unit}{share}, "
            f"{task.elapsed:,.0f} s" + (f", about {duration(left)} left" if left is not None else ""))


def counted_rows(task, unit: str = "") -> list[list[Part]]:
    """A counted task as one row: description, bar, count, time elapsed and left."""
    count = f"{task.completed:,.0f}" + (f"/{task.total:,.0f}" if task.total else "") + unit
    fraction = task.completed / task.total if task.total else None
    return [[Part(task.description), *([Part(bar=fraction, drop=3)] if fraction is not None else []), Part(count),
             Part(clock(task.elapsed), drop=2), Part(f"{clock(task.time_remaining)} left", drop=1)]]
