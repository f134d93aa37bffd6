"""SASRec's network; the method and its settings: recbench_plugins.sasrec."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from recbench.api import Recommender
from recbench_plugins.models.layers import attention_mask, next_item_loss
from recbench_plugins.sasrec import SASRecConfig


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
