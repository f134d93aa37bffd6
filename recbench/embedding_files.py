"""Item embeddings from a file (`--embeddings FILE`), aligned to a prepared dataset's items: the
vectors a paper's authors computed (another model, another text), fed to the tokenizer in place of
recbench's sentence model.

Accepted files, each a table of raw item id -> vector:

- `.npz` with arrays `item_ids` (strings) and `embeddings` [n, dim];
- `.parquet` with a column `item_id` and a list column of floats (`embedding`, or the only other column);
- `.npy` [n, dim], or genrec's `.sent_emb` (float32 rows written with `ndarray.tofile`, as RPG and
  DiffGRM cache their sentence embeddings), whose rows follow an item order kept beside the file:
  `FILE.items.txt` (one raw item id per line) or, as genrec writes it, `id_mapping.json` in the same
  folder (its `id2item` list; entry 0 is padding). A `.sent_emb` has no shape: its dimension is its
  size over the number of items in that order.

Arrays are read without unpickling. Every item of the dataset must have a vector (items only in
the file are ignored); ids must be unique, vectors of one dimension and finite. Any failure is a
DataError (exit 2) that names the file, the item and what was expected.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .data import Prepared
from .embeddings import Embeddings
from .errors import DataError


def read_table(path: Path) -> tuple[list[str], np.ndarray]:
    """(raw item ids, [n, dim] float32 vectors) in the file's order."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return read_npz(path)
    if suffix == ".parquet":
        return read_parquet(path)
    if suffix in (".npy", ".sent_emb"):
        ids = item_order(path)
        return ids, read_rows(path, len(ids))
    raise DataError(f"{path}: expected an embeddings file ending in .npz, .parquet, .npy or .sent_emb.")


def read_npz(path: Path) -> tuple[list[str], np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("item_ids", "embeddings") if k not in z.files]
            if missing:
                raise DataError(f"{path} has no array {', '.join(repr(m) for m in missing)}; expected 'item_ids' and "
                                f"'embeddings' (it has: {', '.join(z.files) or 'none'}).")
            ids, vectors = z["item_ids"], z["embeddings"]
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - a truncated zip, a pickled array, not an npz at all
        raise DataError(f"Cannot read {path} as an .npz file without pickles ({type(exc).__name__}: {exc}).") from None
    if ids.ndim != 1 or ids.dtype.kind not in "UiS":
        raise DataError(f"{path}: 'item_ids' must be a 1-d array of ids; got {ids.dtype} of shape {ids.shape}.")
    return [str(i) for i in ids.tolist()], matrix(vectors, path, len(ids))


