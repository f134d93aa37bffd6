"""SASRec: self-attentive sequential recommendation.

Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018; reference code
github.com/kang205/SASRec. Item embeddings (scaled by sqrt(d)) plus learned positions, causal
self-attention blocks, and a prediction layer that is the dot product with the same item
embedding table. Two losses: the original binary cross-entropy with one sampled negative per
position (`loss=bce`), and full softmax cross-entropy over all items (`loss=ce`, Klenitskiy &
Vasilev, RecSys 2023), which is stronger under full-ranking evaluation.

Differences from the reference code: pre-LayerNorm blocks (the more stable variant), and padding
is masked out of attention as keys (the reference zeroes padded positions after each block).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from recbench import hookimpl
from recbench.api import Generator, TrainConfig
from recbench.config import ranged
from recbench_plugins.heads import check_heads


@dataclass
class SASRecConfig(TrainConfig):
    n_embd: int = ranged(50, ge=1)  # hidden size of the original paper
    n_layer: int = ranged(2, ge=1)
    n_head: int = ranged(1, ge=1)
    dropout: float = ranged(0.5, ge=0, lt=1)  # 0.5 on the sparse Amazon data, 0.2 on MovieLens (paper)
    loss: Literal["bce", "ce"] = "bce"  # original: BCE with one sampled negative per position
    lr: float = 1e-3
    batch_size: int = 128
    epochs: int = 200
    patience: int = 10
    # SASRec's code validates first at epoch 20. With BCE and one sampled negative, validation sits at
    # popularity level for the first ~10 epochs; patience 10 counted from epoch 1 stopped Sports there.
    eval_start_epoch: int = 20

    def validate(self) -> None:
        super().validate()
        check_heads(self.n_embd, self.n_head)


class SASRecGenerator(Generator):
    name = "sasrec"
    description = "SASRec (Kang & McAuley 2018): causal self-attention over item ids, BCE or full-softmax loss"
    Config = SASRecConfig
    presets = {
        "ml-1m": {"dropout": 0.2},  # paper: dropout 0.2 and history 200 on MovieLens-1M
        "ml-100k": {"dropout": 0.2},
    }
    search_space = {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "dropout": {"type": "float", "low": 0.0, "high": 0.6},
        "n_embd": {"type": "categorical", "choices": [32, 50, 64, 128]},
        "n_layer": {"type": "int", "low": 1, "high": 4},
        "loss": {"type": "categorical", "choices": ["bce", "ce"]},
    }

    def build(self, config: SASRecConfig, split):
        from recbench_plugins.models.sasrec import SASRec

        return SASRec(config, split.n_items, split.max_seq_len)


@hookimpl
def register_generators(register):
    register(SASRecGenerator())
