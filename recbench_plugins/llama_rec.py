"""LLaMA-style sequential recommender: the Toy-RecLM baseline.

Toy-RecLM (github.com/glb400/Toy-RecLM, `model.py` class LLaMA2_SASRec and `main.py`) stacks
LLaMA-2 decoder blocks (Touvron et al., "Llama 2", 2023) over item ids and predicts with SASRec's
layer (Kang & McAuley, ICDM 2018): the dot product with the tied item embedding table. Each block
is pre-norm: RMSNorm, causal attention with rotary position embeddings (Su et al., RoFormer) on
queries and keys, RMSNorm, SwiGLU feed-forward (hidden 2/3 * 4d rounded up to `multiple_of`); all
linear layers are bias-free; a final RMSNorm. No learned positions: RoPE carries order. Losses as
in the sasrec plugin: `bce` (Toy-RecLM's: one sampled negative per position) or `ce` (full softmax
over all items).

Toy-RecLM's flaws, fixed here:
- padding positions are masked out of attention as keys (Toy-RecLM attends to them);
- evaluation is the core's full ranking over all items (Toy-RecLM ranks the target among 100
  sampled negatives).
Other differences: the learning rate decays to 0 at the last epoch (Toy-RecLM: to 1e-5 at 80,000
steps); dropout is 0.1 (Toy-RecLM: 0.0); and Toy-RecLM's 1000 warmup steps are its MovieLens-1M
preset, not the default, since on small data 1000 steps (of batch 32) are dozens of epochs.
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
from recbench.errors import UsageError
from recbench_plugins.layers import attention_mask, check_heads, next_item_loss


@dataclass
class LlamaRecConfig(TrainConfig):
    n_embd: int = ranged(512, ge=1)  # Toy-RecLM main.py: dim 512, 8 layers, 8 heads
    n_layer: int = ranged(8, ge=1)
    n_head: int = ranged(8, ge=1)
    multiple_of: int = ranged(32, ge=1)  # SwiGLU hidden size is rounded up to a multiple of this
    dropout: float = ranged(0.1, ge=0, lt=1)  # our choice: Toy-RecLM uses 0.0 ("for finetuning try 0.1+")
    loss: Literal["bce", "ce"] = "bce"  # Toy-RecLM: BCE with one sampled negative per position
    lr: float = 3e-4
    weight_decay: float = 0.1
    beta2: float = 0.95
    grad_clip: float = 1.0
    warmup_steps: int = 0  # Toy-RecLM warms up for 1000 steps (its ml-1m preset); on small data that is many epochs
    scheduler: Literal["constant", "cosine"] = "cosine"
    batch_size: int = 32
    epochs: int = 50
    eval_start_epoch: int = 20  # as sasrec: BCE with one negative sits at popularity level for its first epochs

    def validate(self) -> None:
        super().validate()
        check_heads(self.n_embd, self.n_head)
        if (self.n_embd // self.n_head) % 2:
            raise UsageError(f"rotary embeddings rotate pairs: n_embd / n_head ({self.n_embd // self.n_head}) must be even.")


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


class LlamaRecGenerator(Generator):
    name = "llama_rec"
    description = "LLaMA-2 blocks over item ids (Toy-RecLM): RMSNorm, RoPE, SwiGLU, tied item embeddings"
    Config = LlamaRecConfig
    presets = {
        "ml-1m": {"max_seq_len": 50, "warmup_steps": 1000},  # Toy-RecLM main.py, on MovieLens-1M
        "ml-100k": {"max_seq_len": 50},  # its MovieLens history length; 1000 warmup steps would be 34 of 50 epochs here
    }
    # `--preset cpu`: the same blocks at SASRec's size, so that Beauty trains in about 15 s per epoch
    # on one CPU core (Toy-RecLM's 31.5 M parameters: 3.3 min on two, with bf16): width 64, 2 layers, 2 heads,
    # SASRec's batch and learning rate, 100 epochs of cosine decay, bf16 autocast, and the dataset's
    # history length as the other generators' rows have it (0: 200 on MovieLens, not Toy-RecLM's 50).
    named_presets = {
        "cpu": {"n_embd": 64, "n_layer": 2, "n_head": 2, "batch_size": 128, "lr": 1e-3, "epochs": 100, "cpu_amp": True,
                "max_seq_len": 0},
    }
    search_space = {
        "lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
        "dropout": {"type": "float", "low": 0.0, "high": 0.5},
        "n_embd": {"type": "categorical", "choices": [64, 128, 256, 512]},
        "n_layer": {"type": "int", "low": 1, "high": 8},
        "weight_decay": {"type": "float", "low": 0.0, "high": 0.1},
        "loss": {"type": "categorical", "choices": ["bce", "ce"]},
    }

    def build(self, config: LlamaRecConfig, split):
        return LlamaRec(config, split.n_items, split.max_seq_len)


@hookimpl
def register_generators(register):
    register(LlamaRecGenerator())
