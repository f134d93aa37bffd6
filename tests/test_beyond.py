"""Beyond-accuracy metrics (recbench.beyond) against brute force on a tiny example, and in a run's record and page."""

import itertools
import json
import math

import numpy as np
import pytest

from recbench import beyond


def brute_force(lists, counts, n_users, vectors):
    n_items = len(counts) - 1
    listed = [i for row in lists for i in row if i > 0]
    order = sorted(range(1, n_items + 1), key=lambda i: -counts[i])
    rank = {}
    for c in set(counts[1:]):  # ties share the mean of the positions they occupy (1-based)
        at = [p + 1 for p, i in enumerate(order) if counts[i] == c]
        for i in range(1, n_items + 1):
            if counts[i] == c:
                rank[i] = sum(at) / len(at)
    ild = []
    for row in lists:
        items = [i for i in row if i > 0]
        if len(items) >= 2:
            dist = [1 - np.dot(vectors[a], vectors[b]) / (np.linalg.norm(vectors[a]) * np.linalg.norm(vectors[b]))
                    for a, b in itertools.permutations(items, 2)]
            ild.append(sum(dist) / len(dist))
    return {"coverage@10": len(set(listed)) / n_items,
            "novelty@10": sum(math.log2(n_users / max(counts[i], 1)) for i in listed) / len(listed),
            "pop_rank@10": sum(rank[i] for i in listed) / len(listed),
            "ild@10": sum(ild) / len(ild)}


def test_the_metrics_are_what_brute_force_gives_on_a_tiny_example():
    rng = np.random.default_rng(0)
    counts = np.array([0, 9, 4, 4, 0, 1, 7, 2], dtype=np.int64)  # item 4 never seen in training; items 2 and 3 tie
    lists = np.array([[1, 6, 2, 0, 0, 0, 0, 0, 0, 0], [4, 5, 7, 3, 1, 2, 6, 0, 0, 0], [6, 1, 0, 0, 0, 0, 0, 0, 0, 0],
                      [3, 0, 0, 0, 0, 0, 0, 0, 0, 0]])  # the last list has one item: no pair, no ILD
    vectors = rng.normal(size=(len(counts), 5))
    found = beyond.summarize(lists, counts, n_users=20, seconds=0.5, vectors=vectors)
    for key, value in brute_force(lists.tolist(), counts.tolist(), 20, vectors).items():
        assert found[key] == pytest.approx(value, rel=1e-12), key
    assert found["ms_per_user"] == pytest.approx(125.0)
    assert "ild@10" not in beyond.summarize(lists, counts, n_users=20, seconds=0.5)  # no cached embeddings, no ILD


@pytest.mark.slow  # trains a model
def test_a_runs_record_and_page_carry_them(cli, synthetic, home):
    cli("run", "--plugin", "sasrec", "--dataset", "ml-100k", "--n_embd=16", "--n_layer=1", "--epochs=1", "--eval_start_epoch=1",
        "--batch_size=512")
    (path,) = (home / "home" / "results" / "ml-100k").glob("*.json")
    record = json.loads(path.read_text())
    assert set(record["beyond"]) >= {"coverage@10", "novelty@10", "pop_rank@10", "ms_per_user"}
    assert 0 < record["beyond"]["coverage@10"] <= 1 and 1 <= record["beyond"]["pop_rank@10"] <= 120
    cli("leaderboard", "--results", str(path.parent.parent), "--write-markdown", str(home / "pages"))
    page = (home / "pages" / "ml-100k.md").read_text()
    assert "## Beyond accuracy" in page and f"{record['beyond']['coverage@10']:.2%}" in page
