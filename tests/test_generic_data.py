"""Local datasets on small files written here: every accepted file form reads to the same data,
order and timestamps as documented (docs/own-data.md), item text from the chosen fields, RecBole's
atomic files detected from their typed header, the k-core's drops said and recorded, `recbench
datasets` lists them with their state, and `path:DIR` and a registered name work in every command."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recbench import registry as plugin_registry
from recbench.data import prepare
from recbench.data.generic import Layout, LocalDataset
from recbench.results import records

USERS, ITEMS = 6, 5


def interactions(times: bool = True) -> pd.DataFrame:
    """Every user has every item; user u's items in the order i(u), i(u+1), ... (by time, when given)."""
    rows = [(f"u{u}", f"i{(u + k) % ITEMS}", 1_000 + 10 * k) for u in range(USERS) for k in range(ITEMS)]
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return df if times else df.drop(columns="timestamp")


def item_rows() -> list[dict]:
    return [{"item_id": f"i{i}", "title": f"Title {i}", "brand": "B" if i % 2 else None, "tags": ["x", ["y", "x"]], "price": 1.5 * i}
            for i in range(ITEMS)]


def write_items(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = item_rows()
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        df = pd.DataFrame([{k: (v if not isinstance(v, list) else "x y") for k, v in r.items()} for r in rows])
        df["brand"] = df["brand"].fillna("")
        if path.suffix == ".parquet":
            df.to_parquet(path)
        else:
            df.to_csv(path, sep="\t" if path.suffix == ".tsv" else ",", index=False)
    return path


def write_interactions(path: Path, df: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        df.to_parquet(path)
    else:
        df.to_csv(path, sep="\t" if path.suffix == ".tsv" else ",", index=False)
    return path


def local(inter: Path, items: Path, k_core: int = 0, **options):
    dataset = LocalDataset("shop", Layout(str(inter), str(items), **options), k_core=k_core)
    return prepare(dataset, dataset.Config())


def sequences(data) -> dict[str, list[str]]:
    return {str(user): [str(data.item_ids[i]) for i in data.sequence(u)] for u, user in enumerate(data.user_ids)}


@pytest.mark.parametrize("inter_suffix, items_suffix", [(".csv", ".jsonl"), (".tsv", ".csv"), (".parquet", ".parquet"), (".csv", ".tsv")])
def test_every_file_form_reads_to_the_same_data(home, tmp_path, inter_suffix, items_suffix):
    # rows shuffled: the timestamps, not the file order, give each user's order
    df = interactions().sample(frac=1.0, random_state=0)
    data = local(write_interactions(tmp_path / f"inter{inter_suffix}", df), write_items(tmp_path / f"items{items_suffix}"))
    assert (data.n_users, data.n_items, data.n_interactions) == (USERS, ITEMS, USERS * ITEMS)
    assert sequences(data)["u2"] == ["i2", "i3", "i4", "i0", "i1"]
    assert data.times is not None and data.times.dtype == np.int64
    text = dict(zip(data.item_ids[1:], data.item_text[1:]))
    if items_suffix == ".jsonl":  # lists flattened, repeats once; numbers kept; null fields absent
        assert text["i1"] == {"title": "Title 1", "brand": "B", "tags": ["x", "y"], "price": 1.5}
        assert text["i0"] == {"title": "Title 0", "tags": ["x", "y"], "price": 0.0}
    else:  # every column is text, empty cells absent (Parquet's numbers stay numbers)
        assert text["i1"] == {"title": "Title 1", "brand": "B", "tags": "x y", "price": 1.5 if items_suffix == ".parquet" else "1.5"}
        assert "brand" not in text["i0"]


def test_without_timestamps_the_order_of_rows_is_kept(home, tmp_path):
    df = interactions(times=False).iloc[::-1]  # each user's items listed last to first
    data = local(write_interactions(tmp_path / "inter.csv", df), write_items(tmp_path / "items.jsonl"))
    assert data.times is None
    assert sequences(data)["u0"] == ["i4", "i3", "i2", "i1", "i0"]


def test_timestamps_may_be_dates_or_decimal_seconds_and_ties_keep_file_order(home, tmp_path):
    inter = tmp_path / "inter.csv"
    inter.write_text("user_id,item_id,timestamp\nu0,i1,2024-01-02T00:00:00Z\nu0,i0,2024-01-01\nu0,i2,2024-01-02T00:00:00Z\n"
                     "u0,i3,2023-12-31 23:59:59\n", encoding="utf-8")
    data = local(inter, write_items(tmp_path / "items.jsonl"), allow_missing_text=True)
    assert sequences(data)["u0"] == ["i3", "i0", "i1", "i2"]
    assert data.times[0] == 1704067199  # 2023-12-31 23:59:59 UTC
    inter.write_text("user_id,item_id,timestamp\nu0,i1,20.9\nu0,i0,20.1\nu0,i2,10.5\n", encoding="utf-8")
    data = local(inter, write_items(tmp_path / "items.jsonl"))
    assert sequences(data)["u0"] == ["i2", "i1", "i0"] and list(data.times) == [10, 20, 20]  # cut to the second
    parquet = tmp_path / "inter.parquet"  # Parquet's own timestamps; ids that are integers there
    pd.DataFrame({"user_id": [7, 7], "item_id": [1, 0], "timestamp": pd.to_datetime(["2024-01-02", "2024-01-01"], utc=True)}).to_parquet(parquet)
    items = tmp_path / "items.parquet"  # a list column stays a list; a missing number is absent
    pd.DataFrame({"item_id": [0, 1], "tags": [["a", "b"], ["c"]], "price": [1.5, None]}).to_parquet(items)
    data = local(parquet, items)
    assert sequences(data) == {"7": ["0", "1"]} and list(data.times) == [1704067200, 1704153600]
    assert data.item_text[1:] == [{"tags": ["a", "b"], "price": 1.5}, {"tags": ["c"]}]


def test_text_fields_are_chosen_and_the_choice_is_in_the_fingerprint(home, tmp_path):
    inter, items = write_interactions(tmp_path / "inter.csv", interactions()), write_items(tmp_path / "items.jsonl")
    everything, titles = local(inter, items), local(inter, items, text_fields=("title",))
    assert titles.item_text[1] == {"title": titles.item_text[1]["title"]}
    assert list(everything.item_text[1]) == ["title", "brand", "tags", "price"] or list(everything.item_text[1]) == ["title", "tags", "price"]
    assert everything.fingerprint != titles.fingerprint


def test_items_without_text_may_be_allowed_and_are_counted(cli, home, tmp_path):
    inter = write_interactions(tmp_path / "inter.csv", interactions())
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\ni0,A\ni1,\ni2,C\ni3,\ni4,E\ni9,never used\n", encoding="utf-8")
    proc = cli("datasets", "add", "shop", "--interactions", str(inter), "--items", str(items), "--allow-missing-text")
    assert f"2 items have no text ({items}, lines 3, 5)" in " ".join(proc.stdout.split())
    stats = json.loads(cli("datasets", "stats", "shop", "--json").stdout)
    assert (stats["items_without_text"], stats["items_not_in_interactions"], stats["items_with_text"]) == (2, 1, 0.6)


def test_k_core_drops_are_said_counted_and_recorded(cli, home, tmp_path):
    df = pd.concat([interactions(), pd.DataFrame({"user_id": ["lonely", "u0"], "item_id": ["i0", "rare"], "timestamp": [5, 5]})])
    inter = write_interactions(tmp_path / "inter.csv", df)
    items = write_items(tmp_path / "items.jsonl")
    with open(items, "a", encoding="utf-8") as f:
        f.write(json.dumps({"item_id": "rare", "title": "Rare"}) + "\n")
    proc = cli("datasets", "add", "shop", "--interactions", str(inter), "--items", str(items), "--k-core", "3")
    assert "shop: the 3-core filter dropped 1 users, 1 items and 2 interactions" in proc.stdout
    assert f"{USERS} users, {ITEMS} items, {USERS * ITEMS} interactions" in proc.stdout
    stats = json.loads(cli("datasets", "stats", "shop", "--json").stdout)
    assert (stats["k_core_dropped_users"], stats["k_core_dropped_items"], stats["k_core_dropped_interactions"]) == (1, 1, 2)
    cli("run", "--plugin", "pop", "--dataset", "shop")
    (path,) = (home / "home" / "results" / "shop").glob("*.json")
    record = records.load(path)
    assert record.config["dataset"] == {"k_core": 3}  # the registered k-core is the default ...
    assert record.dataset.report["k_core_dropped_users"] == 1
    assert [f["sha256"] for f in record.dataset.files] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in (inter, items)]
    cli("run", "--plugin", "pop", "--dataset", "shop", "--k_core=0")  # ... and a run may set another
    assert {records.load(p).dataset.users for p in (home / "home" / "results" / "shop").glob("*.json")} == {USERS, USERS + 1}


def test_repeated_pairs_are_kept_once_and_counted(cli, home, tmp_path):
    df = pd.concat([interactions(), interactions().iloc[:3].assign(timestamp=9_999)])
    inter, items = write_interactions(tmp_path / "inter.csv", df), write_items(tmp_path / "items.jsonl")
    proc = cli("datasets", "add", "shop", "--interactions", str(inter), "--items", str(items))
    assert f"3 interactions repeat a user-item pair (first at {inter}, line {USERS * ITEMS + 2})" in " ".join(proc.stdout.split())
    assert json.loads(cli("datasets", "stats", "shop", "--json").stdout)["repeated_interactions"] == 3


RB_INTER = ("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
            "7\t10\t4.0\t300.7\n7\t11\t3.0\t100.0\n8\t10\t5.0\t200\n7\t12\t1.0\t200\n8\t12\t2.0\t100\n")
RB_ITEMS = ("item_id:token\ttitle:token_seq\tcategories:token_seq\tprice:float\tbrand:token\n"
            "10\tRed Shoes\tShoes Red\t9.5\tAcme\n11\tBlue \"Hat\"\tHats\t3\t\n12\tSocks\t\t1\tAcme\n")


def test_recbole_atomic_files_are_read_from_their_typed_header(cli, home, tmp_path):
    inter, items = tmp_path / "shop.inter", tmp_path / "shop.item"
    inter.write_text(RB_INTER, encoding="utf-8")
    items.write_text(RB_ITEMS, encoding="utf-8")
    proc = cli("datasets", "add", "rb", "--interactions", str(inter), "--items", str(items))
    assert "2 users, 3 items, 5 interactions" in proc.stdout
    data = prepare(plugin_registry.load(third_party=False).get("dataset", "rb"), plugin_registry.load(third_party=False).get("dataset", "rb").Config())
    assert sequences(data) == {"7": ["11", "12", "10"], "8": ["12", "10"]}  # by timestamp (float seconds, cut)
    assert list(data.times) == [100, 200, 300, 100, 200]
    text = dict(zip(data.item_ids[1:], data.item_text[1:]))
    # token and token_seq fields are text (quotes are characters: atomic files never quote); float fields are not
    assert text == {"10": {"title": "Red Shoes", "categories": "Shoes Red", "brand": "Acme"}, "11": {"title": 'Blue "Hat"', "categories": "Hats"},
                    "12": {"title": "Socks", "brand": "Acme"}}
    # the same files under other names, as RecBole-format text files: --format recbole
    for path, new in ((inter, tmp_path / "i.txt"), (items, tmp_path / "t.txt")):
        new.write_bytes(path.read_bytes())
    cli("datasets", "add", "rb2", "--interactions", str(tmp_path / "i.txt"), "--items", str(tmp_path / "t.txt"), "--format", "recbole")
    again = json.loads(cli("datasets", "stats", "rb2", "--json").stdout)
    assert (again["users"], again["items"], again["interactions"]) == (2, 3, 5)
    # other column names for the ids (e.g. a Yelp-style business_id), and chosen text fields
    (tmp_path / "y.inter").write_text(RB_INTER.replace("item_id:token", "business_id:token"), encoding="utf-8")
    (tmp_path / "y.item").write_text(RB_ITEMS.replace("item_id:token", "business_id:token"), encoding="utf-8")
    cli("datasets", "add", "yelp-like", "--interactions", str(tmp_path / "y.inter"), "--items", str(tmp_path / "y.item"),
        "--item-column", "business_id", "--text-fields", "title")
    stats = json.loads(cli("datasets", "stats", "yelp-like", "--json").stdout)
    assert (stats["items"], stats["interactions"]) == (3, 5)


def test_a_tab_separated_file_with_a_typed_header_is_recbole_unless_told_otherwise(home, tmp_path):
    inter, items = tmp_path / "inter.tsv", tmp_path / "items.tsv"
    inter.write_text(RB_INTER, encoding="utf-8")
    items.write_text(RB_ITEMS, encoding="utf-8")
    assert local(inter, items).n_interactions == 5
    from recbench.errors import DataError

    with pytest.raises(DataError, match="no column 'user_id'.*user_id:token"):
        local(inter, items, format="generic")  # read as plain TSV, the columns are named 'user_id:token'


def listing(cli) -> dict[str, list[str]]:
    """`recbench datasets` as name -> its row's cells."""
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in cli("datasets").stdout.splitlines() if "│" in line]
    return {row[0]: row for row in rows if row and row[0]}


