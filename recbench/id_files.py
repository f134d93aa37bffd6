"""Semantic IDs to and from a file: `recbench tokenize --export FILE` writes a dataset's IDs, and
`--semantic_ids FILE` makes a semantic-ID generator use IDs from a file instead of fitting its
tokenizer (the authors' own IDs, or an export of another run).

Formats, by suffix:

- `.json`: `{"format": "recbench semantic IDs", "items": {raw item id: [digit, ...]}, "raw_items":
  {...}, ...}` as exported (`raw_items`: the codes before collisions were resolved, which the
  ID-level metrics use; the other keys describe the tokenizer), or a bare `{raw item id: [digit,
  ...]}` as genrec (RPG, DiffGRM) writes its `.sem_ids` files (also read under that suffix);
- `.parquet`: columns `item_id`, `digits` (a list of integers) and, optionally, `raw_digits`; an
  export keeps the description in the schema's metadata (key `recbench`).

Digits are codes 0..codebook_size-1, n_digit of them per item, with the tokenizer config's
n_digit and codebook_size. On import every item of the dataset needs an ID (items only in the file
are ignored). Items that share an ID are told apart as recbench does for a tokenizer that has no
vectors to consult: for a tokenizer with TIGER's extra digit, the last digit numbers them in item
order (`number_duplicates`); otherwise the first item in item order keeps the ID and each other
one takes the lowest last digit that no item with the same first n_digit-1 digits uses. The
count is reported; the unresolved codes are kept for the ID-level metrics. Any failure is a
DataError (exit 2) that names the file, the item and what was expected.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .data import Prepared
from .errors import DataError

FORMAT = "recbench semantic IDs"
JSON_SUFFIXES = (".json", ".sem_ids")


def export(ids, prepared: Prepared, path: Path) -> None:
    """Write `ids` (a semantic_ids.SemanticIDs of `prepared`) to `path`, JSON or Parquet by its suffix."""
    from .atomic import replacing

    items = [str(i) for i in prepared.item_ids[1:]]
    about = {"format": FORMAT, "version": 1, "dataset": prepared.name, "fingerprint": prepared.fingerprint,
             "tokenizer": ids.tokenizer, "embedding_model": ids.embedding_model, "n_digit": ids.n_digit,
             "codebook_size": ids.codebook_size, "collision_rate": ids.collision_rate, "moved": ids.moved,
             "unique_ids": ids.unique_ids, "diagnostics": ids.diagnostics, "config": ids.config}
    suffix = path.suffix.lower()
    if suffix not in (*JSON_SUFFIXES, ".parquet"):
        raise DataError(f"--export {path}: expected a file ending in .json or .parquet.")
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        if suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.table({"item_id": items, "digits": ids.codes[1:].tolist(), "raw_digits": ids.raw_codes[1:].tolist()})
            pq.write_table(table.replace_schema_metadata({"recbench": json.dumps(about, default=str)}), tmp)
        else:
            data = {**about, "items": dict(zip(items, ids.codes[1:].tolist())),
                    "raw_items": dict(zip(items, ids.raw_codes[1:].tolist()))}
            tmp.write_text(json.dumps(data, default=str), encoding="utf-8")


def unique_pairs(path: Path):
    """A json object_pairs_hook that refuses a key given twice (json.loads would keep the last silently)."""

    def hook(pairs: list[tuple[str, Any]]) -> dict:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise DataError(f"{path}: item {key!r} appears twice; each item needs one ID.")
            out[key] = value
        return out

    return hook


def read(path: Path) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]]:
    """(item -> digits, item -> unresolved digits or None, description) as the file gives them."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return read_parquet(path)
    if suffix not in JSON_SUFFIXES:
        raise DataError(f"{path}: expected semantic IDs in a .json, .sem_ids or .parquet file.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=unique_pairs(path))
    except DataError:
        raise
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"Cannot read {path} as JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object of item -> digits; got a {type(data).__name__}.")
    if data.get("format") == FORMAT:
        if not isinstance(data.get("items"), dict):
            raise DataError(f"{path}: an export of recbench semantic IDs needs an object 'items'.")
        about = {k: v for k, v in data.items() if k not in ("items", "raw_items")}
        return data["items"], data.get("raw_items") if isinstance(data.get("raw_items"), dict) else None, about
    return data, None, {}


def read_parquet(path: Path):
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow's errors for a file that is not Parquet
        raise DataError(f"Cannot read {path} as Parquet ({type(exc).__name__}: {exc}).") from None
    if not {"item_id", "digits"} <= set(table.column_names):
        raise DataError(f"{path}: expected columns 'item_id' and 'digits'; it has {', '.join(table.column_names)}.")
    ids = [str(i) for i in table.column("item_id").to_pylist()]
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            raise DataError(f"{path}: item {item!r} appears twice; each item needs one ID.")
        seen.add(item)
    digits = dict(zip(ids, table.column("digits").to_pylist()))
    raw = dict(zip(ids, table.column("raw_digits").to_pylist())) if "raw_digits" in table.column_names else None
    meta = (table.schema.metadata or {}).get(b"recbench")
    return digits, raw, json.loads(meta) if meta else {}


