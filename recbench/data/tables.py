"""The files of a local dataset (recbench.data.generic) read into columns, with errors that name the
file and the line.

pyarrow parses CSV, TSV, RecBole atomic files and Parquet; the json module reads JSON lines. Every
value of a delimited file is read as text (an id such as "007" keeps its zeros); what a column
means is the caller's business. pyarrow counts rows, a person reads lines, and the two differ where
a file has blank lines or a quoted value spans lines: so the csv module, with the dialect pyarrow
was given, is used to find the line of a row that a message is about, and only then.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError

if TYPE_CHECKING:  # pandas is imported where a frame is built, so that registering the plugins imports none
    import pandas as pd

RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")  # the field types of RecBole's atomic files
SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "tsv", ".inter": "recbole", ".item": "recbole",
            ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
BOM = b"\xef\xbb\xbf"


@dataclass
class Table:
    """A file's rows as text columns; `where(row)` names a row's line for messages."""

    path: Path
    kind: str  # csv, tsv, recbole, parquet
    columns: list[str]  # in file order; RecBole's without their ':type'
    frame: pd.DataFrame  # one column per name (text, or Parquet's own types)
    types: dict[str, str] = field(default_factory=dict)  # RecBole: column -> field type
    data: bytes | None = field(default=None, repr=False)  # a delimited file's bytes, to find lines in
    _lines: np.ndarray | None = field(default=None, repr=False)

    def line(self, row: int) -> int:
        """The line a data row starts on (Parquet: the row's number, counted from 1)."""
        if self.data is None:
            return row + 1
        if self._lines is None:
            self._lines = row_lines(self.path, self.data, self.kind)
        return int(self._lines[row])

    def where(self, row: int) -> str:
        return f"{self.path}, {'row' if self.data is None else 'line'} {self.line(row)}"


def kind_of(path: Path, fmt: str = "auto") -> str:
    """csv, tsv, recbole, parquet or jsonl, from the file's suffix and (for a tab-separated file)
    its header: a header whose every column reads NAME:TYPE with a RecBole type is an atomic file.
    `fmt` "recbole" reads any delimited file as one; "generic" never does."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unknown file type '{path.suffix or '(none)'}'; expected one of "
                        f"{', '.join(sorted(SUFFIXES))} (see docs/own-data.md).")
    if fmt == "recbole" and kind in ("csv", "tsv", "recbole"):
        return "recbole"
    if fmt == "generic" and kind == "recbole":
        return "tsv"
    if fmt == "auto" and kind == "tsv" and typed_header(first_line(path)):
        return "recbole"
    return kind


def first_line(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            return f.readline(1 << 16).removeprefix(BOM).decode("utf-8", "replace").rstrip("\r\n")
    except OSError as exc:
        raise DataError(f"Cannot read {path}: {exc}") from None


def typed_header(line: str) -> bool:
    names = line.split("\t")
    return all(":" in name and name.rsplit(":", 1)[1].strip() in RECBOLE_TYPES for name in names) and bool(line.strip())


def read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"Cannot read {path}: {exc}") from None
    if not data.strip():
        raise DataError(f"{path} is empty.")
    return data


def utf8(path: Path, data: bytes) -> str:
    """The text of `data`; a DataError naming the line of the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not UTF-8 text (byte {data[exc.start]:#04x}); save the file as UTF-8.") from None


def dialect(kind: str) -> dict[str, Any]:
    """The csv module's reading of a kind: CSV quotes with '"'; TSV and RecBole's files never quote."""
    if kind == "csv":
        return {"delimiter": ",", "quotechar": '"', "doublequote": True}
    return {"delimiter": "\t", "quoting": csv.QUOTE_NONE}


def records(path: Path, text: str, kind: str):
    """(first line, fields) of every non-blank record, as the csv module splits them."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True, **dialect(kind))
    end = 0
    try:
        for fields in reader:
            start, end = end + 1, reader.line_num
            if fields:
                yield start, fields
    except csv.Error as exc:
        raise DataError(f"{path}, line {end + 1}: the row starting here does not parse as {kind.upper()} ({exc}, at line "
                        f"{reader.line_num}); a quote opened here and not closed?") from None


def row_lines(path: Path, data: bytes, kind: str) -> np.ndarray:
    """The line each data row (the header excluded) starts on."""
    starts = [start for start, _ in records(path, data.removeprefix(BOM).decode("utf-8"), kind)]
    return np.asarray(starts[1:], dtype=np.int64)


def header_of(path: Path, text: str, kind: str) -> list[str]:
    """The header's column names; a DataError where one is empty or given twice."""
    first = next(records(path, text, kind), None)
    if first is None:
        raise DataError(f"{path} is empty.")
    line, names = first
    names = [n.strip() for n in names]
    if line != 1:
        raise DataError(f"{path}, line 1: the file starts with a blank line; the first line must be the header (column names).")
    for i, name in enumerate(names):
        if not name:
            raise DataError(f"{path}, line 1: column {i + 1} of the header has no name.")
        if names.index(name) != i:
            raise DataError(f"{path}, line 1: the header names column '{name}' twice (columns {names.index(name) + 1} and {i + 1}).")
    return names


def recbole_columns(path: Path, names: list[str]) -> tuple[list[str], dict[str, str]]:
    """RecBole's NAME:TYPE header split into names and types, each checked."""
    columns, types = [], {}
    for i, typed in enumerate(names):
        name, _, kind = typed.rpartition(":")
        if not name or kind not in RECBOLE_TYPES:
            raise DataError(f"{path}, line 1: column {i + 1} ('{typed}') is not a RecBole field NAME:TYPE with TYPE one of "
                            f"{', '.join(RECBOLE_TYPES)}.")
        if name in types:
            raise DataError(f"{path}, line 1: the header names field '{name}' twice.")
        columns.append(name)
        types[name] = kind
    return columns, types


def read_delimited(path: Path, kind: str) -> Table:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    data = read_bytes(path).removeprefix(BOM)
    text = utf8(path, data)
    names = header_of(path, text, kind)
    columns, types = recbole_columns(path, names) if kind == "recbole" else (names, {})
    bad: list[int] = []

    def invalid(row) -> str:  # a row of another field count than the header's: counted, then located below
        bad.append(row.actual_columns)
        return "skip"

    quoted = kind == "csv"
    try:
        table = pcsv.read_csv(
            io.BytesIO(data),
            read_options=pcsv.ReadOptions(column_names=columns, skip_rows=1, use_threads=False),
            parse_options=pcsv.ParseOptions(delimiter=dialect(kind)["delimiter"], quote_char='"' if quoted else False,
                                            newlines_in_values=quoted, invalid_row_handler=invalid),
            convert_options=pcsv.ConvertOptions(column_types={c: pa.string() for c in columns}, strings_can_be_null=False,
                                                quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowException) as exc:
        raise DataError(f"{path}: cannot be parsed as {kind.upper()} ({exc}).") from None
    if bad:
        for line, fields in records(path, text, kind):
            if line > 1 and len(fields) != len(columns):
                more = f" ({len(bad) - 1:,} more such lines)" if len(bad) > 1 else ""
                raise DataError(f"{path}, line {line}: expected {len(columns)} fields separated by "
                                f"{dialect(kind)['delimiter']!r}, got {len(fields)}{more}.")
        raise DataError(f"{path}: {len(bad):,} lines do not have the header's {len(columns)} fields.")
    frame = table.to_pandas()
    return Table(path, kind, columns, frame, types, data)


def read_parquet(path: Path) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: cannot be read as Parquet ({exc}).") from None
    names = table.column_names
    for i, name in enumerate(names):
        if names.index(name) != i:
            raise DataError(f"{path}: the Parquet schema names column '{name}' twice (columns {names.index(name) + 1} and {i + 1}).")
    if table.num_rows == 0:
        raise DataError(f"{path} has no rows.")
    return Table(path, "parquet", list(names), table.to_pandas())


def read_table(path: Path, kind: str) -> Table:
    """A delimited or Parquet file as a Table (see the module docstring)."""
    if kind == "parquet":
        return read_parquet(path)
    return read_delimited(path, kind)


def unique_keys(path: Path, line: int):
    """A json object_pairs_hook that refuses a key given twice in one object (json keeps the last)."""
    def hook(pairs):
        seen = {}
        for key, value in pairs:
            if key in seen:
                raise DataError(f"{path}, line {line}: the field '{key}' is given twice.")
            seen[key] = value
        return seen
    return hook


def json_lines(path: Path):
    """(line number, object) for every non-blank line of a JSON-lines file."""
    text = utf8(path, read_bytes(path).removeprefix(BOM))
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line, object_pairs_hook=unique_keys(path, number))
        except ValueError as exc:
            raise DataError(f"{path}, line {number}: not JSON ({exc}): {line[:80]!r}") from None
        if not isinstance(value, dict):
            raise DataError(f"{path}, line {number}: expected a JSON object per line, got a JSON {type(value).__name__}: {line[:80]!r}")
        yield number, value
