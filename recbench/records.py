"""Result records: one JSON file per finished run, with everything needed to trust and redo it.

A record holds the schema version, the plugins and their versions, the fully resolved config,
the dataset and the fingerprint of its prepared form, the protocol, the seed, validation and test
metrics, per-user test ranks (zlib-compressed int32, base64; every per-user metric derives from
the rank), times, throughput, parameter count, peak memory, the device, library versions, the
recbench version and git commit, and the command that produced it. A run that re-trains the best
trial of a `recbench tune` study also holds a `tune` field (see `tune_field`); other records have
none, and readers treat it as optional.

Files are written atomically (a temporary file renamed into place), one file per run, so records
from many machines merge by copying. `load` upgrades older schemas to the current one.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import subprocess
import sys
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .atomic import replacing
from .errors import UsageError

SCHEMA_VERSION = 3


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

    from . import __version__

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


# how a run is carried out, not what it computes: options of the run (runner.RunSpec), never config keys;
# schema 1 and 2 records kept them in the generator's config
RUN_CONTROL = ("resume", "eval_only", "checkpoint")


def command_line() -> str:
    import shlex

    return " ".join(shlex.quote(a) for a in ["recbench", *sys.argv[1:]])


def run_id(generator: str, dataset: str, seed: int) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")[:-3]
    return f"{dataset}__{generator}__s{seed}__{stamp}"


def write(record: dict[str, Any], folder: Path) -> Path:
    """Write `record` as folder/DATASET/RUN_ID.json, atomically."""
    path = Path(folder) / record["dataset"]["name"] / f"{record['run_id']}.json"
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1, sort_keys=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    return path


def tune_field(study: str, storage: str, trial: int, metric: str, value: float, params: dict[str, Any],
               trials: dict[str, int]) -> dict[str, Any]:
    """The record's `tune` field: the study (name and storage URL) whose best trial this run re-trains,
    that trial's number, its validation `metric` value (the one it was selected on), the tuned
    values and the study's trial count per state when it was chosen."""
    return {"study": study, "storage": storage, "trial": trial, "metric": metric, "value": value,
            "params": dict(params), "trials": dict(trials)}


def upgrade(record: dict[str, Any]) -> dict[str, Any]:
    """Bring a record of any known schema version to the current one. Every compatibility rule for
    older records lives here (and in `upgrade_1_to_2` and its successors)."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got a JSON {type(record).__name__}")
    version = record.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"unknown schema_version {version!r}")
    if version > SCHEMA_VERSION:
        raise ValueError(f"schema_version {version} is newer than this recbench reads ({SCHEMA_VERSION}); upgrade recbench")
    if version == 1:
        record = upgrade_1_to_2(record)
    if record["schema_version"] == 2:
        record = upgrade_2_to_3(record)
    return record


def upgrade_1_to_2(record: dict[str, Any]) -> dict[str, Any]:
    """Schema 2 (length-bucketed training, warmup_ratio, cpu_amp=auto, DiffGM's meaning of guided_select).

    A trained generator's config gains the values that behave as schema 1 runs did: no bucketing
    (bucket_pool 0), no warmup_ratio, cpu_amp off where it was not recorded. DIFF_GRM's
    guided_select named the digits *revealed* first; DiffGM's flag names the digits *masked* first,
    so the value is swapped (schema 1 "most" is schema 2 "least"), and the new guided options take
    the values schema 1 used.
    """
    record = {**record, "schema_version": 2}
    device = record.get("device")
    if isinstance(device, dict) and isinstance(device.get("name"), str):  # early records said "(1 threads)"
        record["device"] = {**device, "name": device["name"].replace("(1 threads)", "(1 thread)")}
    config = (record.get("config") or {}).get("generator")
    if isinstance(config, dict) and "eval_every" in config:  # a TrainConfig
        config = {**config, **{k: v for k, v in (("warmup_ratio", 0.0), ("cpu_amp", False), ("bucket_pool", 0)) if k not in config}}
        if "guided_select" in config and "guided_conf_metric" not in config:
            config["guided_select"] = {"most": "least", "least": "most"}.get(config["guided_select"], config["guided_select"])
            config.update(guided_conf_metric="msp", guided_refresh_each_step=False, guided_steps=0)
        record["config"] = {**record["config"], "generator": config}
    return record


def upgrade_2_to_3(record: dict[str, Any]) -> dict[str, Any]:
    """Schema 3: run control (resume, eval_only, checkpoint; the embedding's force_regenerate_opq,
    now `rebuild_ids`) moves from the config to the record's `run_control`; what the run computed
    is left as it was."""
    record = {**record, "schema_version": 3}
    config = record.get("config")
    if isinstance(config, dict) and isinstance(config.get("generator"), dict):
        generator, embedding = config["generator"], config.get("embedding")
        control = {k: generator[k] for k in RUN_CONTROL if k in generator}
        config = {**config, "generator": {k: v for k, v in generator.items() if k not in RUN_CONTROL}}
        rebuild = False
        if isinstance(embedding, dict) and "force_regenerate_opq" in embedding:
            rebuild = bool(embedding["force_regenerate_opq"])
            config["embedding"] = {k: v for k, v in embedding.items() if k != "force_regenerate_opq"}
        record["config"] = config
        record.setdefault("run_control", {"resume": control.get("resume") or None, "eval_only": bool(control.get("eval_only")),
                                          "checkpoint": control.get("checkpoint") or None, "rebuild_ids": rebuild})
    return record


# what every record must hold for the leaderboard, compare and reproduce: (dotted key, type)
REQUIRED = (("run_id", str), ("seed", int), ("dataset.name", str), ("dataset.fingerprint", str), ("generator.name", str),
            ("config", dict), ("config_fingerprint", str), ("metrics.test", dict), ("metrics.valid", dict),
            ("per_user.users", str), ("per_user.test_rank", str), ("train.seconds", (int, float)),
            ("eval.test_users_per_s", (int, float)), ("device.name", str), ("command", str))


def check(record: dict[str, Any]) -> None:
    """Raise ValueError naming the first missing or malformed part of an (upgraded) record."""
    from .metrics import metric_names

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


def load(path: str | Path) -> dict[str, Any]:
    """The record in `path`, upgraded to the current schema and checked; a UsageError naming the file otherwise."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        record = upgrade(record)
        check(record)
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise UsageError(f"Result record '{path}' cannot be used: {exc}.") from None
    record.setdefault("path", str(path))
    return record


def test_ranks(record: dict[str, Any]) -> np.ndarray:
    return decode_ints(record["per_user"]["test_rank"])


def find(folders: list[Path], dataset: str | None = None) -> Iterator[Path]:
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        pattern = f"{dataset}/*.json" if dataset else "*/*.json"
        yield from sorted(p for p in folder.glob(pattern) if not p.name.startswith("."))
