"""A dataset from the user's own files, no plugin written: interactions (CSV, TSV, Parquet or a
RecBole `.inter` file) and items (JSON lines, CSV, TSV, Parquet or a RecBole `.item` file).

It is prepared, fingerprinted, cached, split and evaluated as a built-in dataset is: `LocalDataset`
is an ordinary api.Dataset whose `read` returns RawData. What a plugin would decide in code is a
`Layout` here (which columns hold the user, the item and the time; which item fields are its text),
and the layout is part of the fingerprint, so a changed setting never reuses a cache.

Bad input is refused, never repaired in silence: a malformed line, a missing or doubled column, a
byte that is not UTF-8, an empty id, a timestamp that is not a time, an item the items file does not
list, an item without text (unless allowed; then counted) each end in a DataError naming the file
and line. What the core drops by rule (a repeated user-item pair, the users and items a k-core
removes) is counted in the prepared data's report and said when it is prepared.
The format is documented in docs/own-data.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, make_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..api import Dataset, DatasetConfig
from ..config import ranged
from ..errors import DataError
from .prepare import RawData
from .source import Source
from .tables import Table, json_lines, kind_of, read_table

if TYPE_CHECKING:  # pandas is imported where a frame is built, so that registering the plugins imports none
    import pandas as pd

INTERACTION_KINDS = ("csv", "tsv", "parquet", "recbole")
ITEM_KINDS = ("jsonl", "csv", "tsv", "parquet", "recbole")
TEXT_TYPES = ("token", "token_seq")  # the RecBole field types read as item text by default
# RecBole's names for fields recbench's item text has its own names for (embeddings.FIELDS labels them);
# any other field keeps its name (its type suffix dropped)
RECBOLE_NAMES = {"movie_title": "title", "release_year": "year", "class": "genres"}
MAX_TIMESTAMP = 2**53  # unix seconds: exact in a float and far in the future; larger is a damaged field
SHOWN = 3  # lines named in a message about many


@dataclass(frozen=True)
class Layout:
    """How a local dataset's files are read; all of it is part of the prepared data's fingerprint."""

    interactions: str  # the file's absolute path
    items: str
    format: str = "auto"  # auto (from suffix and header), generic, or recbole (RecBole's atomic files)
    text_fields: tuple[str, ...] | None = None  # None: every field but the item id, in file order (RecBole: token and token_seq fields)
    user_column: str = "user_id"
    item_column: str = "item_id"
    time_column: str = "timestamp"
    allow_missing_text: bool = False  # True: items without text are counted, not refused

    def settings(self) -> dict[str, Any]:
        """What, besides the files' bytes, decides what `read` returns (the file names are in the fingerprint already)."""
        out = asdict(self)
        del out["interactions"], out["items"]
        out["text_fields"] = list(self.text_fields) if self.text_fields is not None else None
        return out


def config_class(k_core: int) -> type:
    """The dataset's Config: DatasetConfig with the k-core it was registered with as the default. One
    class per k-core, kept in this module under its name, so that a config pickles as any other does."""
    name = f"LocalDatasetConfig{k_core}"
    if name not in globals():
        cls = make_dataclass(name, [("k_core", int, ranged(k_core, ge=0))], bases=(DatasetConfig,))
        cls.__module__ = __name__
        globals()[name] = cls
    return globals()[name]


class LocalDataset(Dataset):
    """A dataset registered with `recbench datasets add` or named `path:DIR`."""

    local = True  # the record names its files and their checksums (run_record.build_record)

    def __init__(self, name: str, layout: Layout, *, k_core: int = 0, aliases: tuple[str, ...] = ()):
        self.name = name
        self.layout = layout
        self.k_core = k_core
        self.aliases = aliases
        self.Config = config_class(k_core)
        self.description = (f"local: {Path(layout.interactions).name} + {Path(layout.items).name}"
                            + (f", {k_core}-core" if k_core else ""))

    def read_settings(self) -> dict[str, Any]:
        return self.layout.settings()

    def locate(self, source: Source) -> list[Path]:
        files = [Path(self.layout.interactions), Path(self.layout.items)]
        for role, path in zip(("interactions", "items"), files):
            if not path.is_file():
                raise DataError(f"Dataset '{self.name}': its {role} file {path} is not there (moved or deleted?). "
                                f"Register it again with `recbench datasets add {self.name} --replace ...`.")
        return files

    def read(self, files: list[Path], config) -> RawData:
        return read(self.layout, files[0], files[1])


