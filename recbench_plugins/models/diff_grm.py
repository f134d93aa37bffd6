"""DIFF_GRM's network and its confidence-guided parallel beam search; the method, its settings and
where it departs from the reference code: recbench_plugins.diff_grm."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from recbench.api import Recommender
from recbench_plugins.diff_grm import DiffGRMConfig
from recbench_plugins.models.layers import Block
from recbench_plugins.models.sid_parts import HistoryEncoder, ItemIndex, pad_ranking


def fill_schedule(n_digit: int, steps: int) -> list[int]:
    """Slots filled at each of `steps` decoder passes (as even as possible, earlier steps fill more)."""
    return [n_digit // steps + (1 if i < n_digit % steps else 0) for i in range(steps)]


@torch.no_grad()
def parallel_beam_search(logprobs: Callable[[torch.Tensor], torch.Tensor], index: ItemIndex, batch_size: int, n_digit: int,
                         codebook_size: int, beam: int, steps: int, device, constrained: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Confidence-guided parallel beam search over partial IDs that exist in `index`.

    With constrained=False every code may fill every open slot (DiffGM's decoding): complete IDs
    that are no item come back as item 0 (benchmarks/decoding.py counts them).

    logprobs(partial [B, K, D] with -1 = masked) -> [B, K, D, C] log-probabilities per slot.
    Returns (item ids [B, K'], summed log-probs [B, K']) of the complete IDs, best first (-inf and
    item 0 where the beam holds fewer). K' <= beam.
    """
    B, D, C = batch_size, n_digit, codebook_size
    partial = torch.full((B, 1, D), -1, dtype=torch.int64, device=device)
    score = torch.zeros(B, 1, device=device)
    base = index.base.to(device)
    code_keys = (torch.arange(C, device=device)[None, :] + 1) * base[:, None]  # [D, C]: what filling (d, c) adds to a key
    filled = 0
    for n_fill in fill_schedule(D, steps):
        lp = logprobs(partial).float()  # one decoder pass per step
        for _ in range(n_fill):
            keys = ((partial + 1) * base).sum(-1)  # [B, K]
            cand_key = keys[:, :, None, None] + code_keys  # [B, K, D, C]
            allowed = index.extensions(keys) if constrained else (partial < 0)[..., None].expand_as(lp)  # only open slots extend
            cand = (score[:, :, None, None] + lp).masked_fill(~allowed, float("-inf"))
            flat, flat_key = cand.reshape(B, -1), cand_key.reshape(B, -1)
            # a state of filled+1 slots is reached from at most filled+1 parents: this many suffice to find `beam` distinct ones
            m = min(flat.shape[1], beam * (filled + 1))
            top, pos = flat.topk(m, dim=1)
            top_key = flat_key.gather(1, pos)
            by_key = top_key.argsort(dim=1, stable=True)  # within a key, the better score (earlier in `top`) first
            sorted_key = top_key.gather(1, by_key)
            dup = torch.zeros_like(by_key, dtype=torch.bool)
            dup[:, 1:] = sorted_key[:, 1:] == sorted_key[:, :-1]
            top = top.scatter(1, by_key, top.gather(1, by_key).masked_fill(dup, float("-inf")))
            k = min(beam, m)
            score, sel = top.topk(k, dim=1)
            pos = pos.gather(1, sel)
            parent, rest = pos // (D * C), pos % (D * C)
            slot, code = rest // C, rest % C
            partial = partial.gather(1, parent[..., None].expand(B, k, D)).clone()
            partial.scatter_(2, slot[..., None], code[..., None])
            lp = lp.gather(1, parent[:, :, None, None].expand(B, k, D, C))
            filled += 1
    items = index.item_of(((partial + 1) * base).sum(-1))
    items = items.masked_fill(~torch.isfinite(score), 0)
    return items, score


