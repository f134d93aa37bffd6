"""DIFF_GRM: masked diffusion over parallel semantic IDs.

DiffGRM (arXiv 2510.21805, 2025); reference code github.com/liuzhao09/DiffGRM ("DiffGM"). Every
item is an ID of `n_digit` parallel digits (OPQ by default, see recbench.semantic_ids). An encoder
reads the user's history (one token per item: its digit embeddings concatenated, an MLP to
`n_embd`, plus a learned position; bidirectional self-attention, padding masked). A decoder over
the `n_digit` slots of the next item (bidirectional, cross-attending to the encoder) sees each
digit either as its code embedding or as that digit's [MASK] embedding and predicts the masked
ones: the logits of digit d are dot products with digit d's code embeddings
(`share_decoder_output_embedding`), or a linear head per digit. Loss: cross-entropy with
`label_smoothing` over the masked slots.

Masking (`masking_strategy`):
- `sequential` (published): for each of `sequential_paths` random digit orders, the n_digit views
  with the first 0, 1, ..., n_digit-1 digits of the order revealed.
- `random`: a ratio t ~ U(0,1) per sample, each digit masked with probability t (at least one),
  loss weighted by 1/t (LLaDA).
- `guided` (the paper's on-policy coherent noising, OCN; DiffGM's flags and meanings): the model
  scores the fully masked target in eval mode (no dropout, no gradient); view t masks the first t
  digits of the order, t = 1..`guided_steps`. `guided_select=least` (DiffGM's published commands)
  masks the least confident digits first, so the most confident one is revealed first, as
  decoding fills it first; `most` is the reverse. `guided_conf_metric`: max probability or minus
  the entropy; `guided_refresh_each_step`: re-score after each masked digit. `--preset ocn` is the
  reference repository's current recipe (guided/least, 1 encoder layer, label smoothing 0.2).

Training recipe (DiffGM's trainer): AdamW, linear warmup over 10,000 steps, cosine decay to 0 at
the last planned step (`epochs` x batches), gradients clipped at 1.0; training samples batched by
history length (`bucket_pool`).

Decoding (`recommend`): confidence-guided parallel beam search. All slots start masked; at each of
`denoise_steps` steps the decoder runs once on every beam; for every beam and every still-masked
slot, each code extends the beam by its log-probability; the best `beam` (beam, slot, code)
extensions overall are kept, and only those whose partial ID is consistent with at least one
item's ID (a sorted table of the keys of every item's partial IDs, 2^n_digit per item). Beams that
reach the same partial ID by different orders are merged (the higher score is kept). With fewer
steps than digits, a step fills several slots from the same decoder output (one slot after the
other, each a beam step). Complete IDs are ranked by summed log-probability and mapped to items;
the list is padded with other items (in item order) when the beam holds fewer than k.

Beam size: `beam_size_val` (DiffGM: 32) for validation (during training and the run's final
validation), `beam_size_test` (256) for the test (the evaluator's `part`).

Differences from the reference code: IDs are unique (recbench resolves collisions, see
recbench.semantic_ids), so evaluation is on items; beam state merging as above. `dropout` 0.1 on
embeddings, attention and residuals is DiffGM's default config value (the README runs do not set it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from recbench import hookimpl
from recbench.api import Generator, TrainConfig
from recbench.config import ranged
from recbench.errors import UsageError
from recbench_plugins.sid_parts import CPU_PRESET, DIFFGM_OPTIONS, SHORT_WARMUP, DiffGMConfig


@dataclass
class DiffGRMConfig(DiffGMConfig):
    masking_strategy: Literal["sequential", "random", "guided"] = "sequential"
    sequential_paths: int = ranged(1, ge=1)  # random digit orders per sample (sequential)
    # guided (on-policy coherent noising, OCN), DiffGM's flags and meanings: view t masks the first t
    # digits of an order set by the model's confidence on the fully masked target (eval mode)
    guided_select: Literal["most", "least"] = "least"  # mask the least (or most) confident digits first; DiffGM's commands: least
    guided_conf_metric: Literal["msp", "entropy"] = "msp"  # confidence: max softmax probability, or minus the entropy
    guided_refresh_each_step: bool = False  # re-score after each masked digit (n_digit scoring passes instead of one)
    guided_steps: int = ranged(0, ge=0)  # views per sample, masking 1..guided_steps digits (0: n_digit)
    share_decoder_output_embedding: bool = True  # logits = dot product with the digit's code embeddings
    AT_MOST_ITEMS: ClassVar[tuple[str, ...]] = ("beam_size_val", "beam_size_test")  # checked against the catalogue before training
    beam_size_val: int = ranged(32, ge=1)  # DiffGM's vectorized_beam_search.val.beam_act
    beam_size_test: int = ranged(256, ge=1)  # DiffGM's vectorized_beam_search.test.beam_act
    denoise_steps: int = ranged(0, ge=0)  # decoder passes per decoding (0: n_digit, one slot per step)

    evaluation_keys = TrainConfig.evaluation_keys + ("beam_size_val", "beam_size_test", "denoise_steps")

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.guided_steps <= self.n_digit:
            raise UsageError(f"guided_steps must be between 1 and n_digit ({self.n_digit}), or 0 for n_digit; got {self.guided_steps}.")
        if self.masking_strategy != "guided":
            for key, default in GUIDED_DEFAULTS.items():
                if getattr(self, key) != default:
                    raise UsageError(f"--{key}={getattr(self, key)} applies to masking_strategy=guided only; this run uses "
                                     f"masking_strategy={self.masking_strategy}.")
        if not 0 <= self.denoise_steps <= self.n_digit:
            raise UsageError(f"denoise_steps must be between 1 and n_digit ({self.n_digit}), or 0 for n_digit; got {self.denoise_steps}.")


GUIDED_DEFAULTS = {k: getattr(DiffGRMConfig, k) for k in ("guided_select", "guided_conf_metric", "guided_refresh_each_step", "guided_steps")}


class DiffGRMGenerator(Generator):
    name = "diff_grm"
    description = "DIFF_GRM (DiffGRM 2025): masked diffusion over parallel semantic IDs, confidence-guided parallel beam search"
    Config = DiffGRMConfig
    inputs = "semantic_ids"
    option_aliases = DIFFGM_OPTIONS
    default_tokenizer = "opq"
    # DiffGM README table; sent_emb_model / sent_emb_pca belong to the embedding section (pass
    # --sent_emb_model=all-MiniLM-L6-v2 for the offline model)
    presets = {
        "beauty": {"n_embd": 256, "n_head": 4, "lr": 0.01, "label_smoothing": 0.1, "batch_size": 1024, "eval_start_epoch": 20,
                   "sent_emb_model": "BAAI/bge-large-en-v1.5", "sent_emb_pca": 256},
        "sports": {"n_embd": 256, "n_head": 4, "lr": 0.003, "label_smoothing": 0.1, "batch_size": 1024, "eval_start_epoch": 25,
                   "sent_emb_model": "BAAI/bge-large-en-v1.5", "sent_emb_pca": 256},
        "toys": {"n_embd": 128, "n_head": 4, "lr": 0.003, "label_smoothing": 0.05, "batch_size": 1024, "eval_start_epoch": 20,
                 "sent_emb_model": "sentence-transformers/sentence-t5-base", "sent_emb_pca": 256, **SHORT_WARMUP},
        "cds": {"n_embd": 256, "n_head": 4, "lr": 0.001, "label_smoothing": 0.1, "batch_size": 256, "eval_start_epoch": 30,
                "sent_emb_model": "Alibaba-NLP/gte-large-en-v1.5", "sent_emb_pca": 256},
        "ml-100k": SHORT_WARMUP,  # no published setting
    }
    named_presets = {
        "cpu": CPU_PRESET,  # recbench_plugins.sid_parts: Beauty in under 30 minutes on one CPU core
        # `--preset ocn`: the reference repository's current recipe (its Beauty command): on-policy
        # coherent noising (guided masking, least confident digits masked first), one encoder layer,
        # label smoothing 0.2 (its Sports command uses 0.1, Toys 0.15: pass --label_smoothing). With
        # the CPU setting: --preset cpu,ocn.
        "ocn": {"masking_strategy": "guided", "guided_select": "least", "guided_conf_metric": "msp", "guided_refresh_each_step": False,
                "encoder_n_layer": 1, "label_smoothing": 0.2},
    }
    search_space = {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "label_smoothing": {"type": "float", "low": 0.0, "high": 0.2},
        "masking_strategy": {"type": "categorical", "choices": ["sequential", "random", "guided"]},
        "sequential_paths": {"type": "int", "low": 1, "high": 8},
    }

    def build(self, config: DiffGRMConfig, split, *, semantic_ids=None):
        from recbench_plugins.models.diff_grm import DiffGRM
        from recbench_plugins.models.sid_parts import check_ids

        codes = check_ids(config, semantic_ids, self.name)
        return DiffGRM(config, codes, semantic_ids.codebook_size, split.max_seq_len)


@hookimpl
def register_generators(register):
    register(DiffGRMGenerator())
