"""Your own interactions as a recbench dataset: two CSV files exported from your system.

    interactions.csv   user,item,timestamp      one row per interaction; unix seconds
    items.csv          item,title,categories    optional; categories separated by "|"

Put them in a folder `events/` under the folder that RECBENCH_DATA_MIRROR names, or straight into
RECBENCH_DATA/raw/events/ (the download cache, which recbench also searches). The core orders each
user's interactions by time, keeps a repeated (user, item) once, numbers the items and caches the
result; a change to the files or to `since` prepares the data again.
"""

import csv
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recbench.api import Dataset, DatasetConfig, RawData, Source
from recbench.config import ranged
from recbench.errors import DataError


@dataclass
class EventsConfig(DatasetConfig):
    since: int = ranged(0, ge=0)  # drop the interactions before this unix time (0: keep them all)


def rows(path: Path, columns: tuple[str, ...]):
    """(line number, row) of each data line of a CSV file whose header names `columns` (and maybe more)."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}, line 1: the header must name the columns {', '.join(columns)}; "
                            f"missing: {', '.join(missing)}.")
        for row in reader:
            yield reader.line_num, row


class Events(Dataset):
    name = "events"
    description = "Your own interactions from interactions.csv and items.csv (example plugin)"
    aliases = ("my-events",)
    Config = EventsConfig
    max_seq_len = 50  # the history fed to a model, unless the generator's config sets max_seq_len
    forms = {"CSV files": ["events/interactions.csv", "events/items.csv (optional)"]}

    def locate(self, source: Source) -> list[Path]:
        # the mirror holds the folder events/; the download cache is the folder itself
        interactions = source.find("events/interactions.csv", "interactions.csv")
        if interactions is None:  # find returns None when no candidate exists: say what is looked for, and where
            raise source.missing(self.forms)
        items = interactions.parent / "items.csv"
        return [interactions, items] if items.is_file() else [interactions]

    def read(self, files: list[Path], config: EventsConfig) -> RawData:
        kept, dropped = [], 0
        for line, row in rows(files[0], ("user", "item", "timestamp")):
            user, item, stamp = (row[c].strip() for c in ("user", "item", "timestamp"))
            if not user or not item:
                raise DataError(f"{files[0]}, line {line}: the user or the item is empty.")
            if not stamp.isdigit():
                raise DataError(f"{files[0]}, line {line}: the timestamp must be unix seconds; got {stamp!r}.")
            if int(stamp) < config.since:
                dropped += 1
            else:
                kept.append((user, item, int(stamp)))
        interactions = pd.DataFrame(kept, columns=["user", "item", "timestamp"]).astype({"timestamp": "int64"})
        text = {}
        for _, row in rows(files[1], ("item", "title")) if len(files) > 1 else ():
            fields = {"title": row["title"].strip()}
            categories = [c.strip() for c in (row.get("categories") or "").split("|") if c.strip()]
            if categories:
                fields["categories"] = categories
            text[row["item"].strip()] = fields
        return RawData(interactions, text, files, report={"dropped_before_since": dropped})
