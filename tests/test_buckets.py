"""The length-bucketed training sampler, batches trimmed to their longest history, and models whose
output does not change when a batch is trimmed."""

import math
import types

import numpy as np
import pandas as pd
import pytest
import torch

from recbench.data import Batch, RawData, Split
from recbench.data.buckets import epoch_batches, rank_share
from recbench.data.prepare import from_raw


def skewed_lengths(n=5000, max_len=20, seed=0):
    """History lengths shaped like sliding-window samples: many short, few long (capped at max_len)."""
    return np.minimum(np.random.default_rng(seed).geometric(0.12, n), max_len)


def padding_fraction(batches, lengths, max_len, trim):
    """The fraction of the history positions of all batches that are padding (trimmed or not)."""
    cells = sum(len(b) * (lengths[b].max() if trim else max_len) for b in batches)
    return 1 - sum(lengths[b].sum() for b in batches) / cells


@pytest.mark.parametrize("n,B,pool", [(5000, 64, 8), (5000, 64, 1), (1000, 1000, 4), (7, 3, 2), (130, 64, 100)])
def test_every_sample_once_per_epoch_in_ceil_n_over_b_batches(n, B, pool):
    batches = epoch_batches(skewed_lengths(n), B, pool, seed=1, epoch=3)
    assert len(batches) == math.ceil(n / B)
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(n))
    assert sum(len(b) < B for b in batches) <= 1  # only the last pool may leave a short batch


def test_batches_are_more_homogeneous_in_length_than_plain_shuffling():
    lengths, B, L = skewed_lengths(), 64, 20
    order = np.random.default_rng(0).permutation(len(lengths))
    plain = [order[i : i + B] for i in range(0, len(order), B)]
    bucketed = epoch_batches(lengths, B, 16, seed=0, epoch=1)
    spread = lambda batches: np.mean([lengths[b].std() for b in batches])  # noqa: E731
    assert spread(bucketed) < 0.3 * spread(plain)
    untrimmed = padding_fraction(plain, lengths, L, trim=False)
    assert padding_fraction(plain, lengths, L, trim=True) > 0.5 * untrimmed  # trimming a random batch gains little
    assert padding_fraction(bucketed, lengths, L, trim=True) < 0.25 * untrimmed


