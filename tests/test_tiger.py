"""TIGER: the published defaults, the token-level encoder (one token per digit of every history item,
after a hashed user token), and the shared prefix-constrained beam search over its decoder."""

import dataclasses
import types

import torch
from test_ar_grm import D, batch, chain_rule_ranking, table
from test_ar_grm import model as ar_grm_model

from recbench.data import Batch
from recbench_plugins import tiger


def model(codes, **overrides):
    return ar_grm_model(codes, tiger.TIGERGenerator(), **{"head_dim": 8, "user_buckets": 7, **overrides})


def test_defaults_are_the_published_setting():
    c = tiger.TIGERConfig()
    published = dict(n_digit=4, n_embd=128, n_head=6, head_dim=64, encoder_n_layer=4, decoder_n_layer=4, n_inner=1024, dropout=0.1,
                     max_seq_len=20, user_buckets=2000, batch_size=256, lr=0.01, label_smoothing=0.0)
    assert {k: getattr(c, k) for k in published} == published
    assert tiger.TIGERGenerator.default_tokenizer == "rqvae"
    # 6 heads of 64 over a model dimension of 128: attention projects to 384 and back
    m = tiger.TIGERGenerator().build(c, types.SimpleNamespace(max_seq_len=20),
                                     semantic_ids=types.SimpleNamespace(codes=table(), n_digit=4, codebook_size=256))
    assert m.decoder[0].attn.q.weight.shape == (384, 128) and m.decoder[0].attn.proj.weight.shape == (128, 384)
    assert len(m.encoder.blocks) == 4 and len(m.decoder) == 4


def test_the_encoder_reads_a_user_token_and_every_digit_of_every_item():
    codes = table()
    m = model(codes)
    b = batch()
    memory, mask = m.encoder(m.codes[b.history], b.history != 0, b.users)
    L = b.history.shape[1]
    assert memory.shape[:2] == (5, 1 + L * D)
    expect = torch.cat([torch.ones(5, 1, dtype=torch.bool), (b.history != 0).repeat_interleave(D, dim=1)], dim=1)
    assert torch.equal(mask[:, 0, 0], expect)
    # the user token: users in the same bucket get the same memory, users in other buckets do not
    same = dataclasses.replace(b, users=b.users + 7)
    other = dataclasses.replace(b, users=b.users + 1)
    assert torch.equal(m.encode(b.history, b.users)[0][0][0], m.encode(same.history, same.users)[0][0][0])
    assert not torch.allclose(m.encode(b.history, b.users)[0][0][0], m.encode(other.history, other.users)[0][0][0])
    # and the order of a history's items matters (positions), as does a digit's slot
    swapped = b.history.clone()
    swapped[:, [-1, -2]] = swapped[:, [-2, -1]]
    assert not torch.allclose(m.encoder(m.codes[swapped], swapped != 0, b.users)[0], memory)


def test_left_padding_does_not_change_a_users_memory():
    """A batch trimmed to its longest history and the same users padded further encode alike."""
    codes = table()
    m = model(codes, user_buckets=0)
    b = batch()
    padded = torch.cat([torch.zeros(5, 3, dtype=torch.int64), b.history], dim=1)
    m.encoder.pos = torch.nn.Embedding(9, 16)  # room for the longer history
    short, _ = m.encoder(m.codes[b.history], b.history != 0)
    long, _ = m.encoder(m.codes[padded], padded != 0)
    keep = (b.history != 0).repeat_interleave(D, dim=1)
    torch.testing.assert_close(long[:, 3 * D:][keep], short[keep], rtol=1e-5, atol=1e-5)


def test_exhaustive_beam_equals_chain_rule_brute_force():
    codes = table()
    m = model(codes)
    b = batch()
    memory, mask = m.encode(b.history, b.users)
    expect = chain_rule_ranking(m, memory, mask, codes)
    found, _ = m.search(memory, mask, beam=len(codes) - 1)
    assert torch.equal(found, expect)
    top = m.recommend(Batch(users=b.users, history=b.history, target=b.target), 10, part="test")
    assert torch.equal(top, expect[:, :10])


def test_rqvae_ids_resolve_by_default():
    from recbench.runner import RunSpec, resolve

    r = resolve(RunSpec("tiger", "Beauty", preset="cpu"))
    assert r.tokenizer.name == "rqvae" and r.configs["tokenizer"].n_digit == 4
    # the generator's training settings stay the generator's: rqvae trains on its own vae_* settings
    assert r.configs["tokenizer"].vae_epochs == 500 and r.configs["generator"].epochs == 8


def test_tokens_are_not_drowned_by_position_and_user_at_initialisation():
    """The code, position, digit and user embeddings start on one scale (std 0.02), so an untrained
    encoder's input is as much the tokens as their positions."""
    m = tiger.TIGERGenerator().build(tiger.TIGERConfig(), types.SimpleNamespace(max_seq_len=20),
                                     semantic_ids=types.SimpleNamespace(codes=table(), n_digit=4, codebook_size=256))
    scales = [t.std().item() for t in (m.code_emb.weight, m.encoder.pos.weight, m.encoder.user.weight, m.encoder.digit)]
    assert all(0.015 < s < 0.025 for s in scales), scales
