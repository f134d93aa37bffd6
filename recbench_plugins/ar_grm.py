"""AR_GRM: autoregressive generation of the same semantic IDs (DiffGM's control model).

DiffGRM (arXiv 2510.21805, 2025) compares its masked-diffusion decoder with an autoregressive one
over the same IDs; with RQ IDs this is the TIGER recipe (Rajput et al., NeurIPS 2023). The encoder
is DIFF_GRM's (recbench_plugins.sid_parts.HistoryEncoder). The decoder is causal over the digits:
its input is [BOS, digit 1, ..., digit n-1] (teacher forcing in training), position d predicts
digit d+1 by a dot product with that digit's code embeddings (`share_decoder_output_embedding`)
or a linear head; loss: cross-entropy with `label_smoothing`.

Decoding: beam search digit by digit, constrained to prefixes that exist in the item table (the
same index of partial IDs as DIFF_GRM, which holds every item's prefixes: a trie in a sorted
array), so every finished beam is an item. Beam: `beam_size_val` for validation,
`beam_size_test` for the test. Tokenizer: OPQ by default, DIFF_GRM's, so a DIFF_GRM and an
AR_GRM run of one dataset and embedding setting share one ID cache and are compared on the same
IDs (DiffGM's `--quantizer=pq` builds OPQ+PQ IDs too: faiss "OPQ4,IVF1,PQ4x8"); plain PQ or RQ with
--tokenizer pq / rq (or DiffGM's --disable_opq=true / --quantizer=rq).

Training recipe as DiffGM's: AdamW, 10,000 warmup steps, cosine decay to 0 at the last of
`epochs`, gradients clipped at 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from recbench import hookimpl
from recbench.api import Generator, Recommender, TrainConfig
from recbench.config import ranged
from recbench_plugins.layers import Block
from recbench_plugins.sid_parts import CPU_PRESET, DIFFGM_OPTIONS, SHORT_WARMUP, DiffGMConfig, HistoryEncoder, ItemIndex, check_ids, pad_ranking


@dataclass
class ARGRMConfig(DiffGMConfig):
    n_head: int = ranged(8, ge=1)  # the published AR_GRM runs use 8 heads
    share_decoder_output_embedding: bool = True
    AT_MOST_ITEMS: ClassVar[tuple[str, ...]] = ("beam_size_val", "beam_size_test")  # checked against the catalogue before training
    beam_size_val: int = ranged(32, ge=1)
    beam_size_test: int = ranged(256, ge=1)

    evaluation_keys = TrainConfig.evaluation_keys + ("beam_size_val", "beam_size_test")


class ARGRM(Recommender):
    """Encoder over the history, causal decoder over the target's digits, prefix-constrained beam search.

    `encoder` builds the history encoder from the config and the shared code table (DIFF_GRM's item-level
    HistoryEncoder here; TIGER's token-level one in recbench_plugins.tiger); it is called as
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


class ARGRMGenerator(Generator):
    name = "ar_grm"
    description = "AR_GRM (DiffGM's control; TIGER with RQ): causal decoding of semantic IDs, prefix-constrained beam search"
    Config = ARGRMConfig
    inputs = "semantic_ids"
    option_aliases = DIFFGM_OPTIONS
    default_tokenizer = "opq"  # DIFF_GRM's: the two are compared on the same IDs (DiffGM's --quantizer=pq builds OPQ+PQ too)
    # DiffGM README table (AR_GRM rows); pass --sent_emb_model=all-MiniLM-L6-v2 for the offline model
    presets = {
        "beauty": {"n_embd": 256, "n_head": 8, "lr": 0.01, "label_smoothing": 0.1, "batch_size": 1024, "eval_start_epoch": 20,
                   "sent_emb_model": "BAAI/bge-large-en-v1.5", "sent_emb_pca": 256},
        "sports": {"n_embd": 256, "n_head": 8, "lr": 0.003, "label_smoothing": 0.1, "batch_size": 1024, "eval_start_epoch": 25,
                   "sent_emb_model": "Alibaba-NLP/gte-large-en-v1.5", "sent_emb_pca": 0},
        "toys": {"n_embd": 128, "n_head": 8, "lr": 0.003, "label_smoothing": 0.05, "batch_size": 1024, "eval_start_epoch": 20,
                 "sent_emb_model": "sentence-transformers/sentence-t5-base", "sent_emb_pca": 256, **SHORT_WARMUP},
        "cds": {"n_embd": 256, "n_head": 8, "lr": 0.001, "label_smoothing": 0.1, "batch_size": 1024, "eval_start_epoch": 30,
                "sent_emb_model": "BAAI/bge-large-en-v1.5", "sent_emb_pca": 256},
        "ml-100k": SHORT_WARMUP,  # no published setting (see recbench_plugins.sid_parts.SHORT_WARMUP)
    }
    # `--preset cpu`: DIFF_GRM's reduced CPU setting (recbench_plugins.sid_parts.CPU_PRESET); the causal
    # decoder trains faster, so 12 epochs fit in the time DIFF_GRM's 8 take.
    named_presets = {"cpu": {**CPU_PRESET, "epochs": 12, "eval_start_epoch": 6}}
    search_space = {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "label_smoothing": {"type": "float", "low": 0.0, "high": 0.2},
    }

    def build(self, config: ARGRMConfig, split, *, semantic_ids=None):
        codes = check_ids(config, semantic_ids, self.name)
        return ARGRM(config, codes, semantic_ids.codebook_size, split.max_seq_len)


@hookimpl
def register_generators(register):
    register(ARGRMGenerator())
