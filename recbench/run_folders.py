"""Run folders (RECBENCH_HOME/runs/RUN_ID/: checkpoints, log, run.json): a lock held by the one
process that trains in a folder, and the marks that say a folder is finished or abandoned, so that
`--resume` continues only unfinished runs of the same config and seed.

Nothing here writes through a symbolic link: the marks replace run.json by a rename (a link there is
replaced, the file it points to left alone), and a lock that is a link, or no regular file, is
refused. A folder named by `--resume` may hold anything; a link in it must not make recbench
overwrite another file.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

from .atomic import write_error, write_text
from .errors import UsageError

_HELD: dict[Path, Any] = {}  # run folder -> the open lock file this process holds


def lock_run_folder(folder: Path) -> None:
    """Hold `folder`'s lock until this process ends (the OS drops it with the process, however it
    ends): a second process that trains in the same folder (two `--resume` of one run) is refused."""
    import fcntl

    if folder in _HELD:
        return
    handle = open_lock(folder / "lock")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise UsageError(f"Run folder {folder} is in use by {holder}: one process at a time trains in a run folder. "
                         "Wait for it to end (or stop it), then --resume again.") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
    except OSError as exc:
        handle.close()
        raise write_error(folder / "lock", exc) from None
    _HELD[folder] = handle


def open_lock(path: Path):
    """`path` opened to read and write (created if missing), or a UsageError where it is a symbolic
    link or not a regular file (a FIFO or device planted there; O_NONBLOCK keeps such an open from waiting)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP and path.is_symlink():
            raise UsageError(f"Run folder lock '{path}' is a symbolic link; recbench writes its process id into the lock and "
                             "never through a link (it could point at any file). Remove the link, then --resume again.") from None
        raise write_error(path, exc) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UsageError(f"Run folder lock '{path}' is not a regular file. Remove it, then --resume again.")
    return open(fd, "r+", encoding="utf-8")


def release_run_folder(folder: Path) -> None:
    handle = _HELD.pop(folder, None)
    if handle is not None:
        handle.close()


def is_resumable(folder: Path, identity: dict, config: dict | None = None, tokenizer: str | None = None) -> bool:
    """Whether `folder` is an unfinished run of `identity` (generator, dataset, config fingerprint,
    seed). Given the resolved `config` (and tokenizer name), a fingerprint written under the scheme
    before fingerprints hashed the whole config counts too (records.same_config)."""
    try:
        meta = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        return False
    if "record" in meta:
        return False
    if config is not None:
        from .results.records import same_config

        identity = {k: v for k, v in identity.items() if k != "config_fingerprint"}
        if not same_config(meta.get("config_fingerprint"), config, tokenizer):
            return False
    return all(meta.get(k) == v for k, v in identity.items())


def mark_finished(folder: Path, record_path: Path | None) -> None:
    """Mark a run folder finished (never resumed again), with its record (None: a run that writes none)."""
    meta = json.loads((folder / "run.json").read_text())
    meta["record"] = None if record_path is None else str(record_path)
    write_text(folder / "run.json", json.dumps(meta, indent=1))


def mark_abandoned(folder: Path, why: str) -> None:
    """Mark the folder of a run that stopped early and is never to be continued (e.g. a tuning trial
    that was pruned, failed or killed: `why`), so that `--resume` does not pick it up. A folder that
    is already finished is left as it is."""
    meta = json.loads((folder / "run.json").read_text())
    if "record" in meta:
        return
    meta.update(record=None, abandoned=why)
    write_text(folder / "run.json", json.dumps(meta, indent=1))