def read(layout: Layout, inter_path: Path, items_path: Path) -> RawData:
    """The interactions and item text of a local dataset, checked against each other."""
    interactions, table, report, notes = read_interactions(inter_path, layout)
    text, lines, missing = read_items(items_path, layout)
    known = interactions["item"].isin(text.keys()).to_numpy()
    if not known.all():
        rows = np.flatnonzero(~known)
        unknown = interactions["item"].iloc[rows]
        raise DataError(f"{table.where(int(rows[0]))}: item '{unknown.iloc[0]}' is not in {items_path} "
                        f"({len(rows):,} interactions with {unknown.nunique():,} items it does not list); "
                        "every item of the interactions needs a line in the items file.")
    used = set(interactions["item"].unique())
    without = [item for item in missing if item in used]
    if without:
        notes.append(f"{len(without):,} items have no text ({where_lines(items_path, [lines[i] for i in without])}); "
                     "they are kept (--allow-missing-text)")
    report.update(items_without_text=len(without), items_not_in_interactions=len(text) - len(used))
    return RawData(interactions, text, [inter_path, items_path], report, notes)


def where_lines(path: Path, lines: list[int]) -> str:
    shown = ", ".join(str(n) for n in lines[:SHOWN]) + (", ..." if len(lines) > SHOWN else "")
    return f"{path}, line{'s' if len(lines) > 1 else ''} {shown}"


def check_kind(path: Path, kind: str, allowed: tuple[str, ...], role: str) -> None:
    if kind not in allowed:
        raise DataError(f"{path}: a {kind} file cannot hold the {role}; accepted: {', '.join(allowed)} (see docs/own-data.md).")


def column(table: Table, name: str, role: str, option: str) -> pd.Series:
    if name not in table.columns:
        raise DataError(f"{table.path}, {'line' if table.data is not None else 'schema'} 1: no column '{name}' (the {role}); "
                        f"the file has {', '.join(table.columns)}. Name the column {name}, or pass {option}.")
    return table.frame[name]


def ids(table: Table, name: str, role: str, option: str) -> pd.Series:
    """The column as stripped text; an empty or null id names its line."""
    values = column(table, name, role, option)
    null = values.isna().to_numpy()
    values = values.astype(str).str.strip()
    empty = null | (values == "").to_numpy()
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise DataError(f"{table.where(row)}: the {role} ('{name}') is empty ({int(empty.sum()):,} rows in all).")
    return values.reset_index(drop=True)


def timestamps(table: Table, name: str) -> pd.Series:
    """Unix seconds (int64) from numbers of seconds (decimals cut to the second), ISO 8601 dates, or
    Parquet's own timestamps; the first value that is none of these names its line."""
    import pandas as pd

    values = table.frame[name]
    if pd.api.types.is_datetime64_any_dtype(values):
        seconds = pd.to_datetime(values, utc=True)
        bad = seconds.isna().to_numpy()
        seconds = (seconds - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    else:
        text = values.astype(str).str.strip()
        seconds = pd.to_numeric(text, errors="coerce")
        if seconds.isna().all() and (text != "").any():  # no numbers at all: dates
            dates = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
            seconds = (dates - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
        bad = (seconds.isna() | values.isna()).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{table.where(row)}: the timestamp {str(values.iloc[row]).strip()!r} is not unix seconds or an "
                        f"ISO 8601 date ({int(bad.sum()):,} such rows).")
    out = ((seconds < 0) | (seconds > MAX_TIMESTAMP)).to_numpy()
    if out.any():
        row = int(np.flatnonzero(out)[0])
        raise DataError(f"{table.where(row)}: the timestamp {str(values.iloc[row]).strip()} is not unix seconds between 0 and "
                        f"{MAX_TIMESTAMP:,}.")
    return seconds.astype("int64").reset_index(drop=True)


def read_interactions(path: Path, layout: Layout) -> tuple[pd.DataFrame, Table, dict[str, Any], list[str]]:
    """user, item (text) and, where the file has the time column, timestamp; in file order."""
    import pandas as pd

    kind = kind_of(path, layout.format)
    check_kind(path, kind, INTERACTION_KINDS, "interactions")
    table = read_table(path, kind)
    df = pd.DataFrame({"user": ids(table, layout.user_column, "user id", "--user-column"),
                       "item": ids(table, layout.item_column, "item id", "--item-column")})
    if layout.time_column in table.columns:
        df["timestamp"] = timestamps(table, layout.time_column)
    elif layout.time_column != Layout.time_column:  # named on purpose, so its absence is no choice to take the file order
        column(table, layout.time_column, "time", "another --time-column")
    repeated = int(df.duplicated(["user", "item"]).sum())
    notes = []
    if repeated:
        first = int(np.flatnonzero(df.duplicated(["user", "item"]).to_numpy())[0])
        notes.append(f"{repeated:,} interactions repeat a user-item pair (first at {table.where(first)}); "
                     "each pair is kept once, where it comes first (by time, then by line)")
    return df, table, {"repeated_interactions": repeated}, notes


def text_value(value: Any, where: str, name: str) -> Any:
    """A JSON field as item text: a stripped string, a number, or a list of those (nested lists
    flattened, repeats kept once); None where empty. An object is refused (which part is text?)."""
    if value is None or isinstance(value, bool):
        return None if value is None else str(value).lower()
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, list):
        flat: dict[str, None] = {}
        stack = list(reversed(value))
        while stack:
            part = stack.pop()
            if isinstance(part, list):
                stack.extend(reversed(part))
            elif isinstance(part, dict):
                raise DataError(f"{where}: field '{name}' holds a JSON object; item text is a string, a number or a list of them.")
            elif part is not None and str(part).strip():
                flat.setdefault(str(part).strip())
        return list(flat) or None
    raise DataError(f"{where}: field '{name}' holds a JSON object; item text is a string, a number or a list of them.")


