"""Ranking metrics for one held-out target per user.

Everything derives from the target's 0-based rank among the candidates. With full ranking the
rank is pessimistic about ties: an item with the same score as the target counts as ranked above
it, so a model gains nothing from giving many items one score. A rank of -1 means the target is
not in the model's list (semantic-ID decoding returns a finite list): it counts as a miss for
every metric, MRR included.

    Recall@K = 1 if rank < K            (equal to HR@K with one target)
    NDCG@K   = 1 / log2(rank + 2) if rank < K   (the ideal DCG of one relevant item is 1)
    MRR      = 1 / (rank + 1)

ID-level ranks (`id_level_ranks`) are the protocol of DiffGRM's evaluator, kept beside the
item-level ones: items whose semantic IDs collided before recbench made every ID unique share one
ID again, a listed ID is a hit when it equals the target's ID (so a look-alike of the target
counts), the list of IDs is de-duplicated keeping the first occurrence and the first hit's
position is the rank. The same formulas above turn these ranks into metrics.

Why this matches DiffGRM's count: its beam search never merges one ID reached through different
digit orders; it keeps the distinct legal IDs it found and pads the top 10 with copies of the last
one (`genrec/models/DIFF_GRM/beam.py`, the `simple` step), and its evaluator counts the first hit
only, so a copy never scores — it only shortens the list (on a reference run at recbench's
`--preset cpu,ocn` shapes on Beauty, 71% of the validation top 10 and 31% of the test top 10 were
such copies). Ranking the distinct IDs gives every hit the position it has there. TIGER's and
RPG's evaluators are item-level (TIGER's extra digit makes IDs unique; RPG compares item ids), so
their published numbers compare with recbench's item-level metrics, not these.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from .errors import UsageError

if TYPE_CHECKING:  # the tensor functions import torch when called: leaderboards and compare start without it
    import torch

KS = (5, 10, 20)


def metric_names(ks=KS) -> list[str]:
    return [f"recall@{k}" for k in ks] + [f"ndcg@{k}" for k in ks] + ["mrr"]


def parse_metric(spec: str) -> list[tuple[float, str]]:
    """'0.8*ndcg@10+0.2*recall@10' -> [(0.8, 'ndcg@10'), (0.2, 'recall@10')]."""
    terms = []
    for part in spec.replace(" ", "").split("+"):
        m = re.fullmatch(r"(?:([0-9.]+)\*)?([a-z]+(?:@\d+)?)", part)
        if not m or m.group(2) not in metric_names():
            raise UsageError(f"Config value for 'val_metric' must be a metric or weighted sum of {', '.join(metric_names())}; got {spec!r}.")
        terms.append((float(m.group(1) or 1.0), m.group(2)))
    return terms


def metric_value(metrics: dict[str, float], terms: list[tuple[float, str]]) -> float:
    return sum(w * metrics[name] for w, name in terms)


def per_user(ranks: np.ndarray, ks=KS) -> dict[str, np.ndarray]:
    ranks = np.asarray(ranks)
    hit = ranks >= 0
    r = np.where(hit, ranks, 0).astype(np.float64)
    out = {}
    for k in ks:
        out[f"recall@{k}"] = (hit & (ranks < k)).astype(np.float64)
    for k in ks:
        out[f"ndcg@{k}"] = np.where(hit & (ranks < k), 1.0 / np.log2(r + 2.0), 0.0)
    out["mrr"] = np.where(hit, 1.0 / (r + 1.0), 0.0)
    return out


def summarize(ranks: np.ndarray, ks=KS) -> dict[str, float]:
    if len(ranks) == 0:
        return {name: float("nan") for name in metric_names(ks)}
    return {name: float(values.mean()) for name, values in per_user(ranks, ks).items()}


def full_ranks(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[B] pessimistic 0-based rank of target among items 1..N; scores is [B, N+1], column 0 ignored."""
    import torch

    scores = scores.float()
    t = scores.gather(1, target[:, None])
    items = scores[:, 1:]
    # ties rank above (>=); minus the target itself. One comparison, summed in int32 (a catalogue has fewer
    # than 2^31 items): far less work on a CPU than summing `>` and `==` apart in int64, the same ranks.
    return (items >= t).sum(1, dtype=torch.int32).long() - 1


def list_ranks(ranked: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[B] position of target in each row of `ranked` ([B, k] item ids), -1 where absent."""
    import torch

    match = ranked == target[:, None]
    pos = match.float().argmax(1)
    return torch.where(match.any(1), pos, torch.full_like(pos, -1))


def id_level_ranks(ranked: torch.Tensor, target: torch.Tensor, id_of: torch.Tensor) -> torch.Tensor:
    """[B] 0-based position of the target's ID in each row's list of distinct IDs, -1 where absent.

    ranked: [B, k] item ids (0 = empty); id_of: [N+1] each item's ID number before collisions were
    resolved (items that shared codes share a number; 0 for padding).
    """
    import torch

    ids = id_of[ranked]  # [B, k]
    earlier = (ids[:, :, None] == ids[:, None, :]).tril(diagonal=-1).any(-1)  # the ID already appeared higher up
    kept = (ids > 0) & ~earlier
    position = kept.long().cumsum(1) - 1  # place in the de-duplicated list
    hit = kept & (ids == id_of[target][:, None])
    return torch.where(hit.any(1), (position * hit).sum(1), torch.full_like(target, -1))
