"""A recbench plugin: recommend what most often followed the user's last item.

First-order transition counts over the training part of every user's sequence, blended with item
popularity so that items never seen after the last one are still ranked sensibly.
"""

from dataclasses import dataclass

import numpy as np
import torch

from recbench import hookimpl
from recbench.api import Generator, GeneratorConfig, Recommender


@dataclass
class MarkovConfig(GeneratorConfig):
    pop_weight: float = 0.01  # weight of normalised popularity added to the transition counts


class MarkovChain(Recommender):
    trainable = False

    def __init__(self, n_items: int, pop_weight: float):
        super().__init__()
        self.n_items, self.pop_weight = n_items, pop_weight
        self.register_buffer("transitions", torch.zeros(0, 2, dtype=torch.long))  # (from, to) pairs
        self.register_buffer("popularity", torch.zeros(n_items + 1))
        self.register_load_state_dict_pre_hook(self.take_saved_size)

    def take_saved_size(self, module, state_dict, prefix, *args):
        """A fitted model has as many transitions as the training data gave: size the empty buffer to fit the saved one."""
        saved = state_dict.get(prefix + "transitions")
        if saved is not None:
            self.transitions = torch.empty_like(saved)

    def fit(self, split):
        users, positions = split.train_positions(sliding=True, min_hist_len=1)
        items = torch.from_numpy(split.data.items.astype(np.int64))
        self.transitions = torch.stack([items[positions - 1], items[positions]], dim=1)
        counts = torch.from_numpy(split.train_item_counts()).float()
        self.popularity = counts / counts.max().clamp(min=1)

    def score(self, batch):
        n = self.n_items + 1
        matrix = torch.sparse_coo_tensor(self.transitions.T, torch.ones(len(self.transitions)), (n, n), check_invariants=True).coalesce()
        rows = matrix.index_select(0, batch.history[:, -1]).to_dense()
        return rows + self.pop_weight * self.popularity


class Markov(Generator):
    name = "markov"
    description = "First-order Markov chain over the last item, blended with popularity (example plugin)"
    Config = MarkovConfig
    named_presets = {"short": {"max_seq_len": 10, "pop_weight": 0.1}}  # `--preset short`
    search_space = {"pop_weight": {"type": "float", "low": 1e-4, "high": 10.0, "log": True}}

    def build(self, config, split):
        return MarkovChain(split.n_items, config.pop_weight)


@hookimpl
def register_generators(register):
    register(Markov())
