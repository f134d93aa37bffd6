"""Where recbench keeps things. Every location can be moved with an environment variable.

RECBENCH_HOME         results, logs, studies       default: $XDG_DATA_HOME/recbench (~/.local/share/recbench)
RECBENCH_DATA         downloaded and prepared data default: $XDG_CACHE_HOME/recbench (~/.cache/recbench)
RECBENCH_DATA_MIRROR  a folder of already-obtained raw files, read instead of downloading (optional)

A location that is a file, or lies under one, is refused here, before any work, with a message that
names the variable: found at the first write, it would surface after a whole training run.
"""

import os
from pathlib import Path

from .errors import UsageError


def _xdg(var: str, fallback: str) -> Path:
    return Path(os.environ.get(var) or Path.home() / fallback)


def folder(path: Path, name: str) -> Path:
    """`path`, a folder recbench writes into (created when needed), named `name` in messages (the
    environment variable or option that set it); a UsageError where it, or a folder above it, is a file."""
    path = Path(path)
    for part in (path, *path.parents):
        if os.path.lexists(part):
            if part.is_dir():
                return path
            kind = "a file" if part.is_file() else "not a folder"
            what = f"is {kind}" if part == path else f"lies under '{part}', which is {kind}"
            raise UsageError(f"{name} '{path}' {what}; expected a folder (recbench creates it where it is missing).")
    return path


def home() -> Path:
    if os.environ.get("RECBENCH_HOME"):
        return folder(Path(os.environ["RECBENCH_HOME"]), "RECBENCH_HOME")
    return folder(_xdg("XDG_DATA_HOME", ".local/share") / "recbench", "recbench's home folder (RECBENCH_HOME moves it)")


def results_dir() -> Path:
    return folder(home() / "results", "RECBENCH_HOME's results folder")


def data_dir() -> Path:
    if os.environ.get("RECBENCH_DATA"):
        return folder(Path(os.environ["RECBENCH_DATA"]), "RECBENCH_DATA")
    return folder(_xdg("XDG_CACHE_HOME", ".cache") / "recbench", "recbench's data folder (RECBENCH_DATA moves it)")


def mirror_dir() -> Path | None:
    value = os.environ.get("RECBENCH_DATA_MIRROR")
    return Path(value).expanduser() if value else None
