"""SASRec: self-attentive sequential recommendation.

Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018; reference code
github.com/kang205/SASRec. Item embeddings (scaled by sqrt(d)) plus learned positions, causal
self-attention blocks, and a prediction layer that is the dot product with the same item
embedding table. Two losses: the original binary cross-entropy with one sampled negative per
position (`loss=bce`), and full softmax cross-entropy over all items (`loss=ce`, Klenitskiy &
Vasilev, RecSys 2023), which is stronger under full-ranking evaluation.

Differences from the reference code: pre-LayerNorm blocks (the more stable variant), and padding
is masked out of attention as keys (the reference zeroes padded positions after each block).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from recbench import hookimpl
from recbench.api import Generator, Recommender, TrainConfig
from recbench.config import ranged
from recbench_plugins.layers import attention_mask, check_heads, next_item_loss


@dataclass
class SASRecConfig(TrainConfig):
    n_embd: int = ranged(50, ge=1)  # hidden size of the original paper
    n_layer: int = ranged(2, ge=1)
    n_head: int = ranged(1, ge=1)
    dropout: float = ranged(0.5, ge=0, lt=1)  # 0.5 on the sparse Amazon data, 0.2 on MovieLens (paper)
    loss: Literal["bce", "ce"] = "bce"  # original: BCE with one sampled negative per position
    lr: float = 1e-3
    batch_size: int = 128
    epochs: int = 200
    patience: int = 10
    # SASRec's code validates first at epoch 20. With BCE and one sampled negative, validation sits at
    # popularity level for the first ~10 epochs; patience 10 counted from epoch 1 stopped Sports there.
    eval_start_epoch: int = 20

    def validate(self) -> None:
        super().validate()
        check_heads(self.n_embd, self.n_head)


class Block(nn.Module):
    def __init__(self, config: SASRecConfig):
        super().__init__()
        d, dropout = config.n_embd, config.dropout
        self.n_head, self.dropout = config.n_head, dropout
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ffn = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (t.view(B, L, self.n_head, d // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(B, L, d)))
        return x + self.drop(self.ffn(self.ln2(x)))


class SASRec(Recommender):
    def __init__(self, config: SASRecConfig, n_items: int, max_len: int):
        super().__init__()
        d, n_head = config.n_embd, config.n_head
        if d % n_head:
            raise ValueError(f"n_embd ({d}) must be divisible by n_head ({n_head})")
        self.n_items, self.loss_kind = n_items, config.loss
        self.item = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.pos = nn.Embedding(max_len, d)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(d)
        nn.init.normal_(self.item.weight, std=d**-0.5)
        with torch.no_grad():
            self.item.weight[0].zero_()

    def hidden(self, history: torch.Tensor) -> torch.Tensor:
        """[B, L, d] the state after each history position (left-padded histories)."""
        L, max_len = history.shape[1], self.pos.num_embeddings
        pos = torch.arange(max_len - L, max_len, device=history.device)  # from the right: a trimmed batch gets the same positions
        x = self.item(history) * math.sqrt(self.item.embedding_dim) + self.pos(pos)
        x = self.drop(x) * (history != 0)[..., None]
        mask = attention_mask(history)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln_f(x)

    def loss(self, batch) -> torch.Tensor:
        return next_item_loss(self.hidden(batch.history), batch.next_items(), self.item, self.loss_kind)

    def score(self, batch) -> torch.Tensor:
        return self.hidden(batch.history)[:, -1] @ self.item.weight.T


class SASRecGenerator(Generator):
    name = "sasrec"
    description = "SASRec (Kang & McAuley 2018): causal self-attention over item ids, BCE or full-softmax loss"
    Config = SASRecConfig
    presets = {
        "ml-1m": {"dropout": 0.2},  # paper: dropout 0.2 and history 200 on MovieLens-1M
        "ml-100k": {"dropout": 0.2},
    }
    search_space = {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "dropout": {"type": "float", "low": 0.0, "high": 0.6},
        "n_embd": {"type": "categorical", "choices": [32, 50, 64, 128]},
        "n_layer": {"type": "int", "low": 1, "high": 4},
        "loss": {"type": "categorical", "choices": ["bce", "ce"]},
    }

    def build(self, config: SASRecConfig, split):
        return SASRec(config, split.n_items, split.max_seq_len)


@hookimpl
def register_generators(register):
    register(SASRecGenerator())
