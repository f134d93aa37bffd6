"""DIFF_GRM: the parallel beam search against brute force, the masking views, the runner's wiring of
semantic-ID generators and DiffGM's run-level flags."""

import types

import numpy as np
import pytest
import torch

from recbench.cli.run import aliased_options
from recbench.data import Batch
from recbench.errors import UsageError
from recbench.runner import RunSpec, config_fingerprint, resolve
from recbench_plugins import diff_grm
from recbench_plugins.models.diff_grm import parallel_beam_search
from recbench_plugins.models.sid_parts import ItemIndex

D, C = 3, 4  # a tiny item table: 3 digits x 4 codes


def table(n=20, seed=0):
    rng = np.random.default_rng(seed)
    codes = rng.permutation(np.array(np.meshgrid(*[range(C)] * D, indexing="ij")).reshape(D, -1).T)[:n]
    return np.vstack([np.zeros((1, D), dtype=np.int64), codes]).astype(np.int64)  # row 0: padding


def model(codes, **overrides):
    settings = dict(n_digit=D, n_embd=16, n_head=2, encoder_n_layer=1, decoder_n_layer=1, n_inner=32, dropout=0.0)
    config = diff_grm.DiffGRMConfig(**{**settings, **overrides})
    sids = types.SimpleNamespace(codes=codes, n_digit=D, codebook_size=C)
    torch.manual_seed(0)
    return diff_grm.DiffGRMGenerator().build(config, types.SimpleNamespace(max_seq_len=6), semantic_ids=sids).eval()


