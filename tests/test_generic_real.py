"""A local dataset is a built-in one in another form: the built-in Beauty written out as CSV + JSON
lines and added with `recbench datasets add` prepares to the same users, items, sequences and split,
gives the same POP test metrics, and a trained SASRec's record differs from the built-in's only in
the dataset's name, fingerprint and files; RecBole's atomic ml-100k files, added as a local dataset,
prepare as the built-in ml-100k does. Real data (../shared/data); skipped where it is absent."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from recbench import registry as plugin_registry
from recbench.data import Split, prepare
from recbench.results import records

pytestmark = pytest.mark.slow

SAME_STATS = ("users", "items", "interactions", "mean_seq_len", "median_seq_len", "density", "items_with_text", "timestamps")
# what two runs of one config on one machine differ in whatever the data: the run's identity, times, memory, paths
PER_RUN = ("run_id", "created", "command", "train", "eval", "peak_memory_mb", "checkpoints", "environment", "device", "trackers")


def prepared(name: str):
    entry = plugin_registry.load(third_party=False).entry("dataset", name)
    return prepare(entry.obj, entry.obj.Config())


def write_generic(data, folder: Path) -> tuple[Path, Path]:
    """A prepared dataset written in the generic format: interactions CSV in sequence order, no
    timestamps (the order of rows is the order of the items), and items as JSON lines."""
    folder.mkdir(parents=True, exist_ok=True)
    inter, items = folder / "interactions.csv", folder / "items.jsonl"
    with open(inter, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["user_id", "item_id"])
        for u, user in enumerate(data.user_ids):
            writer.writerows((user, data.item_ids[i]) for i in data.sequence(u))
    with open(items, "w", encoding="utf-8") as f:
        for item, text in zip(data.item_ids[1:], data.item_text[1:]):
            f.write(json.dumps({"item_id": str(item), **text}, ensure_ascii=False) + "\n")
    return inter, items


def assert_same_data(a, b):
    """Equal users, items (raw ids, in the same numbering), sequences, item text and split."""
    assert {k: a.stats()[k] for k in SAME_STATS} == {k: b.stats()[k] for k in SAME_STATS}
    assert np.array_equal(a.user_ids, b.user_ids) and np.array_equal(a.item_ids, b.item_ids)
    assert np.array_equal(a.offsets, b.offsets) and np.array_equal(a.items, b.items)
    sa, sb = Split(a, 50), Split(b, 50)
    for part in ("valid", "test"):
        for x, y in zip(sa.eval_positions(part), sb.eval_positions(part)):
            assert np.array_equal(x, y)
    assert np.array_equal(sa.train_item_counts(), sb.train_item_counts())


def latest_record(home: Path, dataset: str) -> records.Record:
    found = sorted((home / "home" / "results" / dataset).glob("*.json"))
    assert len(found) == 1, found
    return records.load(found[0])


def comparable(record: records.Record) -> dict:
    """The record without what differs run to run, and without the dataset's name, fingerprint and files."""
    data = record.to_dict()
    for key in PER_RUN:
        data.pop(key, None)
    data["dataset"] = {k: v for k, v in data["dataset"].items() if k not in ("name", "fingerprint", "files", "report")}
    data["beyond"] = {k: v for k, v in data["beyond"].items() if k != "ms_per_user"}  # a time, like the others
    return data


def test_beauty_written_as_generic_files_is_the_builtin_beauty(mirror, cli, home, tmp_path):
    builtin = prepared("beauty")
    inter, items = write_generic(builtin, tmp_path / "beauty-files")
    proc = cli("datasets", "add", "my-beauty", "--interactions", str(inter), "--items", str(items))
    assert "Added local dataset 'my-beauty': 22,363 users, 12,101 items, 198,502 interactions" in proc.stdout
    local = prepared("my-beauty")
    assert_same_data(builtin, local)
    assert local.item_text == builtin.item_text  # title, brand, categories as the built-in reads them
    assert local.report == {"repeated_interactions": 0, "items_without_text": 0, "items_not_in_interactions": 0}
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in cli("datasets").stdout.splitlines() if "│" in line]
    assert ["my-beauty", "", "local: interactions.csv + items.jsonl", "(local)", "local", "yes"] in rows

    for name in ("beauty", "my-beauty"):
        cli("run", "--plugin", "pop", "--dataset", name)
    pop_builtin, pop_local = latest_record(home, "beauty"), latest_record(home, "my-beauty")
    assert pop_local.metrics.test == pop_builtin.metrics.test and pop_local.metrics.valid == pop_builtin.metrics.valid
    assert np.array_equal(pop_local.test_ranks(), pop_builtin.test_ranks())
    assert np.array_equal(pop_local.users(), pop_builtin.users())
    assert pop_builtin.dataset.files is None and "files" not in pop_builtin.to_dict()["dataset"]  # a plugin's dataset: none
    assert [Path(f["path"]) for f in pop_local.dataset.files] == [inter.resolve(), items.resolve()]
    for f in pop_local.dataset.files:
        assert f["sha256"] == hashlib.sha256(Path(f["path"]).read_bytes()).hexdigest() and f["bytes"] == Path(f["path"]).stat().st_size


def test_a_trained_generators_record_differs_only_in_the_dataset(mirror, cli, home, tmp_path):
    """SASRec, one epoch of a small model (30-45 s per run on 2 shared CPU cores)."""
    inter, items = write_generic(prepared("beauty"), tmp_path / "beauty-files")
    cli("datasets", "add", "my-beauty", "--interactions", str(inter), "--items", str(items))
    small = ("--epochs=1", "--n_embd=16", "--n_layer=1", "--batch_size=512", "--eval_batch_size=1024", "--cpu_amp=false")
    for name in ("beauty", "my-beauty"):
        cli("run", "--plugin", "sasrec", "--dataset", name, "--device", "cpu", *small)
    builtin, local = latest_record(home, "beauty"), latest_record(home, "my-beauty")
    assert (local.dataset.name, builtin.dataset.name) == ("my-beauty", "beauty")
    assert local.dataset.fingerprint != builtin.dataset.fingerprint and local.dataset.files
    assert np.array_equal(local.test_ranks(), builtin.test_ranks())
    assert local.metrics.to_dict() == builtin.metrics.to_dict()
    assert comparable(local) == comparable(builtin)


def test_recbole_atomic_ml100k_prepares_as_the_builtin(mirror, cli):
    folder = mirror / "movielens" / "ml-100k"
    proc = cli("datasets", "add", "ml-100k-recbole", "--interactions", str(folder / "ml-100k.inter"),
               "--items", str(folder / "ml-100k.item"))
    assert "943 users, 1,682 items, 100,000 interactions" in proc.stdout
    builtin, local = prepared("ml-100k"), prepared("ml-100k-recbole")
    assert_same_data(builtin, local)
    assert np.array_equal(builtin.times, local.times)
    # RecBole's field names mapped to recbench's: movie_title -> title, release_year -> year, class -> genres
    assert local.item_text[1] == {"title": builtin.item_text[1]["title"], "year": builtin.item_text[1]["year"],
                                  "genres": " ".join(builtin.item_text[1]["genres"])}
