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

from dataclasses import dataclass
from typing import ClassVar, Literal

from recbench import hookimpl
from recbench.api import Generator, TrainConfig
from recbench.config import ranged
from recbench_plugins.heads import check_heads


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
        from recbench_plugins.models.rpg import RPG
        from recbench_plugins.models.sid_parts import check_ids

        codes = check_ids(config, semantic_ids, self.name)
        return RPG(config, codes, semantic_ids.codebook_size, split.max_seq_len)


@hookimpl
def register_generators(register):
    register(RPGGenerator())
