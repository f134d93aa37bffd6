"""The example plugin package of the documentation (docs/plugin-example.md, "An example package"): the page
shows every file of tests/packages/recbench-example exactly, and the package, installed with pip, works as it says."""

import json
import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tests" / "packages" / "recbench-example"
EXAMPLE_PAGE = ROOT / "docs" / "plugin-example.md"
BUILD_ARTEFACTS = {"build", "dist", "__pycache__"}


def shown_files() -> list[tuple[str, str]]:
    """(path, content) of every "`PATH`" line followed by a fenced block on the page."""
    text = EXAMPLE_PAGE.read_text(encoding="utf-8")
    return re.findall(r"^`([^`\n]+)`\n\n```[\w-]*\n(.*?)^```$", text, flags=re.M | re.S)


def package_files() -> set[str]:
    return {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*")
            if p.is_file() and not any(part in BUILD_ARTEFACTS or part.endswith(".egg-info") for part in p.relative_to(PACKAGE).parts)}


def test_the_docs_show_every_file_of_the_example_package_exactly():
    shown = shown_files()
    assert sorted(path for path, _ in shown) == sorted(package_files())  # each file once
    for path, content in shown:
        assert content == (PACKAGE / path).read_text(encoding="utf-8"), f"{EXAMPLE_PAGE.name}'s {path} differs from {PACKAGE / path}"


