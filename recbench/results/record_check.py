"""`recbench records check DIR`: is every record in a folder one that recbench could have written?

A leaderboard is only as good as its records, and records arrive by copying files (from other
machines, from other people's pull requests). Loading a record already refuses a malformed one:
a missing part, a corrupt per-user blob, a metric outside [0, 1] or different from what its own
per-user ranks give (records.check). This adds what loading cannot know on its own:

- the dataset: the fingerprint a record names must be the one the raw files give here, under the
  record's dataset config (the same hash `recbench run` caches the prepared data under), so a
  record of edited or other data is found out. Where the raw files are not here the check says so
  and, unless `require_data`, is not a failure: the other checks still stand. A local dataset
  (`recbench datasets add`) that is not registered here is checked by the files its record names,
  against their sha256;
- its name: a record file is named by its run id, as `recbench run` names it, so that two files
  never claim one run.

Nothing is prepared, trained or downloaded: the raw files are only hashed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RecbenchError, UsageError
from . import records


@dataclass
class Report:
    checked: int = 0
    failures: list[tuple[Path, str]] = field(default_factory=list)  # (record file, what is wrong)
    unchecked_data: dict[str, str] = field(default_factory=dict)  # dataset -> why its fingerprint was not checked

    @property
    def ok(self) -> bool:
        return not self.failures


def record_files(folders: list[Path]) -> list[Path]:
    """Every record file under `folders` (JSON files at any depth, not hidden); a folder that does not exist is an error."""
    files = []
    for folder in folders:
        if not folder.is_dir():
            raise UsageError(f"Records folder '{folder}' does not exist or is not a folder.")
        files += sorted(p for p in folder.rglob("*.json") if not any(part.startswith(".") for part in p.relative_to(folder).parts))
    return files


def data_fingerprint(dataset: str, config: dict, registry) -> str:
    """The fingerprint of `dataset`'s prepared data under `config` (a record's dataset config), from
    the raw files found here; a RecbenchError where they are not found."""
    from ..config import from_layers
    from ..data.prepare import compute_fingerprint, prepare_params
    from ..data.source import Source

    entry = registry.entry("dataset", dataset)
    cfg = from_layers({"dataset": entry.obj.Config}, [("record", config)])["dataset"]
    files = entry.obj.locate(Source(entry.obj.name, download=False))
    return compute_fingerprint(entry.obj.name, prepare_params(entry.obj, cfg), files)


def files_check(files: list) -> tuple[str | None, str | None]:
    """A local dataset's record names the files it was read from with their sha256 (records.Dataset.files):
    (what is wrong, None) where a file here differs, (None, None) where every file is here and equal, and
    (None, why not checked) where one is not here."""
    from ..data.prepare import file_digest

    for f in files:
        path = Path(str(f.get("path", "")))
        if not path.is_file():
            return None, f"its file {path} is not here to check"
        if file_digest(path) != f.get("sha256"):
            return f"its dataset file {path} is not the one it was made from (sha256 {f.get('sha256')}, here {file_digest(path)})", None
    return None, None


def check_file(path: Path, fingerprints: dict, registry, require_data: bool = False) -> tuple[list[str], dict[str, str]]:
    """(what is wrong with the record file `path`, dataset -> why its fingerprint could not be checked).
    `fingerprints` caches the data fingerprints computed so far, across files."""
    try:
        record = records.load(path)
    except RecbenchError as exc:
        return [str(exc)], {}
    problems, unchecked = [], {}
    if path.stem != record.run_id:
        problems.append(f"its file name should be its run id, '{record.run_id}.json'")
    ds = record.dataset.name
    key = (ds, repr(sorted((record.config.get("dataset") or {}).items())))
    if key not in fingerprints:
        try:
            fingerprints[key] = data_fingerprint(ds, record.config.get("dataset") or {}, registry)
        except RecbenchError as exc:
            fingerprints[key] = None
            unchecked[ds] = str(exc).splitlines()[0]
    expected = fingerprints[key]
    if expected is None and record.dataset.files:  # a local dataset not registered here: checked by its own files
        problem, why = files_check(record.dataset.files)
        if problem:
            return [*problems, problem], {}
        if why is None:
            return problems, {}
        unchecked[ds] = why
    if expected is None:
        if require_data:
            problems.append(f"the raw files of {ds} are not here to check its dataset fingerprint")
    elif record.dataset.fingerprint != expected:
        problems.append(f"its dataset fingerprint {record.dataset.fingerprint} is not that of {ds}'s data here "
                        f"({expected}): the record was made on other or edited data")
    return problems, unchecked


def check(folders: list[Path], require_data: bool = False, log=lambda s: None) -> Report:
    from ..registry import registry

    report, fingerprints, reg = Report(), {}, registry()
    for path in record_files(folders):
        report.checked += 1
        problems, unchecked = check_file(path, fingerprints, reg, require_data)
        report.failures += [(path, why) for why in problems]
        for ds, why in unchecked.items():
            report.unchecked_data.setdefault(ds, why)
    log(f"{report.checked} records checked, {len(report.failures)} refused")
    return report
