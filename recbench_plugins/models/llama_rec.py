"""The LLaMA-2 blocks over item ids (Toy-RecLM's network); the method, its settings and what is fixed
here: recbench_plugins.llama_rec."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from recbench.api import Recommender
from recbench_plugins.llama_rec import LlamaRecConfig
from recbench_plugins.models.layers import attention_mask, next_item_loss


class Attention(nn.Module):
    def __init__(self, config: LlamaRecConfig):
        super().__init__()
        d = config.n_embd
        self.n_head, self.dropout = config.n_head, config.dropout
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor, mask: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x: [T, d], the T items of a [B, L] batch where `keep` is True."""
        (B, L), d = keep.shape, x.shape[1]
        q, k, v = (pad(w(x), keep).view(B, L, self.n_head, d // self.n_head).transpose(1, 2) for w in (self.wq, self.wk, self.wv))
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.drop(self.wo(y.transpose(1, 2).reshape(B, L, d)[keep]))


def pad(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """[T, d] -> [B, L, d]: the items back at their places in the batch, zeros on padding."""
    out = x.new_zeros(*keep.shape, x.shape[-1])
    out[keep] = x
    return out


def rope_tables(head_dim: int, max_len: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, [max_len, head_dim / 2], of the angle position * theta^(-2i / head_dim)."""
    freqs = theta ** (-torch.arange(0, head_dim, 2).float() / head_dim)
    angles = torch.outer(torch.arange(max_len).float(), freqs)
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of [B, H, L, hd]: rotate each pair (x[2i], x[2i+1]) by position's angle i."""
    a, b = x.float().unflatten(-1, (-1, 2)).unbind(-1)
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2).type_as(x)


class FeedForward(nn.Module):
    def __init__(self, config: LlamaRecConfig):
        super().__init__()
        d, multiple_of = config.n_embd, config.multiple_of
        hidden = multiple_of * math.ceil(int(2 * 4 * d / 3) / multiple_of)
        self.w1, self.w3 = nn.Linear(d, hidden, bias=False), nn.Linear(d, hidden, bias=False)
        self.w2 = nn.Linear(hidden, d, bias=False)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.w2(F.silu(self.w1(x)) * self.w3(x)))


class Block(nn.Module):
    def __init__(self, config: LlamaRecConfig):
        super().__init__()
        d = config.n_embd
        self.attn_norm, self.ffn_norm = nn.RMSNorm(d, eps=1e-5), nn.RMSNorm(d, eps=1e-5)
        self.attn = Attention(config)
        self.ffn = FeedForward(config)

    def forward(self, x, keep, mask, cos, sin):
        x = x + self.attn(self.attn_norm(x), keep, mask, cos, sin)
        return x + self.ffn(self.ffn_norm(x))


class LlamaRec(Recommender):
    def __init__(self, config: LlamaRecConfig, n_items: int, max_len: int):
        super().__init__()
        d, n_head, n_layer = config.n_embd, config.n_head, config.n_layer
        if d % n_head or (d // n_head) % 2:
            raise ValueError(f"n_embd ({d}) must be divisible by n_head ({n_head}) into an even head size (for RoPE)")
        self.n_items, self.loss_kind = n_items, config.loss
        self.item = nn.Embedding(n_items + 1, d, padding_idx=0)  # input embedding and output layer (tied)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(n_layer))
        self.norm = nn.RMSNorm(d, eps=1e-5)
        cos, sin = rope_tables(d // n_head, max_len)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for name, p in self.named_parameters():  # Toy-RecLM's init (from llama2.c)
            if p.dim() == 2:
                scaled = name.endswith(("wo.weight", "w3.weight"))
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * n_layer) if scaled else 0.02)
        with torch.no_grad():
            self.item.weight[0].zero_()

    def hidden(self, history: torch.Tensor) -> torch.Tensor:
        """[B, L, d] the state after each history position (left-padded histories; zeros on padding).

        Only attention needs the [B, L] layout, and only up to the longest history in the batch; every
        other layer runs on the items alone, a [T, d] tensor, so padding costs nothing there (on Amazon
        data, 88% of a 50-long history is padding).
        """
        keep = history != 0
        x = self.drop(self.item(history[keep]) * math.sqrt(self.item.embedding_dim))
        start = int(keep.any(0).nonzero()[0, 0])  # drop the columns that are padding in every row
        short, short_keep = history[:, start:], keep[:, start:]
        L = short.shape[1]  # RoPE is relative, so dropping leading columns changes nothing
        mask, cos, sin = attention_mask(short), self.cos[:L], self.sin[:L]
        for block in self.blocks:
            x = block(x, short_keep, mask, cos, sin)
        return pad(self.norm(x), keep)

    def loss(self, batch) -> torch.Tensor:
        return next_item_loss(self.hidden(batch.history), batch.next_items(), self.item, self.loss_kind)

    def score(self, batch) -> torch.Tensor:
        return self.hidden(batch.history)[:, -1] @ self.item.weight.T
