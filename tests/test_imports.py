"""Embeddings and semantic IDs from files: every accepted format reads to the same vectors, an
export of a tokenize gives a run exactly the metrics and per-user ranks of the run that fitted the
IDs, a file of the sentence model's own vectors gives its IDs, collisions in imported IDs are
resolved and reported, and the files enter the config fingerprint by checksum only. On the
synthetic dataset (tests/synthetic.py); bad files: tests/test_import_bad_input.py."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from recbench import registry as plugin_registry
from recbench.data import Prepared, Source, prepare
from recbench.embedding_files import aligned
from recbench.errors import DataError

SMALL_IDS = ("--tokenizer", "opq", "--sent_emb_pca=32", "--n_digit=4", "--codebook_size=16")
# small settings, so that a semantic-ID generator trains and decodes in seconds; only keys its config has are given
SMALL = {"epochs": 2, "eval_start_epoch": 1, "n_embd": 16, "n_head": 2, "head_dim": 8, "n_layer": 1, "encoder_n_layer": 1,
         "decoder_n_layer": 1, "n_inner": 32, "batch_size": 64, "warmup_steps": 0, "beam_size_val": 16, "beam_size_test": 16,
         "eval_batch_size": 64, "user_buckets": 10, "n_digit": 4}
SMALL_TOKENIZER = {"sent_emb_pca": 32, "n_digit": 4, "codebook_size": 16, "vae_epochs": 3, "latent_dim": 8, "hidden": "32"}


def small(generator: str) -> tuple[list[str], list[str]]:
    """(tokenize arguments, run arguments) of `generator` on ml-100k, its default tokenizer at small settings."""
    from dataclasses import fields

    from recbench.embeddings import EmbeddingConfig

    registry = plugin_registry.registry()
    gen = registry.get("generator", generator)
    tokenizer = registry.get("tokenizer", gen.default_tokenizer)
    keys = {f.name for f in fields(tokenizer.Config)} | {f.name for f in fields(EmbeddingConfig)}
    ids = ["--tokenizer", gen.default_tokenizer, *(f"--{k}={v}" for k, v in SMALL_TOKENIZER.items() if k in keys)]
    run = ["--plugin", generator, "--dataset", "ml-100k", *ids,
           *(f"--{k}={v}" for k, v in SMALL.items() if k in {f.name for f in fields(gen.Config)} and k not in SMALL_TOKENIZER)]
    return ids, run


def tiny(items: list[str]) -> Prepared:
    """A prepared dataset of `items`, one user who saw them all (what the readers align to)."""
    n = len(items)
    return Prepared("tiny", "f" * 16, np.array(["u"]), np.array(["", *items]), np.array([0, n], dtype=np.int64),
                    np.arange(1, n + 1, dtype=np.int32), None, [{}] + [{"title": i} for i in items])


def record_of(folder: Path) -> dict:
    (path,) = folder.rglob("*.json")
    return json.loads(path.read_text())


def test_every_embeddings_format_gives_the_same_vectors(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    items = [f"I{i}" for i in range(6)]
    order = items[::-1] + ["only-in-the-file"]  # another order, and an item the dataset lacks
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(order), 5)).astype(np.float32)
    expected = np.zeros((7, 5), dtype=np.float32)
    expected[1:] = vectors[[order.index(i) for i in items]]
    np.savez(tmp_path / "e.npz", item_ids=np.array(order), embeddings=vectors)
    np.save(tmp_path / "e.npy", vectors)
    (tmp_path / "e.npy.items.txt").write_text("\n".join(order) + "\n")
    pq.write_table(pa.table({"item_id": order, "embedding": vectors.tolist()}), tmp_path / "e.parquet")
    genrec = tmp_path / "genrec" / "processed"
    genrec.mkdir(parents=True)
    vectors.tofile(genrec / "sentence-t5-base.sent_emb")  # genrec's cache: float32 rows in id order, no header
    (genrec / "id_mapping.json").write_text(json.dumps({"id2item": ["[PAD]", *order], "item2id": {}}))
    for path in (tmp_path / "e.npz", tmp_path / "e.npy", tmp_path / "e.parquet", genrec / "sentence-t5-base.sent_emb"):
        np.testing.assert_array_equal(aligned(path, tiny(items)), expected, err_msg=str(path))


def test_imported_ids_with_collisions_are_resolved_and_reported(tmp_path):
    from recbench import id_files

    registry = plugin_registry.registry()
    items = ["a", "b", "c", "d"]
    path = tmp_path / "Beauty.sem_ids"  # genrec's bare {item: digits}
    path.write_text(json.dumps({"a": [1, 2], "b": [1, 2], "c": [0, 3], "d": [1, 2]}))
    logged = []
    for tokenizer, expected in (("opq", [[1, 2], [1, 0], [0, 3], [1, 1]]), ("rqvae", [[1, 0], [1, 1], [0, 0], [1, 2]])):
        entry = registry.entry("tokenizer", tokenizer)
        config = entry.obj.Config(n_digit=2, codebook_size=4)
        ids = id_files.load(path, tiny(items), entry, config, {}, logged.append)
        assert ids.codes[1:].tolist() == expected, tokenizer  # first item keeps its ID / TIGER's numbering digit
        assert ids.raw_codes[1:].tolist() == [[1, 2], [1, 2], [0, 3], [1, 2]] and ids.collision_rate == 0.75
        assert ids.unique_ids == 4 and ids.moved == (2 if tokenizer == "opq" else 3)
    assert "2 items shared an ID and were given another last digit" in logged[0]
    crowded = tmp_path / "crowded.json"
    crowded.write_text(json.dumps({i: [0, 0] for i in items}))
    entry = registry.entry("tokenizer", "opq")
    with pytest.raises(DataError, match=r"crowded.json: 4 items share their first 1 digits"):
        id_files.load(crowded, tiny(items), entry, entry.obj.Config(n_digit=2, codebook_size=2), {})


@pytest.mark.slow
@pytest.mark.parametrize("generator", ["diff_grm", "ar_grm", "tiger", "rpg"])
def test_exported_ids_give_the_fitted_runs_metrics_and_ranks(cli, synthetic, tmp_path, generator):
    """Exported after a tokenize, read back by `run --semantic_ids`: the same IDs, so the same
    model, metrics, per-user ranks and ID-level ranks as the run that used the cached fit."""
    ids, run = small(generator)
    exported = tmp_path / "ids.json"
    cli("tokenize", "--dataset", "ml-100k", *ids, "--export", str(exported))
    cli("run", *run, "--results-dir", str(tmp_path / "fitted"))
    cli("run", *run, "--semantic_ids", str(exported), "--results-dir", str(tmp_path / "imported"))
    fitted, imported = record_of(tmp_path / "fitted"), record_of(tmp_path / "imported")
    assert imported["metrics"] == fitted["metrics"]
    assert imported["per_user"] == fitted["per_user"] and imported["id_level"] == fitted["id_level"]
    assert imported["semantic_ids"] == fitted["semantic_ids"]
    assert imported["config"]["imports"]["semantic_ids_sha256"] and "imports" not in fitted["config"]
    assert imported["config_fingerprint"] != fitted["config_fingerprint"]  # another row: the IDs came from a file


def test_parquet_export_holds_what_the_json_one_does(cli, synthetic, tmp_path):
    from recbench import id_files

    cli("tokenize", "--dataset", "ml-100k", *SMALL_IDS, "--export", str(tmp_path / "ids.json"))
    cli("tokenize", "--dataset", "ml-100k", *SMALL_IDS, "--export", str(tmp_path / "ids.parquet"))
    digits, raw, about = id_files.read(tmp_path / "ids.json")
    assert id_files.read(tmp_path / "ids.parquet") == (digits, raw, about)
    assert about["tokenizer"] == "opq" and about["n_digit"] == 4 and about["codebook_size"] == 16
    assert len(digits) == 120 and len({tuple(d) for d in digits.values()}) == 120  # unique, resolved
    assert about["moved"] == sum(digits[i] != raw[i] for i in digits)
    assert [d["codes_used"] for d in about["diagnostics"]["digits"]] and 0 <= about["collision_rate"] < 1


def test_a_file_of_the_sentence_models_vectors_gives_its_ids(cli, synthetic, tmp_path):
    """The cached embeddings written to a file and given back with --embeddings: the same IDs."""
    from recbench import embeddings

    cli("tokenize", "--dataset", "ml-100k", *SMALL_IDS, "--export", str(tmp_path / "model.json"))
    ds = plugin_registry.registry().get("dataset", "ml-100k")
    data = prepare(ds, ds.Config(), Source(ds.name))
    cached = embeddings.embed(data, embeddings.EmbeddingConfig(), progress=False)
    assert cached.seconds is None  # from the cache the tokenize filled, not encoded again
    np.savez(tmp_path / "vectors.npz", item_ids=data.item_ids[1:], embeddings=cached.vectors[1:])
    out = cli("tokenize", "--dataset", "ml-100k", *SMALL_IDS, "--embeddings", str(tmp_path / "vectors.npz"),
              "--export", str(tmp_path / "file.json"), "--json")
    assert "read from" in out.stderr and "vectors.npz" in json.loads(out.stdout)["embedding_model"]
    model, from_file = (json.loads((tmp_path / name).read_text()) for name in ("model.json", "file.json"))
    assert from_file["items"] == model["items"] and from_file["raw_items"] == model["raw_items"]


def test_imported_files_enter_the_fingerprint_by_checksum(synthetic, tmp_path):
    from recbench import runner
    from recbench.run_record import config_fingerprint

    (tmp_path / "a").mkdir()
    first = tmp_path / "a" / "ids.json"
    first.write_text(json.dumps({"format": "recbench semantic IDs", "items": {}}))
    copy = tmp_path / "copy.json"
    shutil.copy(first, copy)

    def resolved(**overrides):
        spec = runner.RunSpec("diff_grm", "ml-100k", overrides={"epochs": "1", **overrides})
        return runner.resolve(spec, device=torch.device("cpu"))

    plain = resolved()
    assert "imports" not in plain.configs  # a run without the options has the config it always had
    with_file = resolved(semantic_ids=str(first))
    assert with_file.configs["imports"].semantic_ids_sha256 == hashlib.sha256(first.read_bytes()).hexdigest()
    assert config_fingerprint(with_file) != config_fingerprint(plain)
    assert config_fingerprint(resolved(semantic_ids=str(copy))) == config_fingerprint(with_file)  # same file elsewhere: same row
    copy.write_text(json.dumps({"format": "recbench semantic IDs", "items": {"1": [0, 0, 0, 0]}}))
    assert config_fingerprint(resolved(semantic_ids=str(copy))) != config_fingerprint(with_file)  # changed file: another row
    with pytest.raises(DataError, match="the file changed since that run"):  # a record reproduced over a changed file
        resolved(semantic_ids=str(copy), semantic_ids_sha256=with_file.configs["imports"].semantic_ids_sha256)