def test_local_datasets_are_listed_with_their_state_and_resolve_everywhere(cli, home, tmp_path):
    folder = tmp_path / "myshop"
    inter, items = write_interactions(folder / "interactions.csv", interactions()), write_items(folder / "items.jsonl")
    cli("datasets", "add", "shop", "--interactions", str(inter), "--items", str(items), "--k-core", "2")
    assert listing(cli)["shop"] == ["shop", "", "local: interactions.csv + items.jsonl, 2-core", "(local)", "local", "yes"]
    assert "beauty" in listing(cli) and "shop" in plugin_registry.load(third_party=False).names("dataset")
    # a run, a stats call and the prepared cache by name; then by folder, under the folder's name
    cli("run", "--plugin", "pop", "--dataset", "shop")
    stats = json.loads(cli("datasets", "stats", f"path:{folder}", "--json").stdout)
    assert (stats["dataset"], stats["users"]) == ("myshop", USERS)
    cli("run", "--plugin", "pop", "--dataset", f"path:{folder}")
    assert sorted(p.name for p in (home / "home" / "results").iterdir()) == ["myshop", "shop"]
    # a file gone: listed as missing; removed: not listed, its records and cache left alone
    items.rename(folder / "items.moved")
    assert listing(cli)["shop"][4] == "missing"
    cli("datasets", "remove", "shop")
    assert "shop" not in listing(cli)
    assert (home / "data" / "prepared" / "shop").is_dir() and (home / "home" / "results" / "shop").is_dir()


