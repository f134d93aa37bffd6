"""AR_GRM: prefix-constrained beam search returns only items, and with a beam that holds every
prefix it ranks all items exactly by their chain-rule log-probability."""

import types

import numpy as np
import pytest
import torch

from recbench.data import Batch
from recbench_plugins import ar_grm

D, C = 3, 4


def table(n=20, seed=0):
    rng = np.random.default_rng(seed)
    codes = rng.permutation(np.array(np.meshgrid(*[range(C)] * D, indexing="ij")).reshape(D, -1).T)[:n]
    return np.vstack([np.zeros((1, D), dtype=np.int64), codes]).astype(np.int64)


def model(codes, generator=None, **overrides):
    """A small model of `generator` (AR_GRM's by default; TIGER's tests share it) over the ID table `codes`."""
    generator = generator or ar_grm.ARGRMGenerator()
    settings = dict(n_digit=D, n_embd=16, n_head=2, encoder_n_layer=1, decoder_n_layer=2, n_inner=32, dropout=0.0)
    config = generator.Config(**{**settings, **overrides})
    sids = types.SimpleNamespace(codes=codes, n_digit=D, codebook_size=C)
    torch.manual_seed(0)
    m = generator.build(config, types.SimpleNamespace(max_seq_len=6), semantic_ids=sids).eval()
    with torch.no_grad():  # sharper, input-dependent distributions than the small initialisation gives
        m.code_emb.weight.normal_(std=1.0)
    return m


def batch(B=5, n_items=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    history = torch.randint(1, n_items + 1, (B, 6), generator=g)
    history[0, :3] = 0
    return Batch(users=torch.arange(B), history=history, target=torch.randint(1, n_items + 1, (B,), generator=g))


@pytest.mark.parametrize("beam", [1, 2, 5, 16])
def test_beam_search_returns_only_items(beam):
    codes = table(n=11, seed=2)  # sparse: most prefixes lead nowhere
    m = model(codes, beam_size_val=beam)
    b = batch(n_items=11)
    items, score = m.search(*m.encode(b.history), beam)
    assert (items[torch.isfinite(score)] > 0).all()
    top = m.recommend(b, 10)
    assert ((top >= 1) & (top <= 11)).all() and all(len(set(r.tolist())) == 10 for r in top)


def chain_rule_ranking(m, memory, mask, codes) -> torch.Tensor:
    """Every item of `codes` ranked by its log-probability under teacher forcing (brute force), [B, n]."""
    items = torch.as_tensor(codes[1:])
    B = mask.shape[0]
    with torch.no_grad():
        scores = []
        for i in range(len(items)):
            lp = m.decode(memory, mask, items[i, :-1].expand(B, 1, D - 1))[:, 0].float().log_softmax(-1)
            scores.append(sum(lp[:, t, items[i, t]] for t in range(D)))
    return torch.stack(scores, 1).argsort(dim=1, descending=True) + 1


def test_exhaustive_beam_equals_chain_rule_brute_force():
    codes = table()
    m = model(codes)
    memory, mask = m.encode(batch().history)
    found, score = m.search(memory, mask, beam=len(codes) - 1)
    assert torch.equal(found, chain_rule_ranking(m, memory, mask, codes))


@pytest.mark.parametrize("tokenizer", [None, "pq", "opq", "rq"])
def test_any_tokenizer_resolves(tokenizer):
    from recbench.runner import RunSpec, resolve

    r = resolve(RunSpec("ar_grm", "Beauty", tokenizer=tokenizer, overrides={"n_digit": "4"}))
    assert r.tokenizer.name == (tokenizer or "opq")  # DIFF_GRM's default: both on the same IDs
    assert r.configs["generator"].n_head == 8 and r.configs["tokenizer"].n_digit == 4


def test_invalid_ids_are_the_unconstrained_top_10_ids_that_no_item_has():
    """Brute force over every one of the C**D IDs: rank them all by their chain-rule log-probability
    and count, per user, the first 10 that are not in the item table."""
    codes = table()  # 20 of the 64 possible IDs
    m = model(codes, beam_size_test=C**D)  # a beam that holds every ID: unconstrained decoding is then exact
    b = batch()
    memory, mask = m.encode(b.history)
    every = torch.as_tensor(np.array(np.meshgrid(*[range(C)] * D, indexing="ij")).reshape(D, -1).T)
    with torch.no_grad():
        scores = []
        for ids in every:
            lp = m.decode(memory, mask, ids[:-1].expand(len(b.history), 1, D - 1))[:, 0].float().log_softmax(-1)
            scores.append(sum(lp[:, t, ids[t]] for t in range(D)))
    top = every[torch.stack(scores, 1).argsort(dim=1, descending=True)[:, :10]]  # [B, 10, D]
    known = {tuple(c) for c in codes[1:].tolist()}
    expected = torch.tensor([sum(tuple(i) not in known for i in row.tolist()) for row in top])
    assert torch.equal(m.invalid_ids(b), expected) and expected.sum() > 0