def read_parquet(path: Path) -> tuple[list[str], np.ndarray]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow's errors for a file that is not Parquet
        raise DataError(f"Cannot read {path} as Parquet ({type(exc).__name__}: {exc}).") from None
    names = table.column_names
    others = [n for n in names if n != "item_id"]
    column = "embedding" if "embedding" in names else others[0] if len(others) == 1 else None
    if "item_id" not in names or column is None:
        raise DataError(f"{path}: expected a column 'item_id' and one list column of floats ('embedding'); "
                        f"it has {', '.join(names)}.")
    ids = [str(i) for i in table.column("item_id").to_pylist()]
    rows = table.column(column).to_pylist()
    lengths = {len(r) if isinstance(r, (list, tuple)) else -1 for r in rows}
    if len(lengths) > 1 or -1 in lengths:
        first = len(rows[0]) if isinstance(rows[0], (list, tuple)) else None
        for item, row in zip(ids, rows):
            if not isinstance(row, (list, tuple)) or len(row) != first:
                got = f"{len(row)} values" if isinstance(row, (list, tuple)) else repr(row)
                raise DataError(f"{path}: item {item!r} has a vector of {got}; expected {first} (the dimension of "
                                f"item {ids[0]!r}, the first row).")
    try:
        vectors = np.asarray(rows, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: column {column!r} does not hold numbers ({exc}).") from None
    return ids, matrix(vectors, path, len(ids))


def item_order(path: Path) -> list[str]:
    """The raw item id of each row of an .npy or .sent_emb file, from the order file beside it."""
    listing = path.with_name(path.name + ".items.txt")
    mapping = path.parent / "id_mapping.json"
    if listing.is_file():
        try:
            ids = [line.strip() for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"Cannot read {listing}: {exc}.") from None
        return ids
    if mapping.is_file():
        try:
            id2item = json.loads(mapping.read_text(encoding="utf-8"))["id2item"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"Cannot read the item order from {mapping} (expected genrec's {{'id2item': [...]}}): {exc}.") from None
        return [str(i) for i in id2item[1:]]  # entry 0 is [PAD]
    raise DataError(f"{path} holds vectors in an item order it does not name: put the raw item ids, one per line, in "
                    f"{listing} (or genrec's id_mapping.json in {path.parent}).")


def read_rows(path: Path, n: int) -> np.ndarray:
    """An .npy array, or a .sent_emb of float32 rows, as [n, dim]."""
    try:
        if path.suffix.lower() == ".npy":
            vectors = np.load(path, allow_pickle=False)
        else:
            vectors = np.fromfile(path, dtype=np.float32)
            if n == 0 or vectors.size % n:
                raise DataError(f"{path} holds {vectors.size:,} float32 values, not a whole number of rows for the "
                                f"{n:,} items of its item order: the dimension differs between the two files.")
            vectors = vectors.reshape(n, -1)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - a truncated or pickled .npy
        raise DataError(f"Cannot read {path} ({type(exc).__name__}: {exc}).") from None
    return matrix(vectors, path, n)


def matrix(vectors: np.ndarray, path: Path, n: int) -> np.ndarray:
    if vectors.ndim != 2 or vectors.dtype.kind not in "fiu":
        raise DataError(f"{path}: expected a 2-d array of numbers [items, dim]; got {vectors.dtype} of shape {vectors.shape}.")
    if len(vectors) != n:
        raise DataError(f"{path} has {len(vectors):,} vectors for {n:,} item ids: the item order and the vectors "
                        "must have one row per item.")
    return vectors.astype(np.float32, copy=False)


def aligned(path: Path, prepared: Prepared) -> np.ndarray:
    """[N+1, dim] float32 vectors of the dataset's items (row 0, padding, zeros) from `path`."""
    ids, vectors = read_table(path)
    row_of: dict[str, int] = {}
    for row, item in enumerate(ids):
        if item in row_of:
            raise DataError(f"{path}: item {item!r} appears twice (rows {row_of[item]} and {row}); each item needs one vector.")
        row_of[item] = row
    missing = [str(i) for i in prepared.item_ids[1:] if str(i) not in row_of]
    if missing:
        raise DataError(f"{path} has no vector for item {missing[0]!r} of dataset '{prepared.name}' ({len(missing):,} of its "
                        f"{prepared.n_items:,} items are missing); it needs one for every item.")
    rows = np.array([row_of[str(i)] for i in prepared.item_ids[1:]], dtype=np.int64)
    out = np.zeros((prepared.n_items + 1, vectors.shape[1]), dtype=np.float32)
    out[1:] = vectors[rows]
    bad = ~np.isfinite(out[1:]).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: the vector of item {str(prepared.item_ids[first + 1])!r} holds NaN or infinite values "
                        f"({int(bad.sum()):,} items do); expected finite numbers.")
    return out


def embeddings_of(path: Path, digest: str, prepared: Prepared, config) -> Embeddings:
    """The Embeddings of `prepared` read from `path` (sha256 `digest`), as embeddings.embed returns them
    for a sentence model; `config` (an EmbeddingConfig) may state their dimension (sent_emb_dim)."""
    start = time.perf_counter()
    vectors = aligned(path, prepared)
    if config.sent_emb_dim and config.sent_emb_dim != vectors.shape[1]:
        raise DataError(f"{path} holds {vectors.shape[1]}-dimensional vectors, but sent_emb_dim={config.sent_emb_dim}; "
                        f"set --sent_emb_dim={vectors.shape[1]} or 0.")
    return Embeddings(vectors, f"{path.name} (sha256 {digest[:12]})", 0, time.perf_counter() - start, path)