@pytest.mark.slow
def test_tune_resolves_a_local_dataset(cli, home, tmp_path):
    """One one-epoch SASRec trial and its re-run (a few seconds)."""
    inter, items = write_interactions(tmp_path / "inter.csv", interactions()), write_items(tmp_path / "items.jsonl")
    cli("datasets", "add", "shop", "--interactions", str(inter), "--items", str(items))
    cli("tune", "--plugin", "sasrec", "--dataset", "shop", "--n-trials", "1", "--epochs=1", "--cpu_amp=false")
    (path,) = (home / "home" / "results" / "shop").glob("*.json")
    record = records.load(path)
    assert record.tune is not None and record.dataset.name == "shop" and len(record.dataset.files) == 2


def test_a_local_datasets_config_has_its_k_core_as_default_and_pickles(cli, home, tmp_path):
    import pickle

    inter, items = write_interactions(tmp_path / "inter.csv", interactions()), write_items(tmp_path / "items.jsonl")
    cli("datasets", "add", "shop", "--interactions", str(inter), "--items", str(items), "--k-core", "2")
    config = plugin_registry.load(third_party=False).get("dataset", "shop").Config()
    assert config.k_core == 2 and pickle.loads(pickle.dumps(config)) == config
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in cli("config", "shop").stdout.splitlines() if "│" in line]
    assert rows[0][:3] == ["k_core", "int", "2"]  # `recbench config` shows it