def codes_of(path: Path, mapping: dict[str, Any], prepared: Prepared, n_digit: int, codebook_size: int) -> np.ndarray:
    """[N+1, n_digit] int64 codes of the dataset's items from `mapping`, checked."""
    missing = [str(i) for i in prepared.item_ids[1:] if str(i) not in mapping]
    if missing:
        raise DataError(f"{path} has no semantic ID for item {missing[0]!r} of dataset '{prepared.name}' ({len(missing):,} of "
                        f"its {prepared.n_items:,} items are missing); it needs one for every item.")
    codes = np.zeros((prepared.n_items + 1, n_digit), dtype=np.int64)
    for row, item in enumerate(prepared.item_ids[1:], start=1):
        digits = mapping[str(item)]
        if not isinstance(digits, (list, tuple)) or len(digits) != n_digit:
            got = f"{len(digits)} digits" if isinstance(digits, (list, tuple)) else repr(digits)
            raise DataError(f"{path}: item {str(item)!r} has {got}; expected {n_digit} (the tokenizer's n_digit; set "
                            "--n_digit to the file's).")
        for digit in digits:
            if isinstance(digit, bool) or not isinstance(digit, (int, np.integer)) or not 0 <= digit < codebook_size:
                raise DataError(f"{path}: item {str(item)!r} has digit {digit!r}, outside the codebook: expected an integer "
                                f"0..{codebook_size - 1} (codebook_size={codebook_size}; set --codebook_size to the file's).")
        codes[row] = digits
    return codes


def resolve(codes: np.ndarray, codebook_size: int, extra_digit: bool) -> np.ndarray:
    """Unique IDs from `codes` ([n, n_digit]): see the module docstring."""
    from .semantic_ids import number_duplicates, prefix_groups

    if extra_digit:
        return number_duplicates(codes, codebook_size)
    codes = codes.copy()
    prefix = prefix_groups(codes, codebook_size)
    taken: set[tuple[int, int]] = set()
    movers = []
    for row in range(len(codes)):
        key = (int(prefix[row]), int(codes[row, -1]))
        if key in taken:
            movers.append(row)
        else:
            taken.add(key)
    for row in movers:
        p = int(prefix[row])
        code = next(c for c in range(codebook_size) if (p, c) not in taken)  # prefix_groups: a free code exists
        taken.add((p, code))
        codes[row, -1] = code
    return codes


def per_digit(codes: np.ndarray, codebook_size: int) -> dict:
    """Codes used, entropy and the share told apart by the first k digits (no vectors: no energy)."""
    from .semantic_ids import entropy_bits

    digits = []
    for d in range(codes.shape[1]):
        _, inverse, counts = np.unique(codes[:, : d + 1], axis=0, return_inverse=True, return_counts=True)
        digits.append({"digit": d + 1, "codes_used": int(len(np.unique(codes[:, d]))), "codes_available": codebook_size,
                       "entropy_bits": entropy_bits(codes[:, d]), "told_apart": float(np.mean(counts[inverse.ravel()] == 1))})
    return {"digits": digits}


def load(path: Path, prepared: Prepared, entry, config, settings: dict, log=lambda s: None):
    """The SemanticIDs of `prepared` from `path` under the tokenizer `entry` (a registry entry) and its `config`."""
    from .semantic_ids import STAGES, SemanticIDs, collision_rate

    start = time.perf_counter()
    digits, raw_digits, about = read(path)
    codes = codes_of(path, digits, prepared, config.n_digit, config.codebook_size)
    raw = codes if raw_digits is None else codes_of(path, raw_digits, prepared, config.n_digit, config.codebook_size)
    resolved = codes.copy()
    try:
        if collision_rate(codes[1:]) > 0:  # IDs that are unique already stay as the file gives them
            resolved[1:] = resolve(codes[1:], config.codebook_size, entry.obj.extra_digit)
    except DataError:
        raise
    except Exception as exc:  # prefix_groups: more items share a prefix than a digit has codes
        raise DataError(f"{path}: {exc}") from None
    moved = int((resolved[1:] != codes[1:]).any(axis=1).sum())
    extra = len(digits) - sum(1 for i in prepared.item_ids[1:] if str(i) in digits)
    log(f"semantic IDs of {prepared.n_items:,} items read from {path}" + (f" ({extra:,} items of the file are not in "
        f"the dataset)" if extra else "") + (f"; {moved:,} items shared an ID and were given another last digit" if moved else ""))
    model = about.get("embedding_model") or "unknown (imported semantic IDs)"
    return SemanticIDs(resolved, config.n_digit, config.codebook_size, entry.name, str(model), collision_rate(raw[1:]), moved, 0.0,
                       per_digit(resolved[1:], config.codebook_size), dict.fromkeys(STAGES), 0, settings, path,
                       load_seconds=time.perf_counter() - start, raw_codes=raw)
