"""Amazon Reviews 2018 and 2023: small files in each upstream format, written here (the shared data
holds neither release), read through the real loaders: every accepted form, 5-core filtering,
item text, millisecond ordering (2023), and errors that name the file and line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from recbench import registry as plugin_registry
from recbench.data import Source, prepare
from recbench.errors import DataError
from recbench_plugins.amazon2018 import Amazon2018
from recbench_plugins.amazon2023 import Amazon2023

pytestmark = pytest.mark.usefixtures("home")  # RECBENCH_DATA in tmp_path, RECBENCH_OFFLINE=1, no mirror


def write(path: Path, rows: list, style: str = "json", gz: bool = True) -> Path:
    """One row per line: JSON, python literals (some 2018 metadata files) or text lines; gzipped or plain."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join((json.dumps(r) if style == "json" else repr(r) if style == "python" else r) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def prepared(dataset, raw: Path, k_core: int | None = None):
    config = dataset.Config() if k_core is None else dataset.Config(k_core=k_core)
    return prepare(dataset, config, Source(dataset.name, mirror=raw, cache=raw.parent / "cache"))


def sequences(data) -> dict[str, list[str]]:
    return {str(data.user_ids[u]): [str(data.item_ids[i]) for i in data.sequence(u)] for u in range(data.n_users)}


# --- 2018 -------------------------------------------------------------------------------------------

def review18(user: str, item: str, time: int) -> dict:
    return {"overall": 5.0, "verified": True, "reviewTime": "01 1, 2015", "reviewerID": user, "asin": item,
            "reviewerName": "x", "reviewText": "fine", "summary": "ok", "unixReviewTime": time}


def meta18(item: str, **fields) -> dict:
    return {"asin": item, "title": f"Guitar {item}", "brand": "Yamaha", "category": ["Musical Instruments", "Guitars"],
            "description": ["Six strings.", "Solid &amp; light."], "also_buy": [], "price": "$9.99", **fields}


def complete(n: int, review, time=lambda u, i: 1000 + 10 * i + u) -> list[dict]:
    """Every one of n users reviews every one of n items: exactly n-core."""
    return [review(f"U{u}", f"I{i}", time(u, i)) for u in range(n) for i in range(n)]


def test_registered_names_and_paper_aliases():
    registry = plugin_registry.registry()
    for name in ("amazon2018:Musical_Instruments", "amazon2018:Arts_Crafts_and_Sewing", "amazon2018:Video_Games",
                 "amazon2018:Office_Products", "amazon2023:Beauty_and_Personal_Care", "amazon2023:Sports_and_Outdoors",
                 "amazon2023:Toys_and_Games", "amazon2023:Video_Games", "amazon2023:Industrial_and_Scientific",
                 "amazon2023:Musical_Instruments", "amazon2023:Office_Products", "amazon2023:CDs_and_Vinyl"):
        assert registry.has("dataset", name), name
    assert registry.entry("dataset", "amazon2018:Instruments").name == "amazon2018:Musical_Instruments"
    assert registry.entry("dataset", "amazon2018:Games").name == "amazon2018:Video_Games"


@pytest.mark.parametrize("meta_style", ["json", "python"])
def test_2018_five_core_file_and_metadata_in_either_line_style(tmp_path, meta_style):
    raw = tmp_path / "raw"
    write(raw / "amazon2018/Musical_Instruments/Musical_Instruments_5.json.gz", complete(5, review18))
    metas = [meta18(f"I{i}") for i in range(5)] + [meta18("I0", title="a repeated line")]
    write(raw / "amazon2018/Musical_Instruments/meta_Musical_Instruments.json.gz", metas, meta_style)
    data = prepared(Amazon2018("Musical_Instruments"), raw)
    assert (data.n_users, data.n_items, data.n_interactions) == (5, 5, 25)
    assert sequences(data)["U0"] == ["I0", "I1", "I2", "I3", "I4"]  # by unixReviewTime
    text = data.item_text[list(data.item_ids).index("I0")]
    assert text == {"title": "Guitar I0", "brand": "Yamaha", "categories": ["Musical Instruments", "Guitars"],
                    "description": "Six strings. Solid & light."}  # the first line of a repeated product
    assert data.report["metadata_lines_repeating_a_product"] == 1