def test_gru4rec_scores_a_user_the_same_alone_and_in_any_batch(monkeypatch):
    monkeypatch.syspath_prepend(str(PACKAGE))
    from recbench_example.gru4rec import GRU4Rec

    from recbench.data import Batch

    torch.manual_seed(0)
    model = GRU4Rec(n_items=30, n_embd=8, dropout=0.25).eval()
    history = torch.tensor([[0, 0, 0, 0, 3, 7, 9], [0, 0, 0, 0, 0, 0, 5], [4, 8, 15, 16, 23, 29, 2], [0, 0, 11, 12, 13, 14, 1]])

    def scores(h):
        return model.score(Batch(users=torch.arange(len(h)), history=h, target=torch.ones(len(h), dtype=torch.long)))

    together = scores(history)
    assert together.shape == (4, 31)
    for row in range(len(history)):
        alone = scores(history[row:row + 1, (history[row] == 0).sum():])  # its own length: no padding at all
        torch.testing.assert_close(together[row], alone[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(scores(torch.cat([torch.zeros(4, 5, dtype=torch.long), history], 1)), together, rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # fits two k-means trees of a hundred k-means each
def test_kmeans_tree_is_deterministic_and_decodes_to_the_node_its_codes_reach(monkeypatch):
    import numpy as np

    from recbench.api import TokenizerConfig

    monkeypatch.syspath_prepend(str(PACKAGE))
    from recbench_example.kmeans_tree import KMeansTree, KMeansTreeTokenizer

    x = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    config = TokenizerConfig(n_digit=3, codebook_size=4, seed=1)
    tree, again = KMeansTreeTokenizer().fit(x, config), KMeansTreeTokenizer().fit(x, config)
    for key, value in tree.parameters().items():
        np.testing.assert_array_equal(value, again.parameters()[key])
    codes = tree.encode(x)
    assert codes.shape == (300, 3) and codes.dtype == np.int64 and 0 <= codes.min() and codes.max() < 4
    errors = [((x - tree.decode(codes, d)) ** 2).sum(1).mean() for d in range(4)]
    assert errors == sorted(errors, reverse=True)

    # the root (0) has children 1 and 2; node 1 has one child, 3; node 2 has none
    centroids = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float32)
    small = KMeansTree(centroids, np.array([[1, 2], [3, -1], [-1, -1], [-1, -1]]), n_digit=2)
    np.testing.assert_array_equal(small.encode(np.array([[1.1, 0.2], [0.9, 1.2]], dtype=np.float32)), [[0, 0], [1, 0]])
    codes = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(small.decode(codes), [[1, 1], [1, 0], [0, 1], [0, 1]])  # no code 1 under node 1
    np.testing.assert_array_equal(small.decode(codes, 1), [[1, 0], [1, 0], [0, 1], [0, 1]])
    assert not small.decode(codes, 0).any()


def test_the_installed_package_lists_its_plugins(cli_with_plugins):
    data = cli_with_plugins.json("plugins", "--json")
    found = {p["name"]: p for p in data["plugins"] if p["package"] == "recbench-example"}
    assert {(n, p["kind"], p["version"]) for n, p in found.items()} == {("gru4rec", "generator", "0.1.0"),
                                                                        ("kmeans_tree", "tokenizer", "0.1.0"),
                                                                        ("events", "dataset", "0.1.0")}


def record(home, generator: str) -> dict:
    [path] = (home / "home" / "results" / "ml-100k").glob(f"*__{generator}__*.json")
    return json.loads(path.read_text())


def test_gru4rec_learns_the_sequences_better_than_popularity(cli_with_plugins, synthetic, home):
    cli_with_plugins("run", "--plugin", "pop", "--dataset", "ml-100k")
    cli_with_plugins("run", "--plugin", "gru4rec", "--dataset", "ml-100k", "--epochs=3", "--eval_start_epoch=1", "--n_embd=32",
                     "--lr=0.005", "--max_seq_len=20")
    gru4rec, pop = record(home, "gru4rec"), record(home, "pop")
    assert gru4rec["generator"] == {"name": "gru4rec", "package": "recbench-example", "version": "0.1.0"}
    assert gru4rec["metrics"]["test"]["ndcg@10"] > 5 * pop["metrics"]["test"]["ndcg@10"]


def test_kmeans_tree_gives_unique_ids_that_a_semantic_id_generator_runs_on(cli_with_plugins, synthetic, home):
    ids = ["--n_digit=3", "--codebook_size=8", "--sent_emb_pca=16"]
    summary = cli_with_plugins.json("tokenize", "--dataset", "ml-100k", "--tokenizer", "kmeans_tree", *ids, "--json")
    assert summary["tokenizer"] == "kmeans_tree" and summary["items"] == summary["unique_ids"] == 120
    assert [d["digit"] for d in summary["digits"]] == [1, 2, 3] and summary["digits"][-1]["told_apart"] == 1.0
    assert all(0 < d["codes_used"] <= 8 and d["energy_share"] >= 0 for d in summary["digits"])
    tiny = ["--n_embd=16", "--n_head=2", "--n_inner=32", "--encoder_n_layer=1", "--decoder_n_layer=1", "--max_seq_len=10",
            "--batch_size=64", "--epochs=1", "--warmup_steps=0", "--beam_size_val=8", "--beam_size_test=8"]
    cli_with_plugins("run", "--plugin", "diff_grm", "--dataset", "ml-100k", "--tokenizer", "kmeans_tree", *ids, *tiny)
    run = record(home, "diff_grm")
    assert run["tokenizer"]["name"] == "kmeans_tree" and run["tokenizer"]["package"] == "recbench-example"
    assert run["semantic_ids"]["n_digit"] == 3 and 0 <= run["metrics"]["test"]["ndcg@10"] <= 1


def write_events(folder: Path, synthetic: Path) -> Path:
    """The synthetic dataset (tests/synthetic.py) as the `events` dataset's two CSV files in `folder`."""
    import csv

    from synthetic import ML100K_GENRE_COLUMNS

    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "interactions.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["user", "item", "timestamp"])
        for line in (synthetic / "ml-100k" / "u.data").read_text().splitlines():
            user, item, _, stamp = line.split("\t")
            out.writerow([f"u{user}", f"i{item}", stamp])
    with (folder / "items.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["item", "title", "categories"])
        for line in (synthetic / "ml-100k" / "u.item").read_text(encoding="latin-1").splitlines():
            fields = line.split("|")
            out.writerow([f"i{fields[0]}", fields[1], "|".join(g for g, flag in zip(ML100K_GENRE_COLUMNS, fields[5:]) if flag == "1")])
    return folder


def test_the_events_dataset_reads_csv_files_and_names_the_line_of_a_bad_one(monkeypatch, tmp_path, synthetic_folder):
    monkeypatch.syspath_prepend(str(PACKAGE))
    from recbench_example.events import Events, EventsConfig

    from recbench.data import Source
    from recbench.errors import DataError

    dataset = Events()
    empty = Source("events", mirror=tmp_path / "mirror", cache=tmp_path / "cache", download=False)
    try:
        dataset.locate(empty)
        raise AssertionError("no files, yet located")
    except DataError as err:
        assert "events/interactions.csv" in str(err) and str(tmp_path / "cache") in str(err)
    files = write_events(tmp_path / "mirror" / "events", synthetic_folder)
    located = dataset.locate(Source("events", mirror=tmp_path / "mirror", cache=tmp_path / "cache", download=False))
    assert located == [files / "interactions.csv", files / "items.csv"]
    raw = dataset.read(located, EventsConfig())
    assert raw.interactions["user"].nunique() == 150 and len(raw.items) == 120 and raw.report == {"dropped_before_since": 0}
    assert raw.items["i1"] == {"title": "Explosive Action Story 1 (1981)", "categories": ["Action"]}
    middle = int(raw.interactions["timestamp"].median())
    later = dataset.read(located, EventsConfig(since=middle))
    assert (later.interactions["timestamp"] >= middle).all() and later.report["dropped_before_since"] == len(raw.interactions) - len(later.interactions)
    (files / "interactions.csv").write_text("user,item,timestamp\nu1,i1,880000000\nu1,i2,yesterday\n")
    try:
        dataset.read(located, EventsConfig())
        raise AssertionError("a bad timestamp was read")
    except DataError as err:
        assert str(err) == f"{files / 'interactions.csv'}, line 3: the timestamp must be unix seconds; got 'yesterday'."


def test_the_installed_events_dataset_runs_from_the_download_cache_and_its_setting_makes_new_data(cli_with_plugins, home, synthetic_folder):
    """Installed with pip, as a user installs it: the files placed in RECBENCH_DATA/raw/events, no mirror."""
    write_events(home / "data" / "raw" / "events", synthetic_folder)
    stats = cli_with_plugins.json("datasets", "stats", "my-events", "--json")  # by its alias
    assert (stats["dataset"], stats["users"], stats["items"], stats["timestamps"]) == ("events", 150, 120, True)
    assert stats["dropped_before_since"] == 0 and stats["items_with_text"] == 1.0
    cli_with_plugins("run", "--plugin", "pop", "--dataset", "events", "--since=880500000")
    [path] = (home / "home" / "results" / "events").glob("*__pop__*.json")
    run = json.loads(path.read_text())
    assert run["config"]["dataset"] == {"k_core": 0, "since": 880500000}
    assert run["dataset"]["fingerprint"] != stats["fingerprint"]  # --since prepares other data, not the cached one
    assert 0 <= run["metrics"]["test"]["ndcg@10"] <= 1
