"""Published numbers shown beside the leaderboards: data, never measured here, never ranked.

The rows live in `published.toml` beside this module, transcribed from the papers and the
phonism/genrec README named in each row's source. All are full ranking over
all items, leave-one-out; the Amazon rows are the 2014 5-core datasets. Metrics use recbench's
names (HR@K with one target equals Recall@K). Only the metrics a paper gives are present.

Every row carries the protocol of the evaluator that produced it, read from each method's own code:
"item" (a listed item is a hit when it is the target item: item-ID models, and semantic-ID models
whose IDs are unique or whose evaluator compares item ids) or "id" (semantic IDs compared with
collisions left in, so a look-alike of the target counts); the notes in published.toml say which
source is which. A page shows each number beside recbench's metric of the same level: item-level
numbers beside the leaderboard's, ID-level ones beside `id_level`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

PROTOCOLS = {"item": "items", "id": "semantic IDs, collisions kept"}  # protocol -> its name on a page


@dataclass(frozen=True)
class Reference:
    dataset: str  # recbench's dataset name
    model: str
    metrics: dict[str, float]
    source: str
    semantic_ids: bool  # a semantic-ID model: other embedding models, and see NOTES
    protocol: Literal["item", "id"] = "item"  # what the source's evaluator counts as a hit (module docstring)

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"Reference {self.model} on {self.dataset}: protocol must be one of {sorted(PROTOCOLS)}, got {self.protocol!r}")


PUBLISHED = Path(__file__).with_name("published.toml")  # the rows, their sources and the notes: data, not code


def load(path: Path = PUBLISHED) -> tuple[dict[str, str], tuple[Reference, ...], tuple[str, ...]]:
    """(sources by key, reference rows, notes) of a published-numbers file; a row naming an unknown
    source, protocol or field is a ValueError naming the row."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    data = tomllib.loads(path.read_text(encoding="utf-8"))
    sources = data["sources"]
    rows = []
    for n, row in enumerate(data["reference"], 1):
        where = f"{path.name}: reference {n} ({row.get('model')} on {row.get('dataset')})"
        if row.get("source") not in sources:
            raise ValueError(f"{where}: source must be one of {sorted(sources)}, got {row.get('source')!r}")
        unknown = set(row) - {"dataset", "model", "source", "semantic_ids", "protocol", "metrics"}
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}")
        rows.append(Reference(row["dataset"], row["model"], dict(row["metrics"]), sources[row["source"]], row["semantic_ids"],
                              row.get("protocol", "item")))
    return sources, tuple(rows), tuple(data["notes"])


SOURCES, REFERENCES, NOTES = load()
GENREC = SOURCES["genrec"]  # a third party's re-implementations (NOTES), set apart on the pages


def for_dataset(dataset: str) -> list[Reference]:
    return [r for r in REFERENCES if r.dataset == dataset]


def metric_names(refs: list[Reference]) -> list[str]:
    """The metrics any of `refs` gives, in the leaderboard's column order: recall, NDCG, MRR, by cut-off."""
    names = {m for r in refs for m in r.metrics}

    def order(name: str) -> tuple:
        kind, _, k = name.partition("@")
        return ({"recall": 0, "ndcg": 1}.get(kind, 2), int(k) if k else 0)

    return sorted(names, key=order)
