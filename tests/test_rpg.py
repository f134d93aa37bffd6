"""RPG: the parallel per-digit loss, the item score, the item graph and the graph-constrained
decoding, each checked against a direct computation of what the module docstring says."""

import dataclasses
import io
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recbench.data import Batch
from recbench_plugins import rpg
from recbench_plugins.models.layers import attention_mask

D, C, N = 3, 8, 40  # 3 digits of 8 codes, 40 items


def table(n=N, seed=0):
    """[n+1, D] distinct codes, row 0 padding."""
    rng = np.random.default_rng(seed)
    codes = rng.permutation(np.array(np.meshgrid(*[range(C)] * D, indexing="ij")).reshape(D, -1).T)[:n]
    return np.vstack([np.zeros((1, D), dtype=np.int64), codes]).astype(np.int64)


def model(codes=None, **overrides):
    codes = table() if codes is None else codes
    settings = dict(n_digit=D, n_embd=16, n_head=2, n_layer=2, n_inner=32, temperature=0.5, num_beams=4, n_edges=5,
                    propagation_steps=2)
    config = rpg.RPGConfig(**{**settings, **overrides})
    sids = types.SimpleNamespace(codes=codes, n_digit=D, codebook_size=C)
    torch.manual_seed(0)
    m = rpg.RPGGenerator().build(config, types.SimpleNamespace(max_seq_len=6), semantic_ids=sids).eval()
    with torch.no_grad():  # input-dependent heads and a spread-out code table: distinct, non-trivial scores
        m.head_weight.normal_(std=0.3)
        m.code_emb.weight.normal_(std=1.0)
    return m


