"""`rqvae`: TIGER's RQ-VAE semantic-ID tokenizer, with TIGER's extra de-duplicating digit.

Rajput et al., "Recommender Systems with Generative Retrieval", NeurIPS 2023 (TIGER), its
semantic-ID generation. An MLP autoencoder over the item-text embedding; residual vector quantization of its
latent: level 1 quantizes the latent z to the nearest codeword e1 of codebook 1, level 2 the residual
z - e1 with codebook 2, and so on; the decoder reconstructs the input from e1 + e2 + e3. TIGER then
appends a digit that numbers the items sharing the same learned digits (0, 1, 2, ...), so every ID
is unique: `extra_digit = True`, and the core does the numbering (recbench.semantic_ids).

Published setting (the defaults here, except the optimiser and `vae_epochs`, below):
- encoder: Linear layers 512-256-128, ReLU between them, then to a latent of 32; the decoder mirrors it;
- 3 levels x 256 codes, plus the extra digit: `n_digit` 4 = 3 learned levels + 1;
- loss = ||x - x_hat||^2 + sum over levels of ||sg[r_d] - e_d||^2 + beta ||r_d - sg[e_d]||^2,
  beta = 0.25; the straight-through estimator carries the reconstruction gradient past the
  quantization to the encoder (the decoder gets z + sg[e1 + e2 + e3 - z]);
- codebooks initialised by k-means on the first training batch (against codebook collapse);
- Adagrad, lr 0.4, batch 1024, 20,000 epochs, on the training items only.

Reference code read (nothing copied): phonism/genrec (genrec/models/rqvae.py and its trainer) and
snap-research/GRID (whose stored files show only that it appends the same extra digit).

Where recbench departs from the paper, and why:
- The optimiser is genrec's, AdamW with lr 1e-3 and weight decay 1e-4 (constant; genrec adds a
  linear warmup and decay and clips gradients at 1.0). The published Adagrad at lr 0.4 does not train
  on recbench's input (Beauty, all-MiniLM-L6-v2, whitened PCA to 256, L2-normalised): with torch's
  Adagrad it diverges within the first epoch, and with TensorFlow's initial accumulator of 0.1 (used
  here for `--vae_optimizer=adagrad`) the latent collapses to one code per level and the loss stays at
  the vectors' energy; AdamW at 1e-3 uses every code of every level and reconstructs 36% of the
  energy after the default 500 epochs (its loss levels off after about 250). `--vae_optimizer=adagrad
  --vae_lr=0.4` is the published optimiser.
- `vae_epochs` defaults to 500, not 20,000. On one core of an AMD EPYC (the machine the defaults were
  measured on, shared with other jobs) an epoch of Beauty (12,068 training items, 256 dimensions
  after PCA, 12 batches) takes about 0.6 s, so 20,000 epochs would take about 3.3 hours; 500 take
  about 5 minutes. `--vae_epochs=20000` is the published run length.
- Dead codes are not revived, as in the paper and in genrec: k-means initialisation is the only
  guard against unused codes, and a code no item picks stays where it is (the per-digit "codes used"
  diagnostics show how many are used).
- The network is the paper's ReLU MLP with biases and plain nearest-codeword assignment in every
  level; genrec uses SiLU layers without biases, an L2-normalised decoder output, a k-means
  initialisation on about 20,000 vectors rather than one batch, and a Sinkhorn-balanced assignment
  in its last level.
- The k-means of the initialisation is the `rq` tokenizer's (faiss, 25 iterations, seeded) on the
  first batch's latents, level by level; the first batch is taken in item order, so the
  initialisation depends on which items it holds, not on their shuffled order.
- The residual passed to the next level is r_d - sg[e_d], so a level's codebook is moved only by its
  own codebook term, and the commitment terms of all levels reach the encoder.
- The input is the core's item-text embedding (recbench.embeddings: all-MiniLM-L6-v2 by default,
  whitened PCA to 256), not TIGER's 768-dimensional Sentence-T5 vectors.

Training runs in torch on the CPU, seeded by `seed` (network initialisation, batch order, k-means),
so a fit is deterministic for a seed; torch's global random state is restored afterwards. Through
the core, the fit keeps a checkpoint (network, optimizer, the batch-order generator, epoch, losses)
beside the ID cache every RECBENCH_FIT_CHECKPOINT_SECONDS (recbench.fit_checkpoint): an interrupted
fit resumes from its last one and ends with the same parameters and codes as an uninterrupted fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from recbench import hookimpl
from recbench.api import Tokenizer, TokenizerConfig
from recbench.config import ranged
from recbench.errors import UsageError


@dataclass
class RQVAEConfig(TokenizerConfig):
    n_digit: int = ranged(4, ge=2)  # digits per ID: n_digit-1 learned residual levels (TIGER: 3) + TIGER's extra digit numbering the items that share them
    codebook_size: int = 256  # codes per level (TIGER: 256); also the most items that may share the learned digits
    latent_dim: int = ranged(32, ge=1)  # dimension of the quantized latent (TIGER: 32)
    hidden: tuple[int, ...] = (512, 256, 128)  # encoder layer widths, e.g. 512,256,128 (TIGER); the decoder mirrors them
    beta: float = ranged(0.25, ge=0)  # commitment weight of the RQ loss (TIGER: 0.25)
    # training epochs over the training items. TIGER: 20000, about 3.3 hours for Beauty on one CPU core
    # (0.6 s an epoch); 500 take about 5 minutes. --vae_epochs=20000 is the published run
    vae_epochs: int = ranged(500, ge=1)
    vae_optimizer: Literal["adamw", "adagrad"] = "adamw"  # adamw as genrec does; TIGER: adagrad (--vae_lr=0.4), which does not train here (module docstring)
    vae_lr: float = ranged(1e-3, gt=0)  # learning rate (genrec's AdamW: 1e-3; TIGER's Adagrad: 0.4)
    vae_weight_decay: float = ranged(1e-4, ge=0)  # AdamW's decoupled weight decay (genrec: 1e-4); adagrad: none
    vae_batch_size: int = ranged(1024, ge=1)  # vectors per step (TIGER: 1024); the first batch initialises the codebooks by k-means
    seed: int = 0  # seeds the network initialisation, the batch order and the k-means; a fit is deterministic for a seed

    def validate(self) -> None:
        super().validate()
        bad = [h for h in self.hidden if h < 1]
        if bad:
            raise UsageError(f"hidden must list positive layer widths, such as 512,256,128; got {','.join(map(str, self.hidden))}.")


class RQVAE(Tokenizer):
    name = "rqvae"
    description = "RQ-VAE: an MLP autoencoder whose latent is residually quantized, plus TIGER's de-duplicating digit (Rajput et al. 2023)"
    Config = RQVAEConfig
    extra_digit = True
    resumable = True  # training takes minutes to hours: an interrupted fit continues from its last checkpoint

    def check(self, config, dim, n_train):
        super().check(config, dim, n_train)
        if config.vae_batch_size < config.codebook_size:
            raise UsageError(f"vae_batch_size={config.vae_batch_size} is smaller than codebook_size={config.codebook_size}: rqvae "
                             "initialises the codebooks by k-means on the first batch, which needs at least one vector per "
                             "code; raise vae_batch_size or lower codebook_size.")

    def fit(self, x, config, checkpoint=None):
        """Initialise the codebooks by k-means on the first batch, then train for `vae_epochs` epochs
        (a fresh shuffle each), showing the mean loss of each epoch. With `checkpoint`
        (recbench.fit_checkpoint), continue from the epoch an interrupted fit saved, and save the
        state when it is due and at the end: the result is the same as an uninterrupted fit's."""
        if config.n_digit < 2:
            raise UsageError(f"n_digit must be >= 2 for rqvae (at least one learned level, then the extra digit); got {config.n_digit}.")
        from recbench_plugins.models.rqvae import fit

        return fit(x, config, checkpoint)


@hookimpl
def register_tokenizers(register):
    register(RQVAE())
