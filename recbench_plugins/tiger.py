"""TIGER: an encoder-decoder transformer over semantic-ID tokens, decoded by beam search.

Rajput et al., "Recommender Systems with Generative Retrieval", NeurIPS 2023. Every history item is
its semantic ID (TIGER's: RQ-VAE, 3 levels x 256 codes plus a digit numbering the items that share
them; recbench's `rqvae` tokenizer, the default here), and the encoder reads the history as the
sequence of those tokens, item after item (20 items x 4 digits = 80 tokens), after a token for the
user (its id hashed into 2,000 buckets). The decoder generates the next item's digits one at a time,
cross-attending to the encoder; loss: cross-entropy of each digit under teacher forcing. Ranking:
beam search over prefixes of existing IDs, so every result is an item.

Published setting (the defaults here; `--preset cpu` is a reduced one, below):
- encoder and decoder of 4 layers each, model dimension 128, 6 attention heads of 64, MLP 1024,
  dropout 0.1 (about 13M parameters with the T5 vocabulary);
- the 20 most recent items of the history; user id hashed into 2,000 tokens;
- batch 256, lr 0.01 for the first 10,000 steps, then inverse-square-root decay; 200,000 steps on
  Beauty and Sports (about 400 Beauty epochs), 100,000 on Toys.

Reference code read (nothing copied): phonism/genrec (genrec/models/tiger.py: a torch
encoder-decoder with a hashed user token, a trie-constrained beam search) for the parts the paper
leaves open. The decoder and the beam search are AR_GRM's (recbench_plugins.models.ar_grm.ARGRM): the two
differ only in the encoder and the settings, so a TIGER row and an AR_GRM row differ by exactly that.

Where recbench departs, and why:
- The network is recbench's pre-LN transformer (recbench_plugins.models.layers.Block) with learned absolute
  positions (each token's position from the newest, and its digit), not T5's relative position
  buckets and RMS norms; the decoder reads its output through the code embeddings of the digit it
  predicts (`share_decoder_output_embedding`), which is T5's tied vocabulary restricted to that
  digit, since a digit can only be one of its own codes.
- Training uses the core trainer with the paper's optimizer: torch's Adafactor, whose step size
  min(lr, 1/sqrt(step)) at lr 0.01 is the paper's 0.01 for 10,000 steps, then inverse-square-root
  decay. Under AdamW, lr 0.01 would be the Adafactor rate in an optimizer whose updates are not
  scaled by the parameters' size (genrec trains TIGER with AdamW at 1e-4, GRID at 1e-3).
  `--preset cpu` trains with AdamW and cosine decay.
- The item vectors are recbench's embedding model's raw output (all-MiniLM-L6-v2 offline, Sentence-T5
  in the dataset presets), without the whitened PCA the other tokenizers' runs use (`sent_emb_pca=0`).
- The paper does not state its beam; `beam_size_val` / `beam_size_test` default to 20 / 32 (the
  protocol ranks 20 items).
- `--preset cpu` halves the depth and narrows the heads (2+2 layers, 4 heads of 32, MLP 512) and
  trains 8 epochs, so that Beauty trains on one CPU core within a session. Its lr 0.005 plateaus
  early on MovieLens-100K and a lower rate does better on both datasets, so the CPU setting is
  `--preset cpu --lr=0.002 --epochs=4 --eval_start_epoch=2` (the measured runs of both:
  docs/tiger-rpg-cpu.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from recbench import hookimpl
from recbench.api import Generator, TrainConfig
from recbench.config import ranged


@dataclass
class TIGERConfig(TrainConfig):
    n_digit: int = ranged(4, ge=1)  # digits per semantic ID (TIGER: 3 RQ-VAE levels + the extra digit); also sets the tokenizer's
    n_embd: int = ranged(128, ge=1)  # TIGER: model dimension 128
    n_head: int = ranged(6, ge=1)  # TIGER: 6 heads ...
    head_dim: int = ranged(64, ge=1)  # ... of 64 each (wider than n_embd / n_head, as in T5)
    encoder_n_layer: int = ranged(4, ge=1)  # TIGER: 4
    decoder_n_layer: int = ranged(4, ge=1)  # TIGER: 4
    n_inner: int = ranged(1024, ge=1)  # TIGER: MLP 1024
    dropout: float = ranged(0.1, ge=0, lt=1)  # TIGER: 0.1
    user_buckets: int = ranged(2000, ge=0)  # TIGER: user ids hashed into 2,000 tokens (0: no user token)
    max_seq_len: int = ranged(20, ge=0)  # TIGER: the 20 most recent items
    label_smoothing: float = ranged(0.0, ge=0, lt=1)  # TIGER: plain cross-entropy
    optimizer: Literal["adamw", "adafactor"] = "adafactor"  # TIGER: Adafactor (T5X)
    lr: float = 0.01  # TIGER: 0.01 for 10,000 steps, then inverse-square-root decay: Adafactor's own step size
    batch_size: int = 256  # TIGER: 256
    epochs: int = 400  # TIGER: 200,000 steps of 256 on Beauty, about 400 epochs; early stopping usually ends sooner
    warmup_steps: int = 0  # no ramp: TIGER starts at 0.01
    scheduler: Literal["constant", "cosine"] = "constant"  # the decay is Adafactor's (above)
    grad_clip: float = 1.0
    patience: int = 10
    eval_start_epoch: int = 20
    train_sliding: bool = True  # every prefix of a training history is a sample
    bucket_pool: int = 32  # length-bucketed batches trimmed to their longest history (see TrainConfig)
    share_decoder_output_embedding: bool = True
    AT_MOST_ITEMS: ClassVar[tuple[str, ...]] = ("beam_size_val", "beam_size_test")  # checked against the catalogue before training
    beam_size_val: int = ranged(20, ge=1)
    beam_size_test: int = ranged(32, ge=1)

    evaluation_keys = TrainConfig.evaluation_keys + ("beam_size_val", "beam_size_test")


class TIGERGenerator(Generator):
    name = "tiger"
    description = "TIGER (Rajput et al. 2023): encoder-decoder over RQ-VAE semantic-ID tokens, beam search over existing IDs"
    Config = TIGERConfig
    inputs = "semantic_ids"
    default_tokenizer = "rqvae"  # TIGER's: 3 levels x 256 codes + the extra digit
    # The paper's one setting for every Amazon dataset (the defaults); Toys trains half as long. The RQ-VAE
    # reads the raw Sentence-T5 vectors (768-d, no PCA): whitening would give every noise direction the
    # weight of the leading ones, which a 32-d latent then spends its codes on.
    _t5 = {"sent_emb_model": "sentence-transformers/sentence-t5-base", "sent_emb_pca": 0}
    presets = {"beauty": _t5, "sports": _t5, "toys": {**_t5, "epochs": 200}, "cds": _t5}
    del _t5
    # `--preset cpu`: trains Beauty in about 35 minutes on one core of an AMD EPYC (670 samples/s, 3.3
    # minutes an epoch); the offline embedding model, half the depth, heads of 32, MLP 512, 8 epochs, the
    # lr and beams (10 / 32) of DIFF_GRM's and AR_GRM's cpu presets
    named_presets = {"cpu": {"encoder_n_layer": 2, "decoder_n_layer": 2, "n_head": 4, "head_dim": 32, "n_inner": 512,
                             "optimizer": "adamw", "scheduler": "cosine",
                             "lr": 0.005, "epochs": 8, "warmup_steps": 0, "warmup_ratio": 0.05, "eval_start_epoch": 4,
                             "patience": 2, "beam_size_val": 10, "beam_size_test": 32, "sent_emb_model": "all-MiniLM-L6-v2",
                             "sent_emb_pca": 0}}
    search_space = {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "dropout": {"type": "float", "low": 0.0, "high": 0.3},
    }

    def build(self, config: TIGERConfig, split, *, semantic_ids=None):
        from recbench_plugins.models.ar_grm import ARGRM
        from recbench_plugins.models.sid_parts import check_ids
        from recbench_plugins.models.tiger import TokenEncoder

        codes = check_ids(config, semantic_ids, self.name)
        return ARGRM(config, codes, semantic_ids.codebook_size, split.max_seq_len, encoder=TokenEncoder)


@hookimpl
def register_generators(register):
    register(TIGERGenerator())
