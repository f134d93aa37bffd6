"""The torch parts of the semantic-ID generators (DIFF_GRM, AR_GRM, TIGER, RPG): the encoder over a history
of semantic IDs, the index of every item's partial IDs that constrains decoding to existing items,
the padding of a decoded list, and the check of the IDs a generator is given. Their shared settings
are recbench_plugins.sid_parts."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recbench.errors import UsageError
from recbench_plugins.models.layers import Block
from recbench_plugins.sid_parts import DiffGMConfig


class HistoryEncoder(nn.Module):
    """Bidirectional encoder over a history of semantic IDs (shared with AR_GRM).

    `code_emb` is the digit-code table: row d * codebook_size + c embeds code c of digit d.
    """

    def __init__(self, config: DiffGMConfig, code_emb: nn.Embedding, codebook_size: int, max_len: int):
        super().__init__()
        n_digit, d = config.n_digit, config.n_embd
        self.code_emb, self.n_digit, self.codebook_size = code_emb, n_digit, codebook_size
        self.item_mlp = nn.Sequential(nn.Linear(n_digit * d, d), nn.GELU(), nn.Linear(d, d))
        self.pos = nn.Embedding(max_len, d)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.encoder_n_layer))
        self.ln_f = nn.LayerNorm(d)
        self.register_buffer("offsets", torch.arange(n_digit) * codebook_size, persistent=False)

    def forward(self, history_codes: torch.Tensor, present: torch.Tensor, users=None) -> tuple[torch.Tensor, torch.Tensor]:
        """history_codes [B, L, D], present [B, L] (False on padding) -> (memory [B, L, d], key mask [B, 1, 1, L]).

        `users` is not read: the history alone describes the user (TIGER's encoder adds a user token)."""
        B, L, D = history_codes.shape
        e = self.code_emb(history_codes + self.offsets).reshape(B, L, -1)
        max_len = self.pos.num_embeddings  # positions from the right: a batch trimmed to its longest history gets the same ones
        x = self.item_mlp(e) + self.pos(torch.arange(max_len - L, max_len, device=e.device))
        x = self.drop(x) * present[..., None]
        keys = present.clone()
        keys[:, -1] = True  # left-padded: the last position is the newest item; never an empty key set
        return run_bidirectional(self.blocks, self.ln_f, x, keys)


def run_bidirectional(blocks: nn.ModuleList, ln_f: nn.Module, x: torch.Tensor, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder blocks over x [B, T, d], every query attending the positions `keys` [B, T] marks (a
    padded query attends itself too) -> (ln_f of the output, key mask [B, 1, 1, T] for cross-attention)."""
    mask = keys[:, None, None, :]
    self_mask = mask | torch.eye(keys.shape[1], dtype=torch.bool, device=x.device)
    for block in blocks:
        x = block(x, self_mask)
    return ln_f(x), mask


class ItemIndex:
    """The items' IDs as integer keys: membership of partial IDs, their valid one-digit extensions,
    and the item of a complete ID.

    A partial ID (code or -1 per digit) has key sum_d (code_d + 1) * (C + 1)^d. `valid` holds the
    sorted keys of every item's partial IDs (2^D per item). `extension_bits` holds, for each valid
    partial ID and each slot d, a bit per code c: whether filling slot d with c still leads to an
    item (packed 8 codes per byte; about n_items * 2^D * D * C / 8 bytes at most, 25 MB on Beauty).
    """

    def __init__(self, codes: torch.Tensor, codebook_size: int):
        n, D = codes.shape  # item rows only (no padding row)
        C = self.codebook_size = codebook_size
        self.base = torch.tensor([(C + 1) ** d for d in range(D)], dtype=torch.int64)
        if (C + 1) ** D >= 2**62:
            raise UsageError(f"{D} digits of {C} codes are too many for the partial-ID index of the semantic-ID decoders.")
        subsets = torch.tensor([[(s >> d) & 1 for d in range(D)] for s in range(2**D)], dtype=torch.int64)  # [S, D]
        partial = (codes[None, :, :] + 1) * subsets[:, None, :]  # [S, n, D], 0 where not revealed
        keys = (partial * self.base).sum(-1)  # [S, n]
        self.valid = torch.unique(keys.flatten())  # sorted
        rows = torch.searchsorted(self.valid, keys)[..., None]  # [S, n, 1]
        slots = torch.arange(D)
        self.C8 = -(-C // 8) * 8
        bit = (rows * D + slots) * self.C8 + codes[None]  # [S, n, D]: (row, slot, code) of each one-digit extension
        bit = torch.unique(bit[subsets[:, None, :].expand_as(bit) == 0])
        packed = torch.zeros(len(self.valid) * D * self.C8 // 8, dtype=torch.int64).index_add_(0, bit // 8, 1 << (bit % 8))
        self.extension_bits = packed.to(torch.uint8).view(len(self.valid), D, self.C8 // 8)
        full = ((codes + 1) * self.base).sum(-1)
        order = full.argsort()
        self.full, self.items = full[order], order + 1  # item ids are row + 1

    def to(self, device) -> "ItemIndex":
        for name in ("base", "valid", "extension_bits", "full", "items"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def contains(self, keys: torch.Tensor) -> torch.Tensor:
        pos = torch.searchsorted(self.valid, keys).clamp(max=len(self.valid) - 1)
        return self.valid[pos] == keys

    def extensions(self, keys: torch.Tensor) -> torch.Tensor:
        """keys [...] of valid partial IDs -> [..., D, C] bool: which (slot, code) fillings lead to an item."""
        rows = torch.searchsorted(self.valid, keys)
        packed = self.extension_bits[rows]  # [..., D, C8 / 8]
        shifts = torch.arange(8, dtype=torch.uint8, device=keys.device)
        bits = (packed[..., None] >> shifts) & 1
        return bits.flatten(-2)[..., : self.codebook_size].bool()

    def item_of(self, keys: torch.Tensor) -> torch.Tensor:
        """Item ids of complete keys (0 where none)."""
        pos = torch.searchsorted(self.full, keys).clamp(max=len(self.full) - 1)
        return torch.where(self.full[pos] == keys, self.items[pos], torch.zeros_like(pos))


def pad_ranking(items: torch.Tensor, k: int, n_items: int) -> torch.Tensor:
    """[B, k] from ranked item ids [B, K'] (0 = empty): the first k, padded with unlisted items in item order."""
    B = items.shape[0]
    k = min(k, n_items)
    out = torch.zeros(B, k, dtype=torch.int64, device=items.device)
    out[:, : min(k, items.shape[1])] = items[:, :k]
    for b in (out == 0).any(1).nonzero().flatten().tolist():  # rows the beam did not fill
        row = out[b][out[b] > 0]
        taken = torch.zeros(n_items + 1, dtype=torch.bool, device=items.device)
        taken[0] = True
        taken[row] = True
        out[b] = torch.cat([row, (~taken).nonzero().flatten()[: k - len(row)]])
    return out


def check_ids(config, semantic_ids, name: str):
    if semantic_ids is None:
        raise UsageError(f"{name} consumes semantic IDs: build it with build(config, split, semantic_ids=...).")
    if semantic_ids.n_digit != config.n_digit:
        raise UsageError(f"{name} has n_digit={config.n_digit} but the semantic IDs have {semantic_ids.n_digit} digits.")
    return torch.as_tensor(np.asarray(semantic_ids.codes), dtype=torch.int64)
