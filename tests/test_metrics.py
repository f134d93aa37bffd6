"""Metric code against values worked out by hand."""

import math

import numpy as np
import pytest
import torch

from recbench import metrics


def test_ranks_to_metrics_by_hand():
    # three users: target at rank 0, at rank 6 (inside top 10, outside top 5), and absent
    m = metrics.summarize(np.array([0, 6, -1]))
    assert m["recall@5"] == pytest.approx(1 / 3)
    assert m["recall@10"] == pytest.approx(2 / 3)
    assert m["recall@20"] == pytest.approx(2 / 3)
    assert m["ndcg@5"] == pytest.approx((1.0 + 0 + 0) / 3)
    assert m["ndcg@10"] == pytest.approx((1.0 + 1 / math.log2(8) + 0) / 3)
    assert m["mrr"] == pytest.approx((1.0 + 1 / 7 + 0) / 3)


def test_target_outside_top_k_scores_zero_but_counts_for_mrr():
    m = metrics.summarize(np.array([24]))
    assert m["recall@20"] == 0 and m["ndcg@20"] == 0
    assert m["mrr"] == pytest.approx(1 / 25)


def test_full_ranking_ties_are_pessimistic():
    # items 1..5; target 3 has score 0.5, item 1 is higher and item 4 ties with it
    scores = torch.tensor([[99.0, 0.9, 0.1, 0.5, 0.5, 0.2]])  # column 0 is padding and never counts
    rank = metrics.full_ranks(scores, torch.tensor([3]))
    assert rank.tolist() == [2]  # item 1 above, the tie above, then the target
    m = metrics.summarize(rank.numpy())
    assert m["ndcg@5"] == pytest.approx(1 / math.log2(4))
    # a model that gives every item the same score gets the worst rank, not the best
    flat = metrics.full_ranks(torch.zeros(1, 6), torch.tensor([2]))
    assert flat.tolist() == [4]


def test_k_larger_than_item_count():
    # 3 items: every rank is < 5, so Recall@5/10/20 is 1 and NDCG is the same at every K
    scores = torch.tensor([[0.0, 0.3, 0.2, 0.1], [0.0, 0.3, 0.2, 0.1]])
    ranks = metrics.full_ranks(scores, torch.tensor([1, 3])).numpy()
    assert ranks.tolist() == [0, 2]
    m = metrics.summarize(ranks)
    assert m["recall@5"] == m["recall@20"] == 1.0
    assert m["ndcg@5"] == m["ndcg@20"] == pytest.approx((1.0 + 1 / math.log2(4)) / 2)


def test_list_ranks_from_a_generated_list():
    ranked = torch.tensor([[5, 3, 9], [1, 2, 4]])
    assert metrics.list_ranks(ranked, torch.tensor([9, 7])).tolist() == [2, -1]


def test_per_user_values_are_kept():
    per_user = metrics.per_user(np.array([0, 1, -1]))
    assert per_user["recall@5"].tolist() == [1.0, 1.0, 0.0]
    assert per_user["ndcg@10"][1] == pytest.approx(1 / math.log2(3))


def brute_force_id_level(lists, targets, raw):
    """The reference's count, written out: map each listed item to its unresolved ID, keep each ID's
    first occurrence, and the rank is the place of the target's ID in that list (-1 if absent)."""
    out = []
    for items, target in zip(lists, targets):
        distinct = []
        for item in items:
            if item and raw[item] not in distinct:
                distinct.append(raw[item])
        out.append(distinct.index(raw[target]) if raw[target] in distinct else -1)
    return out


def test_id_level_ranks_equal_a_brute_force_count_with_collisions_and_duplicates():
    # 8 items; unresolved IDs: items 1, 2, 3 collide (ID a), 4 and 5 collide (ID b), 6, 7, 8 are alone
    raw = {1: "a", 2: "a", 3: "a", 4: "b", 5: "b", 6: "c", 7: "d", 8: "e"}
    number = {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}
    id_of = torch.tensor([0] + [number[raw[i]] for i in range(1, 9)])
    lists = [
        [2, 6, 1, 7],  # target 3 shares ID a with item 2, listed first: an ID-level hit at 0, an item-level miss
        [4, 5, 6, 7],  # target 6: the duplicate ID b (items 4, 5) counts once, so 6 is at ID place 1, item place 2
        [6, 7, 8, 1],  # target 5: ID b not listed: a miss at both levels
        [7, 4, 8, 0],  # target 4: ID hit at 1; an empty slot (0) is no ID
        [1, 2, 3, 5],  # target 5: ID a three times, then b: ID place 1, item place 3
    ]
    targets = [3, 6, 5, 4, 5]
    ranks = metrics.id_level_ranks(torch.tensor(lists), torch.tensor(targets), id_of)
    assert ranks.tolist() == brute_force_id_level(lists, targets, {0: None, **raw}) == [0, 1, -1, 1, 1]
    items = metrics.list_ranks(torch.tensor(lists), torch.tensor(targets))
    assert items.tolist() == [-1, 2, -1, 1, 3]
    # with unique IDs (no collision) the two levels agree
    unique = torch.arange(9)
    assert metrics.id_level_ranks(torch.tensor(lists), torch.tensor(targets), unique).tolist() == items.tolist()
    rng = np.random.default_rng(0)
    for _ in range(20):  # random tables with many collisions against the brute force
        ids = rng.integers(1, 6, size=30)
        raw = {i: int(ids[i - 1]) for i in range(1, 31)}
        lists = rng.integers(0, 31, size=(16, 10))
        targets = rng.integers(1, 31, size=16)
        got = metrics.id_level_ranks(torch.tensor(lists), torch.tensor(targets), torch.tensor([0, *ids]))
        assert got.tolist() == brute_force_id_level(lists.tolist(), targets.tolist(), {0: None, **raw})
