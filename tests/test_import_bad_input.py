"""Bad embeddings and semantic-ID files given to `--embeddings` and `--semantic_ids`: each is exit
2, no traceback, and a message that names the file, the item and what was expected. On the
synthetic dataset (tests/synthetic.py: items "1".."120"); every error comes before any model is
loaded or trained."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ITEMS = [str(i) for i in range(1, 121)]
DIM = 8
IDS = ("--n_digit=4", "--codebook_size=16", "--sent_emb_pca=8")  # the tokenizer config the ID files must fit


def vectors(n: int = len(ITEMS)) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, DIM)).astype(np.float32)


def tokenize(cli, path: Path):
    return cli("tokenize", "--dataset", "ml-100k", "--tokenizer", "opq", *IDS, "--embeddings", str(path), check=2)


def run(cli, path: Path):
    return cli("run", "--plugin", "diff_grm", "--dataset", "ml-100k", "--tokenizer", "opq", *IDS, "--epochs=1", "--beam_size_val=16", "--beam_size_test=16",
               "--semantic_ids", str(path), check=2)


def refused(proc, path: Path, *words: str) -> None:
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in text
    flat = " ".join(text.split())
    assert str(path) in flat, text
    for word in words:
        assert word in flat, (word, text)


def ids(mapping_of=lambda item: [int(item) % 16, 0, 0, int(item) // 16]) -> dict:
    return {item: mapping_of(item) for item in ITEMS}


@pytest.fixture
def tmp(synthetic, tmp_path) -> Path:
    return tmp_path


def test_embeddings_of_two_dimensions(cli, tmp):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = vectors().tolist()
    rows[4] = rows[4][:5]
    path = tmp / "emb.parquet"
    pq.write_table(pa.table({"item_id": ITEMS, "embedding": rows}), path)
    refused(tokenize(cli, path), path, "item '5'", "5 values", f"expected {DIM}")


def test_embeddings_whose_size_does_not_fit_their_item_order(cli, tmp):
    path = tmp / "all-MiniLM-L6-v2.sent_emb"
    vectors()[:, :-1].ravel()[:-3].tofile(path)  # genrec's raw float32 rows, three values short
    (tmp / "id_mapping.json").write_text(json.dumps({"id2item": ["[PAD]", *ITEMS]}))
    refused(tokenize(cli, path), path, "not a whole number of rows", "120 items", "dimension differs")


def test_embeddings_missing_an_item(cli, tmp):
    path = tmp / "emb.npz"
    np.savez(path, item_ids=np.array(ITEMS[:-2]), embeddings=vectors(len(ITEMS) - 2))
    refused(tokenize(cli, path), path, "no vector for item '119'", "2 of its 120 items are missing")


def test_embeddings_with_nan(cli, tmp):
    data = vectors()
    data[9, 3] = np.nan
    path = tmp / "emb.npy"
    np.save(path, data)
    (tmp / "emb.npy.items.txt").write_text("\n".join(ITEMS) + "\n")
    refused(tokenize(cli, path), path, "item '10'", "NaN or infinite", "expected finite numbers")


def test_embeddings_with_an_item_twice(cli, tmp):
    path = tmp / "emb.npz"
    np.savez(path, item_ids=np.array(ITEMS + ["7"]), embeddings=vectors(len(ITEMS) + 1))
    refused(tokenize(cli, path), path, "item '7' appears twice", "one vector")


def test_unreadable_embeddings(cli, tmp):
    path = tmp / "emb.npz"
    path.write_bytes(b"not a zip file at all")
    refused(tokenize(cli, path), path, "Cannot read", ".npz")


def test_semantic_ids_with_an_item_twice(cli, tmp):
    path = tmp / "ids.json"
    text = json.dumps(ids())
    path.write_text(text[:-1] + ', "7": [1, 2, 3, 4]}')
    refused(run(cli, path), path, "item '7' appears twice", "one ID")


def test_semantic_ids_missing_an_item(cli, tmp):
    path = tmp / "ids.json"
    mapping = ids()
    del mapping["42"]
    path.write_text(json.dumps(mapping))
    refused(run(cli, path), path, "no semantic ID for item '42'", "every item")


def test_semantic_ids_outside_the_codebook(cli, tmp):
    path = tmp / "ids.json"
    mapping = ids()
    mapping["3"] = [3, 0, 16, 0]
    path.write_text(json.dumps(mapping))
    refused(run(cli, path), path, "item '3' has digit 16", "0..15", "codebook_size=16")


def test_semantic_ids_of_another_length(cli, tmp):
    path = tmp / "ids.json"
    mapping = ids()
    mapping["8"] = [1, 2, 3]
    path.write_text(json.dumps(mapping))
    refused(run(cli, path), path, "item '8' has 3 digits", "expected 4")


def test_unreadable_semantic_ids(cli, tmp):
    path = tmp / "ids.json"
    path.write_text('{"1": [0, 0, 0, 1], ')
    refused(run(cli, path), path, "Cannot read", "as JSON")


def test_a_missing_file(cli, tmp):
    path = tmp / "nowhere.json"
    refused(run(cli, path), path, "no such file")


def test_an_item_id_generator_takes_no_imports(cli, tmp):
    path = tmp / "ids.json"
    path.write_text(json.dumps(ids()))
    proc = cli("run", "--plugin", "sasrec", "--dataset", "ml-100k", "--semantic_ids", str(path), check=2)
    assert "Traceback" not in proc.stderr and "'sasrec' ranks item ids" in proc.stderr and "diff_grm" in proc.stderr
