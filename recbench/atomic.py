"""Atomic writes: every file or folder recbench writes (records, caches, checkpoints, downloads,
prepared data) is written to a temporary sibling and renamed into place, so a reader never sees a
half-written one, and is left readable by others (0644, as the data it came from).

A temporary sibling is named `.NAME.tmp-PID-RANDOM`. A kill leaves it behind; the next write of
the same NAME removes the leftovers whose process is gone (`clean_leftovers`) and keeps those of a
process still writing.

Nothing is written through a symbolic link: a rename replaces a link that stands where the file
goes (the file it points to is left alone), the temporary sibling is created here, never opened
when something already has its name, and a file recbench adds to in place (`appending`) is opened
with O_NOFOLLOW. A link in a run folder or a cache could otherwise make recbench overwrite any file
its user may write.

A write that fails (a full disk, a file size limit, a path through a file) becomes recbench's own
error naming the file and the cause (`write_error`): what was there before is kept as it was.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from .errors import RecbenchError, RunError, UsageError

TMP = ".tmp-"


def temp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP}{os.getpid()}-{secrets.token_hex(4)}")


def new_sibling(path: Path, *, folder: bool = False) -> Path:
    """A temporary sibling of `path` that this call created (an empty file, or folder): a name that
    is already taken, by a leftover or a link planted there, is passed over for another."""
    while True:
        tmp = temp_sibling(path)
        try:
            if folder:
                os.mkdir(tmp)
            else:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
        except FileExistsError:
            continue
        return tmp


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove(path: Path) -> None:
    """Remove a file, a folder or a link (the link itself, never what it points to)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


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
        remove(leftover)
        removed.append(leftover)
    return removed


# A write that fails for want of room is a run that failed (exit 1); every other refusal is about the
# place the user pointed recbench at (exit 2).
NO_ROOM = {  # errno -> (why, what to do)
    errno.ENOSPC: ("the disk is full", "Free some space"),
    errno.EDQUOT: ("the disk quota is used up", "Free some space"),
    errno.EFBIG: ("the file outgrew the size this process may write (ulimit -f) or the file system holds",
                  "Raise the limit or write elsewhere"),
}
PLACE = {errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS,
         errno.ENAMETOOLONG, errno.ELOOP}


def blocking_file(path: Path) -> Path | None:
    """The nearest of `path`'s folders that exists and is not a folder (a file in the way), or None."""
    for folder in Path(path).parents:
        if os.path.lexists(folder):
            return None if folder.is_dir() else folder
    return None


def write_error(path: Path, exc: OSError) -> RecbenchError:
    """recbench's error for `exc`, raised while writing `path`: it names the file, the cause and what
    is left there. A RunError where there was no room, a UsageError where the place is wrong."""
    path = Path(path)
    cause = exc.strerror or str(exc)
    if exc.errno == errno.ELOOP and os.path.islink(path):
        return UsageError(f"Cannot write '{path}': it is a symbolic link, and recbench writes through none (it could "
                          "point at any file). Remove the link and run the command again.")
    if exc.errno in NO_ROOM:
        kept = (f"The earlier '{path.name}' is kept as it was" if os.path.lexists(path)
                else "Nothing half-written was left in its place")
        why, remedy = NO_ROOM[exc.errno]
        return RunError(f"Could not write '{path}': {cause}; {why}. {kept}. {remedy}, then run the command again.")
    where = blocking_file(path)
    if where is not None:
        return UsageError(f"Cannot write '{path}': '{where}' is a file, not a folder. Expected a folder there "
                          "(or a path where one can be created).")
    named = f" ('{exc.filename}')" if exc.filename and str(exc.filename) != str(path) else ""
    kind = UsageError if exc.errno in PLACE else RunError
    return kind(f"Cannot write '{path}': {cause}{named}.")


@contextmanager
def replacing(path: Path, *, folder: bool = False, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary sibling of `path` (an empty folder with `folder`) to write; when the block
    ends without an exception it replaces `path` (a file gets `mode`), else it is removed. An
    OSError in the block, or in the rename, becomes `write_error`: `path` is left as it was."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_leftovers(path)
        tmp = new_sibling(path, folder=folder)
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        yield tmp
        if folder:
            if os.path.lexists(path):
                remove(path)
        else:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno is None:  # not a system call's failure (e.g. an error of the data written)
            raise
        raise write_error(path, exc) from None
    finally:
        remove(tmp)


def write_text(path: Path, text: str) -> None:
    """Replace `path` with `text` (UTF-8), atomically."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextmanager
def appending(path: Path) -> Iterator[IO[str]]:
    """`path` opened to add UTF-8 text at its end (created if missing), never through a symbolic
    link; an OSError becomes `write_error`."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with open(fd, "a", encoding="utf-8") as f:
            yield f
    except OSError as exc:
        raise write_error(path, exc) from None


class _Kept:
    """A file for torch.save that keeps the OSError of a failed write: torch reports one as a
    RuntimeError that names neither the file nor the cause."""

    def __init__(self, file: IO[bytes]):
        self.file, self.error = file, None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.file.flush()


def save_torch(obj, path: Path) -> None:
    """torch.save `obj` to `path`, atomically; a failed write is `write_error`."""
    import torch

    with replacing(path) as tmp, open(tmp, "wb") as f:
        out = _Kept(f)
        try:
            torch.save(obj, out)
        except RuntimeError:
            if out.error is None:
                raise
            raise out.error from None