class DiffGRM(Recommender):
    def __init__(self, config: DiffGRMConfig, codes: torch.Tensor, codebook_size: int, max_len: int):
        super().__init__()
        D, C, d = codes.shape[1], codebook_size, config.n_embd
        self.n_digit, self.codebook_size, self.n_items = D, C, codes.shape[0] - 1
        self.label_smoothing, self.strategy = config.label_smoothing, config.masking_strategy
        self.paths = config.sequential_paths
        self.guided_select, self.guided_conf_metric = config.guided_select, config.guided_conf_metric
        self.guided_refresh, self.guided_steps = config.guided_refresh_each_step, config.guided_steps or D
        self.beam_size_val, self.beam_size_test = config.beam_size_val, config.beam_size_test
        self.denoise_steps = config.denoise_steps or D
        self.register_buffer("codes", codes.clone(), persistent=False)  # [N+1, D]
        self.code_emb = nn.Embedding(D * C, d)
        nn.init.normal_(self.code_emb.weight, std=0.02)
        self.encoder = HistoryEncoder(config, self.code_emb, C, max_len)
        self.mask_emb = nn.Parameter(torch.randn(D, d) * 0.02)  # one [MASK] per digit
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

    def encode(self, history: torch.Tensor):
        """-> (per decoder layer: the cross-attention keys/values of the history, key mask [B, 1, 1, L])."""
        memory, mask = self.encoder(self.codes[history], history != 0)
        return [block.memory_kv(memory) for block in self.decoder], mask

    def decode(self, memory_kv, memory_mask, partial: torch.Tensor) -> torch.Tensor:
        """partial [B, K, D] (code, or -1 = masked): K candidates per user -> logits [B, K, D, C]."""
        revealed = partial >= 0
        x = torch.where(revealed[..., None], self.code_emb(partial.clamp(min=0) + self.offsets), self.mask_emb)
        x = self.drop(x + self.slot_emb)
        for block, kv in zip(self.decoder, memory_kv):
            x = block(x, None, kv, memory_mask)
        h = self.ln_f(x)  # [B, K, D, d]
        if self.head is None:
            table = self.code_emb.weight.view(self.n_digit, self.codebook_size, -1)
            return torch.einsum("bkdh,dch->bkdc", h, table)
        return torch.stack([head(h[:, :, i]) for i, head in enumerate(self.head)], dim=2)

    def views(self, target: torch.Tensor, memory_kv, memory_mask) -> tuple[torch.Tensor, torch.Tensor]:
        """(revealed [V, B, D] bool, loss weight [V, B, D]) of the masking strategy."""
        B, D = target.shape
        dev = target.device
        if self.strategy == "random":
            t = torch.rand(B, 1, device=dev).clamp(min=1e-3)
            masked = torch.rand(B, D, device=dev) < t
            none = ~masked.any(1)  # rows that drew no masked digit get one, uniformly at random
            if dev.type == "cuda":  # without reading the count of such rows back to the host
                masked |= none[:, None] & (torch.arange(D, device=dev)[None, :] == torch.randint(0, D, (B, 1), device=dev))
            else:  # as runs always drew it: the CPU's random stream, and every CPU run, unchanged
                masked[none, torch.randint(0, D, (int(none.sum()),), device=dev)] = True
            return ~masked[None], (1.0 / t).expand(B, D)[None]
        if self.strategy == "guided":  # view t masks the first t digits of the order (1..guided_steps)
            rank = self.guided_order(target, memory_kv, memory_mask).argsort(dim=1)  # rank[b, d]: place of digit d
            revealed = torch.stack([rank >= t for t in range(1, self.guided_steps + 1)])
            return revealed, torch.ones_like(revealed, dtype=torch.float)
        views = []
        for _ in range(self.paths):
            rank = torch.rand(B, D, device=dev).argsort(dim=1).argsort(dim=1)
            views += [rank < v for v in range(D)]  # the first 0, 1, ..., D-1 digits of a random order revealed
        revealed = torch.stack(views)
        return revealed, torch.ones_like(revealed, dtype=torch.float)

    def confidence(self, memory_kv, memory_mask, partial: torch.Tensor) -> torch.Tensor:
        """partial [B, D] -> [B, D]: the decoder's confidence in each slot (max probability, or minus the entropy)."""
        probs = self.decode(memory_kv, memory_mask, partial[:, None])[:, 0].float().softmax(-1)
        if self.guided_conf_metric == "entropy":
            return (probs * probs.clamp_min(1e-12).log()).sum(-1)
        return probs.max(-1).values

    @torch.no_grad()
    def guided_order(self, target: torch.Tensor, memory_kv, memory_mask) -> torch.Tensor:
        """[B, D]: the digits in the order OCN masks them (DiffGM's guided views), scored in eval mode (no dropout).

        `least`: the least confident digit first, so it stays masked longest and the most confident
        one is revealed first (as decoding fills it first); `most`: the reverse. Without refresh the
        order comes from one pass over the fully masked target; with refresh, each next digit is
        picked by a pass over the target with the digits picked so far masked.
        """
        was_training = self.training
        self.eval()
        try:
            least = self.guided_select == "least"
            if not self.guided_refresh:
                return self.confidence(memory_kv, memory_mask, torch.full_like(target, -1)).argsort(dim=1, descending=not least,
                                                                                                   stable=True)
            masked = torch.zeros_like(target, dtype=torch.bool)
            order = []
            for _ in range(self.n_digit):
                conf = self.confidence(memory_kv, memory_mask, target.masked_fill(masked, -1))
                pick = conf.masked_fill(masked, float("inf")).argmin(1) if least else conf.masked_fill(masked, float("-inf")).argmax(1)
                masked[torch.arange(len(pick), device=pick.device), pick] = True
                order.append(pick)
            return torch.stack(order, dim=1)
        finally:
            self.train(was_training)

    def loss(self, batch) -> torch.Tensor:
        memory_kv, memory_mask = self.encode(batch.history)
        target = self.codes[batch.target]  # [B, D]
        revealed, weight = self.views(target, memory_kv, memory_mask)
        revealed, weight = revealed.transpose(0, 1), weight.transpose(0, 1)  # [B, V, D]: a user's views share its memory
        targets = target[:, None].expand_as(revealed)
        logits = self.decode(memory_kv, memory_mask, targets.masked_fill(~revealed, -1))
        ce = F.cross_entropy(logits.float().reshape(-1, self.codebook_size), targets.reshape(-1),
                             label_smoothing=self.label_smoothing, reduction="none")
        masked = (~revealed).reshape(-1).float()
        w = weight.reshape(-1) * masked
        if self.strategy == "random":
            return (ce * w).sum() / (len(target) * self.n_digit)
        return (ce * w).sum() / masked.sum().clamp(min=1)

    def slot_logprobs(self, memory_kv, memory_mask, partial: torch.Tensor) -> torch.Tensor:
        """partial [B, K, D] -> [B, K, D, C] log-probabilities (the decoder run once on every beam)."""
        return self.decode(memory_kv, memory_mask, partial).float().log_softmax(-1)

    @torch.no_grad()
    def search(self, memory_kv, memory_mask, beam: int, constrained: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(item ids [B, K], summed log-probs [B, K]) of the beam's complete IDs, best first (AR_GRM's interface)."""
        B, dev = memory_mask.shape[0], memory_mask.device
        return parallel_beam_search(lambda p: self.slot_logprobs(memory_kv, memory_mask, p), self.index.to(dev), B, self.n_digit,
                                    self.codebook_size, beam, self.denoise_steps, dev, constrained)

    @torch.no_grad()
    def recommend(self, batch, k: int, *, part: str = "valid") -> torch.Tensor:
        items, _ = self.search(*self.encode(batch.history), self.beam(part))
        return pad_ranking(items, k, self.n_items)

    @torch.no_grad()
    def invalid_ids(self, batch, k: int = 10) -> torch.Tensor:
        items, score = self.search(*self.encode(batch.history), self.beam("test"), constrained=False)
        return ((items[:, :k] == 0) & torch.isfinite(score[:, :k])).sum(1)
