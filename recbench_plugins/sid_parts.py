"""The settings the semantic-ID generators DIFF_GRM and AR_GRM share, so that the pair is always
compared on one recipe: DiffGM's model sizes and training recipe, its run-level flags, the
short-warmup and CPU presets. Their shared torch parts (the history encoder, the index of partial
IDs, the padding of a decoded list, the check of the IDs a generator is given) are
recbench_plugins.models.sid_parts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from recbench.api import OptionAlias, TrainConfig
from recbench.config import ranged
from recbench_plugins.heads import check_heads

# DiffGM warms up over 10,000 steps: 93% of Beauty's 100 planned epochs (107 batches each), but
# more than Toys (88 batches an epoch) or MovieLens-100K (95) plan in all, where lr would never be
# reached. There the warmup is that same 93% share of the run instead.
SHORT_WARMUP = {"warmup_steps": 0, "warmup_ratio": 0.93}

# `--preset cpu`: a reduced setting that trains and evaluates Beauty in under 30 minutes on one
# CPU core (docs/diff-grm-ar-grm-cpu.md): a quarter of the width, half the depth, the
# 20 most recent items, 8 epochs, bf16 autocast where the CPU has it, beams 10 (validation) / 32
# (test), and the offline embedding model. Masking and decoding are each model's published ones.
CPU_PRESET = {"n_embd": 128, "n_inner": 512, "encoder_n_layer": 1, "decoder_n_layer": 2, "max_seq_len": 20, "batch_size": 256,
              "lr": 0.005, "epochs": 8, "warmup_steps": 0, "warmup_ratio": 0.05, "eval_start_epoch": 4, "patience": 2,
              "beam_size_val": 10, "beam_size_test": 32, "sent_emb_model": "all-MiniLM-L6-v2"}


# what DiffGM's quantizer names build there: its `pq` is OPQ+PQ (faiss "OPQ4,IVF1,PQ4x8"); recbench's
# own --tokenizer pq stays plain PQ (DiffGM: --disable_opq=true)
DIFFGM_QUANTIZERS = {"pq": "opq", "opq_pq": "opq", "rq": "rq", "rq_kmeans": "rq"}

# DiffGM's run-level flags, which DIFF_GRM and AR_GRM accept as they are (api.OptionAlias)
DIFFGM_OPTIONS = {
    "category": OptionAlias("--dataset"),  # Beauty
    "model": OptionAlias("--plugin", lower=True),  # DIFF_GRM -> diff_grm, AR_GRM -> ar_grm
    "quantizer": OptionAlias("--tokenizer", values=DIFFGM_QUANTIZERS, lower=True),
    "sid_quantizer": OptionAlias("--tokenizer", values=DIFFGM_QUANTIZERS, lower=True),  # its config key: opq_pq, rq_kmeans
    "disable_opq": OptionAlias("--tokenizer", switch="pq", refines=("opq", "pq")),  # PQ without the OPQ rotation
    "train_batch_size": OptionAlias("batch_size"),
    "force_regenerate_opq": OptionAlias("rebuild_ids"),  # build the semantic IDs anew
}

@dataclass
class DiffGMConfig(TrainConfig):
    """DiffGM's model sizes and training recipe: the config DIFF_GRM's and AR_GRM's extend, so that the
    two are compared on one recipe (each adds its decoding settings)."""

    n_digit: int = ranged(4, ge=1)  # digits per semantic ID; also sets the tokenizer's
    n_embd: int = ranged(256, ge=1)
    n_head: int = ranged(4, ge=1)
    encoder_n_layer: int = ranged(2, ge=1)
    decoder_n_layer: int = ranged(4, ge=1)
    n_inner: int = ranged(1024, ge=1)  # feed-forward width
    dropout: float = ranged(0.1, ge=0, lt=1)  # DiffGM's config default (the README's runs leave it)
    lr: float = 0.003
    label_smoothing: float = ranged(0.1, ge=0, lt=1)
    batch_size: int = 1024  # DiffGM's --train_batch_size (recbench run accepts that name too: DIFFGM_OPTIONS)
    epochs: int = 100  # DiffGM config.yaml
    warmup_steps: int = 10000  # DiffGM: linear warmup over 10,000 steps, then cosine decay to 0 at the last epoch ...
    scheduler: Literal["constant", "cosine"] = "cosine"
    grad_clip: float = 1.0  # ... and gradient norms clipped at 1.0 (its max_grad_norm)
    patience: int = 15
    eval_start_epoch: int = 20
    val_metric: str = "0.8*ndcg@10+0.2*recall@10"
    train_sliding: bool = True
    bucket_pool: int = 32  # length-bucketed batches trimmed to their longest history (see TrainConfig; 0: plain shuffling)
    min_hist_len: int = 2

    def validate(self) -> None:
        super().validate()
        check_heads(self.n_embd, self.n_head)


