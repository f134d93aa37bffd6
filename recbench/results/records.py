"""Result records: one JSON file per finished run, with everything needed to trust and redo it.

A record holds the schema version, the plugins and their versions, the fully resolved config,
the dataset and the fingerprint of its prepared form, the protocol, the seed, validation and test
metrics, per-user test ranks (zlib-compressed int32, base64; every per-user metric derives from
the rank), times, throughput, parameter count, peak memory, the device, library versions, the
recbench version and git commit, and the command that produced it. A run that re-trains the best
trial of a `recbench tune` study also holds a `tune` field (see `tune_field`); other records have
none, and readers treat it as optional.

Files are written atomically (a temporary file renamed into place), one file per run, so records
from many machines merge by copying. `load` upgrades older schemas to the current one and returns a
typed `Record`, whose `to_dict` is the JSON written.
"""

from __future__ import annotations

import base64
import json
import math
import os
import platform
import subprocess
import sys
import zlib
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np

from ..atomic import replacing
from ..errors import UsageError
from .upgrade import (  # noqa: F401  (the fingerprint and the upgrade are the record's, defined with the compatibility rules)
    RUN_CONTROL,
    SCHEMA_VERSION,
    config_fingerprint,
    fingerprint_before_full_config,
    same_config,
    upgrade,
)


def encode_ints(values: np.ndarray) -> str:
    return base64.b64encode(zlib.compress(np.asarray(values, dtype="<i4").tobytes(), 9)).decode("ascii")


def decode_ints(blob: str) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(blob)), dtype="<i4").copy()


def git_commit() -> str | None:
    """The commit of the recbench source tree, when it is a git checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict[str, Any]:
    import torch

    from .. import __version__

    return {
        "recbench": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }




def command_line() -> str:
    import shlex

    return " ".join(shlex.quote(a) for a in ["recbench", *sys.argv[1:]])


def run_id(generator: str, dataset: str, seed: int) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")[:-3]
    return f"{dataset}__{generator}__s{seed}__{stamp}"


def write(record: Record | dict[str, Any], folder: Path) -> Path:
    """Write `record` as folder/DATASET/RUN_ID.json, atomically (a plain dict, e.g. a test's raw record, as given)."""
    data = record.to_dict() if isinstance(record, Record) else record
    path = record_path(data, folder)
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    return path


def record_path(data: dict[str, Any], folder: Path) -> Path:
    """Where `write` puts the record `data` (a JSON object): known before it is written, so that a
    tracker can be told the record of its run and the record can hold the tracker's run."""
    name = str(data["run_id"])
    if not name or name.startswith(".") or "/" in name or os.sep in name:  # the leaderboard reads no hidden file
        raise UsageError(f"Record run_id {name!r}: expected a name that does not start with '.' and holds no '/' "
                         "(it names the record's file).")
    return Path(folder) / data["dataset"]["name"] / f"{name}.json"


def tune_field(study: str, storage: str, trial: int, metric: str, value: float, params: dict[str, Any],
               trials: dict[str, int]) -> dict[str, Any]:
    """The record's `tune` field: the study (name and storage URL) whose best trial this run re-trains,
    that trial's number, its validation `metric` value (the one it was selected on), the tuned
    values and the study's trial count per state when it was chosen."""
    return {"study": study, "storage": storage, "trial": trial, "metric": metric, "value": value,
            "params": dict(params), "trials": dict(trials)}


# what every record must hold for the leaderboard, compare and reproduce: (dotted key, type)
REQUIRED = (("run_id", str), ("seed", int), ("dataset.name", str), ("dataset.fingerprint", str), ("generator.name", str),
            ("config", dict), ("config_fingerprint", str), ("metrics.test", dict), ("metrics.valid", dict),
            ("per_user.users", str), ("per_user.test_rank", str), ("train.seconds", (int, float)),
            ("eval.test_users_per_s", (int, float)), ("device.name", str), ("command", str))


def check(record: dict[str, Any]) -> None:
    """Raise ValueError naming the first missing or malformed part of an (upgraded) record."""
    from ..metrics import metric_names

    for dotted, kind in REQUIRED:
        value: Any = record
        for part in dotted.split("."):
            if not isinstance(value, dict) or part not in value:
                raise ValueError(f"it has no '{dotted}'")
            value = value[part]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"'{dotted}' is a {type(value).__name__}, not a {getattr(kind, '__name__', 'number')}")
    missing = [m for m in metric_names() if not isinstance(record["metrics"]["test"].get(m), (int, float))]
    if missing:
        raise ValueError(f"its test metrics lack {', '.join(missing)}")
    try:
        users, ranks = decode_ints(record["per_user"]["users"]), decode_ints(record["per_user"]["test_rank"])
    except Exception as exc:  # noqa: BLE001 - bad base64, bad zlib stream, odd length: a corrupt blob
        raise ValueError(f"its per-user ranks are corrupt ({type(exc).__name__}: {exc})") from None
    if len(users) != len(ranks):
        raise ValueError(f"its per-user blobs disagree ({len(users)} users, {len(ranks)} ranks)")
    check_metrics(record["metrics"], ranks, "")
    check_provenance(record.get("provenance"))
    id_level = record.get("id_level")
    if isinstance(id_level, dict) and isinstance(id_level.get("metrics"), dict) and isinstance(id_level.get("test_rank"), str):
        try:
            id_ranks = decode_ints(id_level["test_rank"])
        except Exception as exc:  # noqa: BLE001 - as above
            raise ValueError(f"its ID-level per-user ranks are corrupt ({type(exc).__name__}: {exc})") from None
        check_metrics(id_level["metrics"], id_ranks, "ID-level ")


