"""A record's provenance: produced by `recbench run`, reproduced (`recbench reproduce` matched), or
submitted (`recbench records submit`); the leaderboard keeps submitted rows apart and marks them."""

import json

from recbench.results import leaderboard as lb
from recbench.results import records


def pop_record(cli, home):
    cli("run", "--plugin", "pop", "--dataset", "ml-100k")
    (path,) = (home / "home" / "results" / "ml-100k").glob("*.json")
    return path


def test_a_run_is_produced_and_a_record_from_before_provenance_reads_as_produced(cli, synthetic, home):
    path = pop_record(cli, home)
    data = json.loads(path.read_text())
    assert data["provenance"] == {"kind": "produced"}
    del data["provenance"]
    assert records.Record.from_dict(data).provenance.kind == "produced"
    data["provenance"] = {"kind": "borrowed"}
    bad = home / "bad" / "ml-100k"
    bad.mkdir(parents=True)
    (bad / path.name).write_text(json.dumps(data))
    assert "its provenance kind is 'borrowed'; expected one of produced, reproduced, submitted" in \
        cli("records", "check", str(home / "bad"), check=1).stdout


def test_a_submitted_record_is_checked_marked_and_kept_in_a_row_of_its_own(cli, synthetic, home):
    path = pop_record(cli, home)
    board_dir = home / "board"
    out = cli("records", "submit", str(path), "--by", "alice", "--source", "https://example.org/pull/7", "--into", str(board_dir)).stdout
    target = board_dir / "ml-100k" / path.name
    assert f"submitted: {path} -> {target}" in out
    submitted = records.load(target)
    assert (submitted.provenance.kind, submitted.provenance.submitted_by, submitted.provenance.source) == \
        ("submitted", "alice", "https://example.org/pull/7")
    assert submitted.metrics == records.load(path).metrics and submitted.config_fingerprint == records.load(path).config_fingerprint

    rows = lb.collect([board_dir, home / "home" / "results"])["ml-100k"]
    assert sorted(r.provenance() for r in rows) == ["run here", "submitted by alice"]  # one config, two rows
    cli("leaderboard", "--results", str(board_dir), "--results", str(home / "home" / "results"), "--write-markdown", str(home / "pages"))
    page = (home / "pages" / "ml-100k.md").read_text()
    assert "submitted by alice" in page and "run here" in page
    cli("site", "--output", str(home / "site"), "--results", str(board_dir), "--results", str(home / "home" / "results"))
    dataset_page = (home / "site" / "ml-100k" / "index.html").read_text()
    assert '<option>submitted by alice</option>' in dataset_page and '<option>run here</option>' in dataset_page  # the source filter
    row_pages = [p.read_text() for p in (home / "site" / "ml-100k").glob("pop*.html")]
    assert sum('Source: <span class="provenance">submitted by alice</span>' in text for text in row_pages) == 1
    assert any("submitted by alice (https://example.org/pull/7)" in text for text in row_pages)

    again = cli("records", "submit", str(path), "--by", "alice", "--into", str(board_dir), check=2)
    assert f"'{target}' exists: run {submitted.run_id} is already in {board_dir}" in again.stderr
    edited = home / "edited.json"
    data = json.loads(path.read_text())
    data["metrics"]["test"]["ndcg@10"] = 0.9
    edited.write_text(json.dumps(data))
    refused = cli("records", "submit", str(edited), "--by", "bob", "--into", str(board_dir), check=2)
    assert f"Result record '{edited}' is refused:" in refused.stderr and "is not what its per-user ranks give" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert "--by: expected the name" in cli("records", "submit", str(path), "--by", " ", "--into", str(board_dir), check=2).stderr


def test_a_matching_reproduction_is_marked_reproduced(cli, synthetic, home):
    path = pop_record(cli, home)
    out = cli("reproduce", str(path), "--results-dir", str(home / "again")).stdout
    assert "Reproduced exactly" in out
    (again,) = (home / "again" / "ml-100k").glob("*.json")
    provenance = records.load(again).provenance
    assert (provenance.kind, provenance.reproduces, provenance.max_difference) == ("reproduced", path.stem, 0.0)
    (row,) = lb.collect([home / "again"])["ml-100k"]
    assert row.provenance() == "reproduced here"
