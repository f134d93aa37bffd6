"""RPG: long semantic IDs predicted in parallel, decoded through an item graph.

Hou, Li, Shin, Jeon, Santhanam, Shao, Hassani, Yao & McAuley, "Generating Long Semantic IDs in
Parallel for Recommendation", KDD 2025; reference code github.com/facebookresearch/RPG_KDD2025
(genrec/models/RPG/model.py and tokenizer.py, genrec/pipeline.py, genrec/trainer.py, README.md;
the configs genrec/default.yaml and genrec/models/RPG/config.yaml as published in the author's
copy, github.com/hyp1231/RPG_KDD2025). We read it to learn what it does; nothing is copied.

Model. Each item has a long OPQ semantic ID (`n_digit` digits of 256 codes; faiss
"OPQ{n},IVF1,PQ{n}x8" fitted on the training items' text embeddings). One table holds an
embedding per (digit, code); an item's input embedding is the mean of its digits' code
embeddings. A GPT-2 decoder (learned absolute positions counted from the oldest item of the
window, dropout on the input embeddings and on the attention weights, none on the residual
branches, tanh-GELU, LayerNorm eps 1e-12) runs causally over the history. From a position's
state every digit is predicted at once: digit k's head is a residual block h + SiLU(W_k h + b_k)
(W_k initialised to zero, so it starts as the identity), and its logits are the cosines between
that state and digit k's code embeddings (the input table: tied), divided by `temperature`.
Loss: the cross-entropy of each digit, averaged over the digits and over every position that has
a next item (each position predicts the item after it, as in SASRec). An item's score is the sum
of its digits' log-probabilities (the reference averages them: the same ranking). Training
samples are the reference's (`train_windows`): a user's first `max_seq_len` + 1 training items
predict at every position, and each later item is predicted by the window of the `max_seq_len`
items before it, so every training target counts once an epoch; batches are plain shuffled ones,
so the batch mean weights every target alike, as the reference's does (length-bucketed batches
would weight each user alike instead).

Decoding. The reference validates by ranking all items by that score and decodes the test with
its graph (pipeline.py switches `generate_w_decoding_graph` on only for the test). The graph
links each item to its `n_edges` most similar items (itself included), where the similarity of
two items is the mean over digits of (1 + cos(e_k(a), e_k(b))) / 2 between their digit-k code
embeddings: it is built from the trained code table after training (lazily here, the first time
the test is decoded, and again whenever the table has changed; it is never part of the
state_dict). A user's beam starts as `num_beams` random items; each of `propagation_steps` steps
scores the union of the beam's neighbours and keeps the best `num_beams`. Here the random start
is drawn from a generator seeded by (`graph_seed`, the user's index), so a ranking is
deterministic and does not depend on the rest of the batch (the reference draws from the global
random state). The evaluator asks for 20 items while the published beam keeps 10: the list is the
top 20 of the last step's scored candidates, whose first `num_beams` are exactly the final beam.
`decoding=exhaustive` ranks every part by the full score instead (`score`, full ranking).

Published settings. Defaults (config.yaml, default.yaml): 32 digits x 256 codes, n_embd 448,
2 layers, 4 heads, n_inner 1024, embd/attn dropout 0.5, residual dropout 0, history 50,
temperature 0.07, num_beams 50, n_edges 50, 3 propagation steps, AdamW lr 3e-4 without weight
decay, batch 256, 10,000 warmup steps then cosine decay over 150 epochs, gradients clipped at 1.0,
validation every epoch on NDCG@10, patience 20. The README's runs (the `presets`), as updated by
its commit "Update best hyperparameters" after the fix of `num_beams` (RPG_KDD2025#3: until then
every run decoded with the config's 50 beams, whatever the setting): temperature 0.03; Beauty lr
0.01, 32 digits, 20 beams, 200 edges, 3 steps; Sports lr 0.003, 16 digits, 100 beams, 30 edges,
5 steps; Toys lr 0.003, 16 digits, 200 beams, 20 edges, 3 steps; CDs lr 0.001, 64 digits, 20 beams,
500 edges, 5 steps. (The README before that commit: 10 beams everywhere; Beauty 100 edges; Sports
100 edges, 2 steps; Toys 50 edges, 5 steps; CDs 3 steps.)

Where recbench departs. Embeddings: the released config embeds the item text with OpenAI's
text-embedding-3-large (PCA to 512, whitened); recbench embeds with sentence-transformers only, so
the presets take the config's commented alternative, sentence-t5-base with whitened PCA to 128
and no normalisation; `--preset cpu` uses the offline all-MiniLM-L6-v2. IDs: recbench makes every
ID unique (the reference lets colliding items share one). MovieLens has no published setting: its presets keep the defaults but
warm up over 75% of the planned steps, Beauty's published share (10,000 of 150 x 88 steps),
since 10,000 steps exceed its whole run. `--preset cpu` is a reduced setting that trains Beauty on
a 2-core CPU in about a quarter of an hour (see `named_presets`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from recbench import hookimpl
from recbench.api import Generator, Recommender, TrainConfig
from recbench.config import ranged
from recbench_plugins.layers import Block, attention_mask, check_heads
from recbench_plugins.sid_parts import check_ids, pad_ranking


@dataclass
class RPGConfig(TrainConfig):
    n_digit: int = ranged(32, ge=1)  # digits per semantic ID (the reference's n_codebook; README: Beauty 32, Sports/Toys 16, CDs 64); also sets the tokenizer's
    n_embd: int = ranged(448, ge=1)  # GPT-2 width
    n_layer: int = ranged(2, ge=1)
    n_head: int = ranged(4, ge=1)
    n_inner: int = ranged(1024, ge=1)  # feed-forward width
    embd_pdrop: float = ranged(0.5, ge=0, lt=1)  # dropout on the input (item + position) embeddings
    attn_pdrop: float = ranged(0.5, ge=0, lt=1)  # dropout on the attention weights
    resid_pdrop: float = ranged(0.0, ge=0, lt=1)  # dropout on each residual branch
    layer_norm_epsilon: float = ranged(1e-12, gt=0)
    temperature: float = ranged(0.07, gt=0)  # divides the cosine logits (config.yaml 0.07; every README run 0.03)
    max_seq_len: int = 50  # max_item_seq_len: the most recent history items fed to the model
    lr: float = 3e-4  # default.yaml (README runs: Beauty 0.01, Sports and Toys 0.003, CDs 0.001)
    batch_size: int = 256
    epochs: int = 150
    warmup_steps: int = 10000  # linear warmup over 10,000 steps, then cosine decay to 0 at the last epoch
    scheduler: Literal["constant", "cosine"] = "cosine"
    grad_clip: float = 1.0  # max_grad_norm
    patience: int = 20
    val_metric: str = "ndcg@10"
    train_windows: bool = True  # every training target once an epoch (the reference's windows; TrainConfig)
    # graph: validation ranks all items by the score and the test is decoded through the item graph
    # (the reference's pipeline); exhaustive: every part is ranked by the score over all items
    decoding: Literal["graph", "exhaustive"] = "graph"
    AT_MOST_ITEMS: ClassVar[tuple[str, ...]] = ("num_beams", "n_edges")  # checked against the catalogue before training
    num_beams: int = ranged(50, ge=1)  # items kept per propagation step (config.yaml 50; every README run 10)
    n_edges: int = ranged(50, ge=1)  # neighbours per item in the decoding graph, itself included (config.yaml 50)
    propagation_steps: int = ranged(3, ge=0)  # beam expansions through the graph (config.yaml 3)
    graph_seed: int = ranged(0, ge=0)  # seeds each user's random initial beam, with the user's index
    chunk_size: int = ranged(1024, ge=1)  # items per block when the graph's similarities are computed (memory only)

    evaluation_keys = TrainConfig.evaluation_keys + ("decoding", "num_beams", "n_edges", "propagation_steps", "graph_seed", "chunk_size")

    def validate(self) -> None:
        super().validate()
        check_heads(self.n_embd, self.n_head)


def gpt2_block(config: RPGConfig) -> Block:
    """A pre-LN block (recbench_plugins.layers.Block) set up as GPT-2's: attention-weight and
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


