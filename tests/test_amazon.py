"""The Amazon Reviews 2014 datasets: every accepted file form, the core's ordering, dedup and
k-core rules on them, item text, and errors that name the file and line. Small files written here;
one test on the real data in ../shared/data, skipped where that folder is absent."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from recbench import registry as plugin_registry
from recbench.data import Source, prepare
from recbench.errors import DataError
from recbench_plugins.amazon import DOWNLOAD_HOSTS, Beauty, item_text

pytestmark = pytest.mark.usefixtures("home")  # RECBENCH_DATA in tmp_path, RECBENCH_OFFLINE=1, no mirror


@pytest.fixture
def raw(tmp_path) -> Path:
    """The folder the toy files are written to, used as the mirror."""
    return tmp_path / "raw"


def source(raw: Path) -> Source:
    return Source("beauty", mirror=raw, cache=raw.parent / "cache")


def run(raw: Path, k_core: int = 0):
    dataset = Beauty()
    return prepare(dataset, dataset.Config(k_core=k_core), source(raw))


def write_lines(path: Path, records: list[dict], style: str = "json") -> Path:
    """One record per line, as JSON or as python literals (the upstream meta style), gzipped."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join((json.dumps(r) if style == "json" else repr(r)) + "\n" for r in records)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(text)
    return path


def review(user: str, item: str, time: int) -> dict:
    return {"reviewerID": user, "asin": item, "reviewerName": "x", "overall": 5.0, "unixReviewTime": time}


def complete_reviews(n: int = 6) -> list[dict]:
    """Every one of n users reviews every one of n items: exactly n-core."""
    return [review(f"U{u}", f"I{i}", 1000 + 10 * i + u) for u in range(n) for i in range(n)]


def meta(item: str, **fields) -> dict:
    return {"asin": item, "title": f"Title {item}", "categories": [["Beauty", "Makeup"]], "brand": "B", **fields}


def write_upstream(folder: Path, reviews: list[dict], metas: list[dict], style: str = "json") -> tuple[Path, Path]:
    return (
        write_lines(folder / "reviews_Beauty_5.json.gz", reviews, style),
        write_lines(folder / "meta_Beauty.json.gz", metas, style),
    )