def test_2018_duplicate_reviews_are_dropped_before_the_5_core_filter(tmp_path):
    """U5 has 5 reviews of which 2 repeat one product: 4 distinct items, so U5 leaves the 5-core."""
    raw = tmp_path / "raw"
    reviews = complete(5, review18) + [review18("U5", f"I{i}", 5000 + i) for i in (0, 1, 2, 3, 3)]
    write(raw / "Video_Games/Video_Games.json.gz", reviews)
    write(raw / "Video_Games/meta_Video_Games.json.gz", [meta18(f"I{i}") for i in range(5)])
    data = prepared(Amazon2018("Video_Games"), raw)
    assert "U5" not in sequences(data) and data.n_interactions == 25
    kept = prepared(Amazon2018("Video_Games"), raw, k_core=0)
    assert sequences(kept)["U5"] == ["I0", "I1", "I2", "I3"]


def test_2018_the_5_core_file_is_preferred_over_all_reviews(tmp_path):
    raw = tmp_path / "raw"
    write(raw / "Office_Products_5.json.gz", complete(5, review18))
    write(raw / "Office_Products.json.gz", complete(6, review18))
    write(raw / "meta_Office_Products.json.gz", [meta18(f"I{i}") for i in range(6)])
    files = Amazon2018("Office_Products").locate(Source("x", mirror=raw, cache=tmp_path / "cache", download=False))
    assert [f.name for f in files] == ["Office_Products_5.json.gz", "meta_Office_Products.json.gz"]


@pytest.mark.parametrize("line, expected", [
    ("{'reviewerID': 'U9', 'asin': 'I1'", "line 26: not a JSON object or python dict"),
    (json.dumps({"reviewerID": "U9", "asin": "I1"}), "line 26: the review has no 'unixReviewTime'"),
    (json.dumps(review18("U9", "I1", "soon")), "line 26: unixReviewTime is not an integer"),
])
def test_2018_malformed_review_lines_name_file_and_line(tmp_path, line, expected):
    raw = tmp_path / "raw"
    path = write(raw / "Arts_Crafts_and_Sewing_5.json.gz", [json.dumps(r) for r in complete(5, review18)] + [line], "text")
    write(raw / "meta_Arts_Crafts_and_Sewing.json.gz", [meta18(f"I{i}") for i in range(5)])
    with pytest.raises(DataError) as err:
        prepared(Amazon2018("Arts_Crafts_and_Sewing"), raw)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_2018_malformed_metadata_line_names_file_and_line(tmp_path):
    raw = tmp_path / "raw"
    write(raw / "Arts_Crafts_and_Sewing_5.json.gz", complete(5, review18))
    path = write(raw / "meta_Arts_Crafts_and_Sewing.json.gz", [json.dumps(meta18("I0")), json.dumps({"title": "no asin"})], "text")
    with pytest.raises(DataError, match=r"line 2: the product has no 'asin'") as err:
        prepared(Amazon2018("Arts_Crafts_and_Sewing"), raw)
    assert str(path) in str(err.value)


def test_2018_missing_files_list_the_forms(tmp_path):
    with pytest.raises(DataError) as err:
        prepared(Amazon2018("Musical_Instruments"), tmp_path / "empty")
    assert "Musical_Instruments_5.json.gz" in str(err.value) and "meta_Musical_Instruments.json.gz" in str(err.value)
    assert "datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/categoryFilesSmall/Musical_Instruments_5.json.gz" in str(err.value)


# --- 2023 -------------------------------------------------------------------------------------------