def check_provenance(provenance: Any) -> None:
    """A known kind, and what that kind must say: whom a reproduction matched, who submitted a record."""
    if provenance is None:
        return
    if not isinstance(provenance, dict) or provenance.get("kind") not in PROVENANCE:
        kind = provenance.get("kind") if isinstance(provenance, dict) else provenance
        raise ValueError(f"its provenance kind is {kind!r}; expected one of {', '.join(PROVENANCE)}")
    needs = {"reproduced": "reproduces", "submitted": "submitted_by"}.get(provenance["kind"])
    if needs and not (isinstance(provenance.get(needs), str) and provenance[needs].strip()):
        raise ValueError(f"its provenance is {provenance['kind']!r} but 'provenance.{needs}' is missing")


def check_metrics(metrics: dict[str, Any], ranks: np.ndarray, level: str) -> None:
    """Every metric a finite number in [0, 1] (recall, NDCG and MRR all are), and the test metrics those
    the stored per-user ranks give: a record whose numbers were edited, or came out NaN, is refused."""
    from ..metrics import summarize

    for part in ("test", "valid"):
        for name, value in (metrics.get(part) or {}).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or not 0 <= value <= 1:
                raise ValueError(f"its {level}{part} {name} is {value!r}; a metric is a finite number in [0, 1]")
    recomputed = summarize(ranks)
    for name, value in (metrics.get("test") or {}).items():
        if name in recomputed and abs(recomputed[name] - value) > 1e-9:
            raise ValueError(f"its {level}test {name} ({value!r}) is not what its per-user ranks give ({recomputed[name]!r})")


# ---- the typed record ---------------------------------------------------------------------------


