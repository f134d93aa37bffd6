"""Checkpoint files (a run's best.pt and last.pt): tensors and plain data only, read without
running code.

Checkpoints travel between people (`--eval_only=true --checkpoint FILE` from elsewhere), and
unpickling a file runs whatever code it names. So a checkpoint holds only what torch's restricted
unpickler, `torch.load(weights_only=True)`, rebuilds without importing anything: tensors, dicts,
lists, tuples, strings, numbers, booleans and None. The model, optimizer and scheduler states are
tensors and numbers already; the random states are kept as numbers (recbench.rng); the run's
metadata (generator, dataset, seed, config, setting) as JSON-compatible values. `save` checks this
before writing, and `load` reads with the restricted unpickler only.

Checkpoints of earlier recbench versions pickled numpy's random state as an ndarray, which only
full unpickling rebuilds: `load` refuses them, naming the command that rewrites one in this form,
`recbench checkpoint convert FILE` (`convert`), the one place that unpickles fully, and only on
that explicit request, for a file its owner trusts.
"""

from __future__ import annotations

import copy
import pickle
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .atomic import save_torch
from .errors import UsageError

FORMAT = 2  # 1: earlier checkpoints, which needed full unpickling (no "format" key)
_PLAIN = (str, int, float, bool, type(None))


def plain(value: Any, where: str = "checkpoint") -> Any:
    """`value` with numpy scalars and arrays turned into Python numbers and tensors; anything else
    that is not a tensor, dict, list, tuple, str, number, bool or None is a TypeError naming where it is.
    Containers that need no change are returned as they are (a state dict keeps its metadata)."""
    if isinstance(value, np.generic):  # before the plain types: np.float64 is a float, but pickles as numpy's
        return value.item()
    if type(value) in _PLAIN or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{where} is a numpy array of {value.dtype}, not numbers")
        return torch.from_numpy(np.array(value))
    if isinstance(value, dict):
        pairs = [(plain(k, f"{where} key {k!r}"), plain(v, f"{where}[{k!r}]"), k, v) for k, v in value.items()]
        if all(new_k is k and new_v is v for new_k, new_v, k, v in pairs):
            return value
        out = copy.copy(value)
        out.clear()
        out.update((new_k, new_v) for new_k, new_v, _, _ in pairs)
        return out
    if isinstance(value, (list, tuple)):
        items = [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if all(a is b for a, b in zip(items, value)):
            return value
        return items if isinstance(value, list) else tuple(items)
    raise TypeError(f"{where} is a {type(value).__module__}.{type(value).__qualname__}, not a tensor or plain data")


def save(obj: dict, path: Path) -> None:
    """Write checkpoint `obj` to `path` atomically, in the format `load` reads."""
    save_torch({**plain(obj), "format": FORMAT}, path)  # a full disk is an error naming the file; the earlier one is kept


def unsafe_globals(path: Path, error: Exception | None = None) -> list[str]:
    """The Python objects (module.name) that a checkpoint file names beyond what the restricted
    unpickler builds, read from its pickle without running it; else those torch's refusal named."""
    try:
        found = list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - not a zip checkpoint, unreadable: fall back to the refusal's words
        found = []
    return found or sorted(set(re.findall(r"GLOBAL ([\w.]+)", str(error or ""))))


def needs_unpickling(path: Path, found: list[str]) -> str:
    named = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
    return (f"Checkpoint '{path}' holds Python objects beyond tensors and plain data ({named or 'pickled objects'}), which only full "
            "unpickling could rebuild, and full unpickling runs whatever code a file carries, so recbench does not read it. "
            "Checkpoints of earlier recbench versions (numpy's random state pickled) are such files: if this one comes from a source "
            f"you trust, convert it with `recbench checkpoint convert {path}` and run again")


def load(path: Path, device, keys: tuple[str, ...], remedy: str) -> dict:
    """A checkpoint the trainer wrote, read with the restricted unpickler (no code runs), or a
    UsageError that names the file, what is wrong and `remedy`."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"Checkpoint '{path}' is a folder, not a checkpoint file. {remedy}.")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = unsafe_globals(path, exc)
        if found:
            raise UsageError(f"{needs_unpickling(path, found)}. {remedy}.") from None
        raise UsageError(cannot_read(path, exc, remedy)) from None
    except Exception as exc:  # noqa: BLE001 - empty, truncated or not a torch file: all mean the same here
        raise UsageError(cannot_read(path, exc, remedy)) from None
    missing = [k for k in keys if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise UsageError(f"Checkpoint '{path}' is not a recbench training checkpoint (no {', '.join(missing)}). {remedy}.")
    return ckpt


def cannot_read(path: Path, exc: Exception, remedy: str) -> str:
    text = str(exc).strip()
    inner = re.search(r"WeightsUnpickler error:\s*(\S.*)", text)  # torch's own words, past its advice to unpickle fully
    first = inner.group(1).strip() if inner else (text.splitlines()[0] if text else "damaged")
    return f"Checkpoint '{path}' cannot be read ({type(exc).__name__}: {first}). {remedy}."


def convert(old: Path, new: Path | None = None, log: Callable[[str], None] = print) -> Path | None:
    """Rewrite checkpoint `old`, which needs full unpickling (an earlier recbench's), as tensors and
    plain data: in `new`, or in place with the original kept as OLD.orig. Returns the file written,
    or None where `old` needs no conversion. Full unpickling runs any code the file carries: this is
    for checkpoints whose source the user trusts, and only runs on their explicit request."""
    from . import rng

    old = Path(old)
    if not old.is_file():
        raise UsageError(f"Checkpoint '{old}' {'is a folder' if old.is_dir() else 'does not exist'}; expected a best.pt or last.pt file.")
    try:
        torch.load(old, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - needs full unpickling (or is damaged: said below)
        pass
    else:
        log(f"Checkpoint '{old}' already holds only tensors and plain data: nothing to convert.")
        return None
    in_place = new is None or Path(new).resolve() == old.resolve()
    target, backup = (old, old.with_name(old.name + ".orig")) if in_place else (Path(new), None)
    for kept in (backup,) if in_place else (target,):
        if kept.exists():
            raise UsageError(f"'{kept}' already exists and would be overwritten; move it away, or name another file: "
                             f"recbench checkpoint convert {old} NEW.pt")
    log(f"Reading '{old}' with full unpickling (torch.load weights_only=False), as asked: this runs any code the file "
        "carries, so convert only checkpoints from a source you trust.")
    try:
        ckpt = torch.load(old, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - damaged, or not a torch file
        raise UsageError(cannot_read(old, exc, "Nothing was written")) from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise UsageError(f"Checkpoint '{old}' is not a recbench training checkpoint (no model). Nothing was written.")
    try:
        if "rng" in ckpt:
            ckpt["rng"] = [s if isinstance(s.get("python"), dict) else rng.from_legacy(s) for s in ckpt["rng"]]
        data = plain(ckpt)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise UsageError(f"Checkpoint '{old}' is not one recbench wrote ({exc}). Nothing was written.") from None
    if backup is not None:
        shutil.copy2(old, backup)
    save(data, target)
    log(f"Wrote '{target}' (tensors and plain data, read without unpickling code)"
        + (f"; the original is kept as '{backup}'." if backup is not None else "."))
    return target
