"""The model a Generator builds: the torch base class of every Recommender (recbench.api.Recommender).

Apart from recbench.api so that the plugin API, and with it every registration and config, imports
no torch; `from recbench.api import Recommender` imports this module on first use.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from .data.split import Batch, Split


class Recommender(nn.Module):
    """A model built by a Generator. The core trains it (if `trainable`) and evaluates it.

    Item-ID models implement `score` (one score per item, full ranking); the default `recommend`
    takes the top k of it. Semantic-ID models implement `recommend` with their own decoding.
    Models fitted by counting rather than gradients set `trainable = False` and implement `fit`.
    """

    trainable: ClassVar[bool] = True
    # What the run computes differently from what its config says, in words, set by the model when
    # built (e.g. "time bias off: the data has no timestamps"); the record and the page carry them.
    notes: tuple[str, ...] = ()

    def fit(self, split: Split) -> None:
        """Fit by a closed form (counting, ...) on the training part. Gradient models: nothing."""

    def loss(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} is trainable but has no loss()")

    def forward(self, batch: Batch) -> torch.Tensor:
        """Calling the model computes the training loss (what DistributedDataParallel wraps)."""
        return self.loss(batch)

    def score(self, batch: Batch) -> torch.Tensor:
        """[B, N+1] a score per item id; column 0 (padding) is ignored."""
        raise NotImplementedError

    def has_scores(self) -> bool:
        return type(self).score is not Recommender.score

    @torch.no_grad()
    def invalid_ids(self, batch: Batch, k: int = 10) -> torch.Tensor | None:
        """[B] per user, how many of the first `k` IDs of *unconstrained* decoding at the test beam are
        no item; None (the default) for a model that only ever proposes items. The evaluator reports
        the rate over a sample of test users (recbench.beyond's invalid_id@10): how much a semantic-ID
        model relies on the item-table constraint it is evaluated with."""
        return None

    @torch.no_grad()
    def recommend(self, batch: Batch, k: int, *, part: str = "valid") -> torch.Tensor:
        """[B, k] the k best item ids per user, best first; never 0 (padding).

        The evaluator asks for k = 20 (the deepest metric, @20) and says which `part` it ranks:
        "valid" (validation during training and the run's final validation) or "test" (once, at
        the end of a run). A model may decode differently for each (DIFF_GRM: a larger test beam);
        it must not look at the part's target."""
        scores = self.score(batch).float().clone()  # score() may return a broadcast view
        scores[:, 0] = float("-inf")
        return scores.topk(min(k, scores.shape[1] - 1), dim=1).indices
