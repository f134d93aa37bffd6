"""HSTU's network; the method, its settings and where it departs from the reference code:
recbench_plugins.hstu."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from recbench.api import Recommender
from recbench_plugins.hstu import HSTUConfig
from recbench_plugins.models.layers import attention_mask


def gap_buckets(times: torch.Tensor, n_buckets: int) -> torch.Tensor:
    """[B, L, L] bucket of the gap between the timestamps of query i and key j."""
    dt = (times[:, :, None] - times[:, None, :]).abs().clamp(min=1)
    return (dt.float().log() / 0.301).long().clamp(0, n_buckets)


class HSTULayer(nn.Module):
    def __init__(self, config: HSTUConfig, max_len: int):
        super().__init__()
        d, n_buckets = config.n_embd, config.time_buckets
        self.n_head = config.n_head
        self.uvqk = nn.Linear(d, 4 * d, bias=False)
        self.o = nn.Linear(d, d)
        self.pos_bias = nn.Parameter(torch.empty(max_len))  # by distance i - j of query i, key j
        self.time_bias = nn.Parameter(torch.empty(n_buckets + 1))
        self.drop = nn.Dropout(config.dropout)
        nn.init.normal_(self.uvqk.weight, std=0.02)
        nn.init.xavier_uniform_(self.o.weight)
        nn.init.normal_(self.pos_bias, std=0.02)
        nn.init.normal_(self.time_bias, std=0.02)

    def rab(self, L: int, buckets: torch.Tensor | None) -> torch.Tensor:
        """[B or 1, 1, L, L] relative attention bias of query i on key j."""
        pos = torch.arange(L, device=self.pos_bias.device)
        bias = self.pos_bias[(pos[:, None] - pos[None, :]).clamp(0, len(self.pos_bias) - 1)][None, None]
        return bias if buckets is None else bias + self.time_bias[buckets][:, None]

    def forward(self, x: torch.Tensor, mask: torch.Tensor, buckets: torch.Tensor | None) -> torch.Tensor:
        B, L, d = x.shape
        u, v, q, k = F.silu(self.uvqk(F.layer_norm(x, (d,), eps=1e-6))).split(d, dim=2)
        q, k, v = (t.view(B, L, self.n_head, d // self.n_head).transpose(1, 2) for t in (q, k, v))
        # pointwise attention normalised by n = max_len, the padded history length (the reference divides
        # by its padded length too), not by each user's number of items, nor by the length of a batch
        # trimmed to its longest history (so trimming changes nothing)
        scores = F.silu(q @ k.transpose(-1, -2) + self.rab(L, buckets)) / len(self.pos_bias)
        attn = (scores * mask) @ v  # masked positions contribute nothing
        attn = F.layer_norm(attn.transpose(1, 2).reshape(B, L, d), (d,), eps=1e-6)
        return x + self.o(self.drop(u * attn))


class HSTU(Recommender):
    def __init__(self, config: HSTUConfig, n_items: int, max_len: int):
        super().__init__()
        d, n_head = config.n_embd, config.n_head
        if d % n_head:
            raise ValueError(f"n_embd ({d}) must be divisible by n_head ({n_head})")
        self.n_items, self.n_buckets, self.loss_kind = n_items, config.time_buckets, config.loss
        self.num_negatives, self.temperature = config.num_negatives, config.temperature
        self.time_bias, self.fp32_logits = config.time_bias, config.fp32_logits
        self.item = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.pos = nn.Embedding(max_len, d)
        self.drop = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(HSTULayer(config, max_len) for _ in range(config.n_layer))
        nn.init.trunc_normal_(self.item.weight, std=0.02, a=-0.04, b=0.04)  # the reference's inits
        nn.init.trunc_normal_(self.pos.weight, std=d**-0.5, a=-2 * d**-0.5, b=2 * d**-0.5)
        with torch.no_grad():
            self.item.weight[0].zero_()

    def hidden(self, batch) -> torch.Tensor:
        """[B, L, d] the L2-normalised state after each history position (left-padded histories)."""
        history = batch.history
        L, max_len = history.shape[1], self.pos.num_embeddings
        pos = torch.arange(max_len - L, max_len, device=history.device)  # from the right: a trimmed batch gets the same positions
        x = self.item(history) * math.sqrt(self.item.embedding_dim) + self.pos(pos)
        x = self.drop(x) * (history != 0)[..., None]
        mask = attention_mask(history)
        buckets = gap_buckets(batch.history_time, self.n_buckets) if self.time_bias and batch.history_time is not None else None
        for layer in self.layers:
            x = layer(x, mask, buckets)
        return F.normalize(x, dim=-1, eps=1e-6)

    def logits_autocast(self, h: torch.Tensor) -> torch.autocast:
        """Where the logits are computed: in fp32 (autocast off, inputs cast up), or in autocast's dtype."""
        return torch.autocast(h.device.type, enabled=not self.fp32_logits and torch.is_autocast_enabled(h.device.type))

    def loss(self, batch) -> torch.Tensor:
        h = self.hidden(batch)
        target = batch.next_items()  # [B, L], 0 where there is nothing to predict
        keep = target != 0
        h, target = h[keep], target[keep]
        with self.logits_autocast(h):
            if self.fp32_logits:
                h = h.float()
            if self.loss_kind == "ce":  # full softmax over every item (padding excluded)
                logits = (h @ F.normalize(self.item.weight, dim=-1, eps=1e-6).T).float() / self.temperature
                logits[:, 0] = float("-inf")
                return F.cross_entropy(logits, target)
            negative = torch.randint(1, self.n_items + 1, (self.num_negatives,), device=target.device)
            pos_logit = (h * F.normalize(self.item(target), dim=-1, eps=1e-6)).sum(-1, keepdim=True)
            neg_logit = h @ F.normalize(self.item(negative), dim=-1, eps=1e-6).T
            neg_logit = neg_logit.masked_fill(negative[None, :] == target[:, None], float("-inf"))  # hit the positive
            logits = torch.cat([pos_logit, neg_logit], dim=1).float() / self.temperature
            return F.cross_entropy(logits, torch.zeros_like(target))  # the positive is class 0

    def score(self, batch) -> torch.Tensor:
        h = self.hidden(batch)[:, -1]
        with self.logits_autocast(h):
            return (h.float() if self.fp32_logits else h) @ F.normalize(self.item.weight, dim=-1, eps=1e-6).T
