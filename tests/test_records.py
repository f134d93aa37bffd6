"""Result records: atomic writes, round trips, schema versions, the typed Record."""

import json
from pathlib import Path

import numpy as np
import pytest

from recbench.errors import UsageError
from recbench.results import records, upgrade

COMMITTED = Path(__file__).parent.parent / "leaderboards" / "records"


def record(run_id="ml-100k__pop__s0__1"):
    """A committed pop record on ml-100k with four users' ranks 0, 5, -1 and 1000, as a JSON object."""
    (path,) = sorted((COMMITTED / "ml-100k").glob("ml-100k__pop__*.json"))[:1]
    rec = records.upgrade(json.loads(path.read_text()))
    from recbench.metrics import summarize

    ranks = np.array([0, 5, -1, 1000])
    rec.update(run_id=run_id, per_user={**rec["per_user"], "users": records.encode_ints(np.arange(4)),
                                        "test_rank": records.encode_ints(ranks)},
               metrics={**rec["metrics"], "test": summarize(ranks)})  # a record's metrics are its ranks'
    return rec


def test_write_load_round_trip(tmp_path):
    path = records.write(record(), tmp_path)
    assert path == tmp_path / "ml-100k" / "ml-100k__pop__s0__1.json"
    loaded = records.load(path)
    assert loaded.test_ranks().tolist() == [0, 5, -1, 1000] and loaded.users().tolist() == [0, 1, 2, 3]
    assert loaded.path == path and loaded.run_id == "ml-100k__pop__s0__1" and loaded.to_dict() == record()
    assert json.loads(records.write(loaded, tmp_path / "again").read_text()) == json.loads(path.read_text())
    assert [p.name for p in (tmp_path / "ml-100k").iterdir()] == [path.name]


def test_a_crash_mid_write_leaves_no_record(tmp_path, monkeypatch):
    def broken_dump(obj, f, **kw):
        f.write('{"schema_version": 1, "run_id": ')
        raise KeyboardInterrupt

    monkeypatch.setattr(records.json, "dump", broken_dump)
    with pytest.raises(KeyboardInterrupt):
        records.write(record(), tmp_path)
    assert list((tmp_path / "ml-100k").iterdir()) == []


def test_unreadable_and_future_records_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="bad.json"):
        records.load(bad)
    future = tmp_path / "future.json"
    future.write_text(json.dumps({**record(), "schema_version": records.SCHEMA_VERSION + 1}))
    with pytest.raises(UsageError, match="newer than this recbench"):
        records.load(future)


def test_committed_records_keep_their_config_fingerprint():
    """A config field added later must not change the fingerprint of the configs already recorded
    (else a new run of a committed config becomes a separate leaderboard row): the upgraded record
    holds it at the value that behaves as the run did (upgrade.fill_absent), as the new run does."""
    from recbench.runner import config_fingerprint, resolve, resolved_config, spec_from_record

    paths = sorted((Path(__file__).parent.parent / "leaderboards" / "records").glob("*/*.json"))
    assert paths
    for path in paths:
        record = records.load(path)
        again = resolve(spec_from_record(record))
        assert json.loads(json.dumps(resolved_config(again))) == json.loads(json.dumps(record.config)), path.name
        assert config_fingerprint(again) == record.config_fingerprint, path.name


def test_a_record_is_fingerprinted_anew_when_read():
    """Records written before fingerprints hashed the whole config (every committed one) hold a
    fingerprint of the earlier scheme: it is recomputed from the upgraded config, and the earlier
    scheme still recognises it (records.same_config, for run folders and checkpoints of that time)."""
    for path in sorted(COMMITTED.glob("*/*.json")):
        written = json.loads(path.read_text())
        record = records.load(path)
        tokenizer = record.tokenizer.name if record.tokenizer else None
        assert record.config_fingerprint == records.config_fingerprint(record.config, tokenizer), path.name
        assert records.fingerprint_before_full_config(record.config, tokenizer) == written["config_fingerprint"], path.name
        assert records.same_config(written["config_fingerprint"], record.config, tokenizer), path.name
        assert records.same_config(record.config_fingerprint, record.config, tokenizer), path.name
    data = record.to_dict()
    assert records.Record.from_dict({**data, "config_fingerprint": "0" * 12}).config_fingerprint == record.config_fingerprint
    assert not records.same_config("0" * 12, record.config, tokenizer)


def test_an_upgraded_config_holds_the_settings_added_since():
    path = sorted((COMMITTED / "ml-100k").glob("ml-100k__hstu__*.json"))[0]
    data = json.loads(path.read_text())
    assert data["schema_version"] == 1 and "loss" not in data["config"]["generator"]
    generator = records.upgrade(data)["config"]["generator"]
    assert {k: generator[k] for k in ("loss", "time_bias", "fp32_logits", "cpu_amp", "optimizer", "train_windows")} == {
        "loss": "sampled", "time_bias": True, "fp32_logits": False, "cpu_amp": False, "optimizer": "adamw", "train_windows": False}
    pop = records.upgrade(json.loads(sorted((COMMITTED / "ml-100k").glob("ml-100k__pop__*.json"))[0].read_text()))
    assert not set(upgrade.WHEN_ABSENT) & set(pop["config"]["generator"])  # a generator without those settings gains none
    unknown = {**data, "generator": {**data["generator"], "name": "not_installed"}}
    assert records.upgrade(unknown)["config"]["generator"] == upgrade.upgrade_2_to_3(upgrade.upgrade_1_to_2(data))["config"]["generator"]


