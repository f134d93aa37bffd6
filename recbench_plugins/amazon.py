"""Amazon Reviews 2014 datasets (McAuley lab), 5-core: Beauty, Sports_and_Outdoors, Toys_and_Games,
CDs_and_Vinyl. Every review is an interaction; item text is title, brand, categories, description
and price from the product metadata.

Read from, in this order, under `amazon2014/CATEGORY/`, `CATEGORY/` or the root of
RECBENCH_DATA_MIRROR or the download cache:

1. the widely shared P5 form: `user_sequence.txt` (`USER ITEM ITEM ...`, chronological, no
   timestamps) with an optional `items.jsonl` beside it (upstream metadata fields, one JSON object
   per line);
2. the upstream files `reviews_CATEGORY_5.json.gz` + `meta_CATEGORY.json.gz` (one JSON object or
   python-literal dict per line, gzipped);
3. failing both, the upstream files downloaded from SNAP or the McAuley lab's UCSD host.

He & McAuley, "Ups and Downs: Modeling the Visual Evolution of Fashion Trends with One-Class
Collaborative Filtering", WWW 2016. McAuley, Targett, Shi & van den Hengel, "Image-Based
Recommendations on Styles and Substitutes", SIGIR 2015.
"""

from __future__ import annotations

import ast
import gzip
import html
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

from recbench import hookimpl
from recbench.api import Dataset
from recbench.data import RawData, Source
from recbench.errors import DataError

if TYPE_CHECKING:  # pandas is imported where a frame is built, so that registering the plugins imports none
    import pandas as pd

DOWNLOAD_HOSTS = (
    "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/",
    "https://mcauleylab.ucsd.edu/public_datasets/data/amazon/categoryFiles/",
    "http://jmcauley.ucsd.edu/data/amazon/categoryFiles/",
)
NO_BRAND = ("", "Unknown")


def open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path) if path.suffix == ".gz" else open(path, "rb")


def lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, stripped line) for each non-blank line of a text or gzipped file."""
    number = 0
    empty = True
    try:
        with open_binary(path) as f:
            for number, raw in enumerate(f, start=1):
                line = raw.decode("utf-8").strip()
                if line:
                    empty = False
                    yield number, line
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path} is truncated or corrupt: reading stopped at line {number + 1} ({exc}).") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}, line {number}: not UTF-8 text ({exc}).") from exc
    except OSError as exc:
        raise DataError(f"Cannot read {path}: {exc}") from exc
    if empty:
        raise DataError(f"{path} is empty.")


def parse_record(line: str, path: Path, number: int) -> dict[str, Any]:
    """One JSON object or python-literal dict (the upstream files use both; never eval)."""
    try:
        record = json.loads(line)
    except ValueError:
        try:
            record = ast.literal_eval(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            record = None
    if not isinstance(record, dict):
        raise DataError(f"{path}, line {number}: not a JSON object or python dict: {line[:80]!r}")
    return record


def read_sequences(path: Path) -> pd.DataFrame:
    """The P5 form: one user per line, items in chronological order."""
    import pandas as pd

    users: list[str] = []
    items: list[str] = []
    seen: dict[str, int] = {}  # user -> the line that gave the user's history
    for number, line in lines(path):
        user, *sequence = line.split()
        if not sequence:
            raise DataError(f"{path}, line {number}: user {user!r} has no items.")
        if user in seen:  # two lines of one user have no order between them: refuse rather than guess
            raise DataError(f"{path}, line {number}: user {user!r} already had a line (line {seen[user]}); "
                            "each user's whole history is one line.")
        seen[user] = number
        users.extend([user] * len(sequence))
        items.extend(sequence)
    return pd.DataFrame({"user": users, "item": items})


def read_reviews(path: Path) -> pd.DataFrame:
    """The upstream reviews: reviewer, product and review time, in file order."""
    import pandas as pd

    users: list[str] = []
    items: list[str] = []
    times: list[int] = []
    for number, line in lines(path):
        review = parse_record(line, path, number)
        for key in ("reviewerID", "asin", "unixReviewTime"):
            if key not in review:
                raise DataError(f"{path}, line {number}: the review has no {key!r}: {line[:80]!r}")
        try:
            times.append(int(review["unixReviewTime"]))
        except (TypeError, ValueError):
            value = review["unixReviewTime"]
            raise DataError(f"{path}, line {number}: unixReviewTime is not an integer: {value!r}") from None
        users.append(str(review["reviewerID"]))
        items.append(str(review["asin"]))
    return pd.DataFrame({"user": users, "item": items, "timestamp": pd.Series(times, dtype="int64")})


def read_meta(path: Path, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """Item text per asin, for the products in `wanted`. Every line is parsed, so a malformed line is
    reported (file, line) even where no sequence uses its product."""
    text, first = {}, {}
    for number, line in lines(path):
        record = parse_record(line, path, number)
        if not record.get("asin"):
            raise DataError(f"{path}, line {number}: the product has no 'asin': {line[:80]!r}")
        asin = str(record["asin"])
        if asin in first:  # a second line of one product would silently replace its text
            raise DataError(f"{path}, line {number}: product {asin!r} already had a line (line {first[asin]}).")
        first[asin] = number
        if asin in wanted:
            text[asin] = item_text(record)
    return text


def clean(value: Any) -> str | None:
    """Stripped text with HTML entities unescaped, or None. Some upstream text is escaped twice
    ("Kirk&amp;#39;s"), so unescape until nothing changes."""
    if not isinstance(value, str):
        return None
    while (unescaped := html.unescape(value)) != value:
        value = unescaped
    return value.strip() or None


def flatten_categories(paths: Any) -> list[str]:
    """[["Beauty", "Makeup"], ["Beauty", "Nails"]] -> ["Beauty", "Makeup", "Nails"]."""
    names: dict[str, None] = {}
    for category_path in paths if isinstance(paths, list) else ():
        for name in category_path if isinstance(category_path, list) else [category_path]:
            name = clean(name)
            if name:
                names.setdefault(name)
    return list(names)


def item_text(record: dict[str, Any]) -> dict[str, Any]:
    """The non-empty text fields of a metadata record, HTML entities unescaped."""
    text: dict[str, Any] = {}
    for field in ("title", "brand", "description"):
        value = clean(record.get(field))
        if value is not None and not (field == "brand" and value in NO_BRAND):
            text[field] = value
    categories = flatten_categories(record.get("categories"))
    if categories:
        text["categories"] = categories
    price = record.get("price")
    if isinstance(price, (int, float)) and not isinstance(price, bool):
        text["price"] = price
    elif clean(price):
        text["price"] = clean(price)
    return text


class AmazonDataset(Dataset):
    """One category of Amazon Reviews 2014, 5-core."""

    category: ClassVar[str]
    expect_core = 5
    max_seq_len = 50

    @property
    def reviews_file(self) -> str:
        return f"reviews_{self.category}_5.json.gz"

    @property
    def meta_file(self) -> str:
        return f"meta_{self.category}.json.gz"

    @property
    def forms(self) -> dict[str, list[str]]:
        return {
            "P5 sequences": ["user_sequence.txt", "items.jsonl (optional: item text)"],
            "upstream files": [self.reviews_file, self.meta_file],
        }

    def locate(self, source: Source) -> list[Path]:
        folders = (f"amazon2014/{self.category}/", f"{self.category}/", "")
        for folder in folders:
            sequences = source.find(folder + "user_sequence.txt")
            if sequences:
                items = sequences.parent / "items.jsonl"
                return [sequences, items] if items.is_file() else [sequences]
        for folder in folders:
            reviews, meta = source.find(folder + self.reviews_file), source.find(folder + self.meta_file)
            if reviews and meta:
                return [reviews, meta]
        try:
            pair = (self.reviews_file, self.meta_file)
            return [source.fetch(name, [host + name for host in DOWNLOAD_HOSTS]) for name in pair]
        except DataError as err:
            raise source.missing(self.forms, err) from err

    def read(self, files: list[Path], config) -> RawData:
        if files[0].name == "user_sequence.txt":
            interactions = read_sequences(files[0])
        else:
            interactions = read_reviews(files[0])
        wanted = set(interactions["item"].unique())
        text = read_meta(files[1], wanted) if len(files) > 1 else {}
        report = {
            "items_without_metadata": len(wanted - text.keys()),
            "items_without_text": sum(1 for item in wanted if not text.get(item)),
        }
        return RawData(interactions, text, files, report)


class Beauty(AmazonDataset):
    name = "beauty"
    description = "Amazon Beauty 2014, 5-core: 22,363 users, 12,101 items, 198,502 reviews (McAuley lab)"
    aliases = ("Beauty",)
    category = "Beauty"


class Sports(AmazonDataset):
    name = "sports"
    description = "Amazon Sports and Outdoors 2014, 5-core: 35,598 users, 18,357 items, 296,337 reviews (McAuley lab)"
    aliases = ("Sports_and_Outdoors",)
    category = "Sports_and_Outdoors"


class Toys(AmazonDataset):
    name = "toys"
    description = "Amazon Toys and Games 2014, 5-core: 19,412 users, 11,924 items, 167,597 reviews (McAuley lab)"
    aliases = ("Toys_and_Games",)
    category = "Toys_and_Games"


class CDs(AmazonDataset):
    name = "cds"
    description = "Amazon CDs and Vinyl 2014, 5-core: 75,258 users, 64,443 items (McAuley lab)"
    aliases = ("CDs_and_Vinyl",)
    category = "CDs_and_Vinyl"


@hookimpl
def register_datasets(register):
    register(Beauty())
    register(Sports())
    register(Toys())
    register(CDs())
