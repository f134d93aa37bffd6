"""Raw interactions -> the canonical prepared form, cached on disk.

A dataset plugin reads its raw files into a `RawData` (interactions with raw user/item ids and,
where known, timestamps; item text). `from_raw` turns that into a `Prepared` dataset:

- per user, interactions in chronological order (stable: equal timestamps keep file order; data
  without timestamps is taken in file order), a repeated (user, item) kept once, at its first time;
- optional k-core filtering (`k_core`), or a check that data published as k-core is k-core;
- item ids 1..N in order of first appearance (0 is padding), users 0..U-1 likewise;
- sequences stored flat (CSR: `items[offsets[u]:offsets[u+1]]`), timestamps beside them.

`prepare` caches the result under RECBENCH_DATA/prepared/NAME/FINGERPRINT, where the fingerprint
covers the raw files' contents, the preparation parameters (k_core, and any other setting of the
dataset's config, which `read` sees) and this module's version, so a change to any of them
rebuilds it. The cache is written to a temporary folder and renamed into place,
so an interrupted prepare leaves nothing that a later run would trust; `meta.json` holds the
sha256 of the other two files, so a cache damaged later (truncated, emptied, a flipped bit) is found
and rebuilt with a message. The arrays are read without unpickling (`allow_pickle=False`) and checked
against each other (`check`) before they are used, so a cache whose checksums were rewritten over
wrong arrays is rebuilt too, instead of feeding a run the wrong users.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import paths
from ..atomic import replacing
from ..errors import DataError

if TYPE_CHECKING:  # pandas is imported where a frame is built, so that registering the plugins imports none
    import pandas as pd

PREPARE_VERSION = 1


@dataclass
class RawData:
    """What a dataset plugin reads: raw ids, file order, optional timestamps and item text."""

    interactions: pd.DataFrame  # columns: user, item (str), optional timestamp (int64)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)  # raw item id -> text fields
    files: list[Path] = field(default_factory=list)  # the raw files read (for the fingerprint)
    report: dict[str, Any] = field(default_factory=dict)  # counts worth telling the user, e.g. items without text
    notes: list[str] = field(default_factory=list)  # what the reader kept or dropped by rule, in words: said when prepared


@dataclass
class Prepared:
    name: str
    fingerprint: str
    user_ids: np.ndarray  # [U] raw user ids
    item_ids: np.ndarray  # [N+1] raw item ids; item_ids[0] == "" is padding
    offsets: np.ndarray  # [U+1] int64
    items: np.ndarray  # [nnz] int32 in 1..N
    times: np.ndarray | None  # [nnz] int64 unix seconds, or None
    item_text: list[dict[str, Any]]  # [N+1] text fields per item; item_text[0] == {}
    report: dict[str, Any] = field(default_factory=dict)  # the reader's counts (see RawData.report), and the k-core's
    # the raw files read ({path, bytes, sha256}), found anew by every `prepare` (a cache keeps none)
    files: list[dict[str, Any]] = field(default_factory=list, compare=False)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids) - 1

    @property
    def n_interactions(self) -> int:
        return len(self.items)

    def sequence(self, user: int) -> np.ndarray:
        return self.items[self.offsets[user] : self.offsets[user + 1]]

    def stats(self) -> dict[str, Any]:
        lengths = np.diff(self.offsets)
        with_text = sum(1 for t in self.item_text[1:] if t)
        return {
            "dataset": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": self.n_interactions,
            "mean_seq_len": round(float(lengths.mean()), 2),
            "median_seq_len": float(np.median(lengths)),
            "density": self.n_interactions / (self.n_users * self.n_items),
            "items_with_text": round(with_text / max(self.n_items, 1), 4),
            "timestamps": self.times is not None,
            "fingerprint": self.fingerprint,
            **self.report,
        }


def k_core(df: pd.DataFrame, k: int) -> pd.DataFrame:
    """Repeatedly drop users and items with fewer than k interactions."""
    while True:
        user_counts = df["user"].map(df["user"].value_counts())
        item_counts = df["item"].map(df["item"].value_counts())
        keep = (user_counts >= k) & (item_counts >= k)
        if keep.all():
            return df
        df = df[keep]


def from_raw(raw: RawData, name: str, *, k: int = 0, expect_core: int = 0, fingerprint: str = "") -> Prepared:
    import pandas as pd

    df = raw.interactions
    missing = {"user", "item"} - set(df.columns)
    if missing:
        raise DataError(f"Dataset '{name}': the reader produced no {sorted(missing)} column.")
    if df.empty:
        files = ", ".join(str(f) for f in raw.files) or "its raw files"
        raise DataError(f"Dataset '{name}': no interactions found in {files}.")
    has_time = "timestamp" in df.columns
    df = df.reset_index(drop=True)
    user_code, _ = pd.factorize(df["user"])
    if has_time:
        order = np.lexsort((np.arange(len(df)), df["timestamp"].to_numpy(), user_code))
    else:
        order = np.lexsort((np.arange(len(df)), user_code))
    df = df.iloc[order]
    df = df.drop_duplicates(["user", "item"], keep="first")
    report = dict(raw.report)
    if k > 0:
        before = df
        df = k_core(df, k)
        if df.empty:
            raise DataError(f"Dataset '{name}': nothing is left after {k}-core filtering "
                            f"({before['user'].nunique():,} users, {before['item'].nunique():,} items before).")
        report.update(k_core_dropped_users=before["user"].nunique() - df["user"].nunique(),
                      k_core_dropped_items=before["item"].nunique() - df["item"].nunique(),
                      k_core_dropped_interactions=len(before) - len(df))
    elif expect_core > 0:
        low_users = int((df["user"].value_counts() < expect_core).sum())
        low_items = int((df["item"].value_counts() < expect_core).sum())
        if low_users or low_items:
            files = ", ".join(str(f) for f in raw.files)
            raise DataError(
                f"Dataset '{name}' is published as {expect_core}-core, but {files} has {low_users} users and "
                f"{low_items} items with fewer than {expect_core} interactions. Pass --k_core={expect_core} "
                "to filter it, or check the file."
            )
    users, user_ids = pd.factorize(df["user"])
    items, item_ids = pd.factorize(df["item"])
    counts = np.bincount(users, minlength=len(user_ids))
    offsets = np.zeros(len(user_ids) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    item_ids = np.concatenate([[""], np.asarray(item_ids, dtype=str)])
    text = [{}] + [raw.items.get(i, {}) for i in item_ids[1:]]
    return Prepared(
        name=name,
        fingerprint=fingerprint,
        user_ids=np.asarray(user_ids, dtype=str),
        item_ids=item_ids,
        offsets=offsets,
        items=(items + 1).astype(np.int32),
        times=df["timestamp"].to_numpy(dtype=np.int64) if has_time else None,
        item_text=text,
        report=report,
    )


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_facts(files: list[Path]) -> list[dict[str, Any]]:
    """Each raw file's path, size and sha256: what the fingerprint and a local dataset's record hold."""
    return [{"path": str(p), "bytes": p.stat().st_size, "sha256": file_digest(p)} for p in files]


def compute_fingerprint(name: str, params: dict[str, Any], files: list[Path], facts: list[dict[str, Any]] | None = None) -> str:
    facts = facts if facts is not None else file_facts(files)
    desc = {
        "version": PREPARE_VERSION,
        "dataset": name,
        "params": params,
        "files": sorted((Path(f["path"]).name, f["bytes"], f["sha256"]) for f in facts),
    }
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:16]


def save(prepared: Prepared, folder: Path) -> None:
    """Write atomically: a temporary sibling folder, renamed into place when complete."""
    with replacing(folder, folder=True) as tmp:
        arrays = dict(user_ids=prepared.user_ids, item_ids=prepared.item_ids, offsets=prepared.offsets, items=prepared.items)
        if prepared.times is not None:
            arrays["times"] = prepared.times
        np.savez(tmp / "arrays.npz", **arrays)
        (tmp / "item_text.json").write_text(json.dumps(prepared.item_text, ensure_ascii=False), encoding="utf-8")
        meta = {"name": prepared.name, "fingerprint": prepared.fingerprint, "version": PREPARE_VERSION, "report": prepared.report,
                "sha256": {name: file_digest(tmp / name) for name in CACHE_FILES}}
        (tmp / "meta.json").write_text(json.dumps(meta))  # written last: its presence marks completion


CACHE_FILES = ("arrays.npz", "item_text.json")


def verify(folder: Path) -> tuple[dict | None, str | None]:
    """(meta, None) for a complete cache whose files match the checksums in its meta.json;
    (None, None) where there is none; (None, why) where one is there but damaged."""
    if not (folder / "meta.json").is_file():
        return None, None
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if "sha256" not in meta:  # written before checksums were kept: only a failed read shows damage
            return meta, None
        sums = meta["sha256"]
        bad = [name for name in CACHE_FILES if file_digest(folder / name) != sums[name]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return (None, f"checksum mismatch in {', '.join(bad)}") if bad else (meta, None)


def check(prepared: Prepared) -> None:
    """A ValueError saying what is wrong where the arrays of a prepared dataset do not fit together."""
    users, ids, offsets, items, times = prepared.user_ids, prepared.item_ids, prepared.offsets, prepared.items, prepared.times
    if users.ndim != 1 or ids.ndim != 1 or len(ids) < 1 or ids[0] != "":
        raise ValueError("user_ids or item_ids is not a list of ids with item 0 as padding")
    if offsets.shape != (len(users) + 1,) or offsets.dtype.kind != "i" or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        raise ValueError(f"offsets ({offsets.dtype}, shape {offsets.shape}) are not {len(users) + 1} rising positions from 0")
    if items.ndim != 1 or items.dtype.kind != "i" or offsets[-1] != len(items):
        raise ValueError(f"items ({items.dtype}, shape {items.shape}) do not end where the offsets end ({offsets[-1]})")
    if len(items) and (items.min() < 1 or items.max() >= len(ids)):
        raise ValueError(f"items hold ids outside 1..{len(ids) - 1}")
    if times is not None and (times.shape != items.shape or times.dtype.kind != "i"):
        raise ValueError(f"times ({times.dtype}, shape {times.shape}) do not match the items")
    if not isinstance(prepared.item_text, list) or len(prepared.item_text) != len(ids) or not all(isinstance(t, dict) for t in prepared.item_text):
        raise ValueError(f"item_text.json is not a list of {len(ids)} objects")


def load(folder: Path, log=lambda s: None) -> Prepared | None:
    """The cached dataset in `folder`, or None if it is absent, incomplete or damaged (then said in `log`)."""
    meta, damaged = verify(folder)
    if meta is None:
        if damaged:
            log(f"prepared-data cache {folder} is corrupt ({damaged}); rebuilding it")
        return None
    try:
        with np.load(folder / "arrays.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        text = json.loads((folder / "item_text.json").read_text(encoding="utf-8"))
        prepared = Prepared(
            name=meta["name"],
            fingerprint=meta["fingerprint"],
            user_ids=arrays["user_ids"],
            item_ids=arrays["item_ids"],
            offsets=arrays["offsets"],
            items=arrays["items"],
            times=arrays.get("times"),
            item_text=text,
            report=meta.get("report", {}),
        )
        check(prepared)
    except Exception as exc:  # noqa: BLE001 - checksums matched, so this is a file the reader cannot take: rebuild
        log(f"prepared-data cache {folder} is corrupt ({type(exc).__name__}: {exc}); rebuilding it")
        return None
    return prepared


def prepare_params(dataset, config) -> dict[str, Any]:
    """What, besides the raw files, the prepared data (and its fingerprint) depends on."""
    params = {"k_core": getattr(config, "k_core", 0), "expect_core": dataset.expect_core}
    settings = {k: v for k, v in (asdict(config) if is_dataclass(config) else {}).items() if k != "k_core"}
    if settings:  # a plugin's own settings change what `read` returns; the built-ins have none (their fingerprints stay)
        params["settings"] = settings
    read_settings = getattr(dataset, "read_settings", None)
    if read_settings is not None:  # how a local dataset's files are read (recbench.data.generic.Layout)
        params["read"] = read_settings()
    return params


def prepare(dataset, config, source=None, *, force: bool = False, log=lambda s: None) -> Prepared:
    """Read, prepare and cache `dataset` (a registered Dataset) under `config`; reuse the cache (a damaged one is
    rebuilt, and `log` says so)."""
    from .source import Source

    source = source or Source(dataset.name)
    files = dataset.locate(source)
    params = prepare_params(dataset, config)
    facts = file_facts(files)
    fp = compute_fingerprint(dataset.name, params, files, facts)
    folder = paths.data_dir() / "prepared" / dataset.name / fp
    if folder.exists() and not folder.is_dir():
        raise DataError(f"Prepared-data cache '{folder}' is a file, not a folder; recbench keeps a prepared dataset there. "
                        "Move it away, then run again.")
    if not force:
        cached = load(folder, log)
        if cached is not None:
            cached.files = facts
            return cached
    raw = dataset.read(files, config)
    prepared = from_raw(raw, dataset.name, k=params["k_core"], expect_core=dataset.expect_core, fingerprint=fp)
    for note in [*raw.notes, *k_core_notes(prepared.report, params["k_core"])]:
        log(f"{dataset.name}: {note}")
    save(prepared, folder)
    prepared.files = facts
    return prepared


def k_core_notes(report: dict[str, Any], k: int) -> list[str]:
    """What the k-core filter removed, in words ([] where it removed nothing or did not run)."""
    counts = [report.get(f"k_core_dropped_{what}", 0) for what in ("users", "items", "interactions")]
    if not any(counts):
        return []
    return [f"the {k}-core filter dropped {counts[0]:,} users, {counts[1]:,} items and {counts[2]:,} interactions"]