def test_a_folder_registered_under_its_own_name_is_that_dataset(cli, home, tmp_path):
    folder = tmp_path / "myshop"
    inter, items = write_interactions(folder / "interactions.csv", interactions()), write_items(folder / "items.jsonl")
    cli("datasets", "add", "myshop", "--interactions", str(inter), "--items", str(items), "--k-core", "2")
    stats = json.loads(cli("datasets", "stats", f"path:{folder}", "--json").stdout)
    assert stats["dataset"] == "myshop" and stats["fingerprint"] == json.loads(cli("datasets", "stats", "myshop", "--json").stdout)["fingerprint"]
    other = tmp_path / "elsewhere" / "myshop"  # another folder of that name: refused, not mixed up with it
    write_interactions(other / "interactions.csv", interactions()), write_items(other / "items.jsonl")
    proc = cli("datasets", "stats", f"path:{other}", check=2)
    assert "the folder's name 'myshop' is already a local dataset of other files" in " ".join(proc.stderr.split())


def test_records_check_checks_a_local_dataset_by_its_files_where_it_is_not_registered(cli, home, tmp_path):
    inter, items = write_interactions(tmp_path / "inter.csv", interactions()), write_items(tmp_path / "items.jsonl")
    cli("datasets", "add", "shop", "--interactions", str(inter), "--items", str(items), "--k-core", "0")
    cli("run", "--plugin", "pop", "--dataset", "shop")
    folder = home / "home" / "results"
    assert "1 records checked: all pass." in cli("records", "check", str(folder)).stdout  # registered: by its fingerprint
    cli("datasets", "remove", "shop")
    out = cli("records", "check", str(folder)).stdout
    assert "1 records checked: all pass." in out and "not checked" not in out  # not registered: by its files' sha256
    inter.write_text(inter.read_text() + "u0,i1,99\n")
    proc = cli("records", "check", str(folder), check=1)
    assert f"its dataset file {inter} is not the one it was made from" in proc.stdout
    inter.unlink()
    out = cli("records", "check", str(folder)).stdout
    assert f"shop: dataset fingerprint not checked: its file {inter} is not here to check" in out