def test_deterministic_for_seed_and_epoch_and_different_across_epochs():
    lengths = skewed_lengths()
    a = epoch_batches(lengths, 64, 8, seed=5, epoch=2)
    b = epoch_batches(lengths, 64, 8, seed=5, epoch=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    for other in (epoch_batches(lengths, 64, 8, seed=5, epoch=3), epoch_batches(lengths, 64, 8, seed=6, epoch=2)):
        assert not np.array_equal(np.concatenate(a), np.concatenate(other))
    assert epoch_batches(lengths, 64, 8, seed=-1, epoch=1)  # any int seed


def test_each_rank_takes_its_share_of_every_global_batch():
    batches = epoch_batches(skewed_lengths(1001), 64, 4, seed=0, epoch=1)
    for world in (1, 2, 3):
        for batch in batches:
            shares = [rank_share(batch, r, world) for r in range(world)]
            assert np.array_equal(np.sort(np.concatenate(shares)), np.sort(batch))
            assert max(map(len, shares)) - min(map(len, shares)) <= 1
    tiny = np.array([7])
    assert [rank_share(tiny, r, 3).tolist() for r in range(3)] == [[7], [7], [7]]  # no rank is left without a sample


def tiny_split(max_len=4):
    # user a: 6 items, user b: 3, user c: 5; timestamps are the minute of each event
    rows = [(u, f"i{k}", 60 * (10 * j + k)) for j, (u, n) in enumerate([("a", 6), ("b", 3), ("c", 5)]) for k in range(n)]
    return Split(from_raw(RawData(pd.DataFrame(rows, columns=["user", "item", "timestamp"])), "tiny"), max_seq_len=max_len)


def test_gather_trim_drops_only_leading_all_padding_columns():
    split = tiny_split()
    users, positions = split.train_positions(sliding=True)
    lengths = split.history_lengths(users, positions)
    full = split.gather(users, positions)
    assert np.array_equal(lengths, (full.history != 0).sum(1).numpy())
    for pick in ([0], [0, 1], [1, 2], list(range(len(users)))):
        idx = np.array(pick)
        untrimmed, trimmed = split.gather(users[idx], positions[idx]), split.gather(users[idx], positions[idx], trim=True)
        L = trimmed.history.shape[1]
        assert L == max(1, lengths[idx].max())
        assert (untrimmed.history[:, : split.max_seq_len - L] == 0).all()
        assert (untrimmed.history[:, -L:] != 0).any(0).all() or L == 1
        assert torch.equal(trimmed.history, untrimmed.history[:, -L:])
        assert torch.equal(trimmed.history_time, untrimmed.history_time[:, -L:])
        assert torch.equal(trimmed.target, untrimmed.target) and torch.equal(trimmed.target_time, untrimmed.target_time)
        assert torch.equal(trimmed.next_items(), untrimmed.next_items()[:, -L:])


# ---- trimming does not change any model's output ----------------------------------------------------

N_ITEMS, MAX_LEN = 30, 8


def left_padded_batch(B=6, longest=5, seed=0):
    """Histories of 1..`longest` items (left-padded to MAX_LEN), with timestamps; trimmed, L == longest."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, longest + 1, (B,), generator=g)
    lengths[0] = longest
    history = torch.randint(1, N_ITEMS + 1, (B, MAX_LEN), generator=g)
    present = torch.arange(MAX_LEN)[None, :] >= MAX_LEN - lengths[:, None]
    history = history * present
    times = (torch.randint(0, 10**6, (B, MAX_LEN), generator=g).sort(1).values + 10**9) * present
    return Batch(users=torch.arange(B), history=history, target=torch.randint(1, N_ITEMS + 1, (B,), generator=g),
                 history_time=times, target_time=times[:, -1] + 60)


def trimmed(batch, L):
    return Batch(batch.users, batch.history[:, -L:], batch.target, batch.history_time[:, -L:], batch.target_time)


def semantic_ids(n_digit=3, codebook_size=4):
    rng = np.random.default_rng(0)
    grid = np.array(np.meshgrid(*[range(codebook_size)] * n_digit, indexing="ij")).reshape(n_digit, -1).T
    codes = np.vstack([np.zeros((1, n_digit), dtype=np.int64), rng.permutation(grid)[:N_ITEMS]]).astype(np.int64)
    return types.SimpleNamespace(codes=codes, n_digit=n_digit, codebook_size=codebook_size)


def build(name):
    from recbench import registry as plugin_registry

    gen = plugin_registry.load(third_party=False).get("generator", name)
    small = {"n_embd": 16, "n_head": 2, "n_layer": 2, "dropout": 0.0, "n_digit": 3, "n_inner": 32, "encoder_n_layer": 2,
             "decoder_n_layer": 1}
    config = gen.Config(**{k: v for k, v in small.items() if k in {f for f in gen.Config.__dataclass_fields__}})
    split = types.SimpleNamespace(n_items=N_ITEMS, max_seq_len=MAX_LEN)
    torch.manual_seed(0)
    if gen.inputs == "semantic_ids":
        return gen.build(config, split, semantic_ids=semantic_ids()).eval()
    return gen.build(config, split).eval()


@pytest.mark.parametrize("name", ["sasrec", "hstu", "llama_rec", "diff_grm", "ar_grm"])
def test_trimming_a_batch_changes_no_models_loss_or_scores(name):
    model = build(name)
    full = left_padded_batch()
    short = trimmed(full, 5)
    with torch.no_grad():
        for method in ("loss",) if name in ("diff_grm", "ar_grm") else ("loss", "score"):
            torch.manual_seed(1)  # the same sampled negatives / masking views
            a = getattr(model, method)(full)
            torch.manual_seed(1)
            b = getattr(model, method)(short)
            assert torch.allclose(a, b, atol=1e-5), (method, (a - b).abs().max())
        if name in ("diff_grm", "ar_grm"):  # the encoder's memory of the items, and the ranking
            (m_full, mask_full), (m_short, mask_short) = (model.encoder(model.codes[b.history], b.history != 0) for b in (full, short))
            assert torch.allclose(m_full[:, -5:][mask_full[:, 0, 0, -5:]], m_short[mask_short[:, 0, 0]], atol=1e-5)
            assert torch.equal(model.recommend(full, 10), model.recommend(short, 10))
