"""Run folders (RECBENCH_HOME/runs/RUN_ID/: checkpoints, log, run.json): a lock held by the one
process that trains in a folder, and the marks that say a folder is finished or abandoned, so that
`--resume` continues only unfinished runs of the same config and seed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import UsageError

_HELD: dict[Path, Any] = {}  # run folder -> the open lock file this process holds


def lock_run_folder(folder: Path) -> None:
    """Hold `folder`'s lock until this process ends (the OS drops it with the process, however it
    ends): a second process that trains in the same folder (two `--resume` of one run) is refused."""
    import fcntl

    if folder in _HELD:
        return
    handle = open(folder / "lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise UsageError(f"Run folder {folder} is in use by {holder}: one process at a time trains in a run folder. "
                         "Wait for it to end (or stop it), then --resume again.") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()}")
    handle.flush()
    _HELD[folder] = handle


def release_run_folder(folder: Path) -> None:
    handle = _HELD.pop(folder, None)
    if handle is not None:
        handle.close()


def is_resumable(folder: Path, identity: dict) -> bool:
    try:
        meta = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        return False
    return "record" not in meta and all(meta.get(k) == v for k, v in identity.items())


def mark_finished(folder: Path, record_path: Path | None) -> None:
    """Mark a run folder finished (never resumed again), with its record (None: a run that writes none)."""
    meta = json.loads((folder / "run.json").read_text())
    meta["record"] = None if record_path is None else str(record_path)
    (folder / "run.json").write_text(json.dumps(meta, indent=1))


def mark_abandoned(folder: Path, why: str) -> None:
    """Mark the folder of a run that stopped early and is never to be continued (e.g. a tuning trial
    that was pruned, failed or killed: `why`), so that `--resume` does not pick it up. A folder that
    is already finished is left as it is."""
    meta = json.loads((folder / "run.json").read_text())
    if "record" in meta:
        return
    meta.update(record=None, abandoned=why)
    (folder / "run.json").write_text(json.dumps(meta, indent=1))
