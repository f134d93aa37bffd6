"""Result records: atomic writes, round trips, schema versions."""

import json
from pathlib import Path

import numpy as np
import pytest

from recbench import records
from recbench.errors import UsageError

COMMITTED = Path(__file__).parent.parent / "leaderboards" / "records"


def record(run_id="ml-100k__pop__s0__1"):
    """A committed pop record on ml-100k with four users' ranks 0, 5, -1 and 1000."""
    (path,) = sorted((COMMITTED / "ml-100k").glob("ml-100k__pop__*.json"))[:1]
    rec = records.upgrade(json.loads(path.read_text()))
    rec.update(run_id=run_id, per_user={**rec["per_user"], "users": records.encode_ints(np.arange(4)),
                                        "test_rank": records.encode_ints(np.array([0, 5, -1, 1000]))})
    return rec


def test_write_load_round_trip(tmp_path):
    path = records.write(record(), tmp_path)
    assert path == tmp_path / "ml-100k" / "ml-100k__pop__s0__1.json"
    loaded = records.load(path)
    assert records.test_ranks(loaded).tolist() == [0, 5, -1, 1000]
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
    (else a new run of a committed config becomes a separate leaderboard row); see runner.ADDED_LATER."""
    from recbench.runner import config_fingerprint, resolve, spec_from_record

    paths = sorted((Path(__file__).parent.parent / "leaderboards" / "records").glob("*/*.json"))
    assert paths
    for path in paths:
        record = records.load(path)
        assert config_fingerprint(resolve(spec_from_record(record))) == record["config_fingerprint"], path.name

