"""Atomic writes: every file or folder recbench writes (records, caches, checkpoints, downloads,
prepared data) is written to a temporary sibling and renamed into place, so a reader never sees a
half-written one, and is left readable by others (0644, as the data it came from).

A temporary sibling is named `.NAME.tmp-PID-RANDOM`. A kill leaves it behind; the next write of
the same NAME removes the leftovers whose process is gone (`clean_leftovers`) and keeps those of a
process still writing.
"""

from __future__ import annotations

import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

TMP = ".tmp-"


def temp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP}{os.getpid()}-{secrets.token_hex(4)}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def clean_leftovers(path: Path) -> list[Path]:
    """Remove the temporary siblings of `path` that a killed process left; return them."""
    removed = []
    if not path.parent.is_dir():
        return removed
    prefix = f".{path.name}{TMP}"
    for leftover in path.parent.iterdir():
        if not leftover.name.startswith(prefix):
            continue
        pid = leftover.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and alive(int(pid)):
            continue
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed.append(leftover)
    return removed


@contextmanager
def replacing(path: Path, *, folder: bool = False, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary sibling of `path` (an empty folder with `folder`) to write; when the block
    ends without an exception it replaces `path` (a file gets `mode`), else it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path)
    tmp = temp_sibling(path)
    if folder:
        tmp.mkdir()
    try:
        yield tmp
        if folder:
            if path.exists():
                shutil.rmtree(path)
        else:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
