"""HSTU: Hierarchical Sequential Transduction Units.

Zhai et al., "Actions Speak Louder than Words: Trillion-Parameter Sequential Transducers for
Generative Recommendations", ICML 2024; reference code github.com/facebookresearch/generative-
recommenders (`modeling/sequential/hstu.py`, the traditional sequential setting of Section 4.1.1).
Items are embedded (scaled by sqrt(d), plus learned positions, as the reference's input
preprocessor does). Each layer, with no feed-forward block:

    U, V, Q, K = split(SiLU(LayerNorm(x) W_uvqk))          one bias-free projection
    A = (SiLU(Q K^T + rab) / n) * mask                     pointwise, no softmax
    x = x + W_o(Dropout(U * LayerNorm(A V)))

`rab` is a learned bias over relative positions plus, where the data has timestamps, over
bucketed time gaps (bucket = floor(ln(max(|dt|, 1)) / 0.301), clipped to `time_buckets`). Data
without timestamps (the shared Amazon files keep the order of the reviews, not their times) runs
without the time bias, and the record says so in its notes; `time_bias=false` turns it off on
data that has them (MovieLens), to measure what it adds. The
user state is the L2-normalised last output; items are L2-normalised too, and training is sampled
softmax over cosine similarities / temperature with uniformly sampled negatives (`loss=sampled`,
the reference's), or full softmax over all items on the same logits (`loss=ce`, the stronger
setting of genrec's Beauty table, where HSTU with full cross-entropy reaches NDCG@10 0.0441 against
0.0335 sampled; genrec's HSTU scores raw dot products and adds a feed-forward block, recbench keeps
the reference's layer and changes only the loss). Under bf16 autocast the logits and the softmax
over items are computed in fp32 (`fp32_logits`): cosines / 0.05 span [-20, 20], where bf16 keeps
under three significant digits and the full softmax over 12k items would rank on rounded values.

Differences from the reference code: the mask also removes padded keys (the reference pads on the
right, where the causal mask does this); the time gap is between the query's own timestamp and
the key's (the reference uses the timestamp of the item being predicted at the query); and the
negatives are shared by all positions of a batch (the reference draws them per position).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from recbench import hookimpl
from recbench.api import Generator, TrainConfig
from recbench.config import ranged
from recbench_plugins.heads import check_heads


@dataclass
class HSTUConfig(TrainConfig):
    # official ML-1M config (configs/ml-1m/hstu-sampled-softmax-n128-final.gin)
    n_embd: int = ranged(50, ge=1)
    n_layer: int = ranged(2, ge=1)
    n_head: int = ranged(1, ge=1)  # per-head size is n_embd / n_head (dqk = dv = 50 in the official config)
    dropout: float = ranged(0.2, ge=0, lt=1)  # on the input embeddings and before W_o
    loss: Literal["sampled", "ce"] = "sampled"  # sampled softmax (the reference's), or full softmax over all items
    num_negatives: int = ranged(128, ge=1)  # uniformly sampled negatives of loss=sampled
    temperature: float = ranged(0.05, gt=0)  # logits are cosine similarities / temperature (both losses)
    time_buckets: int = ranged(128, ge=1)  # the reference's num_buckets
    time_bias: bool = True  # the learned bias over bucketed time gaps, where the data has timestamps
    fp32_logits: bool = True  # logits and softmax in fp32 under bf16 autocast (false: in bf16, as runs before this setting)
    lr: float = 1e-3
    weight_decay: float = 0.0
    beta2: float = 0.98  # the reference trainer's AdamW betas (0.9, 0.98)
    batch_size: int = 128
    epochs: int = 101

    def validate(self) -> None:
        super().validate()
        check_heads(self.n_embd, self.n_head)


class HSTUGenerator(Generator):
    name = "hstu"
    description = "HSTU (Zhai et al. 2024): pointwise SiLU attention with relative position/time bias, sampled or full softmax"
    Config = HSTUConfig
    presets = {
        # configs/ml-1m/hstu-sampled-softmax-n128-final.gin of the reference code
        "ml-1m": {"max_seq_len": 200, "n_embd": 50, "n_layer": 2, "n_head": 1, "dropout": 0.2, "lr": 1e-3,
                  "weight_decay": 0.0, "num_negatives": 128, "temperature": 0.05, "batch_size": 128, "epochs": 101},
    }
    search_space = {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "dropout": {"type": "float", "low": 0.0, "high": 0.6},
        "n_embd": {"type": "categorical", "choices": [32, 50, 64, 128, 256]},
        "n_layer": {"type": "int", "low": 1, "high": 4},
        "num_negatives": {"type": "categorical", "choices": [64, 128, 256, 512]},
        "temperature": {"type": "float", "low": 0.02, "high": 0.2, "log": True},
        "loss": {"type": "categorical", "choices": ["sampled", "ce"]},
    }

    def build(self, config: HSTUConfig, split):
        from recbench_plugins.models.hstu import HSTU

        model = HSTU(config, split.n_items, split.max_seq_len)
        if config.time_bias and not getattr(split, "has_timestamps", False):  # a bare split (tests) has none either
            model.notes = ("time bias off: the data has no timestamps (relative position bias only)",)
        return model


@hookimpl
def register_generators(register):
    register(HSTUGenerator())
