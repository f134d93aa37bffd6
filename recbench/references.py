"""Published numbers shown beside the leaderboards: data, never measured here, never ranked.

Transcribed from the papers and the phonism/genrec README named in each row's source. All are full ranking over
all items, leave-one-out; the Amazon rows are the 2014 5-core datasets. Metrics use recbench's
names (HR@K with one target equals Recall@K). Only the metrics a paper gives are present.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    dataset: str  # recbench's dataset name
    model: str
    metrics: dict[str, float]
    source: str
    semantic_ids: bool  # a semantic-ID model: other embedding models, and see NOTES


TIGER = "TIGER paper (NeurIPS 2023), Table 1"
RPG = "RPG paper (KDD 2025)"
DIFFGRM = "DiffGRM paper (arXiv 2510.21805)"
HSTU = "HSTU README (full ranking, all 3,706 items, history 200)"
GENREC = "phonism/genrec README (re-implementation, history 50)"


def _amazon(dataset: str, model: str, r5, n5, r10, n10, source: str, semantic_ids: bool) -> Reference:
    given = {"recall@5": r5, "ndcg@5": n5, "recall@10": r10, "ndcg@10": n10}
    return Reference(dataset, model, {k: v for k, v in given.items() if v is not None}, source, semantic_ids)


def _ml1m(model: str, r10: float, n10: float, r50: float, n50: float) -> Reference:
    return Reference("ml-1m", model, {"recall@10": r10, "ndcg@10": n10, "recall@50": r50, "ndcg@50": n50}, HSTU, False)


REFERENCES: tuple[Reference, ...] = (
    _amazon("beauty", "SASRec", .0387, .0249, .0605, .0318, TIGER, False),
    _amazon("beauty", "TIGER", .0454, .0321, .0648, .0384, TIGER, True),
    _amazon("beauty", "RPG", .0550, .0381, .0809, .0464, RPG, True),
    _amazon("beauty", "DiffGRM", None, None, None, .0502, DIFFGRM, True),
    _amazon("beauty", "SASRec (CE)", .0538, .0320, .0851, .0421, GENREC, False),
    _amazon("beauty", "SASRec (BCE)", .0258, .0137, .0503, .0216, GENREC, False),
    _amazon("beauty", "HSTU (CE)", .0568, .0347, .0859, .0441, GENREC, False),
    _amazon("beauty", "HSTU (sampled softmax)", .0414, .0235, .0727, .0335, GENREC, False),
    _amazon("beauty", "TIGER", .0419, .0282, .0644, .0354, GENREC, True),
    _amazon("beauty", "RPG (sentence-t5-xl)", .0525, .0363, .0744, .0433, GENREC, True),
    _amazon("sports", "SASRec", .0233, .0154, .0350, .0192, TIGER, False),
    _amazon("sports", "TIGER", .0264, .0181, .0400, .0225, TIGER, True),
    _amazon("sports", "RPG", .0314, .0216, .0463, .0263, RPG, True),
    _amazon("sports", "DiffGRM", None, None, None, .0305, DIFFGRM, True),
    _amazon("sports", "SASRec (CE)", .0321, .0191, .0495, .0248, GENREC, False),
    _amazon("sports", "HSTU (CE)", .0283, .0182, .0439, .0232, GENREC, False),
    _amazon("sports", "TIGER", .0236, .0150, .0377, .0195, GENREC, True),
    _amazon("toys", "SASRec", .0463, .0306, .0675, .0374, TIGER, False),
    _amazon("toys", "TIGER", .0521, .0371, .0712, .0432, TIGER, True),
    _amazon("toys", "RPG", .0592, .0401, .0869, .0490, RPG, True),
    _amazon("toys", "DiffGRM", None, None, None, .0524, DIFFGRM, True),
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
    "DiffGRM's and RPG's published code evaluates on semantic IDs with unresolved collisions; recbench "
    "evaluates on items.",
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
