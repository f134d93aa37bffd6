"""Transformer parts several built-in generators' networks share: attention masks over left-padded
histories, the next-item loss over a tied item embedding, and a pre-LN block with optional
cross-attention whose keys and values are computed once per memory."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def attention_mask(history: torch.Tensor) -> torch.Tensor:
    """[B, 1, L, L] True where query i may attend key j: j <= i and j is an item (or j == i)."""
    L = history.shape[1]
    causal = torch.ones(L, L, dtype=torch.bool, device=history.device).tril()
    keys = (history != 0)[:, None, None, :]
    eye = torch.eye(L, dtype=torch.bool, device=history.device)
    return causal & (keys | eye)  # a padded query attends itself only, so no row is empty


def next_item_loss(h: torch.Tensor, target: torch.Tensor, item: nn.Embedding, kind: str) -> torch.Tensor:
    """The tied-embedding prediction loss at every position with a next item (target 0 = none):
    full softmax over all items (`ce`), or BCE with one uniformly sampled negative (`bce`)."""
    keep = target != 0
    h, target = h[keep], target[keep]
    if kind == "ce":
        logits = h @ item.weight.T
        logits[:, 0] = float("-inf")
        return F.cross_entropy(logits.float(), target)
    negative = torch.randint(1, item.num_embeddings, target.shape, device=target.device)
    pos_logit = (h * item(target)).sum(-1).float()
    neg_logit = (h * item(negative)).sum(-1).float()
    return F.binary_cross_entropy_with_logits(pos_logit, torch.ones_like(pos_logit)) + \
        F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit))


class Attention(nn.Module):
    """Multi-head attention of `x` [N, Lq, d] over keys/values; mask [N, 1, Lq, Lk] (or broadcastable), True = attend.

    Heads are d / n_head wide unless `head_dim` is given (TIGER's T5 has 6 heads of 64 over d = 128).
    """

    def __init__(self, d: int, n_head: int, dropout: float, head_dim: int | None = None):
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.head_dim = head_dim or d // n_head
        inner = n_head * self.head_dim
        self.q, self.kv, self.proj = nn.Linear(d, inner), nn.Linear(d, 2 * inner), nn.Linear(inner, d)

    def keys_values(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """memory [N, Lk, d] -> keys, values [N, h, Lk, head_dim] (computed once, reused by every query)."""
        N, Lk, _ = memory.shape
        inner = self.n_head * self.head_dim
        return tuple(t.view(N, Lk, self.n_head, self.head_dim).transpose(1, 2) for t in self.kv(memory).split(inner, dim=2))

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None) -> torch.Tensor:
        N, Lq, _ = x.shape
        q = self.q(x).view(N, Lq, self.n_head, self.head_dim).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, *kv, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(N, Lq, -1))


class Block(nn.Module):
    """Pre-LN transformer block: self-attention, optional cross-attention, feed-forward.

    x is [..., T, d]: self-attention runs within each length-T sequence. Cross-attention runs on
    x viewed as [B, (everything) * T, d] against the B memories' precomputed keys/values
    (`memory_kv`, from `Block.memory_kv`): the beams or masking views of one user share their
    user's memory without copying it (cross-attention does not mix queries, so this is exact).

    Its sizes are the model config's n_embd, n_head, n_inner, and head_dim where the config has one
    (TIGER's T5 heads are wider than n_embd / n_head). `dropout`, the config's unless given, drops
    the residual branches, and the attention weights unless `attn_dropout` is given: GPT-2 (RPG)
    sets the two apart, and has its own LayerNorm `eps` and tanh `gelu`.
    """

    def __init__(self, config, cross: bool = False, *, dropout: float | None = None, attn_dropout: float | None = None,
                 eps: float = 1e-5, gelu: str = "none"):
        super().__init__()
        d, n_head, n_inner, head_dim = config.n_embd, config.n_head, config.n_inner, getattr(config, "head_dim", None)
        dropout = config.dropout if dropout is None else dropout
        attn_dropout = dropout if attn_dropout is None else attn_dropout
        self.ln1, self.ln3 = nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps)
        self.attn = Attention(d, n_head, attn_dropout, head_dim)
        self.ln2 = nn.LayerNorm(d, eps=eps) if cross else None
        self.cross = Attention(d, n_head, attn_dropout, head_dim) if cross else None
        self.mlp = nn.Sequential(nn.Linear(d, n_inner), nn.GELU(approximate=gelu), nn.Linear(n_inner, d), nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def memory_kv(self, memory: torch.Tensor):
        return self.cross.keys_values(memory)

    def forward(self, x, mask=None, memory_kv=None, memory_mask=None):
        shape = x.shape
        h = self.ln1(x).reshape(-1, *shape[-2:])
        x = x + self.drop(self.attn(h, self.attn.keys_values(h), mask)).view(shape)
        if self.cross is not None:
            B = memory_kv[0].shape[0]
            h = self.ln2(x).reshape(B, -1, shape[-1])
            x = x + self.drop(self.cross(h, memory_kv, memory_mask)).view(shape)
        return x + self.mlp(self.ln3(x))