def batch(B=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    history = torch.randint(1, N + 1, (B, 6), generator=g)
    history[0, :4] = 0
    history[1, :2] = 0
    return Batch(users=torch.arange(B) * 7, history=history, target=torch.randint(1, N + 1, (B,), generator=g))


def digit_logprobs_by_hand(m, h):
    """[B, D, C] from states h [B, d]: per digit, state + SiLU(W_k state + b_k), cosine with the
    digit's code embeddings, over the temperature, log-softmax."""
    out = []
    E = m.code_emb.weight.view(D, C, -1)
    for k in range(D):
        s = h + F.silu(h @ m.head_weight[k].T + m.head_bias[k])
        logits = F.normalize(s, dim=-1) @ F.normalize(E[k], dim=-1).T / m.temperature
        out.append(logits.log_softmax(-1))
    return torch.stack(out, 1)


def test_loss_is_the_mean_per_digit_cross_entropy_over_every_position_with_a_next_item():
    m, b = model(), batch()
    with torch.no_grad():
        h = m.hidden(b.history)
        nxt = b.next_items()
        losses = []
        for k in range(D):
            terms = []
            for i, j in (nxt != 0).nonzero().tolist():
                lp = digit_logprobs_by_hand(m, h[i, j][None])[0, k]
                terms.append(-lp[m.codes[nxt[i, j], k]])
            losses.append(torch.stack(terms).mean())
        torch.testing.assert_close(m.loss(b), torch.stack(losses).mean())


def test_an_items_input_embedding_is_the_mean_of_its_code_embeddings():
    m, b = model(embd_pdrop=0.0), batch()
    E = m.code_emb.weight.view(D, C, -1)
    with torch.no_grad():
        items = torch.stack([torch.stack([E[k, m.codes[i, k]] for k in range(D)]).mean(0) for i in range(N + 1)])
        present = b.history != 0
        x = (items[b.history] + m.pos((present.cumsum(1) - 1).clamp(min=0))) * present[..., None]  # positions from the oldest item
        for block in m.blocks:
            x = block(x, attention_mask(b.history))
        torch.testing.assert_close(m.hidden(b.history), m.ln_f(x))


def test_score_is_the_sum_of_the_digit_log_probabilities_and_valid_ranks_all_items_by_it():
    m, b = model(), batch()
    with torch.no_grad():
        lp = digit_logprobs_by_hand(m, m.hidden(b.history)[:, -1])
        expect = torch.stack([sum(lp[:, k, m.codes[i, k]] for k in range(D)) for i in range(1, N + 1)], 1)
        scores = m.score(b)
        assert torch.isinf(scores[:, 0]).all()
        torch.testing.assert_close(scores[:, 1:], expect)
        top = m.recommend(b, 10, part="valid")
    assert torch.equal(top, expect.topk(10, dim=1).indices + 1)


def test_the_graph_links_each_item_to_its_most_similar_items():
    m = model(n_edges=7)
    E = F.normalize(m.code_emb.weight.detach().view(D, C, -1), dim=-1)
    codes = m.codes[1:]
    cos = torch.stack([E[k, codes[:, k]] @ E[k, codes[:, k]].T for k in range(D)])  # [D, N, N]
    sim = ((1 + cos) / 2).mean(0)  # the reference's item-item similarity
    graph = m.build_graph()
    assert graph.shape == (N + 1, 7) and (graph[0] == 0).all()
    assert torch.equal(graph[1:, 0], torch.arange(1, N + 1))  # an item is its own nearest neighbour
    chosen = sim.gather(1, graph[1:] - 1)
    torch.testing.assert_close(chosen, sim.topk(7, dim=1).values)  # the 7 most similar, most similar first
    assert all(len(set(row.tolist())) == 7 for row in graph[1:])


def decode_by_hand(m, logprobs, user, k):
    """The published propagation with Python sets: start, then `propagation_steps` times score the
    union of the beam's neighbours and keep the best `num_beams`; the list is the last candidates' top k."""
    graph = m.build_graph()
    score = {i: sum(logprobs[kk, m.codes[i, kk]].item() for kk in range(D)) for i in range(1, N + 1)}
    nodes = set(m.initial_beam(torch.tensor([user]), m.num_beams)[0].tolist())
    candidates = nodes
    for _ in range(m.propagation_steps):
        candidates = {j for i in nodes for j in graph[i].tolist()}
        nodes = set(sorted(candidates, key=score.get, reverse=True)[: m.num_beams])
    return sorted(candidates, key=score.get, reverse=True)[:k]


@pytest.mark.parametrize("steps", [0, 1, 3])
def test_graph_decoding_follows_the_published_propagation(steps):
    m, b = model(propagation_steps=steps), batch()
    with torch.no_grad():
        lp = m.digit_logprobs(b)
        found = m.recommend(b, 10, part="test")
    for row, user in enumerate(b.users.tolist()):
        expect = decode_by_hand(m, lp[row], user, 10)
        assert found[row, : len(expect)].tolist() == expect
    assert ((found >= 1) & (found <= N)).all() and all(len(set(r.tolist())) == 10 for r in found)


def test_a_complete_graph_decodes_the_exhaustive_top_k():
    m, b = model(n_edges=N, num_beams=3, propagation_steps=1), batch()
    with torch.no_grad():
        assert torch.equal(m.recommend(b, 20, part="test"), m.score(b)[:, 1:].topk(20, dim=1).indices + 1)


def test_graph_decoding_is_deterministic_and_independent_of_the_batch():
    m, b = model(), batch()
    with torch.no_grad():
        together = m.recommend(b, 10, part="test")
        again = m.recommend(b, 10, part="test")
        alone = [m.recommend(dataclasses.replace(b, users=b.users[i:i + 1], history=b.history[i:i + 1], target=b.target[i:i + 1]),
                             10, part="test")[0] for i in range(len(b))]
    assert torch.equal(together, again)
    assert all(torch.equal(one, together[i]) for i, one in enumerate(alone))


def test_the_evaluator_decodes_the_test_by_the_graph_unless_exhaustive():
    assert not model().has_scores()  # the evaluator calls recommend(), which decodes part="test" by the graph
    assert model(decoding="exhaustive").has_scores()
    m, b = model(decoding="exhaustive", n_edges=2, num_beams=1, propagation_steps=1), batch()
    with torch.no_grad():  # exhaustive: the test list is the full ranking's top, whatever the graph settings
        assert torch.equal(m.recommend(b, 10, part="test"), m.score(b)[:, 1:].topk(10, dim=1).indices + 1)


def test_the_graph_is_not_saved_and_follows_the_code_table():
    m, b = model(), batch()
    with torch.no_grad():
        before = m.recommend(b, 10, part="test")
    assert not any("graph" in key for key in m.state_dict())
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    fresh = model()
    with torch.no_grad():
        fresh.code_emb.weight.normal_()  # a different table: a different graph, until the state is loaded
        fresh.recommend(b, 10, part="test")
        stale = fresh.graph().clone()
        fresh.load_state_dict(torch.load(buf))
        assert torch.equal(fresh.recommend(b, 10, part="test"), before)
    assert not torch.equal(stale, m.graph()) and torch.equal(fresh.graph(), m.graph())


@pytest.mark.parametrize("tokenizer", [None, "pq", "opq", "rq"])
def test_any_tokenizer_resolves(tokenizer):
    from recbench.runner import RunSpec, resolve

    r = resolve(RunSpec("rpg", "Beauty", tokenizer=tokenizer, overrides={"n_digit": "4"}))
    assert r.tokenizer.name == (tokenizer or "opq")
    assert r.configs["generator"].n_head == 4 and r.configs["tokenizer"].n_digit == 4


def test_presets_set_the_published_ids_and_the_cpu_preset_the_offline_model():
    from recbench.runner import RunSpec, resolve

    r = resolve(RunSpec("rpg", "Beauty"))
    gen = r.configs["generator"]
    assert r.configs["tokenizer"].n_digit == gen.n_digit == 32 and r.configs["tokenizer"].codebook_size == 256
    # the reference README after "Update best hyperparameters" (RPG_KDD2025#3)
    assert (gen.lr, gen.temperature, gen.num_beams, gen.n_edges, gen.propagation_steps) == (0.01, 0.03, 20, 200, 3)
    assert gen.train_windows and not gen.bucket_pool  # every target, each weighted alike
    cpu = resolve(RunSpec("rpg", "Beauty", preset="cpu"))
    assert cpu.configs["generator"].n_digit == 32 and cpu.configs["embedding"].sent_emb_model == "all-MiniLM-L6-v2"
    assert resolve(RunSpec("rpg", "toys")).configs["tokenizer"].n_digit == 16


def test_the_generators_id_length_reaches_its_tokenizer_where_no_layer_sets_it():
    from recbench.runner import RunSpec, resolve

    r = resolve(RunSpec("rpg", "ml-100k"))  # its preset leaves n_digit at the generator's default
    assert r.configs["tokenizer"].n_digit == r.configs["generator"].n_digit == 32
    assert r.origins[("tokenizer", "n_digit")] == "generator default" and ("generator", "n_digit") not in r.origins
    assert resolve(RunSpec("rpg", "ml-100k", overrides={"n_digit": "8"})).configs["tokenizer"].n_digit == 8