@dataclass(kw_only=True)
class Part:
    """A JSON object of a record as a dataclass: keys it does not know are kept in `extra`, so that
    `to_dict` gives back what `from_dict` read."""

    OMIT_NONE: ClassVar[tuple[str, ...]] = ()  # fields that are absent from the JSON while None
    NESTED: ClassVar[dict[str, type[Part]]] = {}  # fields that are themselves parts

    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # keys of the JSON no field holds, as read

    @classmethod
    def from_dict(cls, data: Any, where: str = ""):
        """The part that JSON object `data` (the record's field `where`, for messages) holds."""
        if not isinstance(data, dict):
            raise ValueError(f"'{where}' is a {type(data).__name__}, not an object")
        names = {f.name for f in fields(cls) if f.metadata.get("json", True)} - {"extra"}
        prefix = f"{where}." if where else ""
        values = {k: cls.NESTED[k].from_dict(v, prefix + k) if k in cls.NESTED and v is not None else v
                  for k, v in data.items() if k in names}
        return cls(**values, extra={k: v for k, v in data.items() if k not in names})

    def omitted(self) -> set[str]:
        """The fields left out of the JSON."""
        return {name for name in self.OMIT_NONE if getattr(self, name) is None}

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: fields in order, then `extra`."""
        skip = self.omitted() | {"extra"}
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("json", True) and f.name not in skip}
        return {**{k: v.to_dict() if isinstance(v, Part) else v for k, v in out.items()}, **self.extra}


@dataclass(kw_only=True)
class Plugin(Part):
    """Which plugin a run used."""

    name: str  # the name it is registered under
    package: str | None = None  # the distribution that provides it
    version: str | None = None  # that distribution's version


@dataclass(kw_only=True)
class Tokenizer(Plugin):
    """The tokenizer of a semantic-ID generator's IDs."""

    config: dict[str, Any] | None = None  # the run's tokenizer config (as in Record.config)


@dataclass(kw_only=True)
class Dataset(Plugin):
    """The dataset plugin and the prepared data the run saw."""

    OMIT_NONE = ("files", "report")

    fingerprint: str  # of the prepared data: equal fingerprints, equal splits
    users: int | None = None  # counts of the prepared data
    items: int | None = None
    interactions: int | None = None
    # a local dataset's (recbench.data.generic): the files read ({path, bytes, sha256}) and what preparing
    # them counted (repeated pairs, items without text, what the k-core dropped); absent for plugins' datasets
    files: list[dict[str, Any]] | None = None
    report: dict[str, Any] | None = None


@dataclass(kw_only=True)
class Metrics(Part):
    """Metric name -> value on each split."""

    OMIT_NONE = ("test",)

    valid: dict[str, float]
    test: dict[str, float] | None = None  # None: a validation-only run (a tuning trial)


@dataclass(kw_only=True)
class PerUser(Part):
    """Per-user test ranks (encode_ints blobs); every per-user metric derives from the rank."""

    encoding: str | None = None  # how the blobs are encoded, in words
    users: str  # evaluated user ids
    test_rank: str  # each one's rank of the test item (-1: not in the list)


@dataclass(kw_only=True)
class Train(Part):
    """How training went; the last four are absent for a model that does not train."""

    OMIT_NONE = ("cpu_amp_auto", "epochs", "best_epoch", "best_valid", "stopped", "history")

    seconds: float  # training time (fitting time for a model that does not train)
    cpu_amp_auto: str | None = None  # why cpu_amp=auto chose the value in the config
    epochs: int | None = None  # epochs trained
    best_epoch: int | None = None  # the epoch selected on validation (None: no validation ran)
    best_valid: float | None = None  # its validation metric
    stopped: str | None = None  # why training ended
    # the curves: one entry per epoch as in log.jsonl (epoch, loss, lr, seconds, samples_per_s, and
    # valid: the validation metrics where the epoch was validated); absent in records made before
    history: list[dict[str, Any]] | None = None

    def omitted(self) -> set[str]:  # a trained run writes best_epoch and best_valid even when None
        return super().omitted() - ({"best_epoch", "best_valid"} if self.epochs is not None else set())


@dataclass(kw_only=True)
class Eval(Part):
    """Evaluation times; the test ones are absent for a validation-only run."""

    OMIT_NONE = ("test_seconds", "test_users_per_s")

    valid_seconds: float | None = None  # time to evaluate the validation split
    test_seconds: float | None = None  # and the test split
    test_users_per_s: float | None = None  # test inference throughput


