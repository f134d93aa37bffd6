"""Progress of long steps (training, embedding, evaluation, downloads): a rich bar on a terminal,
plain lines at a sane interval when the output goes to a file or a pipe (a rich bar there shows
nothing until the step ends).

`bar(columns, line, console=..., every=...)` returns an object with rich's Progress interface
(`add_task`, `update`, `advance`, a context manager). Off a terminal, `line(task)` is printed for a
task when `every` seconds have passed since its last line, and once when it completes; `task` has
`description`, `completed`, `total`, `elapsed` and `fields`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from rich.console import Console
from rich.progress import Progress


@dataclass
class Task:
    description: str
    total: float | None
    completed: float = 0
    fields: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    printed: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def finished(self) -> bool:
        return self.total is not None and self.completed >= self.total


class Lines:
    """rich.progress.Progress's interface, printing `line(task)` at most every `every` seconds per task."""

    def __init__(self, line: Callable[[Task], str], console: Console, every: float):
        self.line, self.console, self.every = line, console, every
        self.tasks: list[Task] = []

    def __enter__(self) -> "Lines":
        return self

    def __exit__(self, *exc) -> bool:
        return False

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields) -> int:
        self.tasks.append(Task(description, total, completed, fields))
        return len(self.tasks) - 1

    def update(self, task_id: int, *, completed: float | None = None, advance: float | None = None, **fields) -> None:
        task = self.tasks[task_id]
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        task.fields.update(fields)
        now = time.monotonic()
        if task.finished or now - task.printed >= self.every:
            task.printed = now
            self.console.print(self.line(task), soft_wrap=True, highlight=False, markup=False)

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)


def bar(*columns, line: Callable[[Task], str], console: Console | None = None, every: float = 30.0, disable: bool = False):
    """A rich Progress of `columns` on a terminal; elsewhere plain `line`s at most every `every` seconds."""
    console = console or Console(stderr=True)
    if disable or console.is_terminal:
        return Progress(*columns, console=console, disable=disable)
    return Lines(line, console, every)


def counted(task: Task, unit: str = "") -> str:
    """'embedding item text: 3,200/12,101 texts (26%), 41 s' — a plain line for a counted task."""
    share = f" ({task.completed / task.total:.0%})" if task.total else ""
    return f"{task.description}: {task.completed:,.0f}" + (f"/{task.total:,.0f}" if task.total else "") + f"{unit}{share}, {task.elapsed:,.0f} s"
