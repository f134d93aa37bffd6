"""The core evaluator: the same candidates and the same metric code for every generator.

Item-ID models (those with `score`) rank all N items (full ranking; padding excluded). Other
models return a ranked list of item ids from their own decoding; the target's position in it is
its rank, and a target not in the list is a miss. Ranks are kept per user for significance tests.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import numpy as np
import torch

from . import distributed as dist
from . import metrics
from .api import Recommender
from .data import Split


@dataclass
class Evaluation:
    part: str
    metrics: dict[str, float]
    users: np.ndarray  # [U'] evaluated user indices
    ranks: np.ndarray  # [U'] 0-based rank of the target, -1 where not ranked
    seconds: float
    id_ranks: np.ndarray | None = None  # [U'] ID-level ranks (metrics.id_level_ranks), for semantic-ID models given `id_of`
    top: np.ndarray | None = None  # [U', 10] each user's first 10 item ids (0 = an empty slot), for recbench.beyond; test only
    invalid_rate: float | None = None  # share of unconstrained top-10 IDs that are no item (Recommender.invalid_ids); test only

    @property
    def id_metrics(self) -> dict[str, float] | None:
        return None if self.id_ranks is None else metrics.summarize(self.id_ranks)

    @property
    def users_per_s(self) -> float:
        return len(self.users) / self.seconds if self.seconds > 0 else float("inf")


def users_bar(label: str, show: bool):
    """Users ranked so far: a bar on a terminal, a line every 30 s off one, nothing unless `show`."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from .progress import bar, counted

    return bar(TextColumn(label), MofNCompleteColumn(), BarColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
               line=lambda task: counted(task, " users"), disable=not show)


@contextlib.contextmanager
def users_ranked(label: str, total: int, progress):
    """Yields `advance(n)`, which counts users ranked. `progress` True or False: a display of its own
    (users_bar), or none; a display already shown (the trainer's, while it validates): a task on it,
    removed when the ranking ends, its finish left to the epoch's line."""
    if isinstance(progress, bool) or progress is None:
        with users_bar(label, bool(progress)) as shown:
            task = shown.add_task(label, total=total)
            yield lambda n: shown.advance(task, n)
        return
    task = progress.add_task(label, total=total, unit=" users", line_at_end=False)
    try:
        yield lambda n: progress.advance(task, n)
    finally:
        progress.remove_task(task)


INVALID_SAMPLE = 1024  # test users whose unconstrained decoding is checked for IDs that are no item (Recommender.invalid_ids)


@torch.no_grad()
def evaluate(model: Recommender, split: Split, part: str, *, batch_size: int = 256, device="cpu", list_len: int | None = None,
             id_of: np.ndarray | None = None, progress=False) -> Evaluation:
    """Rank every evaluated user's `part` target ('valid' or 'test').

    With `id_of` ([N+1] each item's semantic-ID number before collisions were resolved) a model that
    returns lists is also scored at the ID level, from the same lists (metrics.id_level_ranks).
    With `progress`, users ranked so far are shown (a bar, or a line every 30 s off a terminal); given
    a display that is already shown (the trainer's), as a task on it.

    Under torchrun each process ranks every world()-th user and the results are gathered, so
    every process returns the same Evaluation.
    """
    was_training = model.training
    model.eval()
    full = model.has_scores()
    k = list_len or max(metrics.KS)
    ranks, users, id_ranks, top = [], [], [], []
    keep_top = part == "test"  # the beyond-accuracy metrics are the test lists'; validation in training skips the work
    # invalid IDs of unconstrained decoding: on the first INVALID_SAMPLE test users (this shard's share of them), timed apart
    invalid_left = -(-max(INVALID_SAMPLE - dist.rank(), 0) // dist.world()) if keep_top and not full else 0
    invalid, invalid_users, invalid_seconds = 0, 0, 0.0
    id_of = None if full or id_of is None else torch.as_tensor(id_of, dtype=torch.int64, device=device)
    start = time.perf_counter()
    shard = (dist.rank(), dist.world())
    with users_ranked(f"ranking {part} users", len(split.eval_users[shard[0]::shard[1]]), progress) as advance:
        for batch in split.eval_batches(part, batch_size, shard=shard):
            batch = batch.to(device)
            if full:
                scores = model.score(batch)
                r = metrics.full_ranks(scores, batch.target)
                if keep_top:
                    top.append((scores[:, 1:].float().topk(min(10, scores.shape[1] - 1), dim=1).indices + 1).cpu())
            else:
                ranked = model.recommend(batch, k, part=part)
                r = metrics.list_ranks(ranked, batch.target)
                if keep_top:
                    top.append(ranked[:, :10].cpu())
                if id_of is not None:
                    id_ranks.append(metrics.id_level_ranks(ranked, batch.target, id_of).cpu())
                if invalid_left > 0:
                    clock = time.perf_counter()
                    found = model.invalid_ids(batch)
                    if found is None:
                        invalid_left = 0
                    else:
                        invalid += int(found[:invalid_left].sum())
                        invalid_users += min(invalid_left, len(found))
                        invalid_left -= len(found)
                    invalid_seconds += time.perf_counter() - clock
            ranks.append(r.cpu())
            users.append(batch.users.cpu())
            advance(len(batch))
    if device != "cpu" and torch.cuda.is_available():
        torch.cuda.synchronize()
    ranks_np = torch.cat(ranks).numpy().astype(np.int32) if ranks else np.zeros(0, np.int32)
    users_np = torch.cat(users).numpy() if users else np.zeros(0, np.int64)
    id_np = torch.cat(id_ranks).numpy().astype(np.int32) if id_ranks else (None if id_of is None else np.zeros(0, np.int32))
    top_np = torch.cat(top).numpy().astype(np.int64) if top else (np.zeros((0, 10), np.int64) if keep_top else None)
    if dist.active():
        shards = dist.gather((users_np, ranks_np, id_np, top_np, invalid, invalid_users))
        invalid, invalid_users = sum(s[4] for s in shards), sum(s[5] for s in shards)
        users_np, ranks_np = np.concatenate([s[0] for s in shards]), np.concatenate([s[1] for s in shards])
        order = np.argsort(users_np, kind="stable")
        users_np, ranks_np = users_np[order], ranks_np[order]
        if top_np is not None:
            top_np = np.concatenate([s[3] for s in shards])[order]
        if id_np is not None:
            id_np = np.concatenate([s[2] for s in shards])[order]
    seconds = time.perf_counter() - start - invalid_seconds
    model.train(was_training)
    invalid_rate = invalid / (10 * invalid_users) if invalid_users else None
    return Evaluation(part, metrics.summarize(ranks_np), users_np, ranks_np, seconds, id_np, top_np, invalid_rate)
