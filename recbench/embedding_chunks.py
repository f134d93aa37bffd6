"""Embedding in chunks kept on disk, so that an interrupted embedding continues where it stopped.

Embedding a dataset's item text takes minutes (Beauty's 12,101 items took 12 min 53 s on a loaded
2-core CPU), and an interrupted one used to keep nothing: a Ctrl-C at item 1,728 meant starting
again from item 1. So `recbench.embeddings.encode` cuts the work into chunks and writes each chunk
as it finishes to a folder beside the cache file, `KEY.parts/chunk-NNNNN.npz`, atomically and with
a sha256 of its arrays (`embeddings.write_cache`). A re-run reads the chunks it finds and encodes
only the others. When every chunk is there, the one cache file `KEY.npz` is written as before, so
nothing downstream changes, and the folder is removed.

Bit for bit: sentence-transformers pads a batch's texts to its longest one, and a vector's last
bits depend on that padding, so chunks are cut at batch boundaries of the order an uninterrupted
run encodes in (texts by length). A resumed run then encodes exactly the batches an uninterrupted
one would, and its vectors are the same.

A chunk is used only if its checksum holds and it says it is this chunk of this embedding: the
cache key (data fingerprint, model, text template), the batch size and chunk size, and the items
it holds. Any other chunk (damaged, or from another dataset, model, batch size or chunk size) is
reported by its file name and encoded again, never trusted. The device is recorded, not keyed, as
for the cache file itself.

`RECBENCH_EMBED_CHUNK` sets the items per chunk (rounded up to whole batches). The default, 1024,
is about a minute of Beauty on a CPU under load: at most that much is lost to an interruption, for
12 small files written on the way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import remove
from .embeddings import Log, read_cache, write_cache
from .errors import UsageError

ENV = "RECBENCH_EMBED_CHUNK"
DEFAULT_ITEMS = 1024


def chunk_items(batch_size: int) -> int:
    """Items per chunk: RECBENCH_EMBED_CHUNK (or 1024) rounded up to a whole number of batches."""
    raw = os.environ.get(ENV, "").strip()
    try:
        items = int(raw) if raw else DEFAULT_ITEMS
    except ValueError:
        items = 0
    if items < 1:
        raise UsageError(f"{ENV}={raw!r} is not a number of items per chunk; set a positive whole number such as "
                         f"{DEFAULT_ITEMS}, or unset it.")
    return -(-items // batch_size) * batch_size


@dataclass
class Chunks:
    """The chunks of one embedding, in `folder`: `key` is what each must say it belongs to; `size`
    items each (whole batches of `batch_size`); messages go to `log`."""

    folder: Path
    key: dict[str, Any]
    size: int
    batch_size: int
    device: str
    log: Log
    kept: int = 0  # items whose vectors are on disk now (read back or written by this run)
    seconds: float = 0.0  # encoding time of those items, over every run that encoded them
    read_back: int = 0  # items taken from chunks an earlier run wrote
    _layout: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self._layout = {**self.key, "batch_size": self.batch_size, "chunk_items": self.size}

    @classmethod
    def beside(cls, cache: Path, key: dict[str, Any], batch_size: int, device: str, log: Log) -> "Chunks":
        """The chunks of the embedding whose cache file is `cache`, in the folder `cache`.parts."""
        return cls(cache.with_suffix(".parts"), key, chunk_items(batch_size), batch_size, device, log)

    def path(self, index: int) -> Path:
        return self.folder / f"chunk-{index:05d}.npz"

    def read(self, index: int, items: np.ndarray, dim: int) -> np.ndarray | None:
        """Vectors [len(items), dim] of chunk `index`, which must hold `items` (positions in the
        list of texts); None where it is absent, damaged or another embedding's (said in `log`)."""
        path = self.path(index)
        if not path.exists():
            return None
        cached = read_cache(path, self.log)  # a failed checksum is said there
        if cached is None:
            return None
        arrays, meta = cached
        theirs = meta.get("key") if isinstance(meta.get("key"), dict) else {}
        differ = [k for k in self._layout if theirs.get(k) != self._layout[k]]
        vectors = arrays.get("vectors")
        if differ:
            why = f"its {', '.join(differ)} differ{'s' if len(differ) == 1 else ''} from this run's"
        elif not np.array_equal(arrays.get("items", np.empty(0)), items):
            why = "it holds other items than this chunk"
        elif vectors is None or vectors.shape != (len(items), dim) or vectors.dtype != np.float32:
            why = f"it holds no [{len(items)}, {dim}] float32 vectors"
        else:
            self.kept += len(items)
            self.read_back += len(items)
            self.seconds += float(meta.get("seconds", 0.0))
            return vectors
        self.log(f"embedding chunk {path} is not part of this embedding ({why}); encoding it again")
        return None

    def write(self, index: int, items: np.ndarray, vectors: np.ndarray, seconds: float) -> None:
        """Keep chunk `index` (its `items` and their `vectors`), atomically and checksummed."""
        write_cache(self.path(index), {"items": np.asarray(items, dtype=np.int64), "vectors": vectors},
                    {"key": self._layout, "index": index, "device": self.device, "seconds": seconds})
        self.kept += len(items)
        self.seconds += seconds

    def remove(self) -> None:
        """Remove the folder and every chunk in it (once the cache file holds them all)."""
        if self.folder.is_dir() and not self.folder.is_symlink():
            remove(self.folder)
