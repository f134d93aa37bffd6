"""Amazon Reviews 2023 (Hou et al., 2024), the categories RecBole 3.0 and genrec use:
`amazon2023:Beauty_and_Personal_Care`, `Sports_and_Outdoors`, `Toys_and_Games`, `Video_Games`,
`Industrial_and_Scientific`, `Musical_Instruments`, `Office_Products`, `CDs_and_Vinyl`.

Items are products by `parent_asin` (the release groups a product's variants under it, and its
benchmark files use it), users by `user_id`; every rating is an interaction. Timestamps are unix
*milliseconds*: interactions are ordered by them (two reviews in one second keep their order), then
stored as seconds, as recbench stores every dataset's times. A repeated (user, product) is kept
once, at its first time, and the data is 5-core filtered (`k_core` defaults to 5; the published
5-core files already are, and stay as they are).

Item text from the metadata: `title`, `features` (a list of bullet points, joined), `description`
(a list of paragraphs, joined) and `details` (a mapping such as {"Brand": ..., "Color": ...},
written `key: value; ...`), HTML entities unescaped.

Read from, in this order, under `amazon2023/CATEGORY/`, `CATEGORY/`, the root, or the release's
own layout (`amazon2023/raw/...`, `amazon2023/benchmark/...`) of RECBENCH_DATA_MIRROR or the
download cache; every file plain or gzipped (`.gz`):

1. the 5-core benchmark table `benchmark/5core/rating_only/CATEGORY.csv` (user_id, parent_asin,
   rating, timestamp) + `meta_CATEGORY.jsonl`;
2. the 5-core timestamp split `benchmark/5core/timestamp/CATEGORY.{train,valid,test}.csv` (or
   `timestamp_w_his`, whose extra `history` column is not needed) + `meta_CATEGORY.jsonl`: the
   three parts together are the 5-core data (recbench evaluates leave-one-out, so the release's
   absolute-time boundaries are not used);
3. all reviews `raw/review_categories/CATEGORY.jsonl` + `meta_CATEGORY.jsonl` (filtered to 5-core here);
4. failing all, the 5-core table and the metadata downloaded from Hugging Face
   (McAuley-Lab/Amazon-Reviews-2023), or the McAuley lab's UCSD host (gzipped).

The release publishes no checksums: the first download of a file records its sha256
(recbench.data.download) and later downloads must match it.

Hou, Li, He, Yan, Chen & McAuley, "Bridging Language and Items for Retrieval and
Recommendation", arXiv 2403.03952, 2024.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from recbench import hookimpl
from recbench.api import Dataset, DatasetConfig
from recbench.config import ranged
from recbench.data import RawData, Source
from recbench.errors import DataError
from recbench_plugins.amazon import clean, lines, parse_record
from recbench_plugins.amazon2018 import join_text, read_meta

if TYPE_CHECKING:  # pandas is imported where a frame is built, so that registering the plugins imports none
    import pandas as pd

HF = "https://huggingface.co/datasets/McAuley-Lab/Amazon-Reviews-2023/resolve/main/"
UCSD = ("https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/",
        "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_2023/")
CATEGORIES = ("Beauty_and_Personal_Care", "Sports_and_Outdoors", "Toys_and_Games", "Video_Games",
              "Industrial_and_Scientific", "Musical_Instruments", "Office_Products", "CDs_and_Vinyl")
SPLITS = ("train", "valid", "test")
TABLE_COLUMNS = ("user_id", "parent_asin", "rating", "timestamp")
MIN_MS = 10**11  # 1973 in milliseconds, 5138 in seconds: a smaller value is a time in seconds, not the release's milliseconds


@dataclass
class Amazon2023Config(DatasetConfig):
    k_core: int = ranged(5, ge=0)  # users and items with >= k ratings, after repeated ratings are dropped (0: as read)


def gz_or_plain(name: str) -> tuple[str, str]:
    return (name, name + ".gz")


def item_text(record: dict[str, Any]) -> dict[str, Any]:
    """title, features, description and details of a 2023 metadata record, where not empty."""
    text: dict[str, Any] = {}
    title = clean(record.get("title"))
    if title:
        text["title"] = title
    for field in ("features", "description"):
        value = join_text(record.get(field))
        if value:
            text[field] = value
    details = record.get("details")
    if isinstance(details, dict):
        pairs = [f"{clean(str(k))}: {clean(v) if isinstance(v, str) else v}" for k, v in details.items()
                 if v not in (None, "", [], {})]
        if pairs:
            text["details"] = "; ".join(pairs)
    return text


def milliseconds(value: Any, path: Path, number: int) -> int:
    """A timestamp of the release: an integer number of milliseconds (a DataError naming file and line otherwise)."""
    try:
        ms = int(value)
        if float(value) != ms:
            raise ValueError
    except (TypeError, ValueError):
        raise DataError(f"{path}, line {number}: timestamp is not an integer number of milliseconds: {value!r}") from None
    if ms < MIN_MS:
        raise DataError(f"{path}, line {number}: timestamp {ms} is not in milliseconds (the 2023 release's unit); "
                        "a time in seconds would be before 1973 read as milliseconds.")
    return ms


def interactions(users: list[str], items: list[str], ms: list[int]) -> pd.DataFrame:
    """Ordered by millisecond (stable: equal times keep file order), then stored as seconds: the
    core's stable sort by seconds keeps the millisecond order within a second."""
    import pandas as pd

    ms_array = np.asarray(ms, dtype=np.int64)
    order = np.argsort(ms_array, kind="stable")
    return pd.DataFrame({"user": np.asarray(users, dtype=object)[order], "item": np.asarray(items, dtype=object)[order],
                         "timestamp": ms_array[order] // 1000})


def read_reviews(path: Path) -> pd.DataFrame:
    """The raw reviews (JSON lines): user_id, parent_asin, timestamp in milliseconds."""
    users, items, ms = [], [], []
    for number, line in lines(path):
        review = parse_record(line, path, number)
        for key in ("user_id", "parent_asin", "timestamp"):
            if key not in review:
                raise DataError(f"{path}, line {number}: the review has no {key!r}: {line[:80]!r}")
        ms.append(milliseconds(review["timestamp"], path, number))
        users.append(str(review["user_id"]))
        items.append(str(review["parent_asin"]))
    return interactions(users, items, ms)


def read_tables(paths: list[Path]) -> pd.DataFrame:
    """The benchmark CSV tables (header user_id,parent_asin,rating,timestamp[,history]), one after another."""
    users, items, ms = [], [], []
    for path in paths:
        header = None
        for number, line in lines(path):
            row = next(csv.reader([line]))
            if header is None:
                if tuple(row[:4]) != TABLE_COLUMNS:
                    raise DataError(f"{path}, line {number}: expected the header {','.join(TABLE_COLUMNS)}; got {line[:80]!r}")
                header = row
                continue
            if len(row) != len(header):
                raise DataError(f"{path}, line {number}: expected {len(header)} comma-separated fields "
                                f"({','.join(header)}), got {len(row)}: {line[:80]!r}")
            users.append(row[0])
            items.append(row[1])
            ms.append(milliseconds(row[3], path, number))
    return interactions(users, items, ms)


class Amazon2023(Dataset):
    """One category of Amazon Reviews 2023, 5-core."""

    Config = Amazon2023Config
    category: ClassVar[str]
    max_seq_len = 50

    def __init__(self, category: str):
        self.category = category
        self.name = f"amazon2023:{category}"
        self.description = f"Amazon Reviews 2023, {category.replace('_', ' ')}, 5-core (McAuley lab)"

    @property
    def meta_file(self) -> str:
        return f"meta_{self.category}.jsonl"

    @property
    def forms(self) -> dict[str, list[str]]:
        c = self.category
        return {"5-core table": [f"benchmark/5core/rating_only/{c}.csv", self.meta_file],
                "5-core timestamp split": [f"benchmark/5core/timestamp/{c}.{s}.csv" for s in SPLITS] + [self.meta_file],
                "all reviews (5-core filtered here)": [f"raw/review_categories/{c}.jsonl", self.meta_file]}

    def candidates(self, name: str) -> list[str]:
        """Where file `name` (a path of the release) may lie under a root: the category's folder,
        the root, or the release's own layout; plain or gzipped."""
        base = Path(name).name
        places = [f"amazon2023/{self.category}/{base}", f"{self.category}/{base}", base]
        if name.startswith("benchmark/"):
            places.append(f"amazon2023/{name}")
        if base == self.meta_file:
            places.append(f"amazon2023/raw/meta_categories/{base}")
        elif name.startswith("raw/"):
            places.append(f"amazon2023/{name}")
        return [p for place in places for p in gz_or_plain(place)]

    def find(self, source: Source, names: list[str]) -> list[Path] | None:
        found = [source.find(*self.candidates(name)) for name in names]
        return found if all(found) else None

    def locate(self, source: Source) -> list[Path]:
        for name, names in self.forms.items():
            found = self.find(source, names)
            if found is None and name == "5-core timestamp split":  # the split with histories holds the same rows
                found = self.find(source, [n.replace("/timestamp/", "/timestamp_w_his/") for n in names])
            if found is not None:
                return found
        table, meta = self.forms["5-core table"]
        meta_path = f"raw/meta_categories/{meta}"
        try:
            return [source.fetch(Path(table).name, [HF + table]), source.fetch(meta, [HF + meta_path])]
        except DataError as hf_error:  # the UCSD host serves the same files gzipped
            try:
                return [source.fetch(Path(table).name + ".gz", [host + table + ".gz" for host in UCSD]),
                        source.fetch(meta + ".gz", [host + meta_path + ".gz" for host in UCSD])]
            except DataError as err:
                raise source.missing(self.forms, DataError(f"{hf_error}\n{err}")) from err

    def read(self, files: list[Path], config) -> RawData:
        *reviews, meta = files
        if reviews[0].name.endswith((".jsonl", ".jsonl.gz")):
            table = read_reviews(reviews[0])
        else:
            table = read_tables(reviews)
        wanted = set(table["item"].unique())
        text, repeated = read_meta(meta, wanted, "parent_asin", item_text)
        report = {"items_without_metadata": len(wanted - text.keys()),
                  "items_without_text": sum(1 for item in wanted if not text.get(item)),
                  "metadata_lines_repeating_a_product": repeated}
        return RawData(table, text, files, report)


@hookimpl
def register_datasets(register):
    for category in CATEGORIES:
        register(Amazon2023(category))
