"""GRU4Rec: a recurrent network reads the user's items in order and scores every item.

Hidasi, Karatzoglou, Baltrunas & Tikk, "Session-based Recommendations with Recurrent Neural
Networks", ICLR 2016. Item embedding -> dropout -> one GRU layer; the hidden state after the
newest item scores every item by its dot product with the same embedding table, trained with
full-softmax cross-entropy on the next item. The paper's session-parallel mini-batches and
sampled ranking losses are left out: the core trainer feeds the batches.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from recbench.api import Generator, Recommender, TrainConfig
from recbench.config import ranged


@dataclass
class GRU4RecConfig(TrainConfig):
    n_embd: int = ranged(64, ge=1)  # item embedding and GRU hidden size
    dropout: float = ranged(0.25, ge=0, lt=1)  # on the item embeddings the GRU reads
    epochs: int = 100  # an upper bound: early stopping ends most runs sooner
    patience: int = 5  # validations without improvement before the run stops
    train_sliding: bool = True  # one sample per prefix of a training sequence, so every next item is a target


class GRU4Rec(Recommender):
    def __init__(self, n_items: int, n_embd: int, dropout: float):
        super().__init__()
        self.item = nn.Embedding(n_items + 1, n_embd, padding_idx=0)
        self.drop = nn.Dropout(dropout)
        self.gru = nn.GRU(n_embd, n_embd, batch_first=True)

    def state(self, history: torch.Tensor) -> torch.Tensor:
        """[B, n_embd] the GRU's hidden state after each row's newest item."""
        L = history.shape[1]
        lengths = (history != 0).sum(1)
        # rows are left-padded: shift each by its padding so that its items come first, and pack them,
        # so that the GRU reads no padding and a row's state does not depend on the rest of the batch
        items_first = history.gather(1, (torch.arange(L, device=history.device) + L - lengths[:, None]) % L)
        x = self.drop(self.item(items_first))
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)  # [1, B, n_embd], rows in the batch's order
        return h[0]

    def score(self, batch) -> torch.Tensor:
        return self.state(batch.history) @ self.item.weight.T  # [B, N+1]

    def loss(self, batch) -> torch.Tensor:
        logits = self.score(batch)[:, 1:]  # column 0 is padding, never a target
        return F.cross_entropy(logits.float(), batch.target - 1)


class GRU4RecGenerator(Generator):
    name = "gru4rec"
    description = "GRU4Rec (Hidasi et al. 2016): a GRU over the item sequence, full-softmax loss (example plugin)"
    Config = GRU4RecConfig
    search_space = {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "dropout": {"type": "float", "low": 0.0, "high": 0.5},
        "n_embd": {"type": "categorical", "choices": [32, 64, 128]},
    }

    def build(self, config, split):
        return GRU4Rec(split.n_items, config.n_embd, config.dropout)
