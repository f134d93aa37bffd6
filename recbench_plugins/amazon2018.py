"""Amazon Reviews 2018 (Ni, Li & McAuley, EMNLP 2019), the release LETTER and MiniOneRec use:
`amazon2018:Musical_Instruments`, `amazon2018:Arts_Crafts_and_Sewing`, `amazon2018:Video_Games`,
`amazon2018:Office_Products` (the papers' Instruments, Arts, Games, Office) and
`amazon2018:Industrial_and_Scientific`.

Every review is an interaction (reviewer, product, `unixReviewTime` in seconds); a reviewer's
repeated review of one product is kept once, at its first time (the 2018 files hold such
duplicates). The data is 5-core filtered (`k_core` defaults to 5): the published 5-core files
count the duplicates, so after they are removed a user can fall below 5 and the filter runs again.
Item text from the metadata: `title`, `brand`, `category` (a list of names, kept as categories) and
`description` (a list of paragraphs, joined); HTML entities unescaped. The metadata repeats some
products on several lines: the first line of a product is used, the others are counted.

Read from, in this order, under `amazon2018/CATEGORY/`, `CATEGORY/` or the root of
RECBENCH_DATA_MIRROR or the download cache:

1. the 5-core reviews `CATEGORY_5.json.gz` + `meta_CATEGORY.json.gz`;
2. all reviews `CATEGORY.json.gz` + `meta_CATEGORY.json.gz` (filtered to 5-core here);
3. failing both, the 5-core reviews and the metadata downloaded from the UCSD hosts.

Each line is a JSON object; some metadata files write python-literal dicts instead (read with
`ast.literal_eval`, never `eval`). The hosts publish no checksums: the first download of a file
records its sha256 (recbench.data.download) and later downloads must match it.

Ni, Li & McAuley, "Justifying Recommendations using Distantly-Labeled Reviews and Fine-Grained
Aspects", EMNLP 2019.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from recbench import hookimpl
from recbench.api import Dataset, DatasetConfig
from recbench.config import ranged
from recbench.data import RawData, Source
from recbench.errors import DataError
from recbench_plugins.amazon import clean, lines, parse_record, read_reviews

HOSTS = (
    "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/",
    "https://jmcauley.ucsd.edu/data/amazon_v2/",
)
FIVE_CORE_FOLDER = "categoryFilesSmall/"  # CATEGORY_5.json.gz
REVIEWS_FOLDER = "categoryFiles/"  # CATEGORY.json.gz, every review
META_FOLDER = "metaFiles2/"  # meta_CATEGORY.json.gz
CATEGORIES = {  # category -> the short name the papers give it
    "Musical_Instruments": "Instruments",
    "Arts_Crafts_and_Sewing": "Arts",
    "Video_Games": "Games",
    "Office_Products": "Office",
    "Industrial_and_Scientific": "Scientific",
}


@dataclass
class Amazon2018Config(DatasetConfig):
    k_core: int = ranged(5, ge=0)  # users and items with >= k reviews, after duplicate reviews are dropped (0: as read)


def join_text(value: Any) -> str | None:
    """A field that is a string or a list of strings (2018's description, 2023's features), as one string."""
    if isinstance(value, list):
        parts = [text for text in (clean(v) for v in value) if text]
        return " ".join(parts) or None
    return clean(value)


def item_text(record: dict[str, Any]) -> dict[str, Any]:
    """title, brand, categories and description of a 2018 metadata record, where not empty."""
    text: dict[str, Any] = {}
    for field in ("title", "brand"):
        value = clean(record.get(field))
        if value is not None and value != "Unknown":
            text[field] = value
    names = [name for name in (clean(c) for c in record.get("category") or [] if isinstance(c, str)) if name]
    if names:
        text["categories"] = list(dict.fromkeys(names))
    description = join_text(record.get("description"))
    if description:
        text["description"] = description
    return text


def read_meta(path: Path, wanted: set[str], key: str, text_of) -> tuple[dict[str, dict[str, Any]], int]:
    """(item text per product in `wanted`, lines that repeat a product). Every line is parsed, so a
    malformed line is reported (file, line) even where no interaction uses its product; a repeated
    product keeps its first line."""
    text: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    repeated = 0
    for number, line in lines(path):
        record = parse_record(line, path, number)
        if not record.get(key):
            raise DataError(f"{path}, line {number}: the product has no {key!r}: {line[:80]!r}")
        item = str(record[key])
        if item in seen:
            repeated += 1
            continue
        seen.add(item)
        if item in wanted:
            text[item] = text_of(record)
    return text, repeated


class Amazon2018(Dataset):
    """One category of Amazon Reviews 2018, 5-core."""

    Config = Amazon2018Config
    category: ClassVar[str]
    max_seq_len = 50

    def __init__(self, category: str):
        self.category = category
        self.name = f"amazon2018:{category}"
        self.aliases = (f"amazon2018:{CATEGORIES[category]}",) if category in CATEGORIES else ()
        self.description = f"Amazon Reviews 2018, {category.replace('_', ' ')}, 5-core (McAuley lab)"

    @property
    def meta_file(self) -> str:
        return f"meta_{self.category}.json.gz"

    @property
    def forms(self) -> dict[str, list[str]]:
        return {"5-core reviews": [f"{self.category}_5.json.gz", self.meta_file],
                "all reviews (5-core filtered here)": [f"{self.category}.json.gz", self.meta_file]}

    def locate(self, source: Source) -> list[Path]:
        folders = (f"amazon2018/{self.category}/", f"{self.category}/", "")
        for reviews in self.forms.values():
            for folder in folders:
                found = [source.find(folder + name) for name in reviews]
                if all(found):
                    return found
        try:
            five_core, meta = self.forms["5-core reviews"]
            return [source.fetch(five_core, [host + FIVE_CORE_FOLDER + five_core for host in HOSTS]),
                    source.fetch(meta, [host + META_FOLDER + meta for host in HOSTS])]
        except DataError as err:
            raise source.missing(self.forms, err) from err

    def read(self, files: list[Path], config) -> RawData:
        interactions = read_reviews(files[0])
        wanted = set(interactions["item"].unique())
        text, repeated = read_meta(files[1], wanted, "asin", item_text)
        report = {"items_without_metadata": len(wanted - text.keys()),
                  "items_without_text": sum(1 for item in wanted if not text.get(item)),
                  "metadata_lines_repeating_a_product": repeated}
        return RawData(interactions, text, files, report)


@hookimpl
def register_datasets(register):
    for category in CATEGORIES:
        register(Amazon2018(category))