def batch(B=5, n_items=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    history = torch.randint(1, n_items + 1, (B, 6), generator=g)
    history[0, :3] = 0  # left padding
    return Batch(users=torch.arange(B), history=history, target=torch.randint(1, n_items + 1, (B,), generator=g))


def independent(m, B, seed=1):
    """Make the decoder ignore revealed digits: fixed per-slot log-probs per user, so an ID's score
    is the same whatever the order its digits are filled in. Returns those log-probs [B, D, C]."""
    lp = torch.randn(B, D, C, generator=torch.Generator().manual_seed(seed)).log_softmax(-1)
    m.slot_logprobs = lambda memory, mask, partial: lp[:, None].expand(B, partial.shape[1], D, C)
    return lp


def brute_force(lp, codes):
    """Every item, best first, by the sum over digits of its code's log-prob."""
    items = torch.as_tensor(codes[1:])
    score = sum(lp[:, d, items[:, d]] for d in range(D))  # [B, N]
    return score.argsort(dim=1, descending=True) + 1


@pytest.mark.parametrize("steps", [D, 2, 1])
def test_exhaustive_beam_search_equals_brute_force(steps):
    codes = table()
    m = model(codes, denoise_steps=steps)
    # a beam that holds every valid partial ID (so nothing is pruned): here under 4 x 20
    n_partial = len(m.index.valid)
    m.beam_size_val = n_partial
    lp = independent(m, 5)
    top = m.recommend(batch(), 20)
    assert torch.equal(top, brute_force(lp, codes))


def test_extension_bits_list_exactly_the_fillings_that_lead_to_an_item():
    codes = torch.as_tensor(table(n=13, seed=4)[1:])
    index = ItemIndex(codes, C)
    keys = index.valid  # every valid partial ID
    digits = (keys[:, None] // index.base) % (C + 1) - 1  # [V, D], -1 = masked
    expect = torch.zeros(len(keys), D, C, dtype=torch.bool)
    for v, partial in enumerate(digits):
        for d in (partial < 0).nonzero().flatten().tolist():
            for c in range(C):
                filled = partial.clone()
                filled[d] = c
                fits = ((codes == filled) | (filled < 0)).all(1)
                expect[v, d, c] = bool(fits.any())
    assert torch.equal(index.extensions(keys), expect)
    assert torch.equal(index.extensions(keys), index.contains(keys[:, None, None] + (torch.arange(C) + 1) * index.base[:, None])
                       & (digits < 0)[..., None])


def test_candidates_sharing_a_memory_decode_as_if_alone():
    """decode runs a user's K candidates against one copy of its memory: each candidate's logits
    must equal those of decoding it on its own."""
    codes = table()
    m = model(codes)
    memory_kv, mask = m.encode(batch().history)
    partial = torch.randint(-1, C, (5, 7, D), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        together = m.decode(memory_kv, mask, partial)
        alone = torch.stack([m.decode(memory_kv, mask, partial[:, j : j + 1])[:, 0] for j in range(7)], dim=1)
    assert torch.allclose(together, alone, atol=1e-5)


def test_search_scores_are_summed_log_probs_and_ids_complete():
    codes = table()
    m = model(codes)
    lp = independent(m, 5)
    items, score = parallel_beam_search(lambda p: lp[:, None].expand(5, p.shape[1], D, C), m.index, 5, D, C,
                                                 beam=64, steps=D, device="cpu")
    finite = torch.isfinite(score)
    assert (items[finite] > 0).all()
    idx = torch.as_tensor(codes)[items.clamp(min=0)]
    expect = sum(lp[torch.arange(5)[:, None], d, idx[..., d]] for d in range(D))
    assert torch.allclose(score[finite], expect[finite], atol=1e-5)
    assert (score[:, :-1] >= score[:, 1:]).all()


@pytest.mark.parametrize("beam", [1, 3, 8])
def test_every_returned_id_is_a_valid_distinct_item(beam):
    codes = table(n=13, seed=3)  # a sparse table: most IDs are not items
    m = model(codes, beam_size_val=beam)
    top = m.recommend(batch(n_items=13), 10)
    assert top.shape == (5, 10)
    assert ((top >= 1) & (top <= 13)).all()
    assert all(len(set(r.tolist())) == 10 for r in top)
    items, score = parallel_beam_search(lambda p: m.slot_logprobs(*m.encode(batch(n_items=13).history), p), m.index,
                                                 5, D, C, beam=beam, steps=D, device="cpu")
    assert (items[torch.isfinite(score)] > 0).all()  # every finished beam is an item


def test_the_test_part_is_decoded_with_the_test_beam():
    m = model(table(), beam_size_val=4, beam_size_test=9)
    assert m.beam("valid") == 4 and m.beam("test") == 9


@pytest.mark.parametrize("paths", [1, 3])
def test_sequential_views_reveal_a_growing_prefix_of_a_random_order(paths):
    codes = table()
    m = model(codes, sequential_paths=paths)
    target = torch.as_tensor(codes)[torch.tensor([1, 5, 9, 13])]
    revealed, weight = m.views(target, None, None)
    assert revealed.shape == (D * paths, 4, D)
    assert (weight == 1).all()
    for p in range(paths):
        path = revealed[p * D:(p + 1) * D]  # [D, B, D]
        assert torch.equal(path.sum(-1), torch.arange(D)[:, None].expand(D, 4))  # 0 .. D-1 digits revealed
        assert (path[1:] >= path[:-1]).all()  # each view reveals one more digit of the same order


def test_training_step_runs_for_every_strategy():
    codes = table()
    for strategy in ("sequential", "random", "guided"):
        m = model(codes, masking_strategy=strategy).train()
        loss = m.loss(batch())
        loss.backward()
        assert torch.isfinite(loss) and loss > 0


def test_runner_resolves_tokenizer_and_embedding_sections():
    r = resolve(RunSpec("diff_grm", "beauty", overrides={"n_digit": "3", "sent_emb_model": "all-MiniLM-L6-v2"}))
    assert r.tokenizer.name == "opq"  # the default tokenizer
    assert set(r.configs) == {"generator", "dataset", "tokenizer", "embedding"}
    assert r.configs["generator"].n_digit == r.configs["tokenizer"].n_digit == 3
    assert r.configs["generator"].lr == 0.01 and r.configs["embedding"].sent_emb_pca == 256  # the Beauty preset
    assert r.configs["embedding"].sent_emb_model == "all-MiniLM-L6-v2"
    rq = resolve(RunSpec("diff_grm", "beauty", tokenizer="rq", overrides={"n_digit": "3"}))
    assert rq.tokenizer.name == "rq" and config_fingerprint(rq) != config_fingerprint(r)
    assert resolve(RunSpec("sasrec", "beauty")).tokenizer is None
    with pytest.raises(UsageError):
        resolve(RunSpec("sasrec", "beauty", tokenizer="pq"))


def test_diffgm_run_flags():
    overrides = {"category": "Beauty", "model": "DIFF_GRM", "quantizer": "pq", "lr": "0.01", "train_batch_size": "512"}
    assert aliased_options(overrides, None, None, None) == ("diff_grm", "Beauty", "opq")  # DiffGM's pq is OPQ+PQ
    assert overrides == {"lr": "0.01", "batch_size": "512"}
    assert aliased_options({"sid_quantizer": "rq_kmeans"}, "diff_grm", "beauty", None)[2] == "rq"
    assert aliased_options({"quantizer": "rq"}, "ar_grm", "beauty", None)[2] == "rq"
    assert aliased_options({"disable_opq": "true"}, "ar_grm", "beauty", None)[2] == "pq"  # plain PQ, DiffGM's way
    assert aliased_options({"quantizer": "pq", "disable_opq": "true"}, "ar_grm", "beauty", None)[2] == "pq"
    assert aliased_options({}, "ar_grm", "beauty", "pq")[2] == "pq"  # recbench's own --tokenizer pq stays plain PQ
    with pytest.raises(UsageError, match="contradicts"):
        aliased_options({"quantizer": "pq"}, "ar_grm", "beauty", "pq")
    with pytest.raises(UsageError, match="disable_opq"):
        aliased_options({"disable_opq": "maybe"}, "ar_grm", "beauty", None)
    assert aliased_options({"category": "beauty"}, "diff_grm", "beauty", None)[1] == "beauty"
    with pytest.raises(UsageError):
        aliased_options({"category": "Sports_and_Outdoors"}, "diff_grm", "beauty", None)
    with pytest.raises(UsageError):
        aliased_options({}, None, "beauty", None)


def test_cpu_preset_layers_over_the_dataset_preset():
    r = resolve(RunSpec("diff_grm", "beauty", preset="cpu"))
    g = r.configs["generator"]
    assert (g.n_embd, g.beam_size_test, g.warmup_ratio) == (128, 32, 0.05)
    assert g.cpu_amp in (True, False) and r.origins[("generator", "cpu_amp")].startswith("auto: ")  # decided from the CPU
    assert g.label_smoothing == 0.1 and r.origins[("generator", "label_smoothing")] == "preset diff_grm/beauty"
    assert r.origins[("generator", "n_embd")] == "preset diff_grm:cpu"
    assert r.configs["embedding"].sent_emb_model == "all-MiniLM-L6-v2"
    over = resolve(RunSpec("diff_grm", "beauty", preset="cpu", overrides={"n_embd": "64"}))
    assert over.configs["generator"].n_embd == 64  # the command line wins over a preset


def test_unknown_preset_names_the_presets():
    with pytest.raises(UsageError, match="no preset 'gpu'.*cpu"):
        resolve(RunSpec("diff_grm", "beauty", preset="gpu"))


def test_unconstrained_search_may_return_ids_that_are_no_item():
    codes = table(n=6, seed=5)  # 6 of 64 IDs exist
    m = model(codes)
    lp = independent(m, 5)
    memory = m.encode(batch(n_items=6).history)
    free, free_score = m.search(*memory, beam=16, constrained=False)
    held, held_score = m.search(*memory, beam=16)
    assert (free[torch.isfinite(free_score)] == 0).any()  # most of the best IDs are no item
    assert (held[torch.isfinite(held_score)] > 0).all()
    # the unconstrained best is every digit's own arg-max; the constrained best cannot beat it
    assert torch.allclose(free_score[:, 0], lp.max(-1).values.sum(-1), atol=1e-5)
    assert (free_score[:, 0] >= held_score[:, 0]).all()


def test_diff_and_ar_grm_share_tokenizer_embedding_and_id_cache():
    for preset in (None, "cpu"):
        d, a = resolve(RunSpec("diff_grm", "beauty", preset=preset)), resolve(RunSpec("ar_grm", "beauty", preset=preset))
        assert d.tokenizer.name == a.tokenizer.name == "opq"
        assert d.configs["tokenizer"] == a.configs["tokenizer"] and d.configs["embedding"] == a.configs["embedding"]


def test_ocn_preset_layers_over_the_cpu_preset():
    r = resolve(RunSpec("diff_grm", "beauty", preset="cpu,ocn"))
    g = r.configs["generator"]
    assert (g.masking_strategy, g.guided_select, g.encoder_n_layer, g.label_smoothing, g.n_embd) == ("guided", "least", 1, 0.2, 128)
    assert r.origins[("generator", "masking_strategy")] == "preset diff_grm:ocn"
    with pytest.raises(UsageError, match="no preset 'gpu'"):
        resolve(RunSpec("diff_grm", "beauty", preset="cpu,gpu"))


def test_guided_flags_need_the_guided_strategy():
    with pytest.raises(UsageError, match="guided_refresh_each_step.*masking_strategy=guided"):
        resolve(RunSpec("diff_grm", "beauty", overrides={"guided_refresh_each_step": "true"}))
    with pytest.raises(UsageError, match="guided_select"):
        resolve(RunSpec("diff_grm", "beauty", overrides={"masking_strategy": "random", "guided_select": "most"}))
    g = resolve(RunSpec("diff_grm", "beauty", overrides={"masking_strategy": "guided", "guided_conf_metric": "entropy"}))
    assert g.configs["generator"].guided_conf_metric == "entropy"


def fixed_confidence(m, conf_of):
    """Make the decoder's confidence per slot a function of the masked slots: conf_of(masked [B, D]) -> [B, D].
    Records whether the model was in training mode at each scoring pass."""
    modes = []

    def confidence(memory_kv, memory_mask, partial):
        modes.append(m.training)
        return conf_of(partial < 0)

    m.confidence = confidence
    return modes


@pytest.mark.parametrize("select, order", [("least", [1, 2, 0]), ("most", [0, 2, 1])])
def test_guided_views_follow_the_reference_order(select, order):
    """Confidences 0.9, 0.1, 0.5 for digits 0, 1, 2. DiffGM's view t masks the first t digits of the
    order: `least` masks digit 1 (least sure) first and reveals digit 0 (surest) first."""
    m = model(table(), masking_strategy="guided", guided_select=select)
    modes = fixed_confidence(m, lambda masked: torch.tensor([0.9, 0.1, 0.5]).expand(masked.shape))
    target = torch.tensor([[1, 2, 3], [0, 1, 2]])
    m.train()
    revealed, weight = m.views(target, None, None)
    assert revealed.shape == (D, 2, D) and (weight == 1).all()
    for t in range(1, D + 1):  # view t: the first t digits of `order` masked, the rest revealed
        expect = torch.ones(D, dtype=torch.bool)
        expect[order[:t]] = False
        assert (revealed[t - 1] == expect).all(), (t, revealed[t - 1])
    assert modes == [False] and m.training  # scored without dropout, training mode restored


def test_guided_refresh_rescores_after_each_masked_digit():
    """With refresh the next digit is chosen by a pass with the digits chosen so far masked."""
    def conf_of(masked):  # once digit 2 is masked, digit 0 becomes the least sure
        conf = torch.tensor([0.6, 0.5, 0.1]).expand(masked.shape).clone()
        conf[masked[:, 2], 0] = 0.05
        return conf

    m = model(table(), masking_strategy="guided", guided_select="least", guided_refresh_each_step=True)
    modes = fixed_confidence(m, conf_of)
    m.train()
    order = m.guided_order(torch.tensor([[1, 2, 3]]), None, None)
    assert order.tolist() == [[2, 0, 1]]
    assert modes == [False] * D and m.training
    m.guided_refresh = False  # one pass over the fully masked target (digit 0 at 0.05): 0, 2, 1
    assert m.guided_order(torch.tensor([[1, 2, 3]]), None, None).tolist() == [[0, 2, 1]]


def test_guided_steps_limits_the_views():
    m = model(table(), masking_strategy="guided", guided_steps=2)
    fixed_confidence(m, lambda masked: torch.tensor([0.9, 0.1, 0.5]).expand(masked.shape))
    revealed, _ = m.views(torch.tensor([[1, 2, 3]]), None, None)
    assert revealed.shape[0] == 2 and (~revealed).sum(-1).flatten().tolist() == [1, 2]


def test_entropy_confidence_prefers_peaked_slots():
    m = model(table(), masking_strategy="guided", guided_conf_metric="entropy")
    logits = torch.tensor([[[[5.0, 0, 0, 0], [0.0, 0, 0, 0], [2.0, 0, 0, 0]]]])  # [B=1, K=1, D, C]
    m.decode = lambda memory_kv, memory_mask, partial: logits
    conf = m.confidence(None, None, torch.full((1, D), -1))
    assert conf.argmax().item() == 0 and conf.argmin().item() == 1
