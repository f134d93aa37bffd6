"""Preparation and the leave-one-out split on tiny hand-made data."""

import numpy as np
import pandas as pd
import pytest

from recbench.data import RawData, Split
from recbench.data.prepare import from_raw, load, save
from recbench.errors import DataError


def tiny(times=True):
    # user a: x(3) y(1) z(2) w(4) -> chronological y z x w ; user b: y x z with a repeat of y ; user c: too short
    rows = [("a", "x", 3), ("a", "y", 1), ("b", "y", 5), ("a", "z", 2), ("b", "x", 6), ("b", "y", 7),
            ("b", "z", 8), ("a", "w", 4), ("c", "x", 1), ("c", "y", 2)]
    df = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    if not times:
        df = df.drop(columns="timestamp")
    return from_raw(RawData(df, {"x": {"title": "X"}}), "tiny")


def raw_seq(p, user):
    return [str(p.item_ids[i]) for i in p.sequence(list(p.user_ids).index(user))]


def test_chronological_dedup_and_id_mapping():
    p = tiny()
    assert raw_seq(p, "a") == ["y", "z", "x", "w"]
    assert raw_seq(p, "b") == ["y", "x", "z"]  # the repeated y is kept once, at its first time
    assert p.item_ids[0] == "" and set(p.items.tolist()) == {1, 2, 3, 4}
    assert p.item_text[list(p.item_ids).index("x")] == {"title": "X"}
    assert p.n_interactions == 9


def test_equal_timestamps_keep_file_order():
    df = pd.DataFrame([("u", "b", 5), ("u", "a", 5), ("u", "c", 1)], columns=["user", "item", "timestamp"])
    p = from_raw(RawData(df), "t")
    assert [p.item_ids[i] for i in p.sequence(0)] == ["c", "b", "a"]


def test_expected_core_is_checked_not_silently_fixed():
    with pytest.raises(DataError, match="--k_core=2"):
        from_raw(RawData(pd.DataFrame([("u", "a"), ("u", "b"), ("v", "a")], columns=["user", "item"]), files=[]), "t", expect_core=2)


def test_leave_one_out_positions_and_padding():
    p = tiny()
    split = Split(p, max_seq_len=3)
    a = list(p.user_ids).index("a")
    assert list(split.eval_users) == [u for u in range(p.n_users) if len(p.sequence(u)) >= 3]
    users, pos = split.eval_positions("test")
    batch = split.gather(users, pos)
    row = list(users).index(a)

    def ids(t):
        return [str(p.item_ids[i]) if i else "-" for i in t.tolist()]

    assert ids(batch.history[row]) == ["y", "z", "x"] and ids(batch.target[row:row + 1]) == ["w"]
    users, pos = split.eval_positions("valid")
    batch = split.gather(users, pos)
    assert ids(batch.history[row]) == ["-", "y", "z"] and ids(batch.target[row:row + 1]) == ["x"]
    assert batch.history_time[row].tolist() == [0, 1, 2]


def test_training_samples_never_see_validation_or_test_items():
    p = tiny()
    split = Split(p, max_seq_len=10)
    users, pos = split.train_positions(sliding=True, min_hist_len=1)
    a = list(p.user_ids).index("a")
    batch = split.gather(users, pos)
    samples = [(tuple(i for i in h.tolist() if i), t) for h, t, u in zip(batch.history, batch.target.tolist(), users) if u == a]
    y, z = (list(p.item_ids).index(i) for i in ("y", "z"))
    assert samples == [((y,), z)]  # train part of a is y z; x (valid) and w (test) never appear
    counts = split.train_item_counts()
    assert counts[0] == 0 and counts.sum() == 2 + 1  # a: y z ; b: y ; c: too short to be split
    users, pos = split.train_positions(sliding=False)
    assert len(users) == 1  # only a has a training part of length >= 2


def test_next_items_for_sequence_models():
    p = tiny()
    split = Split(p, max_seq_len=4)
    users, pos = split.eval_positions("test")
    b = split.gather(users, pos)
    nxt = b.next_items()
    assert (nxt[b.history == 0] == 0).all()
    assert (nxt[:, -1] == b.target).all()


def test_cache_round_trip(tmp_path):
    p = tiny()
    save(p, tmp_path / "c")
    q = load(tmp_path / "c")
    assert np.array_equal(p.items, q.items) and np.array_equal(p.times, q.times)
    assert list(q.item_ids) == list(p.item_ids) and q.item_text == p.item_text
    assert load(tmp_path / "missing") is None
    (tmp_path / "c" / "meta.json").unlink()  # an incomplete folder is never trusted
    assert load(tmp_path / "c") is None


def test_data_without_timestamps_keeps_file_order():
    p = tiny(times=False)
    assert raw_seq(p, "a") == ["x", "y", "z", "w"] and p.times is None
