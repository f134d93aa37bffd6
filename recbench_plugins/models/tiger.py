"""TIGER's encoder over the history's semantic-ID tokens (its decoder and beam search are AR_GRM's,
recbench_plugins.models.ar_grm); the method, its settings and where it departs from the paper:
recbench_plugins.tiger."""

from __future__ import annotations

import torch
from torch import nn

from recbench_plugins.models.layers import Block
from recbench_plugins.models.sid_parts import run_bidirectional
from recbench_plugins.tiger import TIGERConfig


class TokenEncoder(nn.Module):
    """TIGER's encoder: a bidirectional transformer over the history's semantic-ID tokens.

    history_codes [B, L, D] is read as the L * D tokens, oldest item first (left-padded); each token is
    its code embedding (the table shared with the decoder) plus a learned embedding of its item's position
    from the newest and one of its digit. A user token (the user's index hashed into `user_buckets`)
    comes first when user_buckets > 0. Returns (memory [B, T, d], key mask [B, 1, 1, T]).
    """

    def __init__(self, config: TIGERConfig, code_emb: nn.Embedding, codebook_size: int, max_len: int):
        super().__init__()
        n_digit, d, user_buckets = config.n_digit, config.n_embd, config.user_buckets
        self.code_emb, self.n_digit, self.user_buckets = code_emb, n_digit, user_buckets
        self.pos = nn.Embedding(max_len, d)
        self.digit = nn.Parameter(torch.randn(n_digit, d) * 0.02)
        self.user = nn.Embedding(user_buckets, d) if user_buckets else None
        for table in (self.pos, self.user):  # on the scale of the code embeddings (std 0.02), or position and user drown the tokens
            if table is not None:
                nn.init.normal_(table.weight, std=0.02)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.encoder_n_layer))
        self.ln_f = nn.LayerNorm(d)
        self.register_buffer("offsets", torch.arange(n_digit) * codebook_size, persistent=False)

    def forward(self, history_codes: torch.Tensor, present: torch.Tensor, users=None) -> tuple[torch.Tensor, torch.Tensor]:
        B, L, D = history_codes.shape
        max_len = self.pos.num_embeddings  # positions from the right: a batch trimmed to its longest history gets the same ones
        x = self.code_emb(history_codes + self.offsets) + self.pos(torch.arange(max_len - L, max_len, device=present.device))[:, None]
        x = (x + self.digit).reshape(B, L * D, -1)
        keys = present.repeat_interleave(D, dim=1)
        if self.user is not None:
            if users is None:
                raise ValueError("TIGER's encoder reads the user token: pass the batch's users (or set user_buckets=0).")
            x = torch.cat([self.user(users % self.user_buckets)[:, None], x], dim=1)
            keys = torch.cat([torch.ones_like(keys[:, :1]), keys], dim=1)
        else:
            keys = keys.clone()
            keys[:, -D:] = True  # left-padded: the newest item's tokens; never an empty key set
        return run_bidirectional(self.blocks, self.ln_f, self.drop(x) * keys[..., None], keys)
