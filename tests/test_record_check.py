"""`recbench records check`: a record that recbench could not have written, here, is refused with its file named."""

import json


def tiny_record(cli, home) -> tuple[dict, object]:
    cli("run", "--plugin", "pop", "--dataset", "ml-100k")
    (path,) = (home / "home" / "results" / "ml-100k").glob("*.json")
    return json.loads(path.read_text()), path


def test_a_tampered_metric_and_a_tampered_dataset_fingerprint_are_refused_naming_the_file(cli, synthetic, home):
    record, path = tiny_record(cli, home)
    folder = path.parent
    assert "1 records checked: all pass." in cli("records", "check", str(folder)).stdout
    edited = folder / "edited.json"
    edited.write_text(json.dumps({**record, "metrics": {**record["metrics"], "test": {**record["metrics"]["test"], "ndcg@10": 0.5}}}))
    other = folder / "other.json"
    other.write_text(json.dumps({**record, "dataset": {**record["dataset"], "fingerprint": "0" * 16}}))
    proc = cli("records", "check", str(folder), check=1)
    assert f"refused: {edited}: Result record '{edited}' cannot be used: its test ndcg@10 (0.5) is not what its per-user ranks give" in proc.stdout
    assert f"refused: {other}: its dataset fingerprint {'0' * 16} is not that of ml-100k's data here ({record['dataset']['fingerprint']})" in proc.stdout
    assert f"refused: {other}: its file name should be its run id, '{record['run_id']}.json'" in proc.stdout
    assert "3 records checked: 3 refused." in proc.stdout  # the untouched record passes; the edited one fails twice (its name too)


def test_without_the_raw_files_the_fingerprint_is_reported_unchecked(cli, synthetic, home, monkeypatch):
    _, path = tiny_record(cli, home)
    monkeypatch.setenv("RECBENCH_DATA_MIRROR", str(home / "nowhere"))
    proc = cli("records", "check", str(path.parent))
    assert "ml-100k: dataset fingerprint not checked: Raw files for dataset 'ml-100k' not found." in proc.stdout
    assert "1 records checked: all pass." in proc.stdout
    proc = cli("records", "check", str(path.parent), "--require-data", check=1)
    assert "the raw files of ml-100k are not here to check its dataset fingerprint" in proc.stdout


def test_a_records_folder_that_does_not_exist_exits_2_naming_it(cli, home):
    proc = cli("records", "check", str(home / "none"), check=2)
    assert f"Records folder '{home / 'none'}' does not exist or is not a folder." in proc.stderr