def review23(user: str, item: str, ms: int) -> dict:
    return {"rating": 5.0, "title": "ok", "text": "fine", "images": [], "asin": item + "-variant", "parent_asin": item,
            "user_id": user, "timestamp": ms, "helpful_vote": 0, "verified_purchase": True}


def meta23(item: str, **fields) -> dict:
    return {"main_category": "All Beauty", "title": f"Lipstick {item}", "average_rating": 4.5, "rating_number": 10,
            "features": ["Long lasting", "Red &amp; bold"], "description": ["A lipstick."], "price": None, "images": [],
            "videos": [], "store": "Brand", "categories": [], "details": {"Brand": "Acme", "Color": "Red", "Empty": ""},
            "parent_asin": item, "bought_together": None, **fields}


def table(rows: list[tuple[str, str, int]], history: bool = False) -> list[str]:
    header = "user_id,parent_asin,rating,timestamp" + (",history" if history else "")
    return [header] + [f"{u},{i},5.0,{ms}" + (",A B" if history else "") for u, i, ms in rows]


def test_2023_five_core_table_orders_by_millisecond_within_a_second(tmp_path):
    """U0's five ratings fall within one second, written in reverse: the millisecond orders them."""
    raw = tmp_path / "raw"
    rows = [(f"U{u}", f"I{i}", 1_600_000_000_000 + 1000 * (10 * u + i)) for u in range(1, 5) for i in range(5)]
    rows += [("U0", f"I{i}", 1_600_000_000_000 + i) for i in reversed(range(5))]
    write(raw / "amazon2023/benchmark/5core/rating_only/Video_Games.csv.gz", table(rows), "text")
    write(raw / "amazon2023/raw/meta_categories/meta_Video_Games.jsonl.gz", [meta23(f"I{i}") for i in range(5)])
    data = prepared(Amazon2023("Video_Games"), raw)
    assert sequences(data)["U0"] == ["I0", "I1", "I2", "I3", "I4"]
    assert int(data.times.max()) < 2_000_000_000  # stored as seconds
    text = data.item_text[list(data.item_ids).index("I0")]
    assert text == {"title": "Lipstick I0", "features": "Long lasting Red & bold", "description": "A lipstick.",
                    "details": "Brand: Acme; Color: Red"}


def test_2023_timestamp_split_parts_together_are_the_data(tmp_path):
    raw = tmp_path / "raw"
    rows = [(f"U{u}", f"I{i}", 1_600_000_000_000 + 1000 * i + u) for u in range(5) for i in range(5)]
    for part, chunk in zip(("train", "valid", "test"), (rows[:15], rows[15:20], rows[20:])):
        write(raw / f"Toys_and_Games/Toys_and_Games.{part}.csv", table(chunk, history=True), "text", gz=False)
    write(raw / "Toys_and_Games/meta_Toys_and_Games.jsonl", [meta23(f"I{i}") for i in range(5)], gz=False)
    data = prepared(Amazon2023("Toys_and_Games"), raw)
    assert (data.n_users, data.n_items, data.n_interactions) == (5, 5, 25)


def test_2023_raw_reviews_are_filtered_to_5_core(tmp_path):
    raw = tmp_path / "raw"
    reviews = complete(5, review23, time=lambda u, i: 1_600_000_000_000 + 1000 * i + u)
    reviews += [review23("U9", "I0", 1_700_000_000_000), review23("U0", "I7", 1_700_000_000_000)]  # a user and an item with 1 rating
    write(raw / "Office_Products.jsonl.gz", reviews)
    write(raw / "meta_Office_Products.jsonl.gz", [meta23(f"I{i}") for i in (0, 1, 2, 3, 4, 7)])
    data = prepared(Amazon2023("Office_Products"), raw)
    assert "U9" not in sequences(data) and "I7" not in set(data.item_ids)
    assert data.n_interactions == 25