@pytest.mark.parametrize("command, expected", [
    ("recbench run -p sasrec -d beauty --results-dir leaderboards/records --resume", "defaults"),
    ("recbench run --plugin sasrec --dataset beauty --loss=ce --resume=/tmp/runs/x --seed 2 --device cpu", "loss=ce"),
    ("recbench run --plugin diff_grm --dataset beauty --tokenizer rq --preset cpu --config my/space.yaml --nproc 2",
     "preset cpu, config space.yaml"),
    ("recbench tune --plugin sasrec --dataset ml-100k --n-trials 8 --space s.yaml --epochs=12 --eval_every=1",
     "tuned, epochs=12, eval_every=1"),
])
def test_a_record_from_before_setting_labels_takes_its_label_from_its_command(command, expected):
    assert upgrade.setting_of_command(command) == expected
    before = {k: v for k, v in record().items() if k != "setting"}
    assert records.upgrade({**before, "schema_version": 2, "command": command})["setting"] == expected



def test_every_committed_record_loads_and_writes_back_the_same_json():
    paths = sorted(COMMITTED.glob("*/*.json"))
    assert paths
    for path in paths:
        data = json.loads(path.read_text())
        rec = records.load(path)
        assert isinstance(rec, records.Record) and rec.schema_version == records.SCHEMA_VERSION, path.name
        assert rec.to_dict() == records.upgrade(json.loads(path.read_text())), path.name
        if data["schema_version"] == records.SCHEMA_VERSION:  # the file exactly, key order included, but for
            # the settings added since the run (upgrade.fill_absent), the fingerprint computed anew and the
            # provenance of a record from before it was recorded
            upgraded = records.upgrade(data)
            data = {**data, "config": upgraded["config"], "config_fingerprint": upgraded["config_fingerprint"],
                    "provenance": upgraded["provenance"]}
            assert json.dumps(rec.to_dict(), indent=1) == json.dumps(data, indent=1), path.name
        assert records.Record.from_dict(rec.to_dict()) == rec, path.name


def test_typed_fields_of_a_committed_record():
    (path,) = sorted((COMMITTED / "beauty").glob("beauty__diff_grm__s0__20261122T*.json"))
    rec = records.load(path)
    assert (rec.generator.name, rec.dataset.name, rec.seed) == ("diff_grm", "beauty", 0) and rec.tokenizer.config == rec.config["tokenizer"]
    assert rec.semantic_ids.n_digit and rec.train.epochs and rec.checkpoints.best.endswith("best.pt")
    assert rec.metrics.test["ndcg@10"] > 0 and rec.eval.test_users_per_s > 0 and rec.device.type in ("cpu", "cuda")
    (tuned,) = [r for r in map(records.load, sorted(COMMITTED.glob("*/*.json"))) if r.tune is not None]
    assert tuned.tune.trials and tuned.tune.params and tuned.tune.metric


def test_an_old_schema_record_loads_as_a_current_record(tmp_path):
    (path,) = sorted((COMMITTED / "ml-100k").glob("ml-100k__pop__*.json"))[:1]
    old = json.loads(path.read_text())
    assert old["schema_version"] == 1  # the committed record is a schema 1 one
    old["device"]["name"] = "AMD EPYC (1 threads)"
    old["config"]["generator"]["resume"] = "true"
    copy = tmp_path / "old.json"
    copy.write_text(json.dumps(old))
    rec = records.load(copy)
    assert rec.schema_version == records.SCHEMA_VERSION and rec.run_control == records.RunControl(resume="true")
    assert rec.device.name == "AMD EPYC (1 thread)" and rec.test_ranks().tolist() == records.load(path).test_ranks().tolist()
    assert "resume" not in rec.config["generator"] and rec.setting == "defaults"  # read from its command
    assert rec.to_dict()["run_control"] == {"resume": "true", "eval_only": False, "checkpoint": None, "rebuild_ids": False}


@pytest.mark.parametrize("damage, message", [
    (lambda r: r["dataset"].pop("fingerprint"), "it has no 'dataset.fingerprint'"),
    (lambda r: r.pop("run_id"), "it has no 'run_id'"),
    (lambda r: r["train"].update(seconds="slow"), "'train.seconds' is a str, not a number"),
    (lambda r: r.update(tokenizer="opq"), "'tokenizer' is a str, not an object"),
    (lambda r: r.update(checkpoints={"best": "best.pt"}), "it is malformed"),
])
def test_a_record_missing_a_field_names_the_file_and_the_field(tmp_path, damage, message):
    rec = record()
    damage(rec)
    path = tmp_path / "damaged.json"
    path.write_text(json.dumps(rec))
    with pytest.raises(UsageError, match=f"Result record '{path}' cannot be used: .*{message}"):
        records.load(path)
    with pytest.raises(ValueError, match=message):
        records.Record.from_dict(rec)


def test_a_validation_only_record_is_typed_without_the_check():
    rec = record()
    for key in ("per_user", "checkpoints"):
        rec.pop(key, None)
    del rec["metrics"]["test"], rec["eval"]["test_seconds"], rec["eval"]["test_users_per_s"]
    with pytest.raises(ValueError, match="metrics.test"):
        records.Record.from_dict(rec)
    partial = records.Record.from_dict(rec, checked=False)
    assert partial.metrics.test is None and partial.per_user is None and partial.to_dict() == rec