@dataclass(kw_only=True)
class SemanticIds(Part):
    """The semantic IDs a semantic-ID generator ran on."""

    collision_rate: float | None = None  # share of items whose ID another item had before IDs were made unique
    n_digit: int | None = None  # digits per ID
    codebook_size: int | None = None  # codes per digit


@dataclass(kw_only=True)
class IdLevel(Part):
    """Metrics at the ID level, DiffGRM's evaluator's protocol (runner.ID_LEVEL_DEFINITION)."""

    NESTED = {"metrics": Metrics}
    OMIT_NONE = ("test_rank",)

    definition: str | None = None  # the protocol, in words
    metrics: Metrics  # the same metrics as Record.metrics, scored on IDs
    test_rank: str | None = None  # per-user test ranks at the ID level (an encode_ints blob)


@dataclass(kw_only=True)
class RunControl(Part):
    """How the run was carried out, not what it computed (runner.RunSpec)."""

    OMIT_NONE = ("memory_check",)

    resume: str | None = None  # --resume: "true" or the run folder continued
    eval_only: bool = False  # evaluated `checkpoint` without training
    checkpoint: str | None = None  # the checkpoint file evaluated
    rebuild_ids: bool = False  # the semantic IDs were built anew, not read from the cache
    memory_check: bool | None = None  # False: run with --memory_check=false (recbench.memory); absent: checked


@dataclass(kw_only=True)
class Device(Part):
    """Where the run ran."""

    type: str | None = None  # cpu or cuda
    name: str  # the CPU model and thread count, or the GPU
    processes: int | None = None  # data-parallel processes (absent: 1)


@dataclass(kw_only=True)
class Tune(Part):
    """The tuning study whose best trial the run re-trained (see `tune_field`)."""

    study: str
    storage: str
    trial: int
    metric: str  # the validation metric the trial was selected on
    value: float  # its value
    params: dict[str, Any]  # the tuned values
    trials: dict[str, int]  # the study's trial count per state when the trial was chosen


@dataclass(kw_only=True)
class Checkpoints(Part):
    """The run folder's files on the machine that trained: RECBENCH_HOME/runs/RUN_ID/, or the folder
    `--resume=FOLDER` continued (then the run id is a new one; see runner.resumed_run_id)."""

    best: str  # best.pt: the model selected on validation
    last: str  # last.pt: where training stopped
    log: str  # log.jsonl: one line per epoch


PROVENANCE = ("produced", "reproduced", "submitted")


@dataclass(kw_only=True)
class Provenance(Part):
    """Where a record comes from, so that a reader knows what stands behind a row: "produced" by
    `recbench run` (the default; every record before this field was), "reproduced" (`recbench
    reproduce` re-ran an earlier record's config and matched its metrics within `tolerance`), or
    "submitted" (a third party's record file, added with `recbench records submit`: checked for
    consistency here, but not re-run)."""

    OMIT_NONE = ("reproduces", "max_difference", "tolerance", "submitted_by", "source", "submitted")

    kind: str  # one of PROVENANCE
    reproduces: str | None = None  # reproduced: the run id of the record it matched
    max_difference: float | None = None  # reproduced: the largest metric difference to that record
    tolerance: float | None = None  # reproduced: the tolerance it was within
    submitted_by: str | None = None  # submitted: who submitted it (a name or handle)
    source: str | None = None  # submitted: where it comes from (a pull request, a paper, a URL)
    submitted: str | None = None  # submitted: when (UTC, ISO 8601)