@pytest.mark.parametrize("line, expected", [
    ("U1,I1,5.0", "line 27: expected 4 comma-separated fields"),
    ("U1,I1,5.0,yesterday", "line 27: timestamp is not an integer number of milliseconds"),
    ("U1,I1,5.0,1600000000", "line 27: timestamp 1600000000 is not in milliseconds"),
])
def test_2023_malformed_table_lines_name_file_and_line(tmp_path, line, expected):
    raw = tmp_path / "raw"
    rows = [(f"U{u}", f"I{i}", 1_600_000_000_000 + i) for u in range(5) for i in range(5)]
    path = write(raw / "CDs_and_Vinyl.csv", table(rows) + [line], "text", gz=False)
    write(raw / "meta_CDs_and_Vinyl.jsonl", [meta23(f"I{i}") for i in range(5)], gz=False)
    with pytest.raises(DataError) as err:
        prepared(Amazon2023("CDs_and_Vinyl"), raw)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_2023_malformed_review_and_metadata_lines_name_file_and_line(tmp_path):
    raw = tmp_path / "raw"
    reviews = [json.dumps(r) for r in complete(5, review23, time=lambda u, i: 1_600_000_000_000 + i)]
    path = write(raw / "Musical_Instruments.jsonl.gz", reviews + ['{"user_id": "U1", "parent_asin": "I1"}'], "text")
    write(raw / "meta_Musical_Instruments.jsonl.gz", [meta23(f"I{i}") for i in range(5)])
    with pytest.raises(DataError, match=r"line 26: the review has no 'timestamp'") as err:
        prepared(Amazon2023("Musical_Instruments"), raw)
    assert str(path) in str(err.value)
    write(raw / "Musical_Instruments.jsonl.gz", reviews, "text")
    meta = write(raw / "meta_Musical_Instruments.jsonl.gz", [json.dumps(meta23("I0")), '{"title": "cut'], "text")
    with pytest.raises(DataError, match=r"line 2: not a JSON object") as err:
        prepared(Amazon2023("Musical_Instruments"), raw)
    assert str(meta) in str(err.value)


def test_2023_missing_files_name_the_upstream_urls(tmp_path):
    with pytest.raises(DataError) as err:
        prepared(Amazon2023("Beauty_and_Personal_Care"), tmp_path / "empty")
    message = str(err.value)
    assert "huggingface.co/datasets/McAuley-Lab/Amazon-Reviews-2023/resolve/main/benchmark/5core/rating_only/" in message
    assert "mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/benchmark/5core/rating_only/" in message
    assert "meta_Beauty_and_Personal_Care.jsonl" in message  # among the accepted forms


def test_datasets_lists_the_releases_with_their_state(cli, mirror):
    out = cli("datasets").stdout
    for name in ("amazon2018:Musical_Instruments", "amazon2023:Beauty_and_Personal_Care"):
        row = next(line for line in out.splitlines() if name in line)
        assert "missing" in row  # the shared data holds neither release


def test_stats_of_a_2018_category_by_its_paper_alias(cli, tmp_path, monkeypatch):
    """Through the CLI, as a user prepares a category: found in the mirror, 5-core, the repeats counted."""
    raw = tmp_path / "mirror"
    write(raw / "amazon2018/Musical_Instruments/Musical_Instruments_5.json.gz", complete(5, review18))
    write(raw / "amazon2018/Musical_Instruments/meta_Musical_Instruments.json.gz",
          [meta18(f"I{i}") for i in range(5)] + [meta18("I1")], "python")
    monkeypatch.setenv("RECBENCH_DATA_MIRROR", str(raw))
    stats = json.loads(cli("datasets", "stats", "amazon2018:Instruments", "--json").stdout)
    assert (stats["dataset"], stats["users"], stats["items"], stats["interactions"]) == ("amazon2018:Musical_Instruments", 5, 5, 25)
    assert stats["items_with_text"] == 1.0 and stats["metadata_lines_repeating_a_product"] == 1
    row = next(line for line in cli("datasets").stdout.splitlines() if "amazon2018:Musical_Instruments" in line)
    assert "mirror" in row and "yes" in row  # raw files found in the mirror, prepared
