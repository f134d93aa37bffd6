"""POP's model: the training items' counts, the same scores for every user (recbench_plugins.pop)."""

import torch

from recbench.api import Recommender


class Popularity(Recommender):
    trainable = False

    def __init__(self, n_items: int):
        super().__init__()
        self.register_buffer("counts", torch.zeros(n_items + 1))

    def fit(self, split):
        self.counts.copy_(torch.from_numpy(split.train_item_counts()).float())

    def score(self, batch):
        return self.counts.expand(len(batch), -1)
