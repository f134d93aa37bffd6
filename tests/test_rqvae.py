"""The `rqvae` tokenizer (TIGER's RQ-VAE) on small synthetic vectors, TIGER's extra digit in the
core (recbench.semantic_ids.number_duplicates), and an interrupted fit resumed from its checkpoint
(recbench.fit_checkpoint). The conformance suite in test_tokenizers.py runs on rqvae too
(uniqueness, determinism, held-out items, the cache)."""

import numpy as np
import pytest
import torch

from recbench import config as cfg
from recbench import embeddings, semantic_ids
from recbench import registry as plugin_registry
from recbench.api import TokenizerConfig
from recbench.errors import UsageError
from recbench.fit_checkpoint import FitCheckpoint
from recbench_plugins.models.rqvae import RQVAEModel
from recbench_plugins.rqvae import RQVAE, RQVAEConfig
from recbench_plugins.tokenizers import RQ

N, DIM = 300, 16


def vectors(seed=0, n=N) -> np.ndarray:
    """[n, DIM] vectors around 12 centres."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(12, DIM))[rng.integers(0, 12, n)] + rng.normal(size=(n, DIM))).astype(np.float32)


def small(**overrides) -> RQVAEConfig:
    return RQVAEConfig(**{"codebook_size": 16, "latent_dim": 8, "hidden": (32, 16), "vae_epochs": 10, "vae_lr": 0.01, "vae_batch_size": 64,
                        **overrides})


def fit(x, checkpoint=None, **overrides):
    with embeddings.faiss_single_threaded():
        return RQVAE().fit(x, small(**overrides), checkpoint)


def tokenize(x, train=None, **overrides):
    train = np.ones(len(x), dtype=bool) if train is None else train
    return semantic_ids.tokenize(x, train, RQVAE(), small(**overrides))


def test_rqvae_is_a_registered_extra_digit_tokenizer():
    entry = plugin_registry.load(third_party=False).entry("tokenizer", "rqvae")
    assert entry.plugin == "recbench_plugins.rqvae" and entry.obj.extra_digit
    assert not plugin_registry.load(third_party=False).get("tokenizer", "rq").extra_digit
    rows = {r["key"]: r for r in cfg.describe(RQVAEConfig)}
    assert rows["hidden"]["default"] == (512, 256, 128) and rows["hidden"]["type"] == "comma-separated list of int"
    assert all(rows[k]["comment"] for k in ("n_digit", "latent_dim", "hidden", "beta", "vae_epochs", "vae_lr", "vae_batch_size"))


def test_a_fit_is_deterministic_for_a_seed_and_leaves_torchs_random_state_alone():
    x = vectors()
    state = torch.get_rng_state()
    a, b = fit(x, seed=1), fit(x, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    pa, pb = a.parameters(), b.parameters()
    assert pa.keys() == pb.keys() and {"centroids", "encoder.0.weight", "decoder.0.weight"} <= set(pa)
    assert all(np.array_equal(pa[k], pb[k]) for k in pa) and a.losses == b.losses
    np.testing.assert_array_equal(a.encode(x), b.encode(x))
    assert not np.array_equal(fit(x, seed=2).parameters()["centroids"], pa["centroids"])


def test_training_lowers_the_loss_and_the_reconstruction_error():
    x = vectors()
    short, long = fit(x, vae_epochs=1), fit(x, vae_epochs=20)
    assert long.losses[-1] < 0.8 * long.losses[0]

    def error(q):
        return float(((x - q.decode(q.encode(x))) ** 2).sum(1).mean())

    assert error(long) < 0.8 * error(short)


def test_the_codebooks_start_as_the_k_means_of_the_first_batch():
    x = vectors()
    # one step at a negligible learning rate: the codebooks are still their initialisation; the
    # first batch (batch_size >= N) holds every training item, taken in item order
    q = fit(x, vae_epochs=1, vae_lr=1e-9, vae_batch_size=1024)
    with torch.no_grad():
        z = q.model.encoder(torch.from_numpy(x)).numpy()
    init = RQ().fit(z, TokenizerConfig(n_digit=3, codebook_size=16, seed=0)).centroids
    np.testing.assert_allclose(q.parameters()["centroids"], init, atol=1e-4)
    assert len(np.unique(q.encode(x)[:, 0])) == 16  # k-means leaves no first-level code unused


def test_encode_and_decode():
    x = vectors()
    q = fit(x)
    codes = q.encode(x[:50])
    assert codes.shape == (50, 4) and codes.dtype == np.int64 and not codes[:, -1].any()
    assert codes.min() >= 0 and codes[:, :-1].max() < 16
    assert q.decode(codes).shape == (50, DIM) and q.decode(codes).dtype == np.float32
    np.testing.assert_array_equal(q.decode(codes, 0), np.zeros((50, DIM), dtype=np.float32))
    other = codes.copy()
    other[:, -1] = 7  # the extra digit reconstructs nothing
    np.testing.assert_array_equal(q.decode(other), q.decode(codes, 3))
    assert not np.allclose(q.decode(codes, 1), q.decode(codes, 3))


def test_every_item_gets_a_unique_id_whose_last_digit_numbers_look_alikes():
    x = vectors()
    x[[40, 90, 91, 200, 250]] = x[40]  # five items with the same text
    out = tokenize(x)
    codes, raw = out.codes, out.raw
    assert codes.shape == (N, 4) and len(np.unique(codes, axis=0)) == N
    assert not raw[:, -1].any() and (codes[:, :-1] == raw[:, :-1]).all()  # the learned digits never change
    group = np.flatnonzero((raw == raw[40]).all(axis=1))  # the five, and any other item with their codes
    assert {40, 90, 91, 200, 250} <= set(group)
    np.testing.assert_array_equal(codes[group, -1], np.arange(len(group)))  # numbered in item order
    assert out.moved == (codes[:, -1] > 0).sum() >= 4 and out.error_increase == 0
    assert out.collision_rate == semantic_ids.collision_rate(raw[:, :-1]) > 0
    assert out.diagnostics["digits"][-1]["energy_share"] == 0  # the extra digit carries no meaning


def test_number_duplicates_numbers_each_group_in_row_order():
    codes = np.array([[1, 2, 0], [1, 2, 0], [3, 4, 0], [1, 2, 0], [3, 4, 0], [5, 5, 0]])
    np.testing.assert_array_equal(semantic_ids.number_duplicates(codes, 4)[:, -1], [0, 1, 0, 2, 1, 0])
    with pytest.raises(UsageError, match=r"3 items share their first 2 digits \[1, 2\], but the last digit has only 2 codes"):
        semantic_ids.number_duplicates(codes, 2)


def test_a_group_larger_than_the_codebook_is_an_error_naming_the_fix():
    x = vectors()
    x[:20] = x[0]  # 20 identical items, 16 codes in the extra digit
    with pytest.raises(UsageError, match=r"\d+ items share their first 3 digits.*only 16 codes.*raise codebook_size or n_digit"):
        tokenize(x)


def config_from(values: dict) -> RQVAEConfig:
    return cfg.from_layers({"tokenizer rqvae": RQVAEConfig}, [("command line", values)])["tokenizer rqvae"]


def test_settings_are_parsed_and_bad_ones_are_usage_errors():
    assert config_from({"hidden": "64,32", "vae_epochs": "3"}).hidden == (64, 32)
    assert config_from({"hidden": ""}).hidden == ()  # no hidden layer: a linear encoder and decoder
    with pytest.raises(UsageError, match=r"hidden must list positive layer widths.*got 64,0"):
        config_from({"hidden": "64,0"})
    with pytest.raises(UsageError, match=r"'hidden' must be int; got 'wide'"):
        config_from({"hidden": "wide"})
    with pytest.raises(UsageError, match=r"'n_digit' must be >= 2"):
        config_from({"n_digit": "1"})
    with pytest.raises(UsageError, match=r"'beta' must be >= 0"):
        config_from({"beta": "-1"})
    with pytest.raises(UsageError, match=r"vae_batch_size=8 is smaller than codebook_size=16.*raise vae_batch_size"):
        tokenize(vectors(), vae_batch_size=8)


def test_a_linear_autoencoder_also_fits():
    x = vectors()
    out = tokenize(x, hidden=())
    assert len(np.unique(out.codes, axis=0)) == N and out.quantizer.parameters()["encoder.0.weight"].shape == (8, DIM)


def test_training_reports_its_progress(capsys):
    fit(vectors(), vae_epochs=3)
    assert "rqvae epoch 3/3: loss" in capsys.readouterr().err


@pytest.fixture
def steps(monkeypatch):
    """Counts the training steps (RQVAEModel.loss calls); `steps.stop_at = n` makes step n a Ctrl-C."""

    class Steps:
        count, stop_at = 0, None

    original = RQVAEModel.loss

    def loss(model, x):
        Steps.count += 1
        if Steps.count == Steps.stop_at:
            raise KeyboardInterrupt
        return original(model, x)

    monkeypatch.setattr(RQVAEModel, "loss", loss)
    return Steps


def same_fit(a, b, x):
    pa, pb = a.parameters(), b.parameters()
    assert pa.keys() == pb.keys() and all(pa[k].tobytes() == pb[k].tobytes() for k in pa) and a.losses == b.losses
    np.testing.assert_array_equal(a.encode(x), b.encode(x))


def test_an_interrupted_fit_resumes_from_its_last_checkpoint(tmp_path, steps):
    x = vectors()
    whole = fit(x)  # 10 epochs of 5 steps (300 vectors, batches of 64)
    assert steps.count == 50
    messages, path = [], tmp_path / "ids.fit.pt"
    steps.count, steps.stop_at = 0, 23  # a Ctrl-C in epoch 5: the last checkpoint holds 4 epochs
    with pytest.raises(KeyboardInterrupt):
        fit(x, FitCheckpoint(path, {"fit": "a"}, messages.append, every=0))
    assert torch.load(path, weights_only=True)["state"]["epoch"] == 4
    steps.count, steps.stop_at = 0, None
    resumed = fit(x, FitCheckpoint(path, {"fit": "a"}, messages.append, every=0))
    assert steps.count == 30 and messages == [f"rqvae: resuming at epoch 4 of 10 from {path}"]  # 6 epochs, not 10
    same_fit(resumed, whole, x)  # the same network, losses and codes as an uninterrupted fit

    steps.count = 0
    again = fit(x, FitCheckpoint(path, {"fit": "a"}, messages.append, every=0))  # a finished fit's checkpoint: nothing to train
    assert steps.count == 0 and torch.load(path, weights_only=True)["state"]["epoch"] == 10
    same_fit(again, whole, x)


def test_a_damaged_or_foreign_fit_checkpoint_is_named_and_the_fit_starts_over(tmp_path, steps):
    x = vectors()
    whole = fit(x)
    path = tmp_path / "ids.fit.pt"
    steps.count, steps.stop_at = 0, 23
    with pytest.raises(KeyboardInterrupt):
        fit(x, FitCheckpoint(path, {"fit": "a"}, print, every=0))
    kept = path.read_bytes()

    weights = torch.load(path, weights_only=True)["state"]["model"]["encoder.0.weight"].numpy().tobytes()
    at = kept.find(weights) + len(weights) // 2
    path.write_bytes(kept[:at] + bytes([kept[at] ^ 0x01]) + kept[at + 1:])  # one flipped bit in a weight: torch loads it
    messages = []
    steps.count, steps.stop_at = 0, None
    same_fit(fit(x, FitCheckpoint(path, {"fit": "a"}, messages.append, every=0)), whole, x)
    assert steps.count == 50 and messages == [f"fit checkpoint {path} is damaged (ValueError: checksum mismatch); "
                                              "the fit starts from the beginning"]

    path.write_bytes(kept)  # intact, but another fit's
    messages, steps.count = [], 0
    same_fit(fit(x, FitCheckpoint(path, {"fit": "b"}, messages.append, every=0)), whole, x)
    assert steps.count == 50 and messages == [f"fit checkpoint {path} is another fit's (its fit differs); "
                                              "the fit starts from the beginning"]

    path.write_bytes(kept)
    messages, steps.count = [], 0
    fit(x, FitCheckpoint(path, {"fit": "a"}, messages.append, every=0, fresh=True))  # --rebuild_ids: from the beginning
    assert steps.count == 50 and not messages


def test_an_interrupted_semantic_id_build_resumes_the_fit_and_gives_the_same_codes(home, monkeypatch, steps):
    from test_embeddings import FakeModel, toy_dataset

    monkeypatch.setattr(embeddings, "load_model", lambda name, device: FakeModel())
    monkeypatch.setenv("RECBENCH_FIT_CHECKPOINT_SECONDS", "0")  # a checkpoint after every epoch
    data, train = toy_dataset(), np.ones(301, dtype=bool)
    entry, config = plugin_registry.load(third_party=False).entry("tokenizer", "rqvae"), small(n_digit=3)
    embedding = embeddings.EmbeddingConfig(sent_emb_pca=16)

    def build(**kwargs):
        return semantic_ids.build(data, train, entry, config, embedding, progress=False, **kwargs)

    whole = build()
    checkpoint = whole.path.with_suffix(".fit.pt")
    assert not checkpoint.exists() and sorted(whole.path.parent.iterdir()) == [whole.path]  # removed once the IDs are cached
    whole.path.unlink()
    messages, steps.count, steps.stop_at = [], 0, 23
    with pytest.raises(KeyboardInterrupt):
        build(log=messages.append)
    assert checkpoint.is_file() and not whole.path.exists()
    assert messages[-1] == f"rqvae fit stopped: its last checkpoint is kept in {checkpoint}; the same command continues from there"

    messages, steps.count, steps.stop_at = [], 0, None
    resumed = build(log=messages.append)
    assert steps.count == 30 and f"rqvae: resuming at epoch 4 of 10 from {checkpoint}" in messages
    np.testing.assert_array_equal(resumed.codes, whole.codes)
    np.testing.assert_array_equal(resumed.raw_codes, whole.raw_codes)
    assert all(resumed.parameters[k].tobytes() == whole.parameters[k].tobytes() for k in whole.parameters)
    assert sorted(whole.path.parent.iterdir()) == [whole.path]


def test_the_checkpoint_interval_is_checked_before_the_embedding(home, monkeypatch):
    from test_embeddings import FakeModel, toy_dataset

    model = FakeModel()
    monkeypatch.setattr(embeddings, "load_model", lambda name, device: model)
    monkeypatch.setenv("RECBENCH_FIT_CHECKPOINT_SECONDS", "often")
    entry = plugin_registry.load(third_party=False).entry("tokenizer", "rqvae")
    with pytest.raises(UsageError, match="RECBENCH_FIT_CHECKPOINT_SECONDS='often' is not a number of seconds"):
        semantic_ids.build(toy_dataset(), np.ones(301, dtype=bool), entry, small(n_digit=3), embeddings.EmbeddingConfig(sent_emb_pca=16),
                           progress=False)
    assert model.encoded == 0
