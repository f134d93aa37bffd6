"""Every compatibility rule for records of earlier recbench versions, in one place.

`upgrade` brings a record of any known schema version to the current one: run control that
schema 1 and 2 kept in the generator's config moves out, a record without a setting label gets
the one its command implies, a record without a provenance was produced by `recbench run`, the config gains the settings added since the run (`fill_absent`),
and the config fingerprint is computed anew from the upgraded config. The fingerprint functions
live here because the upgrade defines them: equal fingerprints, equal configs, one leaderboard
row. `fingerprint_before_full_config` is the earlier scheme, kept only so that run folders,
checkpoints and tuning studies started under it can still be continued (`same_config`), and
`checkpoint_setting` finds the setting label of a checkpoint from before checkpoints carried one.

Fields added without a new schema version, absent from earlier records and read as None:
`dataset.files` and `dataset.report` (a local dataset's files with their checksums, and its
preparation counts; recbench.data.generic).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UsageError

SCHEMA_VERSION = 3
# how a run is carried out, not what it computes: options of the run (runner.RunSpec), never config keys;
# schema 1 and 2 records kept them in the generator's config
RUN_CONTROL = ("resume", "eval_only", "checkpoint")


def upgrade(record: dict[str, Any]) -> dict[str, Any]:
    """Bring a record of any known schema version to the current one. Every compatibility rule for
    older records lives here (and in `upgrade_1_to_2` and its successors): the config gains the
    settings added since the run (`fill_absent`), and the fingerprint is computed anew from that
    config (`config_fingerprint`), whatever the file says, so that an earlier record and a new run
    of its config land in one leaderboard row."""
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
    if not isinstance(record.get("setting"), str) and isinstance(record.get("command"), str):  # before schema 3
        record = {**record, "setting": setting_of_command(record["command"])}
    if "provenance" not in record:  # before provenance was recorded, every record was made by `recbench run`
        record = {**record, "provenance": {"kind": "produced"}}
    return refingerprint(fill_absent(record))


def upgrade_1_to_2(record: dict[str, Any]) -> dict[str, Any]:
    """Schema 2 (length-bucketed training, warmup_ratio, cpu_amp=auto, the new meaning of guided_select).

    A trained generator's config gains the values that behave as schema 1 runs did: no bucketing
    (bucket_pool 0), no warmup_ratio, cpu_amp off where it was not recorded. In schema 1
    guided_select named the digits *revealed* first; since schema 2 it names the digits *masked*
    first (as the flag of that name does in the code the setting comes from), so the value is
    swapped (schema 1 "most" is schema 2 "least"), and the new guided options take the values
    schema 1 used.
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


# the options of `recbench run` and `recbench tune` of schema 1 and 2 that chose where and how a run
# happened, not its config: what the setting label of such a record leaves out of its command
SCHEMA_2_RUN_OPTIONS = frozenset({"--plugin", "-p", "--dataset", "-d", "--tokenizer", "--seed", "--device", "--results-dir",
                                  "--nproc", "--n-trials", "--timeout", "--storage", "--study-name", "--jobs", "--sampler",
                                  "--pruner", "--space"})


def setting_of_command(command: str) -> str:
    """'preset cpu, loss=ce', 'tuned, epochs=12' or 'defaults': the setting label (runner.setting_label)
    of a record written before records held one, read from its command once, here.

    `--key=value` overrides are shown as they were typed; `--preset` and `--config` by name. The
    command's options are those of its time (SCHEMA_2_RUN_OPTIONS), so the label does not move when
    today's options change.
    """
    import shlex

    try:
        args = shlex.split(command)
    except ValueError:  # an unbalanced quote: nothing can be read from it
        return "defaults"
    parts = ["tuned"] if args[1:2] == ["tune"] else []
    i = 2
    while i < len(args):
        flag, eq, value = args[i].partition("=")
        takes_next = not eq and i + 1 < len(args) and not args[i + 1].startswith("-")
        if not eq and takes_next:
            value, i = args[i + 1], i + 1
        if flag == "--preset":
            parts.append(f"preset {value}")
        elif flag == "--config":
            parts.append(f"config {Path(value).name}")
        elif flag.startswith("--") and flag not in SCHEMA_2_RUN_OPTIONS and flag[2:] not in RUN_CONTROL:
            parts.append(f"{flag[2:]}={value}" if value else flag[2:])
        i += 1
    return ", ".join(parts) or "defaults"


# Generator settings added after runs were recorded, at the value that behaves as runs before they
# existed. A recorded config without one of them ran at that value: `fill_absent` writes it in, so the
# config says what ran and hashes as a new run of the same config does. A setting joins this table
# when it is added to a generator's config, with the value that keeps earlier runs' behaviour.
WHEN_ABSENT = {"cpu_amp": False, "bucket_pool": 0, "warmup_ratio": 0.0, "guided_conf_metric": "msp",
               "guided_refresh_each_step": False, "guided_steps": 0, "loss": "sampled", "time_bias": True,
               "fp32_logits": False, "train_windows": False, "optimizer": "adamw", "compile": False}


