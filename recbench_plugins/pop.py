"""POP: recommend the items most often interacted with in the training data, to every user.

The floor every learned generator has to clear. Counts come from the training part of the split
only (never the validation or test targets); no gradients, no parameters to learn.
"""

from dataclasses import dataclass

import torch

from recbench import hookimpl
from recbench.api import Generator, GeneratorConfig, Recommender


@dataclass
class PopConfig(GeneratorConfig):
    pass


class Popularity(Recommender):
    trainable = False

    def __init__(self, n_items: int):
        super().__init__()
        self.register_buffer("counts", torch.zeros(n_items + 1))

    def fit(self, split):
        self.counts.copy_(torch.from_numpy(split.train_item_counts()).float())

    def score(self, batch):
        return self.counts.expand(len(batch), -1)


class Pop(Generator):
    name = "pop"
    description = "Most popular training items, the same list for every user (no training)"
    Config = PopConfig

    def build(self, config, split):
        return Popularity(split.n_items)


@hookimpl
def register_generators(register):
    register(Pop())
