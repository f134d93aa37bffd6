"""`recbench records submit RECORD... --by NAME`: a third party's result record joins a records folder.

Leaderboards take results by pull request: whoever ran recbench elsewhere adds the record file.
Such a row is not re-run here, so the reader must be able to tell it from one that was: the record
is checked first as `recbench records check` checks a folder (schema, per-user ranks, metrics
recomputed from them, file name, the dataset fingerprint of the raw data where it is here), then
written into the folder with provenance "submitted", who submitted it and from where. The pages
and the site mark such rows, and a submitted record never joins a row re-run here (their config
fingerprints may be equal, their provenance is not): `recbench reproduce` of it, matched, gives
the row re-run here.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import UsageError
from . import records
from .record_check import check_file


def submit(path: Path, into: Path, by: str, source: str | None = None, registry=None) -> tuple[Path, dict[str, str]]:
    """Check the record file `path` and write it into `into` (as into/DATASET/RUN_ID.json) marked as
    submitted by `by`; (the file written, dataset -> why its fingerprint could not be checked here).
    A UsageError naming the file where the record is refused or its run is already in `into`."""
    from ..registry import registry as default

    if not by.strip():
        raise UsageError("--by: expected the name or handle of whoever submits the record, got an empty string.")
    if not Path(path).is_file():
        raise UsageError(f"Result record '{path}' does not exist.")
    problems, unchecked = check_file(Path(path), {}, registry or default())
    if problems:
        raise UsageError(f"Result record '{path}' is refused: {'; '.join(problems)}.")
    record = records.load(path)
    record.provenance = records.Provenance(kind="submitted", submitted_by=by.strip(), source=source,
                                           submitted=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    target = records.record_path(record.to_dict(), into)
    if target.exists():
        raise UsageError(f"'{target}' exists: run {record.run_id} is already in {into}; a record joins a folder once.")
    return records.write(record, into), unchecked