@dataclass(kw_only=True)
class Record(Part):
    """One run's result record. Fields in the order of the JSON; see the module docstring."""

    NESTED = {"generator": Plugin, "tokenizer": Tokenizer, "dataset": Dataset, "metrics": Metrics, "per_user": PerUser,
              "train": Train, "eval": Eval, "semantic_ids": SemanticIds, "id_level": IdLevel, "run_control": RunControl,
              "device": Device, "tune": Tune, "checkpoints": Checkpoints, "provenance": Provenance}
    OMIT_NONE = ("created", "protocol", "setting", "config_origins", "run_control", "per_user", "semantic_ids", "id_level",
                 "notes", "params", "peak_memory_mb", "environment", "tune", "checkpoints", "trackers", "beyond", "provenance")

    schema_version: int = SCHEMA_VERSION  # always the current one: `from_dict` upgrades older ones
    run_id: str  # DATASET__GENERATOR__sSEED__UTC-TIME, the file's name
    created: str | None = None  # UTC, ISO 8601
    command: str  # the command line that made the run
    generator: Plugin  # the generator plugin
    tokenizer: Tokenizer | None = None  # semantic-ID generators only
    embedding_model: str | None = None  # the sentence embedding the semantic IDs were built from
    dataset: Dataset  # the dataset plugin and its prepared data
    protocol: dict[str, Any] | None = None  # the evaluation protocol, in words (split, ranking, ties, ...)
    seed: int  # the run's random seed
    setting: str | None = None  # what the command set over the defaults (before schema 3: read from the command by upgrade)
    config: dict[str, dict[str, Any]]  # section -> the resolved config
    config_origins: dict[str, dict[str, str]] | None = None  # section -> key -> the layer that set it
    run_control: RunControl | None = None  # how the run was carried out (absent only where upgrade found no config to move)
    config_fingerprint: str  # `config_fingerprint` of `config`, computed when read: one leaderboard row per fingerprint
    metrics: Metrics  # item-level metrics (recbench.metrics) on validation and test
    per_user: PerUser | None = None  # None: a validation-only run
    train: Train  # training time and outcome
    eval: Eval  # evaluation times and throughput
    semantic_ids: SemanticIds | None = None  # semantic-ID generators only
    id_level: IdLevel | None = None  # runs whose IDs can collide: ID-level metrics (collisions kept)
    beyond: dict[str, float] | None = None  # beyond-accuracy metrics of the test top-10 lists (recbench.beyond)
    notes: list[str] | None = None  # what the run computed differently from its config, in words (api.Recommender.notes)
    params: int | None = None  # trainable parameters
    peak_memory_mb: float | None = None  # peak GPU memory allocated, or the process's peak resident memory on CPU
    device: Device  # where it ran
    environment: dict[str, Any] | None = None  # library versions, platform, git commit (see `environment`)
    tune: Tune | None = None  # the re-run of a tuning study's best trial
    checkpoints: Checkpoints | None = None  # runs that trained
    trackers: dict[str, dict[str, str]] | None = None  # tracker name -> where it keeps the run's curves (uri, run_id)
    provenance: Provenance | None = None  # produced here, reproduced here or submitted (upgrade: "produced" where absent)
    path: Path | None = field(default=None, compare=False, metadata={"json": False})  # the file it was loaded from

    @classmethod
    def from_dict(cls, data: Any, where: str = "", *, checked: bool = True) -> Record:
        """The record of JSON object `data`, upgraded to the current schema and (unless `checked` is
        False, for a validation-only run) checked; a ValueError naming the field otherwise."""
        data = upgrade(data)
        if checked:
            check(data)
        try:
            return super().from_dict(data)
        except TypeError as exc:  # a part without a field it needs
            raise ValueError(f"it is malformed ({exc})") from None

    def users(self) -> np.ndarray:
        """The evaluated test users' ids."""
        return decode_ints(self.per_user.users)

    def test_ranks(self) -> np.ndarray:
        """Each evaluated user's test rank, in the order of `users`."""
        return decode_ints(self.per_user.test_rank)


def load(path: str | Path) -> Record:
    """The record in `path`, upgraded to the current schema and checked; a UsageError naming the file otherwise."""
    path = Path(path)
    try:
        record = Record.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise UsageError(f"Result record '{path}' cannot be used: {exc}.") from None
    record.path = path
    return record


def find(folders: list[Path], dataset: str | None = None) -> Iterator[Path]:
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        pattern = f"{dataset}/*.json" if dataset else "*/*.json"
        yield from sorted(p for p in folder.glob(pattern) if not p.name.startswith("."))
