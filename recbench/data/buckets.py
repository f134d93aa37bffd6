"""A length-bucketed training sampler: batches of samples with similar history lengths.

With sliding-window samples most history positions of a randomly drawn batch are padding (on
Amazon data, 61% at max_seq_len 20 and 80% at 50). `epoch_batches` groups samples of similar
length so that a batch trimmed to its longest history (`Split.gather(..., trim=True)`) is short:

1. a random permutation of all samples;
2. cut into pools of `pool * batch_size` samples; within each pool, a stable sort by history length;
3. each pool cut into batches of `batch_size` (only the last pool may leave a short batch);
4. the order of all the epoch's batches shuffled.

Every sample is in exactly one batch per epoch, and there are ceil(N / batch_size) batches. The
random generator is seeded by (seed, epoch) alone, so an epoch's batches do not depend on earlier
epochs and a resumed run draws exactly the batches of an uninterrupted one. Bigger pools give more
homogeneous batches but less random ones (a batch's samples come from one pool, sorted by length).
"""

from __future__ import annotations

import numpy as np


def epoch_batches(lengths: np.ndarray, batch_size: int, pool: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The batches (arrays of sample indices into `lengths`) of one epoch, in training order.

    `lengths[i]` is sample i's history length (the number of non-padding items it is given);
    `pool` is the number of batches per pool (>= 1).
    """
    if batch_size < 1 or pool < 1:
        raise ValueError(f"batch_size and pool must be >= 1; got {batch_size}, {pool}")
    lengths = np.asarray(lengths)
    rng = np.random.default_rng([seed % 2**64, epoch])  # seed may be negative; SeedSequence wants >= 0
    order = rng.permutation(len(lengths))
    size = pool * batch_size
    batches = []
    for start in range(0, len(order), size):
        chunk = order[start : start + size]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]  # ties keep their random order
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def rank_share(batch: np.ndarray, rank: int, world: int) -> np.ndarray:
    """This rank's part of a global batch under data-parallel training: every world-th sample from
    the rank-th (so the global batch stays `batch_size` and every rank sees similar lengths). A
    batch smaller than `world` is repeated cyclically first, so that no rank's share is empty
    (every rank must take the same number of optimizer steps)."""
    if len(batch) < world:
        batch = np.resize(batch, world)
    return batch[rank::world]
