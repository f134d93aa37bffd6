"""One conformance suite, parametrized over every registered generator: the built-in ones and those
of the example plugin packages (tests/packages)."""

import dataclasses
import io

import pytest
import torch
from conftest import with_example_plugins

from recbench.data import Batch, Source, Split, prepare
from recbench.embeddings import EmbeddingConfig
from recbench.pipeline import seed_everything
from recbench.train import train

REGISTRY = with_example_plugins()  # built-in and example-package plugins
# the semantic-ID generators first embed the items with the real sentence model, fit a tokenizer and
# decode by beam search, and the example's GRU4Rec steps through packed sequences: seconds to tens of
# seconds a test on a CPU, so they run in the full suite only (marker `slow`); the quick subset
# keeps the contract over the item-ID models (pop, sasrec, hstu, llama_rec, markov)
SLOW = {name for name in REGISTRY.names("generator") if REGISTRY.get("generator", name).inputs == "semantic_ids"} | {"gru4rec"}
GENERATORS = [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in REGISTRY.names("generator")]
# small settings so every generator runs in seconds on CPU; only keys a config has are applied
SMALL = {"n_embd": 16, "n_head": 2, "n_layer": 1, "dropout": 0.1, "batch_size": 64, "epochs": 3, "lr": 5e-3,
         "eval_batch_size": 64, "patience": 100, "warmup_steps": 0,
         # semantic-ID generators: IDs of 4 digits x 16 codes (see the semantic_ids fixture), small decoders and beams
         "n_digit": 4, "n_inner": 32, "encoder_n_layer": 1, "decoder_n_layer": 1, "beam_size_val": 32, "beam_size_test": 32}
SMALL_IDS = {"n_digit": 4, "codebook_size": 16}  # tokenizer config of the semantic_ids fixture


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """The synthetic dataset (tests/synthetic.py: 150 users, 120 items with text), prepared by the
    real ml-100k reader: the suite runs on every machine, with or without ../shared/data."""
    import os

    from synthetic import write_ml100k

    folder = write_ml100k(tmp_path_factory.mktemp("synthetic"))
    os.environ["RECBENCH_DATA"] = str(tmp_path_factory.mktemp("data"))
    ds = REGISTRY.get("dataset", "ml-100k")
    return Split(prepare(ds, ds.Config(), Source(ds.name, mirror=folder, cache=folder / "cache")), max_seq_len=20)


@pytest.fixture(scope="module")
def semantic_ids(split):
    """tokenizer name -> semantic IDs of the synthetic items (the real offline embedding model, PCA 32,
    4 digits x 16 codes), built once per module and tokenizer, cached in the module's RECBENCH_DATA."""
    from recbench import semantic_ids as sid

    built = {}

    def get(tokenizer):
        if tokenizer not in built:
            entry = REGISTRY.entry("tokenizer", tokenizer)
            built[tokenizer] = sid.build(split.data, split, entry, entry.obj.Config(**SMALL_IDS), EmbeddingConfig(sent_emb_pca=32),
                                         progress=False)
        return built[tokenizer]

    return get


def build(name, split, ids, seed=0):
    gen = REGISTRY.get("generator", name)
    fields = {f.name for f in dataclasses.fields(gen.Config)}
    config = gen.Config(**{k: v for k, v in SMALL.items() if k in fields})
    if gen.inputs == "semantic_ids":
        sids = ids(gen.default_tokenizer)
        seed_everything(seed)
        return gen.build(config, split, semantic_ids=sids), config
    seed_everything(seed)
    return gen.build(config, split), config


def fit(model, config, split, tmp_path, seed=0):
    if model.trainable:
        return train(model, split, config, tmp_path / f"run{seed}", seed=seed, device=torch.device("cpu"))
    model.fit(split)


def first_batch(split):
    return next(split.eval_batches("test", 32))


@pytest.mark.parametrize("name", GENERATORS)
def test_recommend_returns_k_distinct_valid_items(name, split, semantic_ids, tmp_path):
    model, config = build(name, split, semantic_ids)
    fit(model, config, split, tmp_path)
    model.eval()
    top = model.recommend(first_batch(split), 10)
    assert top.shape == (32, 10)
    assert ((top >= 1) & (top <= split.n_items)).all()
    assert all(len(set(row.tolist())) == 10 for row in top)


@pytest.mark.parametrize("name", GENERATORS)
def test_training_lowers_the_loss(name, split, semantic_ids, tmp_path):
    model, config = build(name, split, semantic_ids)
    if not model.trainable:
        pytest.skip(f"{name} is fitted in closed form")
    result = fit(model, config, split, tmp_path)
    losses = [e["loss"] for e in result.history]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("name", GENERATORS)
def test_save_load_round_trip_gives_identical_scores(name, split, semantic_ids, tmp_path):
    model, config = build(name, split, semantic_ids)
    fit(model, config, split, tmp_path)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    fresh, _ = build(name, split, semantic_ids, seed=123)
    fresh.load_state_dict(torch.load(buf))
    model.eval(), fresh.eval()
    batch = first_batch(split)
    assert torch.equal(model.recommend(batch, 20), fresh.recommend(batch, 20))
    if model.has_scores():
        with torch.no_grad():
            assert torch.equal(model.score(batch), fresh.score(batch))


@pytest.mark.parametrize("name", GENERATORS)
def test_same_seed_same_result(name, split, semantic_ids, tmp_path):
    outputs = []
    for run in range(2):
        model, config = build(name, split, semantic_ids, seed=7)
        fit(model, config, split, tmp_path / str(run), seed=7)
        model.eval()
        outputs.append(model.recommend(first_batch(split), 20))
    assert torch.equal(outputs[0], outputs[1])


