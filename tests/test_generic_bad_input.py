"""Bad files of a local dataset (the generic format and RecBole's atomic files) end in exit code 2,
a message naming the file and the line (or the column, field or item), no traceback, and nothing
already written lost: the list of local datasets and the prepared cache stay as they were."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

GOOD_INTER = "user_id,item_id,timestamp\n" + "".join(f"u{u},i{i},{100 + i}\n" for u in range(4) for i in range(3))
GOOD_ITEMS = "".join(json.dumps({"item_id": f"i{i}", "title": f"Item {i}"}) + "\n" for i in range(3))
RB_INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
    f"{u}\t{i}\t3\t{100 + i}\n" for u in range(1, 5) for i in range(1, 4))
RB_ITEMS = "item_id:token\tmovie_title:token_seq\tclass:token_seq\n" + "".join(f"{i}\tFilm {i}\tDrama\n" for i in range(1, 4))


def lines_replaced(text: str, line: int, new: str) -> str:
    """`text` with its line `line` (1-based) replaced by `new` (without the newline)."""
    rows = text.splitlines()
    rows[line - 1] = new
    return "\n".join(rows) + "\n"


# id -> (interactions file name and text or bytes, items file name and text or bytes, extra options,
#        the file named, what else the message says)
CASES = {
    "field too many": (("inter.csv", lines_replaced(GOOD_INTER, 3, "u0,i1,101,9")), ("items.jsonl", GOOD_ITEMS), (),
                       "inter.csv", "line 3: expected 3 fields separated by ',', got 4"),
    "field too few": (("inter.csv", lines_replaced(GOOD_INTER, 5, "u1,i0")), ("items.jsonl", GOOD_ITEMS), (),
                      "inter.csv", "line 5: expected 3 fields separated by ',', got 2"),
    "field count after a blank line": (("inter.tsv", "user_id\titem_id\n\nu0\ti0\nu0\ti1\textra\n"), ("items.jsonl", GOOD_ITEMS), (),
                                       "inter.tsv", "line 4: expected 2 fields separated by '\\t', got 3"),
    "missing column": (("inter.csv", "user,item_id\nu0,i0\n"), ("items.jsonl", GOOD_ITEMS), (),
                       "inter.csv", "line 1: no column 'user_id' (the user id); the file has user, item_id"),
    "duplicate column": (("inter.csv", "user_id,item_id,user_id\nu0,i0,u1\n"), ("items.jsonl", GOOD_ITEMS), (),
                         "inter.csv", "line 1: the header names column 'user_id' twice (columns 1 and 3)"),
    "header without a name": (("inter.csv", "user_id,,item_id\nu0,x,i0\n"), ("items.jsonl", GOOD_ITEMS), (),
                              "inter.csv", "line 1: column 2 of the header has no name"),
    "not UTF-8 in interactions": (("inter.csv", GOOD_INTER.encode()[:40] + b"\xff" + GOOD_INTER.encode()[40:]),
                                  ("items.jsonl", GOOD_ITEMS), (), "inter.csv", "line 3: not UTF-8 text (byte 0xff)"),
    "not UTF-8 in items": (("inter.csv", GOOD_INTER), ("items.jsonl", GOOD_ITEMS.encode().replace(b"Item 2", b"Item \xe9")), (),
                           "items.jsonl", "line 3: not UTF-8 text (byte 0xe9)"),
    "empty user id": (("inter.csv", lines_replaced(GOOD_INTER, 4, " ,i2,102")), ("items.jsonl", GOOD_ITEMS), (),
                      "inter.csv", "line 4: the user id ('user_id') is empty"),
    "bad timestamp": (("inter.csv", lines_replaced(GOOD_INTER, 6, "u1,i1,yesterday")), ("items.jsonl", GOOD_ITEMS), (),
                      "inter.csv", "line 6: the timestamp 'yesterday' is not unix seconds or an ISO 8601 date"),
    "negative timestamp": (("inter.csv", lines_replaced(GOOD_INTER, 2, "u0,i0,-5")), ("items.jsonl", GOOD_ITEMS), (),
                           "inter.csv", "line 2: the timestamp -5 is not unix seconds between 0"),
    "unknown item": (("inter.csv", lines_replaced(GOOD_INTER, 7, "u1,i9,105")), ("items.jsonl", GOOD_ITEMS), (),
                     "inter.csv", "line 7: item 'i9' is not in"),
    "item without text": (("inter.csv", GOOD_INTER), ("items.jsonl", GOOD_ITEMS.replace('"title": "Item 1"', '"title": "  "')), (),
                          "items.jsonl", "line 2: item 'i1' has no text"),
    "item without text, CSV": (("inter.csv", GOOD_INTER), ("items.csv", "item_id,title\ni0,A\ni1,\ni2,C\n"), (),
                               "items.csv", "line 3: item 'i1' has no text"),
    "JSON line malformed": (("inter.csv", GOOD_INTER), ("items.jsonl", lines_replaced(GOOD_ITEMS, 2, '{"item_id": "i1", title}')), (),
                            "items.jsonl", "line 2: not JSON"),
    "JSON line not an object": (("inter.csv", GOOD_INTER), ("items.jsonl", lines_replaced(GOOD_ITEMS, 3, '["i2", "x"]')), (),
                                "items.jsonl", "line 3: expected a JSON object per line, got a JSON list"),
    "JSON field given twice": (("inter.csv", GOOD_INTER), ("items.jsonl", lines_replaced(GOOD_ITEMS, 1, '{"item_id": "i0", "title": "a", "title": "b"}')),
                               (), "items.jsonl", "line 1: the field 'title' is given twice"),
    "JSON object as text": (("inter.csv", GOOD_INTER), ("items.jsonl", lines_replaced(GOOD_ITEMS, 2, '{"item_id": "i1", "title": {"en": "x"}}')),
                            (), "items.jsonl", "line 2: field 'title' holds a JSON object"),
    "item without id": (("inter.csv", GOOD_INTER), ("items.jsonl", lines_replaced(GOOD_ITEMS, 2, '{"id": "i1", "title": "x"}')), (),
                        "items.jsonl", "line 2: no item id (field 'item_id'"),
    "item given twice": (("inter.csv", GOOD_INTER), ("items.jsonl", GOOD_ITEMS + json.dumps({"item_id": "i0", "title": "again"}) + "\n"), (),
                         "items.jsonl", "line 4: item 'i0' already had a line (line 1)"),
    "unknown text field": (("inter.csv", GOOD_INTER), ("items.jsonl", GOOD_ITEMS), ("--text-fields", "title,brand"),
                           "items.jsonl", "no field 'brand' for --text-fields; the file has title"),
    "quote not closed": (("inter.csv", lines_replaced(GOOD_INTER, 3, 'u0,"i1,101')), ("items.jsonl", GOOD_ITEMS), (),
                         "inter.csv", "line 3: the row starting here does not parse as CSV"),
    "named time column missing": (("inter.csv", GOOD_INTER), ("items.jsonl", GOOD_ITEMS), ("--time-column", "ts"),
                                  "inter.csv", "line 1: no column 'ts' (the time); the file has user_id, item_id, timestamp"),
    "empty interactions file": (("inter.csv", ""), ("items.jsonl", GOOD_ITEMS), (), "inter.csv", "is empty"),
    "header only": (("inter.csv", "user_id,item_id\n"), ("items.jsonl", GOOD_ITEMS), (), "inter.csv", "no interactions found in"),
    "unknown file type": (("inter.xlsx", GOOD_INTER), ("items.jsonl", GOOD_ITEMS), (), "inter.xlsx", "unknown file type '.xlsx'"),
    "items as interactions": (("inter.jsonl", GOOD_ITEMS), ("items.jsonl", GOOD_ITEMS), (), "inter.jsonl",
                              "a jsonl file cannot hold the interactions"),
    "nothing left after the k-core": (("inter.csv", GOOD_INTER), ("items.jsonl", GOOD_ITEMS), ("--k-core", "5"), "",
                                      "nothing is left after 5-core filtering (4 users, 3 items before)"),
    "RecBole: untyped field": (("x.inter", RB_INTER.replace("rating:float", "rating")), ("x.item", RB_ITEMS), (),
                               "x.inter", "line 1: column 3 ('rating') is not a RecBole field NAME:TYPE"),
    "RecBole: unknown type": (("x.inter", RB_INTER.replace("rating:float", "rating:number")), ("x.item", RB_ITEMS), (),
                              "x.inter", "line 1: column 3 ('rating:number') is not a RecBole field NAME:TYPE"),
    "RecBole: field twice": (("x.inter", RB_INTER.replace("rating:float", "user_id:float")), ("x.item", RB_ITEMS), (),
                             "x.inter", "line 1: the header names field 'user_id' twice"),
    "RecBole: malformed line": (("x.inter", lines_replaced(RB_INTER, 4, "1\t3\t3")), ("x.item", RB_ITEMS), (),
                                "x.inter", "line 4: expected 4 fields separated by '\\t', got 3"),
    "RecBole: no item_id field": (("x.inter", RB_INTER), ("x.item", RB_ITEMS.replace("item_id:token", "movie_id:token")), (),
                                  "x.item", "line 1: no column 'item_id' (the item id); the file has movie_id, movie_title, class"),
    "RecBole: float timestamp not a number": (("x.inter", lines_replaced(RB_INTER, 3, "1\t2\t3\tnan?")), ("x.item", RB_ITEMS), (),
                                              "x.inter", "line 3: the timestamp 'nan?' is not unix seconds"),
    "RecBole: item not in the item file": (("x.inter", lines_replaced(RB_INTER, 5, "2\t7\t3\t101")), ("x.item", RB_ITEMS), (),
                                           "x.inter", "line 5: item '7' is not in"),
    "RecBole forced on an untyped file": (("inter.txt", "user_id\titem_id\nu\ti\n"), ("items.jsonl", GOOD_ITEMS), ("--format", "recbole"),
                                          "inter.txt", "line 1: column 1 ('user_id') is not a RecBole field NAME:TYPE"),
}


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.fixture
def kept(cli, home, tmp_path):
    """A good local dataset added first: what a failed `add` must leave as it was."""
    inter, items = write(tmp_path / "good" / "inter.csv", GOOD_INTER), write(tmp_path / "good" / "items.jsonl", GOOD_ITEMS)
    cli("datasets", "add", "good", "--interactions", str(inter), "--items", str(items))
    listing = home / "home" / "datasets.json"
    return listing, listing.read_bytes(), sorted(p.name for p in (home / "data" / "prepared").iterdir())


def assert_refused(proc, *parts: str) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out, out
    flat = " ".join(out.split())  # rich wraps long lines
    for part in parts:
        assert " ".join(part.split()) in flat, (part, out)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_files_are_refused_naming_file_and_line(cli, home, tmp_path, kept, case):
    (inter_name, inter), (items_name, items), options, named, message = CASES[case]
    inter_path, items_path = write(tmp_path / "bad" / inter_name, inter), write(tmp_path / "bad" / items_name, items)
    proc = cli("datasets", "add", "bad", "--interactions", str(inter_path), "--items", str(items_path), *options, check=None)
    assert_refused(proc, str(tmp_path / "bad" / named) if named else "Dataset 'bad'", message)
    listing, before, prepared = kept
    assert listing.read_bytes() == before  # the earlier dataset is still listed, the bad one is not
    assert sorted(p.name for p in (home / "data" / "prepared").iterdir()) == prepared
    assert cli("datasets", "stats", "bad", check=None).returncode == 2  # not registered


def test_a_bad_folder_named_by_path_is_refused_by_run(cli, tmp_path):
    folder = tmp_path / "shop"
    write(folder / "interactions.csv", lines_replaced(GOOD_INTER, 3, "u0,i1"))
    write(folder / "items.jsonl", GOOD_ITEMS)
    proc = cli("run", "--plugin", "pop", "--dataset", f"path:{folder}", check=None)
    assert_refused(proc, str(folder / "interactions.csv"), "line 3: expected 3 fields separated by ',', got 2")


def test_folders_without_one_file_of_each_role_are_refused(cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_refused(cli("datasets", "stats", f"path:{empty}", check=None),
                   "expected one interactions file in", "found none")
    two = tmp_path / "two"
    write(two / "interactions.csv", GOOD_INTER)
    write(two / "a.inter", RB_INTER)
    write(two / "items.jsonl", GOOD_ITEMS)
    assert_refused(cli("datasets", "stats", f"path:{two}", check=None), "found a.inter, interactions.csv")
    assert_refused(cli("datasets", "stats", f"path:{tmp_path / 'nowhere'}", check=None), "is not a folder")


def test_names_and_files_are_checked_before_anything_is_read(cli, tmp_path, kept):
    inter, items = write(tmp_path / "inter.csv", GOOD_INTER), write(tmp_path / "items.jsonl", GOOD_ITEMS)
    assert_refused(cli("datasets", "add", "beauty", "--interactions", str(inter), "--items", str(items), check=None),
                   "Dataset name 'beauty' is taken by the dataset 'beauty' of package 'recbench'")
    assert_refused(cli("datasets", "add", "a/b", "--interactions", str(inter), "--items", str(items), check=None),
                   "Dataset name 'a/b': use letters, digits")
    assert_refused(cli("datasets", "add", "good", "--interactions", str(inter), "--items", str(items), check=None),
                   "Local dataset 'good' exists", "--replace")
    assert_refused(cli("datasets", "add", "x", "--interactions", str(tmp_path / "none.csv"), "--items", str(items), check=None),
                   f"The interactions file '{tmp_path / 'none.csv'}' does not exist")
    assert_refused(cli("datasets", "add", "x", "--interactions", str(inter), "--items", str(items), "--format", "excel", check=None),
                   "--format 'excel': expected auto, generic or recbole")
    assert_refused(cli("datasets", "remove", "nothere", check=None), "No local dataset 'nothere'. Local datasets: good.")


def test_a_moved_file_is_named_when_the_dataset_is_used(cli, tmp_path):
    inter, items = write(tmp_path / "inter.csv", GOOD_INTER), write(tmp_path / "items.jsonl", GOOD_ITEMS)
    cli("datasets", "add", "shop", "--interactions", str(inter), "--items", str(items))
    items.unlink()
    assert_refused(cli("run", "--plugin", "pop", "--dataset", "shop", check=None),
                   f"Dataset 'shop': its items file {items} is not there")


def test_an_unreadable_list_of_local_datasets_is_never_overwritten(cli, home, tmp_path):
    listing = home / "home" / "datasets.json"
    write(listing, "{not json")
    inter, items = write(tmp_path / "inter.csv", GOOD_INTER), write(tmp_path / "items.jsonl", GOOD_ITEMS)
    assert_refused(cli("datasets", "add", "shop", "--interactions", str(inter), "--items", str(items), check=None),
                   f"The list of local datasets {listing} cannot be read", "recbench does not overwrite it")
    assert listing.read_text() == "{not json"
    proc = cli("datasets")  # the other datasets are still listed, with a word on why the local ones are not
    assert "beauty" in proc.stdout and "Local datasets not listed" in proc.stdout