def read_items(path: Path, layout: Layout) -> tuple[dict[str, dict[str, Any]], dict[str, int], list[str]]:
    """(text fields per item id, the line of each item, the items without text)."""
    kind = kind_of(path, layout.format)
    check_kind(path, kind, ITEM_KINDS, "items")
    key = layout.item_column
    text: dict[str, dict[str, Any]] = {}
    lines: dict[str, int] = {}
    if kind == "jsonl":
        rows = list(json_lines(path))
        found: dict[str, None] = {}
        for _, obj in rows:
            found.update(dict.fromkeys(k for k in obj if k != key))
        fields = chosen_fields(path, list(found), layout.text_fields)
        for number, obj in rows:
            item = obj.get(key)
            if isinstance(item, bool) or not isinstance(item, (str, int)) or not str(item).strip():
                raise DataError(f"{path}, line {number}: no item id (field '{key}' as a string or an integer; "
                                f"pass --item-column to name another field).")
            item = str(item).strip()
            if item in lines:
                raise DataError(f"{path}, line {number}: item '{item}' already had a line (line {lines[item]}).")
            lines[item] = number
            values = {f: text_value(obj.get(f), f"{path}, line {number}", f) for f in fields}
            text[item] = {f: v for f, v in values.items() if v is not None}
    else:
        table = read_table(path, kind)
        item_ids = ids(table, key, "item id", "--item-column")
        default = [c for c in table.columns if c != key and (kind != "recbole" or table.types[c] in TEXT_TYPES)]
        fields = chosen_fields(path, default, layout.text_fields, table.columns)
        columns = {f: cell_texts(table, f) for f in fields}
        names = {f: RECBOLE_NAMES.get(f, f) if kind == "recbole" and RECBOLE_NAMES.get(f) not in fields else f for f in fields}
        for row, item in enumerate(item_ids):
            if item in lines:
                raise DataError(f"{table.where(row)}: item '{item}' already had a line (line {lines[item]}).")
            lines[item] = table.line(row)
            text[item] = {names[f]: columns[f][row] for f in fields if columns[f][row] not in (None, "")}
    missing = [item for item, fields in text.items() if not fields]
    if missing and not layout.allow_missing_text:
        raise DataError(f"{where_lines(path, [lines[i] for i in missing])}: item '{missing[0]}' has no text "
                        f"({len(missing):,} items in all have none of the text fields). Give them text, or pass "
                        "--allow-missing-text to keep them without (a semantic-ID generator then embeds 'Item ID').")
    return text, lines, missing


def cell_texts(table: Table, name: str) -> list[Any]:
    """A column's cells as item text: a delimited file's as stripped strings ("" where empty); a Parquet
    file's as JSON lines' are read (numbers stay numbers, lists stay lists; see `text_value`)."""
    values = table.frame[name]
    if table.kind != "parquet":
        return values.astype(str).str.strip().where(values.notna(), "").tolist()
    out = []
    for row, value in enumerate(values.tolist()):
        if hasattr(value, "tolist"):  # a list column arrives as numpy arrays
            value = value.tolist()
        if isinstance(value, float) and value != value:  # NaN: a missing number
            value = None
        out.append(text_value(value, table.where(row), name))
    return out


def chosen_fields(path: Path, available: list[str], wanted: tuple[str, ...] | None, columns: list[str] | None = None) -> list[str]:
    """The item-text fields: `wanted` (each checked to be in the file), or the default ones."""
    if wanted is None:
        return available
    have = columns if columns is not None else available
    for name in wanted:
        if name not in have:
            raise DataError(f"{path}: no field '{name}' for --text-fields; the file has {', '.join(have) or 'no other field'}.")
    return list(wanted)