@pytest.mark.parametrize("name", GENERATORS)
def test_a_users_ranking_does_not_depend_on_the_rest_of_the_batch(name, split, semantic_ids, tmp_path):
    """Histories of many lengths in one batch, and each user alone: the same scores (or lists).
    Guards models that skip padding (llama_rec drops padded tokens and all-padding columns)."""
    model, config = build(name, split, semantic_ids)
    fit(model, config, split, tmp_path)
    model.eval()
    batch = first_batch(split)
    keep = torch.arange(batch.history.shape[1])[None, :] >= batch.history.shape[1] - 1 - torch.arange(len(batch))[:, None] % 7
    batch = dataclasses.replace(batch, history=batch.history * keep,  # user i keeps its last 1 + i % 7 items
                                history_time=None if batch.history_time is None else batch.history_time * keep)
    alone = [rows(batch, [i]) for i in range(len(batch))]
    with torch.no_grad():
        if model.has_scores():
            together = model.score(batch)
            for i, one in enumerate(alone):
                torch.testing.assert_close(model.score(one)[0], together[i], rtol=1e-4, atol=1e-5)
        else:
            together = model.recommend(batch, 10)
            assert all(torch.equal(model.recommend(one, 10)[0], together[i]) for i, one in enumerate(alone))


def rows(batch, idx):
    return Batch(**{f.name: None if getattr(batch, f.name) is None else getattr(batch, f.name)[idx] for f in dataclasses.fields(Batch)})


def test_hstu_with_full_softmax_trains_on_the_cross_entropy_over_all_items(split, tmp_path):
    import torch.nn.functional as F

    gen = REGISTRY.get("generator", "hstu")
    fields = {f.name for f in dataclasses.fields(gen.Config)}
    config = gen.Config(**{k: v for k, v in SMALL.items() if k in fields}, loss="ce")
    seed_everything(0)
    model = gen.build(config, split)
    batch = split.gather(*(a[:16] for a in split.train_positions(sliding=False, min_hist_len=1)))
    model.eval()  # no dropout: the loss is a function of the weights
    h = model.hidden(batch)
    target = batch.next_items()
    logits = h[target != 0] @ F.normalize(model.item.weight, dim=-1, eps=1e-6).T / config.temperature
    logits[:, 0] = float("-inf")
    torch.testing.assert_close(model.loss(batch), F.cross_entropy(logits, target[target != 0]))
    model.train()
    result = fit(model, config, split, tmp_path)
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def hstu(split, **settings):
    gen = REGISTRY.get("generator", "hstu")
    fields = {f.name for f in dataclasses.fields(gen.Config)}
    config = gen.Config(**{k: v for k, v in SMALL.items() if k in fields}, **settings)
    seed_everything(0)
    return gen.build(config, split).eval()


def test_hstu_time_bias_is_a_switch_and_its_absence_is_noted(split):
    """The synthetic data has timestamps: the time bias changes the states unless switched off, and a
    model built on data without timestamps says in its notes that it ran without it."""
    batch = first_batch(split)
    assert batch.history_time is not None
    with_bias, without = hstu(split), hstu(split, time_bias=False)
    with torch.no_grad():
        for layer in with_bias.layers:
            layer.time_bias.normal_(std=1.0)
        without.load_state_dict(with_bias.state_dict())
        no_times = dataclasses.replace(batch, history_time=None, target_time=None)
        assert not torch.allclose(with_bias.hidden(batch), with_bias.hidden(no_times))
        torch.testing.assert_close(without.hidden(batch), with_bias.hidden(no_times))
    assert with_bias.notes == () and without.notes == ()
    untimed = Split(dataclasses.replace(split.data, times=None), split.max_seq_len)
    assert "no timestamps" in hstu(untimed).notes[0] and hstu(untimed, time_bias=False).notes == ()


@pytest.mark.parametrize("loss", ["ce", "sampled"])
def test_hstu_logits_are_fp32_under_bf16_autocast(split, loss):
    import torch.nn.functional as F

    batch = first_batch(split)
    model, rounded = hstu(split, loss=loss), hstu(split, loss=loss, fp32_logits=False)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.score(batch).dtype == torch.float32 and rounded.score(batch).dtype == torch.bfloat16
        if loss == "ce":
            train_batch = split.gather(*(a[:16] for a in split.train_positions(sliding=False, min_hist_len=1)))
            target = train_batch.next_items()
            h = model.hidden(train_batch)[target != 0].float()
            with torch.autocast("cpu", enabled=False):
                logits = h @ F.normalize(model.item.weight, dim=-1, eps=1e-6).T / model.temperature
                logits[:, 0] = float("-inf")
                expected = F.cross_entropy(logits, target[target != 0])
            torch.testing.assert_close(model.loss(train_batch), expected)


@pytest.mark.parametrize("name", GENERATORS)
def test_the_evaluators_invalid_id_rate_is_the_models_own_count_over_the_sample(name, split, semantic_ids):
    """evaluate's invalid_rate is Recommender.invalid_ids summed over the first INVALID_SAMPLE test users,
    per listed ID; None for models that only propose items (or rank every item)."""
    from recbench.evaluate import INVALID_SAMPLE, evaluate

    model, _ = build(name, split, semantic_ids)
    model.eval()
    rate = evaluate(model, split, "test").invalid_rate
    batches = list(split.eval_batches("test", 256))
    counts = [model.invalid_ids(b) for b in batches] if not model.has_scores() else [None]
    if counts[0] is None:
        assert rate is None
        return
    n = min(INVALID_SAMPLE, sum(len(b.users) for b in batches))
    assert rate == pytest.approx(float(torch.cat(counts)[:n].sum()) / (10 * n))
    assert 0 <= rate <= 1
