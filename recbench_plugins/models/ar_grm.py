"""AR_GRM's network: encoder over the history, causal decoder over the digits, prefix-constrained beam
search (TIGER's too, with its own encoder); the method and its settings: recbench_plugins.ar_grm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recbench.api import Recommender
from recbench_plugins.ar_grm import ARGRMConfig
from recbench_plugins.models.layers import Block
from recbench_plugins.models.sid_parts import HistoryEncoder, ItemIndex, pad_ranking


class ARGRM(Recommender):
    """Encoder over the history, causal decoder over the target's digits, prefix-constrained beam search.

    `encoder` builds the history encoder from the config and the shared code table (DIFF_GRM's item-level
    HistoryEncoder here; TIGER's token-level one in recbench_plugins.models.tiger); it is called as
    encoder(history_codes, present, users) -> (memory, key mask).
    """

    def __init__(self, config: ARGRMConfig, codes: torch.Tensor, codebook_size: int, max_len: int, encoder=HistoryEncoder):
        super().__init__()
        D, C, d = codes.shape[1], codebook_size, config.n_embd
        self.n_digit, self.codebook_size, self.n_items = D, C, codes.shape[0] - 1
        self.label_smoothing = config.label_smoothing
        self.beam_size_val, self.beam_size_test = config.beam_size_val, config.beam_size_test
        self.register_buffer("codes", codes.clone(), persistent=False)
        self.code_emb = nn.Embedding(D * C, d)
        nn.init.normal_(self.code_emb.weight, std=0.02)
        self.encoder = encoder(config, self.code_emb, C, max_len)
        self.bos = nn.Parameter(torch.randn(d) * 0.02)
        self.slot_emb = nn.Parameter(torch.randn(D, d) * 0.02)
        self.drop = nn.Dropout(config.dropout)
        self.decoder = nn.ModuleList(Block(config, cross=True) for _ in range(config.decoder_n_layer))
        self.ln_f = nn.LayerNorm(d)
        self.head = None if config.share_decoder_output_embedding else nn.ModuleList(nn.Linear(d, C, bias=False) for _ in range(D))
        self.register_buffer("offsets", torch.arange(D) * C, persistent=False)
        self.index = ItemIndex(codes[1:], C)

    def beam(self, part: str) -> int:
        """The beam for ranking `part`: the test beam for the test, the validation beam otherwise."""
        return self.beam_size_test if part == "test" else self.beam_size_val

    def encode(self, history, users=None):
        """-> (per decoder layer: the cross-attention keys/values of the history, key mask [B, 1, 1, L'])."""
        memory, mask = self.encoder(self.codes[history], history != 0, users)
        return [block.memory_kv(memory) for block in self.decoder], mask

    def decode(self, memory_kv, memory_mask, prefix: torch.Tensor) -> torch.Tensor:
        """prefix [B, K, t] (t < D digits; K candidates per user) -> logits [B, K, t+1, C] of digits 1..t+1 (causal)."""
        B, K, t = prefix.shape
        x = self.bos.expand(B, K, 1, -1)
        if t:
            x = torch.cat([x, self.code_emb(prefix + self.offsets[:t])], dim=2)
        x = self.drop(x + self.slot_emb[: t + 1])
        causal = torch.ones(t + 1, t + 1, dtype=torch.bool, device=x.device).tril()
        for block, kv in zip(self.decoder, memory_kv):
            x = block(x, causal, kv, memory_mask)
        h = self.ln_f(x)
        if self.head is None:
            table = self.code_emb.weight.view(self.n_digit, self.codebook_size, -1)[: t + 1]
            return torch.einsum("bkth,tch->bktc", h, table)
        return torch.stack([self.head[i](h[:, :, i]) for i in range(t + 1)], dim=2)

    def loss(self, batch) -> torch.Tensor:
        memory_kv, memory_mask = self.encode(batch.history, batch.users)
        target = self.codes[batch.target]
        logits = self.decode(memory_kv, memory_mask, target[:, None, :-1])  # teacher forcing
        return F.cross_entropy(logits.float().reshape(-1, self.codebook_size), target.reshape(-1),
                               label_smoothing=self.label_smoothing)

    @torch.no_grad()
    def search(self, memory_kv, memory_mask, beam: int, constrained: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Beam search over prefixes that exist in the item table: (item ids [B, K], log-probs [B, K]), best first.

        With constrained=False any code may follow any prefix; IDs that are no item come back as item 0.
        """
        B, D, C = memory_mask.shape[0], self.n_digit, self.codebook_size
        dev = memory_mask.device
        index = self.index.to(dev)
        prefix = torch.zeros(B, 1, 0, dtype=torch.int64, device=dev)
        score = torch.zeros(B, 1, device=dev)
        codes = torch.arange(C, device=dev)
        for t in range(D):
            lp = self.decode(memory_kv, memory_mask, prefix)[:, :, -1].float().log_softmax(-1)  # [B, K, C]
            key = ((prefix + 1) * index.base[:t]).sum(-1)  # [B, K] the prefix's key (later digits unset)
            cand_key = key[..., None] + (codes + 1) * index.base[t]
            cand = score[..., None] + lp
            if constrained:
                cand = cand.masked_fill(~index.contains(cand_key), float("-inf"))
            k = min(beam, cand.shape[1] * C)
            score, pos = cand.reshape(B, -1).topk(k, dim=1)
            parent, code = pos // C, pos % C
            prefix = torch.cat([prefix.gather(1, parent[..., None].expand(B, k, t)), code[..., None]], dim=2)
        items = index.item_of(((prefix + 1) * index.base).sum(-1))
        return items.masked_fill(~torch.isfinite(score), 0), score

    @torch.no_grad()
    def recommend(self, batch, k: int, *, part: str = "valid") -> torch.Tensor:
        memory_kv, memory_mask = self.encode(batch.history, batch.users)
        items, _ = self.search(memory_kv, memory_mask, self.beam(part))
        return pad_ranking(items, k, self.n_items)

    @torch.no_grad()
    def invalid_ids(self, batch, k: int = 10) -> torch.Tensor:
        items, score = self.search(*self.encode(batch.history, batch.users), self.beam("test"), constrained=False)
        return ((items[:, :k] == 0) & torch.isfinite(score[:, :k])).sum(1)