def write_p5(folder: Path, sequences: dict[str, list[str]], metas: list[dict] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "user_sequence.txt").write_text("".join(f"{u} {' '.join(s)}\n" for u, s in sequences.items()))
    if metas is not None:
        (folder / "items.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metas))


def raw_sequence(prepared, user: str) -> list[str]:
    index = list(prepared.user_ids).index(user)
    return [prepared.item_ids[i] for i in prepared.sequence(index)]


def test_registered_with_aliases():
    registry = plugin_registry.load(third_party=False)
    aliases = {"beauty": "Beauty", "sports": "Sports_and_Outdoors", "toys": "Toys_and_Games", "cds": "CDs_and_Vinyl"}
    for name, alias in aliases.items():
        dataset = registry.get("dataset", alias)
        assert dataset.name == name and dataset.expect_core == 5 and dataset.max_seq_len == 50


@pytest.mark.parametrize("reviews_style, meta_style", [("json", "python"), ("python", "json"), ("json", "json")])
def test_upstream_line_styles(raw, reviews_style, meta_style):
    folder = raw / "amazon2014" / "Beauty"
    write_lines(folder / "reviews_Beauty_5.json.gz", complete_reviews(), reviews_style)
    write_lines(folder / "meta_Beauty.json.gz", [meta(f"I{i}") for i in range(6)], meta_style)
    prepared = run(raw)
    assert (prepared.n_users, prepared.n_items, prepared.n_interactions) == (6, 6, 36)
    assert prepared.times is not None and prepared.times.dtype.name == "int64"
    assert prepared.item_text[1] == {"title": "Title I0", "brand": "B", "categories": ["Beauty", "Makeup"]}
    assert prepared.report == {"items_without_metadata": 0, "items_without_text": 0}


def test_chronological_with_stable_ties_and_dedup(raw):
    reviews = [r for r in complete_reviews() if r["reviewerID"] != "U0"]
    times = {"I0": 30, "I1": 10, "I2": 20, "I3": 10, "I4": 40, "I5": 20}
    reviews += [review("U0", item, t) for item, t in times.items()]
    reviews.append(review("U0", "I1", 50))  # a repeated review: kept once, at its first time
    write_upstream(raw / "Beauty", reviews, [meta(f"I{i}") for i in range(6)])
    prepared = run(raw)
    assert raw_sequence(prepared, "U0") == ["I1", "I3", "I2", "I5", "I0", "I4"]
    user = list(prepared.user_ids).index("U0")
    assert list(prepared.times[prepared.offsets[user] : prepared.offsets[user + 1]]) == [10, 10, 20, 20, 30, 40]
    assert prepared.n_interactions == 36


def test_p5_form_keeps_file_order_and_reads_item_text(raw):
    items = [f"I{i}" for i in range(6)]
    sequences = {f"U{u}": items[u:] + items[:u] for u in range(6)}
    write_p5(raw / "Beauty", sequences, [meta(i, title=f"T &amp; {i}") for i in items])
    prepared = run(raw)
    assert prepared.times is None
    assert raw_sequence(prepared, "U2") == sequences["U2"]
    assert prepared.item_text[1]["title"] == "T & I0"


def test_p5_form_without_items_has_no_text(raw):
    items = [f"I{i}" for i in range(5)]
    write_p5(raw, {f"U{u}": items for u in range(5)})
    prepared = run(raw)
    assert prepared.item_text[1:] == [{}] * 5
    assert prepared.report == {"items_without_metadata": 5, "items_without_text": 5}


def test_forms_and_folders_are_searched_in_order(raw):
    items = [f"I{i}" for i in range(5)]
    write_upstream(raw / "amazon2014" / "Beauty", complete_reviews(5), [meta(i) for i in items])
    write_p5(raw, {f"U{u}": items for u in range(5)})
    write_p5(raw / "Beauty", {f"U{u}": items for u in range(5)}, [meta(i) for i in items])
    assert Beauty().locate(source(raw)) == [raw / "Beauty" / "user_sequence.txt", raw / "Beauty" / "items.jsonl"]
    write_p5(raw / "amazon2014" / "Beauty", {f"U{u}": items for u in range(5)})
    assert Beauty().locate(source(raw)) == [raw / "amazon2014" / "Beauty" / "user_sequence.txt"]


def test_not_5core_raises_and_k_core_filters(raw):
    reviews = complete_reviews() + [review("LOW", "I0", 1), review("LOW", "I1", 2), review("U0", "RARE", 3)]
    write_upstream(raw, reviews, [meta(f"I{i}") for i in range(6)])
    with pytest.raises(DataError, match="--k_core=5"):
        run(raw)
    prepared = run(raw, k_core=5)
    assert "LOW" not in prepared.user_ids and "RARE" not in prepared.item_ids
    assert (prepared.n_users, prepared.n_items, prepared.n_interactions) == (6, 6, 36)


def test_item_text_rules():
    record = {
        "asin": "X",
        "title": " Soap &amp; Water ",
        "brand": "Unknown",
        "categories": [["Beauty", "Bath &amp; Body"], ["Beauty", "Soap"], []],
        "description": "",
        "salesRank": {"Beauty": 3},
    }
    assert item_text(record) == {"title": "Soap & Water", "categories": ["Beauty", "Bath & Body", "Soap"]}
    assert item_text({"asin": "X", "brand": None, "title": None, "price": 9.5}) == {"price": 9.5}
    assert item_text({"asin": "X", "brand": "", "description": "Lather &lt;3"}) == {"description": "Lather <3"}
    assert item_text({"asin": "X", "brand": "Kirk&amp;#39;s"}) == {"brand": "Kirk's"}  # escaped twice upstream
    assert item_text({"asin": "X"}) == {}


def test_items_without_metadata_are_reported(raw):
    metas = [meta(f"I{i}") for i in range(4)] + [{"asin": "I4", "brand": "Unknown"}, meta("NOT_REVIEWED")]
    write_upstream(raw, complete_reviews(), metas, "python")
    prepared = run(raw)
    assert prepared.report == {"items_without_metadata": 1, "items_without_text": 2}
    assert prepared.item_text[list(prepared.item_ids).index("I5")] == {}


def truncate(path: Path) -> Path:
    """Cut a gzipped file of many reviews in half, as an interrupted download would."""
    reviews = [review(f"U{n}", f"I{n % 7}", n) | {"reviewText": f"review number {n} " * 5} for n in range(3000)]
    write_lines(path, reviews)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def upstream_rows(raw: Path, reviews: list[str], metas: tuple[str, ...] = (json.dumps(meta("I0")),)) -> tuple[Path, Path]:
    """The upstream pair from raw lines, which may be malformed."""
    raw.mkdir(parents=True, exist_ok=True)
    paths = raw / "reviews_Beauty_5.json.gz", raw / "meta_Beauty.json.gz"
    for path, rows in zip(paths, (reviews, metas)):
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write("".join(row + "\n" for row in rows))
    return paths


def sequences_file(raw: Path, data: bytes) -> Path:
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "user_sequence.txt").write_bytes(data)
    return raw / "user_sequence.txt"


