"""AR_GRM: autoregressive generation of the same semantic IDs (DiffGM's control model).

DiffGRM (arXiv 2510.21805, 2025) compares its masked-diffusion decoder with an autoregressive one
over the same IDs; with RQ IDs this is the TIGER recipe (Rajput et al., NeurIPS 2023). The encoder
is DIFF_GRM's (recbench_plugins.models.sid_parts.HistoryEncoder). The decoder is causal over the digits:
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

from recbench import hookimpl
from recbench.api import Generator, TrainConfig
from recbench.config import ranged
from recbench_plugins.sid_parts import CPU_PRESET, DIFFGM_OPTIONS, SHORT_WARMUP, DiffGMConfig


@dataclass
class ARGRMConfig(DiffGMConfig):
    n_head: int = ranged(8, ge=1)  # the published AR_GRM runs use 8 heads
    share_decoder_output_embedding: bool = True
    AT_MOST_ITEMS: ClassVar[tuple[str, ...]] = ("beam_size_val", "beam_size_test")  # checked against the catalogue before training
    beam_size_val: int = ranged(32, ge=1)
    beam_size_test: int = ranged(256, ge=1)

    evaluation_keys = TrainConfig.evaluation_keys + ("beam_size_val", "beam_size_test")


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
        from recbench_plugins.models.ar_grm import ARGRM
        from recbench_plugins.models.sid_parts import check_ids

        codes = check_ids(config, semantic_ids, self.name)
        return ARGRM(config, codes, semantic_ids.codebook_size, split.max_seq_len)


@hookimpl
def register_generators(register):
    register(ARGRMGenerator())