class RPGGenerator(Generator):
    name = "rpg"
    description = "RPG (Hou et al., KDD 2025): long OPQ semantic IDs, all digits predicted in parallel, graph-constrained decoding"
    Config = RPGConfig
    inputs = "semantic_ids"
    default_tokenizer = "opq"  # faiss OPQ+PQ, as the reference's "OPQ{n},IVF1,PQ{n}x8"; n_digit comes from this config
    # README runs; embeddings: config.yaml's commented sentence-t5-base setting (recbench has no OpenAI embedder).
    _t5 = {"sent_emb_model": "sentence-transformers/sentence-t5-base", "sent_emb_pca": 128, "normalize_after_pca": False}
    # the README after "Update best hyperparameters" (see the module docstring)
    presets = {
        "beauty": {"temperature": 0.03, "lr": 0.01, "n_digit": 32, "num_beams": 20, "n_edges": 200, "propagation_steps": 3, **_t5},
        "sports": {"temperature": 0.03, "lr": 0.003, "n_digit": 16, "num_beams": 100, "n_edges": 30, "propagation_steps": 5, **_t5},
        "toys": {"temperature": 0.03, "lr": 0.003, "n_digit": 16, "num_beams": 200, "n_edges": 20, "propagation_steps": 3, **_t5},
        "cds": {"temperature": 0.03, "lr": 0.001, "n_digit": 64, "num_beams": 20, "n_edges": 500, "propagation_steps": 5, **_t5},
        # no published setting: the default IDs; 10,000 warmup steps exceed the run, so warm up over Beauty's share of it
        "ml-100k": {"warmup_steps": 0, "warmup_ratio": 0.75},
        "ml-1m": {"warmup_steps": 0, "warmup_ratio": 0.75},
    }
    del _t5
    # `--preset cpu`: Beauty on one core of a 2-core CPU in about a quarter of an hour: width 64 (the per-digit
    # heads and logits cost P x n_digit x n_embd x (n_embd + 256) per step), the 20 most recent items, 20 epochs
    # with a short warmup at lr 0.002, dropout 0.1 instead of 0.5 (in so few epochs the published 0.5 and
    # lr 0.01 stay at popularity level on Beauty; docs/tiger-rpg-cpu.md), the offline embedding model. IDs,
    # loss, samples and decoding are the published ones (the dataset's preset: on Beauty 32 digits,
    # temperature 0.03, its graph). Batches are plain shuffled ones, as the reference's.
    named_presets = {"cpu": {"n_embd": 64, "n_inner": 256, "n_head": 4, "max_seq_len": 20, "epochs": 20, "lr": 0.002,
                             "embd_pdrop": 0.1, "attn_pdrop": 0.1, "warmup_steps": 0, "warmup_ratio": 0.05,
                             "eval_start_epoch": 8, "patience": 3, "sent_emb_model": "all-MiniLM-L6-v2"}}
    search_space = {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "temperature": {"type": "float", "low": 0.01, "high": 0.2, "log": True},
        "embd_pdrop": {"type": "float", "low": 0.0, "high": 0.6},
    }

    def build(self, config: RPGConfig, split, *, semantic_ids=None):
        codes = check_ids(config, semantic_ids, self.name)
        return RPG(config, codes, semantic_ids.codebook_size, split.max_seq_len)


@hookimpl
def register_generators(register):
    register(RPGGenerator())