# Settings of how a run computes rather than what, added after fingerprints hashed the whole config:
# hashed only when set away from this value, so that adding one leaves every earlier fingerprint (of
# records, run folders, checkpoints and studies) as it was, and a run with it set gets a row of its own.
HASHED_WHEN_SET = {"compile": False}


def hashed_config(config: dict[str, Any]) -> dict[str, Any]:
    """`config` (section -> values) without the HASHED_WHEN_SET settings that are at their value."""
    return {section: {k: v for k, v in values.items() if not (k in HASHED_WHEN_SET and v == HASHED_WHEN_SET[k])}
            if isinstance(values, dict) else values for section, values in config.items()}


def fill_absent(record: dict[str, Any]) -> dict[str, Any]:
    """`record` whose generator config holds every WHEN_ABSENT setting its generator has (a generator
    that is not installed here is left as it is: which settings it has is unknown)."""
    config = record.get("config")
    generator = config.get("generator") if isinstance(config, dict) else None
    name = (record.get("generator") or {}).get("name") if isinstance(record.get("generator"), dict) else None
    if not isinstance(generator, dict) or not isinstance(name, str):
        return record
    missing = {k: v for k, v in WHEN_ABSENT.items() if k not in generator and k in generator_settings(name)}
    if not missing:
        return record
    return {**record, "config": {**config, "generator": {**generator, **missing}}}


def generator_settings(name: str) -> frozenset[str]:
    """The config keys of generator `name` as installed here (none where it is not)."""
    if name not in _SETTINGS:
        from dataclasses import fields as config_fields

        from ..registry import registry

        try:
            _SETTINGS[name] = frozenset(f.name for f in config_fields(registry().get("generator", name).Config))
        except UsageError:
            _SETTINGS[name] = frozenset()
    return _SETTINGS[name]


_SETTINGS: dict[str, frozenset[str]] = {}


def config_fingerprint(config: dict[str, Any], tokenizer: str | None = None) -> str:
    """12 hex digits of a hash of the whole resolved config (section -> values) and the tokenizer's
    name (pq and opq share a config: the name is part of what the run computes). One leaderboard
    row per fingerprint: equal fingerprints, equal configs."""
    from ..config import fingerprint
    from ..imports import SECTION, fingerprinted

    if isinstance(config.get(SECTION), dict):  # files a run read instead of computing them: their checksums, not their paths
        config = {**config, SECTION: fingerprinted(config[SECTION])}
    return fingerprint({**hashed_config(config), **({"tokenizer_name": tokenizer} if tokenizer is not None else {})})


def fingerprint_before_full_config(config: dict[str, Any], tokenizer: str | None = None) -> str:
    """The fingerprint that run folders (run.json) and checkpoints started before fingerprints hashed
    the whole config hold for `config`: WHEN_ABSENT settings at their value left out, guided_select
    hashed as "most" where masking is not guided (it has no effect there), and the embedding's
    force_regenerate_opq (now run control) as False. Compared by `same_config` only, so that such a
    run can still be resumed; records are fingerprinted anew when they are read."""
    from ..config import fingerprint

    hashed = {section: {k: v for k, v in values.items() if not (k in WHEN_ABSENT and v == WHEN_ABSENT[k])}
              for section, values in hashed_config(config).items()}
    generator = hashed.get("generator")
    if generator is not None and "guided_select" in generator and generator.get("masking_strategy", "guided") != "guided":
        generator["guided_select"] = "most"
    if "embedding" in hashed:
        hashed["embedding"]["force_regenerate_opq"] = False
    if tokenizer is not None:
        hashed["tokenizer_name"] = tokenizer
    return fingerprint(hashed)


def same_config(stored: Any, config: dict[str, Any], tokenizer: str | None = None) -> bool:
    """Whether fingerprint `stored` (a run folder's or a checkpoint's) is that of `config`: under the
    current scheme, or under the one such files were written with before it."""
    return stored in (config_fingerprint(config, tokenizer), fingerprint_before_full_config(config, tokenizer))


def refingerprint(record: dict[str, Any]) -> dict[str, Any]:
    """`record` with its config fingerprint computed from its (upgraded) config: the stored one may be
    of an earlier scheme, and is not trusted."""
    config = record.get("config")
    if not isinstance(config, dict) or not all(isinstance(v, dict) for v in config.values()):
        return record
    tokenizer = record.get("tokenizer")
    name = tokenizer.get("name") if isinstance(tokenizer, dict) else None
    return {**record, "config_fingerprint": config_fingerprint(config, name)}


def checkpoint_setting(path: Path) -> str | None:
    """The setting label of the record that the run folder holding checkpoint `path` wrote, for a
    checkpoint from before checkpoints carried their label (its run.json names the record); None
    where there is no such folder, record or label, or the record is of another config."""
    try:
        meta = json.loads((path.parent / "run.json").read_text())
        record = json.loads(Path(meta["record"]).read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(record, dict) or record.get("config_fingerprint") != meta.get("config_fingerprint"):
        return None
    return record["setting"] if isinstance(record.get("setting"), str) else None