def not_gzip(path: Path) -> Path:
    path.write_bytes(b"this is not gzip data\n")
    return path


GOOD = [json.dumps(review("U0", "I0", 1)), json.dumps(review("U0", "I1", 2))]
# case -> (write the bad files under `raw` and return the file the message must name, what it must say)
BAD_INPUTS = {
    "truncated gzip": (
        lambda m: truncate(upstream_rows(m, GOOD)[0]),
        r"truncated or corrupt: reading stopped at line [1-9]\d+",
    ),
    "not gzip": (lambda m: not_gzip(upstream_rows(m, GOOD)[0]), "truncated or corrupt: reading stopped at line 1 "),
    "malformed review": (lambda m: upstream_rows(m, [*GOOD, "{'reviewerID': 'U1', 'asin': "])[0], "line 3: not a JSON"),
    "review not a dict": (lambda m: upstream_rows(m, [*GOOD, "[1, 2]"])[0], "line 3: not a JSON"),
    "no reviewerID": (
        lambda m: upstream_rows(m, [GOOD[0], json.dumps({"asin": "I1", "unixReviewTime": 3})])[0],
        "line 2: .*'reviewerID'",
    ),
    "no asin": (
        lambda m: upstream_rows(m, [GOOD[0], "", repr({"reviewerID": "U1", "unixReviewTime": 3})])[0],
        "line 3: .*'asin'",
    ),
    "no review time": (
        lambda m: upstream_rows(m, [json.dumps({"reviewerID": "U1", "asin": "I0"})])[0],
        "line 1: .*'unixReviewTime'",
    ),
    "review time not a number": (
        lambda m: upstream_rows(m, [json.dumps(review("U1", "I0", 1) | {"unixReviewTime": "soon"})])[0],
        "line 1: unixReviewTime is not an integer",
    ),
    "malformed meta": (
        lambda m: upstream_rows(m, GOOD, ('{"asin": "I0", "title": "x"', json.dumps(meta("I1"))))[1],
        "line 1: not a JSON",
    ),
    "malformed meta of a product no review names": (
        lambda m: upstream_rows(m, GOOD, (json.dumps(meta("I0")), json.dumps(meta("I1")), "{'asin': 'UNUSED', 'title': "))[1],
        "line 3: not a JSON",
    ),
    "empty reviews": (lambda m: upstream_rows(m, [])[0], "is empty"),
    "blank meta": (lambda m: upstream_rows(m, GOOD, ("", "  "))[1], "is empty"),
    "empty P5": (lambda m: sequences_file(m, b""), "is empty"),
    "P5 not UTF-8": (lambda m: sequences_file(m, b"U0 I0 I1 I2 I3 I4\nU1 I\xff\n"), "line 2: not UTF-8 text"),
    "P5 user without items": (lambda m: sequences_file(m, b"U0 I0 I1 I2 I3 I4\nU1\n"), "line 2: user 'U1' has no items"),
    "P5 user on two lines": (lambda m: sequences_file(m, b"U0 I0 I1 I2\nU1 I0 I1 I2 I3 I4\nU0 I3 I4\n"),
                             r"line 3: user 'U0' already had a line \(line 1\)"),
    "meta product on two lines": (
        lambda m: upstream_rows(m, GOOD, (json.dumps(meta("I0")), json.dumps(meta("I1")), json.dumps(meta("I0") | {"title": "x"})))[1],
        r"line 3: product 'I0' already had a line \(line 1\)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_names_file_and_line(raw, case):
    write, message = BAD_INPUTS[case]
    path = write(raw)
    with pytest.raises(DataError, match=message) as info:
        run(raw)
    assert str(path) in str(info.value)


def test_interrupted_prepare_leaves_no_cache(raw, tmp_path):
    write_upstream(raw, complete_reviews(), [meta(f"I{i}") for i in range(6)])
    truncate(raw / "reviews_Beauty_5.json.gz")
    with pytest.raises(DataError, match="truncated"):
        run(raw)
    prepared_root = tmp_path / "data" / "prepared"
    assert not list(prepared_root.rglob("meta.json"))
    write_upstream(raw, complete_reviews(), [meta(f"I{i}") for i in range(6)])
    assert run(raw).n_interactions == 36
    assert len(list(prepared_root.rglob("meta.json"))) == 1


def test_downloads_the_upstream_pair_when_no_form_is_found(raw, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    write_upstream(elsewhere, complete_reviews(), [meta(f"I{i}") for i in range(6)])
    asked = []

    def fetch(self, filename, urls, sha256=None):
        asked.append((filename, urls))
        return elsewhere / filename

    monkeypatch.setattr(Source, "fetch", fetch, raising=False)
    assert run(raw).n_interactions == 36
    assert [name for name, _ in asked] == ["reviews_Beauty_5.json.gz", "meta_Beauty.json.gz"]
    for name, urls in asked:
        assert urls == [host + name for host in DOWNLOAD_HOSTS]
        assert urls[0] == f"http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/{name}"
        assert any("ucsd.edu" in url for url in urls)


def test_missing_everywhere_and_offline_lists_the_forms(raw):
    with pytest.raises(DataError) as info:
        run(raw)
    message = str(info.value)
    assert "user_sequence.txt" in message and "reviews_Beauty_5.json.gz" in message and "meta_Beauty.json.gz" in message
    assert "RECBENCH_OFFLINE" in message  # the download failure is part of the message


def test_real_data_matches_published_5core_statistics(mirror):
    """`mirror` (conftest): ../shared/data beside the project root as RECBENCH_DATA_MIRROR, or a skip."""
    registry = plugin_registry.load(third_party=False)
    counts = {"beauty": (22363, 12101, 198502), "sports": (35598, 18357, 296337)}
    prepared = {}
    for name, expected in counts.items():
        dataset = registry.get("dataset", name)
        prepared[name] = prepare(dataset, dataset.Config(), Source(name))
        assert (prepared[name].n_users, prepared[name].n_items, prepared[name].n_interactions) == expected
    beauty, sports = prepared["beauty"], prepared["sports"]
    assert sum(1 for t in beauty.item_text[1:] if t.get("title")) == beauty.n_items - 7  # 7 upstream titles are null
    assert not any(re.search("&(amp|quot|#39);", json.dumps(t)) for t in beauty.item_text)
    assert sports.report["items_without_text"] == sports.n_items  # no Sports item text offline
