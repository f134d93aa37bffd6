"""Published numbers shown beside the leaderboards: data, never measured here, never ranked.

Transcribed from the papers and the phonism/genrec README named in each row's source. All are full ranking over
all items, leave-one-out; the Amazon rows are the 2014 5-core datasets. Metrics use recbench's
names (HR@K with one target equals Recall@K). Only the metrics a paper gives are present.

Every row carries the protocol of the evaluator that produced it, read from each method's own code:
"item" (a listed item is a hit when it is the target item: every item-ID model, TIGER, whose extra
digit makes every semantic ID unique, and RPG, whose evaluator compares the item ids its scoring or
graph decoding returns) or "id" (DiffGRM: 4-digit semantic IDs compared with collisions left in, so a
look-alike of the target counts). A page shows each number beside recbench's metric of the same
level: item-level numbers beside the leaderboard's, ID-level ones beside `id_level`.
"""

from __future__ import annotations

from dataclasses import dataclass
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


TIGER = "TIGER paper (NeurIPS 2023), Table 1"
RPG = "RPG paper (KDD 2025)"
DIFFGRM = "DiffGRM paper (arXiv 2510.21805)"
HSTU = "HSTU README (full ranking, all 3,706 items, history 200)"
# genrec's README versions disagree (its January 2026 README gives Beauty SASRec .0375, HSTU .0412,
# TIGER .0378 NDCG@10): these rows are its 2026 README with the OneRec-SFT rows
GENREC = "phonism/genrec README, 2026 version with OneRec-SFT rows (re-implementation, history 50)"


def _amazon(dataset: str, model: str, r5, n5, r10, n10, source: str, semantic_ids: bool, protocol: str = "item") -> Reference:
    given = {"recall@5": r5, "ndcg@5": n5, "recall@10": r10, "ndcg@10": n10}
    return Reference(dataset, model, {k: v for k, v in given.items() if v is not None}, source, semantic_ids, protocol)


def _ml1m(model: str, r10: float, n10: float, r50: float, n50: float) -> Reference:
    return Reference("ml-1m", model, {"recall@10": r10, "ndcg@10": n10, "recall@50": r50, "ndcg@50": n50}, HSTU, False)


REFERENCES: tuple[Reference, ...] = (
    _amazon("beauty", "SASRec", .0387, .0249, .0605, .0318, TIGER, False),
    _amazon("beauty", "TIGER", .0454, .0321, .0648, .0384, TIGER, True),
    _amazon("beauty", "RPG", .0550, .0381, .0809, .0464, RPG, True),
    _amazon("beauty", "DiffGRM", None, None, None, .0502, DIFFGRM, True, "id"),
    _amazon("beauty", "SASRec (CE)", .0538, .0320, .0851, .0421, GENREC, False),
    _amazon("beauty", "SASRec (BCE)", .0258, .0137, .0503, .0216, GENREC, False),
    _amazon("beauty", "HSTU (CE)", .0568, .0347, .0859, .0441, GENREC, False),
    _amazon("beauty", "HSTU (sampled softmax)", .0414, .0235, .0727, .0335, GENREC, False),
    _amazon("beauty", "TIGER", .0419, .0282, .0644, .0354, GENREC, True),
    _amazon("beauty", "RPG (sentence-t5-xl)", .0525, .0363, .0744, .0433, GENREC, True),
    _amazon("sports", "SASRec", .0233, .0154, .0350, .0192, TIGER, False),
    _amazon("sports", "TIGER", .0264, .0181, .0400, .0225, TIGER, True),
    _amazon("sports", "RPG", .0314, .0216, .0463, .0263, RPG, True),
    _amazon("sports", "DiffGRM", None, None, None, .0305, DIFFGRM, True, "id"),
    _amazon("sports", "SASRec (CE)", .0321, .0191, .0495, .0248, GENREC, False),
    _amazon("sports", "HSTU (CE)", .0283, .0182, .0439, .0232, GENREC, False),
    _amazon("sports", "TIGER", .0236, .0150, .0377, .0195, GENREC, True),
    _amazon("toys", "SASRec", .0463, .0306, .0675, .0374, TIGER, False),
    _amazon("toys", "TIGER", .0521, .0371, .0712, .0432, TIGER, True),
    _amazon("toys", "RPG", .0592, .0401, .0869, .0490, RPG, True),
    _amazon("toys", "DiffGRM", None, None, None, .0524, DIFFGRM, True, "id"),
    _amazon("toys", "SASRec (CE)", .0613, .0348, .0922, .0448, GENREC, False),
    _amazon("toys", "HSTU (CE)", .0611, .0363, .0914, .0461, GENREC, False),
    _amazon("toys", "TIGER", .0340, .0214, .0521, .0272, GENREC, True),
    _amazon("cds", "TIGER", None, None, None, .0411, RPG, True),
    _amazon("cds", "RPG", None, None, None, .0415, RPG, True),
    _ml1m("SASRec", .2853, .1603, .5474, .2185),
    _ml1m("HSTU", .3097, .1720, .5754, .2307),
    _ml1m("HSTU-large", .3294, .1893, .5935, .2481),
)

NOTES = (
    "Published numbers, not measured here: they are not ranked, highlighted or tested for significance.",
    "Semantic-ID rows (marked *) use large text-embedding models (bge-large, gte-large, sentence-t5, "
    "OpenAI text-embedding-3), while recbench's rows name their own embedding model (all-MiniLM-L6-v2 "
    "offline), so absolute numbers are expected to differ; relative order under the same embeddings "
    "is the fair comparison.",
    "protocol: what the source's own evaluator counts as a hit. items: the target item (item-ID models; TIGER, "
    "whose extra digit makes every semantic ID unique; RPG, whose evaluator compares item ids); semantic IDs, "
    "collisions kept: DiffGRM's 4-digit IDs with collisions left in, so a look-alike of the target counts. Compare "
    "an item-level number with recbench's leaderboard metric and an ID-level one with its ID-level metric.",
    "Rows from phonism/genrec are a third party's re-implementations under the same protocol (leave-one-out, "
    "full ranking, history 50), not the authors' numbers: what a careful re-implementation reaches.",
)


def for_dataset(dataset: str) -> list[Reference]:
    return [r for r in REFERENCES if r.dataset == dataset]


def metric_names(refs: list[Reference]) -> list[str]:
    """The metrics any of `refs` gives, in the leaderboard's column order: recall, NDCG, MRR, by cut-off."""
    names = {m for r in refs for m in r.metrics}

    def order(name: str) -> tuple:
        kind, _, k = name.partition("@")
        return ({"recall": 0, "ndcg": 1}.get(kind, 2), int(k) if k else 0)

    return sorted(names, key=order)
