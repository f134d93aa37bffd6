"""Beyond-accuracy metrics of the test top-10 lists: what a model recommends, not only whether it hits.

Two models with the same NDCG@10 can recommend very different things: one the same best-sellers
to everyone, another a long tail. Computed by the core from the same ranked lists the accuracy
metrics come from (evaluate.top_lists), once per run, over the evaluated test users:

    coverage@10   share of the catalogue that appears in at least one user's top 10
    novelty@10    mean self-information log2(U / n_i) of the recommended items, n_i the item's
                  training interactions (at least 1) and U the number of users: higher is less popular
    pop_rank@10   mean popularity rank of the recommended items (1 = the most interacted-with item
                  in training; ties share their mean rank): lower means a stronger popularity bias
    ild@10        intra-list diversity: mean cosine distance 1 - cos(e_i, e_j) over the pairs of a
                  list, averaged over users, on the item-text embeddings of the default sentence model
                  (all-MiniLM-L6-v2), so that every row is measured in one space whatever embeddings
                  its own semantic IDs came from; only where those embeddings are cached (a run of a
                  semantic-ID model with the default embedding config, or `recbench tokenize`, writes
                  them), because embedding a catalogue takes minutes on a CPU
    ms_per_user   test decoding (or scoring) time per user, in milliseconds, at the evaluated beam
    invalid_id@10 semantic-ID generators only: the share of the first 10 IDs of *unconstrained*
                  decoding at the test beam that are no item (api.Recommender.invalid_ids), on the
                  first 1,024 test users (evaluate.INVALID_SAMPLE), timed apart from ms_per_user:
                  how much the model leans on the item-table constraint it is evaluated with

A list slot that holds no item (0) is left out of every metric.
"""

from __future__ import annotations

import numpy as np

K = 10


def popularity_ranks(counts: np.ndarray) -> np.ndarray:
    """[N+1] popularity rank of each item id (1 = most interactions; ties share their mean rank); index 0 unused."""
    from scipy.stats import rankdata

    ranks = np.zeros(len(counts), dtype=np.float64)
    ranks[1:] = rankdata(-counts[1:].astype(np.float64), method="average")
    return ranks


def intra_list_distance(lists: np.ndarray, vectors: np.ndarray) -> float:
    """Mean over lists of the mean pairwise cosine distance of their items; `vectors` [N+1, d] by item id."""
    norm = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    values = []
    for row in lists:
        items = row[row > 0]
        if len(items) < 2:
            continue
        e = norm[items]
        sims = e @ e.T
        n = len(items)
        values.append(float((n * n - sims.sum()) / (n * (n - 1))))  # mean of 1 - cos over the ordered pairs i != j
    return float(np.mean(values)) if values else float("nan")


def summarize(lists: np.ndarray, train_counts: np.ndarray, n_users: int, *, seconds: float,
              vectors: np.ndarray | None = None, invalid_rate: float | None = None) -> dict[str, float]:
    """The metrics of the module docstring for `lists` [U, >=K] item ids (0 = empty slot);
    `train_counts` [N+1] training interactions per item id; `vectors` [N+1, d] or None (no ild@10)."""
    top = np.asarray(lists)[:, :K]
    listed = top[top > 0]
    n_items = len(train_counts) - 1
    out = {
        "coverage@10": len(np.unique(listed)) / n_items if n_items else 0.0,
        "novelty@10": float(np.mean(np.log2(n_users / np.maximum(train_counts[listed], 1)))) if len(listed) else 0.0,
        "pop_rank@10": float(np.mean(popularity_ranks(train_counts)[listed])) if len(listed) else 0.0,
        "ms_per_user": 1000.0 * seconds / len(top) if len(top) else 0.0,
    }
    if vectors is not None:
        out["ild@10"] = intra_list_distance(top, vectors)
    if invalid_rate is not None:
        out["invalid_id@10"] = invalid_rate
    return out


def cached_item_vectors(prepared) -> np.ndarray | None:
    """[N+1, d] the default sentence model's item-text embeddings by item id (row 0 zeros), where
    they are cached; None otherwise (module docstring: embedding here would take minutes)."""
    from .embeddings import EmbeddingConfig, cache_path, read_cache

    path = cache_path(prepared, EmbeddingConfig())
    found = read_cache(path, lambda s: None) if path.is_file() else None
    vectors = None if found is None else found[0].get("vectors")
    if vectors is None or vectors.ndim != 2 or len(vectors) != prepared.n_items + 1:
        return None
    return vectors
