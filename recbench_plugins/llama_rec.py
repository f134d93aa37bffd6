"""LLaMA-style sequential recommender: the Toy-RecLM baseline.

Toy-RecLM (github.com/glb400/Toy-RecLM, `model.py` class LLaMA2_SASRec and `main.py`) stacks
LLaMA-2 decoder blocks (Touvron et al., "Llama 2", 2023) over item ids and predicts with SASRec's
layer (Kang & McAuley, ICDM 2018): the dot product with the tied item embedding table. Each block
is pre-norm: RMSNorm, causal attention with rotary position embeddings (Su et al., RoFormer) on
queries and keys, RMSNorm, SwiGLU feed-forward (hidden 2/3 * 4d rounded up to `multiple_of`); all
linear layers are bias-free; a final RMSNorm. No learned positions: RoPE carries order. Losses as
in the sasrec plugin: `bce` (Toy-RecLM's: one sampled negative per position) or `ce` (full softmax
over all items).

Toy-RecLM's flaws, fixed here:
- padding positions are masked out of attention as keys (Toy-RecLM attends to them);
- evaluation is the core's full ranking over all items (Toy-RecLM ranks the target among 100
  sampled negatives).
Other differences: the learning rate decays to 0 at the last epoch (Toy-RecLM: to 1e-5 at 80,000
steps); dropout is 0.1 (Toy-RecLM: 0.0); and Toy-RecLM's 1000 warmup steps are its MovieLens-1M
preset, not the default, since on small data 1000 steps (of batch 32) are dozens of epochs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from recbench import hookimpl
from recbench.api import Generator, TrainConfig
from recbench.config import ranged
from recbench.errors import UsageError
from recbench_plugins.heads import check_heads


@dataclass
class LlamaRecConfig(TrainConfig):
    n_embd: int = ranged(512, ge=1)  # Toy-RecLM main.py: dim 512, 8 layers, 8 heads
    n_layer: int = ranged(8, ge=1)
    n_head: int = ranged(8, ge=1)
    multiple_of: int = ranged(32, ge=1)  # SwiGLU hidden size is rounded up to a multiple of this
    dropout: float = ranged(0.1, ge=0, lt=1)  # our choice: Toy-RecLM uses 0.0 ("for finetuning try 0.1+")
    loss: Literal["bce", "ce"] = "bce"  # Toy-RecLM: BCE with one sampled negative per position
    lr: float = 3e-4
    weight_decay: float = 0.1
    beta2: float = 0.95
    grad_clip: float = 1.0
    warmup_steps: int = 0  # Toy-RecLM warms up for 1000 steps (its ml-1m preset); on small data that is many epochs
    scheduler: Literal["constant", "cosine"] = "cosine"
    batch_size: int = 32
    epochs: int = 50
    eval_start_epoch: int = 20  # as sasrec: BCE with one negative sits at popularity level for its first epochs

    def validate(self) -> None:
        super().validate()
        check_heads(self.n_embd, self.n_head)
        if (self.n_embd // self.n_head) % 2:
            raise UsageError(f"rotary embeddings rotate pairs: n_embd / n_head ({self.n_embd // self.n_head}) must be even.")


class LlamaRecGenerator(Generator):
    name = "llama_rec"
    description = "LLaMA-2 blocks over item ids (Toy-RecLM): RMSNorm, RoPE, SwiGLU, tied item embeddings"
    Config = LlamaRecConfig
    presets = {
        "ml-1m": {"max_seq_len": 50, "warmup_steps": 1000},  # Toy-RecLM main.py, on MovieLens-1M
        "ml-100k": {"max_seq_len": 50},  # its MovieLens history length; 1000 warmup steps would be 34 of 50 epochs here
    }
    # `--preset cpu`: the same blocks at SASRec's size, so that Beauty trains in about 15 s per epoch
    # on one CPU core (Toy-RecLM's 31.5 M parameters: 3.3 min on two, with bf16): width 64, 2 layers, 2 heads,
    # SASRec's batch and learning rate, 100 epochs of cosine decay, bf16 autocast, and the dataset's
    # history length as the other generators' rows have it (0: 200 on MovieLens, not Toy-RecLM's 50).
    named_presets = {
        "cpu": {"n_embd": 64, "n_layer": 2, "n_head": 2, "batch_size": 128, "lr": 1e-3, "epochs": 100, "cpu_amp": True,
                "max_seq_len": 0},
    }
    search_space = {
        "lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
        "dropout": {"type": "float", "low": 0.0, "high": 0.5},
        "n_embd": {"type": "categorical", "choices": [64, 128, 256, 512]},
        "n_layer": {"type": "int", "low": 1, "high": 8},
        "weight_decay": {"type": "float", "low": 0.0, "high": 0.1},
        "loss": {"type": "categorical", "choices": ["bce", "ce"]},
    }

    def build(self, config: LlamaRecConfig, split):
        from recbench_plugins.models.llama_rec import LlamaRec

        return LlamaRec(config, split.n_items, split.max_seq_len)


@hookimpl
def register_generators(register):
    register(LlamaRecGenerator())
