"""RPG's network and its graph-constrained decoding; the method, its settings and where it departs
from the reference code: recbench_plugins.rpg."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from recbench.api import Recommender
from recbench_plugins.models.layers import Block, attention_mask
from recbench_plugins.models.sid_parts import pad_ranking
from recbench_plugins.rpg import RPGConfig


def gpt2_block(config: RPGConfig) -> Block:
    """A pre-LN block (recbench_plugins.models.layers.Block) set up as GPT-2's: attention-weight and
    residual dropout apart, tanh-GELU (gelu_new), the LayerNorm epsilon, and GPT-2's initialisation
    (normal 0.02, zero biases, the residual output projections scaled by 1/sqrt(2 n_layer))."""
    block = Block(config, dropout=config.resid_pdrop, attn_dropout=config.attn_pdrop, eps=config.layer_norm_epsilon, gelu="tanh")
    for module in block.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
    for proj in (block.attn.proj, block.mlp[2]):
        nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * config.n_layer))
    return block


class RPG(Recommender):
    def __init__(self, config: RPGConfig, codes: torch.Tensor, codebook_size: int, max_len: int):
        super().__init__()
        D, C, d = codes.shape[1], codebook_size, config.n_embd
        self.n_digit, self.codebook_size, self.n_items = D, C, codes.shape[0] - 1
        self.temperature, self.decoding = config.temperature, config.decoding
        self.num_beams, self.n_edges, self.propagation_steps = config.num_beams, config.n_edges, config.propagation_steps
        self.graph_seed, self.chunk_size = config.graph_seed, config.chunk_size
        self.register_buffer("codes", codes.clone(), persistent=False)  # [N+1, D], row 0 padding
        # row of the code table of each item's digit k: k * C + code ([N, D], items 1..N)
        self.register_buffer("rows", codes[1:] + torch.arange(D) * C, persistent=False)
        self.code_emb = nn.Embedding(D * C, d)  # the input table, also the output table of every digit
        self.pos = nn.Embedding(max_len, d)
        for table in (self.code_emb, self.pos):
            nn.init.normal_(table.weight, std=0.02)
        self.drop = nn.Dropout(config.embd_pdrop)
        self.blocks = nn.ModuleList(gpt2_block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(d, eps=config.layer_norm_epsilon)
        # one residual head per digit, h + SiLU(W_k h + b_k): W_k starts at zero (the identity), b_k as nn.Linear's
        self.head_weight = nn.Parameter(torch.zeros(D, d, d))
        self.head_bias = nn.Parameter(torch.empty(D, d).uniform_(-d**-0.5, d**-0.5))
        self._graph: torch.Tensor | None = None  # [N+1, n_edges] neighbour ids (row 0 unused); not a buffer
        self._graph_table: torch.Tensor | None = None  # the code table the graph was built from

    def hidden(self, history: torch.Tensor) -> torch.Tensor:
        """[B, L, d] the decoder state after each history position (left-padded histories)."""
        B, L = history.shape
        present = history != 0
        item = F.embedding_bag(self.codes[history].reshape(B * L, -1) + torch.arange(self.n_digit, device=history.device)
                               * self.codebook_size, self.code_emb.weight, mode="mean").view(B, L, -1)
        pos = (present.cumsum(1) - 1).clamp(min=0)  # GPT-2's positions: 0 at the oldest item of the window
        x = self.drop(item + self.pos(pos)) * present[..., None]
        mask = attention_mask(history)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln_f(x)

    def digit_logits(self, h: torch.Tensor) -> torch.Tensor:
        """h [P, d] -> [D, P, C] float32: each digit's cosine logits over its codes, over the temperature."""
        D, P = self.n_digit, h.shape[0]
        with torch.autocast(h.device.type, enabled=False):
            h = h.float()
            pre = torch.baddbmm(self.head_bias[:, None, :], h.expand(D, P, -1), self.head_weight.transpose(1, 2))  # W_k h + b_k
            states = F.normalize(h + F.silu(pre), dim=-1)  # [D, P, d]
            table = F.normalize(self.code_emb.weight.view(D, self.codebook_size, -1), dim=-1) / self.temperature
            return torch.bmm(states, table.transpose(1, 2))

    def loss(self, batch) -> torch.Tensor:
        target = batch.next_items()
        keep = target != 0
        logits = self.digit_logits(self.hidden(batch.history)[keep])  # [D, P, C]
        labels = self.codes[target[keep]].T  # [D, P]
        return F.cross_entropy(logits.reshape(-1, self.codebook_size), labels.reshape(-1))

    def digit_logprobs(self, batch) -> torch.Tensor:
        """[B, D, C] each digit's log-probabilities from the newest history position."""
        return self.digit_logits(self.hidden(batch.history)[:, -1]).log_softmax(-1).transpose(0, 1)

    def item_scores(self, logprobs: torch.Tensor) -> torch.Tensor:
        """[B, N]: the sum of each item's digit log-probabilities (items 1..N)."""
        B = logprobs.shape[0]
        return F.embedding_bag(self.rows, logprobs.reshape(B, -1).T.contiguous(), mode="sum").T

    def has_scores(self) -> bool:
        return self.decoding == "exhaustive"  # otherwise the evaluator must call recommend(), which decodes the test by the graph

    @torch.no_grad()
    def score(self, batch) -> torch.Tensor:
        scores = self.item_scores(self.digit_logprobs(batch))
        return torch.cat([torch.full_like(scores[:, :1], float("-inf")), scores], dim=1)

    @torch.no_grad()
    def recommend(self, batch, k: int, *, part: str = "valid") -> torch.Tensor:
        logprobs = self.digit_logprobs(batch)
        if part == "test" and self.decoding == "graph":
            items = self.graph_decode(logprobs, batch.users, k)
        else:
            items = self.item_scores(logprobs).topk(min(k, self.n_items), dim=1).indices + 1
        return pad_ranking(items, k, self.n_items)

    @torch.no_grad()
    def build_graph(self) -> torch.Tensor:
        """[N+1, n_edges]: each item's most similar items, most similar first (row 0, padding, is zeros).

        sim(a, b) = mean over digits k of (1 + cos(e_k(a), e_k(b))) / 2, with e_k(a) the code embedding
        of a's digit k; ranked here by its monotone equivalent, the sum of the cosines."""
        D, C, N = self.n_digit, self.codebook_size, self.n_items
        table = F.normalize(self.code_emb.weight.detach().float().view(D, C, -1), dim=-1)
        cos = table @ table.transpose(1, 2)  # [D, C, C] the cosines of the codes of each digit
        k = min(self.n_edges, N)
        graph = torch.zeros(N + 1, k, dtype=torch.int64, device=table.device)
        for start in range(0, N, self.chunk_size):
            codes = self.codes[1 + start: 1 + min(start + self.chunk_size, N)]  # [m, D]
            # column i: for each (digit, code) its cosine with item i's code of that digit
            weight = cos.gather(2, codes.T[:, None, :].expand(D, C, -1)).reshape(D * C, -1)
            sim = F.embedding_bag(self.rows, weight, mode="sum")  # [N, m] summed over the digits
            graph[1 + start: 1 + start + len(codes)] = sim.T.topk(k, dim=1).indices + 1
        return graph

    def graph(self) -> torch.Tensor:
        """The decoding graph of the current code table, built once per table."""
        table = self.code_emb.weight.detach()
        if self._graph is None or self._graph_table.device != table.device or not torch.equal(self._graph_table, table):
            self._graph, self._graph_table = self.build_graph(), table.clone()
        return self._graph

    def initial_beam(self, users: torch.Tensor, size: int) -> torch.Tensor:
        """[B, size] random items per user, from a generator seeded by (graph_seed, user): the same for a
        user whatever the batch."""
        starts = []
        for user in users.tolist():
            g = torch.Generator().manual_seed(self.graph_seed * 1_000_003 + int(user))
            starts.append(torch.randint(1, self.n_items + 1, (size,), generator=g))
        return torch.stack(starts).to(users.device)

    def candidate_scores(self, logprobs: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """items [B, M] -> their scores [B, M], -inf on the repeats of an item within a row."""
        items, _ = items.sort(dim=1)
        codes = self.codes[items].transpose(1, 2)  # [B, D, M]
        scores = logprobs.gather(2, codes).sum(1)
        repeat = torch.zeros_like(items, dtype=torch.bool)
        repeat[:, 1:] = items[:, 1:] == items[:, :-1]
        return items, scores.masked_fill(repeat, float("-inf"))

    @torch.no_grad()
    def graph_decode(self, logprobs: torch.Tensor, users: torch.Tensor, k: int) -> torch.Tensor:
        """[B, k'] item ids (0 = none): graph-constrained decoding from each user's random beam."""
        graph = self.graph().to(logprobs.device)
        beam = min(self.num_beams, self.n_items)
        nodes = self.initial_beam(users, beam)
        candidates, scores = self.candidate_scores(logprobs, nodes)
        for _ in range(self.propagation_steps):
            candidates, scores = self.candidate_scores(logprobs, graph[nodes].flatten(1))  # the beam's neighbours
            nodes = candidates.gather(1, scores.topk(min(beam, scores.shape[1]), dim=1).indices)
        top, pos = scores.topk(min(k, scores.shape[1]), dim=1)
        return candidates.gather(1, pos).masked_fill(~torch.isfinite(top), 0)
