"""Checkpoints of a tokenizer's long fit, so that an interrupted fit resumes instead of starting over.

TIGER's RQ-VAE trains for minutes (500 epochs of Beauty: about 5 minutes on one CPU core) to hours
(the published 20,000 epochs: about 3.3 hours), and an interruption used to lose all of it. The
core makes one `FitCheckpoint` per semantic-ID build, at `KEY.fit.pt` beside the ID cache file
`KEY.npz` (KEY covers the data, the training items, the embedding settings, the tokenizer and its
config), and hands it to a tokenizer that declares `resumable` (recbench.api.Tokenizer). The
tokenizer `load`s the state an earlier run saved, if any, and `save`s its state (network,
optimizer, random generator, epoch) whenever `due()` says so and when it ends. Once the IDs are
cached, the core removes the file.

The file is written with recbench.checkpoints (atomically; tensors and plain data only) and read
with torch.load(weights_only=True): nothing is unpickled. It holds the state, a key and a sha256 of
the state: torch does not check what it reads (a flipped byte in a tensor loads without complaint),
so a damaged file is found by that sum, and a file of another fit by its key (the ID cache's key
and a sha256 of the training vectors the fit sees). Either is reported by its name and the fit
starts from the beginning, as it does under `--rebuild_ids`.

`due()` is true every RECBENCH_FIT_CHECKPOINT_SECONDS seconds (default 60: an RQ-VAE checkpoint of
Beauty's default network is a few MB, written in well under a second); 0 saves after every epoch.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import checkpoints
from .errors import DataError, UsageError

ENV = "RECBENCH_FIT_CHECKPOINT_SECONDS"
DEFAULT_SECONDS = 60.0


def interval() -> float:
    """Seconds between checkpoints: RECBENCH_FIT_CHECKPOINT_SECONDS, or 60."""
    raw = os.environ.get(ENV, "").strip()
    try:
        seconds = float(raw) if raw else DEFAULT_SECONDS
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also NaN
        raise UsageError(f"{ENV}={raw!r} is not a number of seconds between checkpoints of a tokenizer's fit; set one "
                         f"such as 60 (0: after every epoch), or unset it.")
    return seconds


def digest(value: Any) -> str:
    """sha256 of a state made of tensors and plain data (dicts, lists, tuples, str, numbers, None)."""
    h = hashlib.sha256()

    def walk(v: Any) -> None:
        if isinstance(v, torch.Tensor):
            t = v.detach().cpu().contiguous().reshape(-1)
            h.update(f"tensor {t.dtype} {tuple(v.shape)};".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(v, dict):
            h.update(f"dict {len(v)};".encode())
            for k, item in v.items():
                walk(k)
                walk(item)
        elif isinstance(v, (list, tuple)):
            h.update(f"list {len(v)};".encode())
            for item in v:
                walk(item)
        else:
            h.update(f"{type(v).__name__} {v!r};".encode())

    walk(value)
    return h.hexdigest()


def training_digest(x: np.ndarray) -> str:
    """sha256 of the vectors a fit sees: a checkpoint of a fit on other vectors is another fit's."""
    x = np.ascontiguousarray(x)
    return hashlib.sha256(f"{x.dtype} {x.shape};".encode() + x.tobytes()).hexdigest()


class FitCheckpoint:
    """Where one fit keeps its state between runs (see the module docstring)."""

    def __init__(self, path: Path, key: dict[str, Any], log: Callable[[str], None], *, fresh: bool = False,
                 every: float | None = None):
        self.path, self.key, self.log, self.fresh = Path(path), key, log, fresh
        self.every = interval() if every is None else every
        self.last = time.monotonic()

    def load(self) -> dict | None:
        """The state an earlier run of this fit saved; None where there is none, `fresh` is set, or
        the file is damaged or another fit's (then said in `log`, naming the file)."""
        if self.fresh or not os.path.lexists(self.path):
            return None
        if not self.path.is_file():
            raise DataError(f"Fit checkpoint '{self.path}' is a {'folder' if self.path.is_dir() else 'special file'}, not a "
                            "file; recbench keeps a checkpoint there. Move it away, then run again.")
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
            if not isinstance(saved, dict) or not {"key", "sha256", "state"} <= saved.keys() or not isinstance(saved["key"], dict):
                raise ValueError("not a fit checkpoint")
            if digest(saved["state"]) != saved["sha256"]:
                raise ValueError("checksum mismatch")
        except Exception as exc:  # noqa: BLE001 - truncated, not a torch file, pickled objects, bad sum: all mean "start over"
            first = (str(exc).strip().splitlines() or ["damaged"])[0][:200]
            self.log(f"fit checkpoint {self.path} is damaged ({type(exc).__name__}: {first}); the fit starts from the beginning")
            return None
        if saved["key"] != self.key:
            differ = sorted(k for k in {*self.key, *saved["key"]} if saved["key"].get(k) != self.key.get(k))
            self.log(f"fit checkpoint {self.path} is another fit's (its {', '.join(differ)} differ{'s' if len(differ) == 1 else ''}); "
                     "the fit starts from the beginning")
            return None
        return saved["state"]

    def due(self) -> bool:
        """Whether `every` seconds have passed since the last save (or since the fit began)."""
        return time.monotonic() - self.last >= self.every

    def save(self, state: dict) -> None:
        """Keep `state` (tensors and plain data), atomically, with its key and checksum."""
        state = checkpoints.plain(state, "fit state")
        checkpoints.save({"key": self.key, "sha256": digest(state), "state": state}, self.path)
        self.last = time.monotonic()

    def remove(self) -> None:
        """Remove the file (once the fit's result is cached)."""
        if os.path.lexists(self.path) and not self.path.is_dir():
            self.path.unlink()
