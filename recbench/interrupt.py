"""What Ctrl-C says: where the interrupted run is, how far it got, and the exact command that
continues it.

The trainer knows which epoch its last checkpoint holds (a Ctrl-C during the write of last.pt
leaves the one before), so it raises `Interrupted`, a KeyboardInterrupt that carries those facts;
the CLI turns it into the message. A plain KeyboardInterrupt (before training, or in a run that
does not train) has nothing to resume.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from .config import normalize_key


@dataclass
class Reached:
    """How far an interrupted run got: what its last checkpoint (last.pt in `folder`) holds."""

    folder: Path
    epoch: int  # epochs in the last checkpoint (0: none yet)
    epochs: int  # epochs planned
    metric: str  # the validation metric that selects the model
    best: float | None = None
    best_epoch: int | None = None
    trained: bool = False  # training had ended: a resume evaluates and writes the record


class Interrupted(KeyboardInterrupt):
    """Ctrl-C in a run that has a run folder, with how far it got."""

    def __init__(self, reached: Reached):
        super().__init__()
        self.reached = reached


def resume_command(argv: list[str], folder: Path, processes: int = 1) -> str:
    """`recbench ARGS --resume=FOLDER`: the command line `argv` (sys.argv) with any --resume replaced
    by the run folder, and --nproc N where the run had N processes (torchrun's children are not
    given it)."""
    args, rest = [], list(argv[1:])
    while rest:
        arg = rest.pop(0)
        if arg.startswith("--") and normalize_key(arg.split("=", 1)[0]) == "resume":
            if "=" not in arg and rest and not rest[0].startswith("-"):
                rest.pop(0)  # --resume FOLDER
            continue
        args.append(arg)
    if processes > 1 and not any(a == "--nproc" or a.startswith("--nproc=") for a in args):
        args[1:1] = ["--nproc", str(processes)]
    return shlex.join(["recbench", *args, f"--resume={folder}"])


def message(exc: KeyboardInterrupt, folder: Path | None, command: str | None) -> str:
    """What to tell the user after Ctrl-C: the run folder, how far it got and `command` (resume_command)."""
    if isinstance(exc, Interrupted):
        p = exc.reached
        folder = p.folder
    else:
        p = None
    if folder is None:
        return "Interrupted before any training was saved: there is nothing to resume. Run the same command to start again."
    if p is None:  # between the run folder's making and the trainer's start (a resume reading its checkpoint)
        return f"Interrupted. Run folder: {folder}\nContinue it with:\n  {command}"
    if p.epoch == 0:
        return (f"Interrupted in epoch 1 of {p.epochs}, before any epoch was saved. Run folder: {folder}\n"
                f"Start it again in that folder with:\n  {command}")
    best = (f"; best validation {p.metric} = {p.best:.4f} at epoch {p.best_epoch}" if p.best is not None else "")
    if p.trained:
        return (f"Interrupted after training ended (epoch {p.epoch} of {p.epochs}{best}). Run folder: {folder}\n"
                f"Evaluate its best model and write the record, without training again, with:\n  {command}")
    return (f"Interrupted in epoch {p.epoch + 1} of {p.epochs}; the last checkpoint holds epoch {p.epoch}{best}.\n"
            f"Run folder: {folder}\nContinue it from epoch {p.epoch + 1} with:\n  {command}")
