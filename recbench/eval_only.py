"""`--eval_only=true --checkpoint FILE`: an evaluation-only run is the checkpoint's run.

A checkpoint names its run: generator, dataset, tokenizer, seed, config and setting label
(runner.checkpoint_meta). An evaluation-only run takes all of them, so that its record describes
the model that was trained, not what the command line says: a name, seed or config value that
contradicts the checkpoint is a UsageError naming the key (a record of a seed-5 or dropout-0.4
run for a model trained with seed 3 and dropout 0.1 would be a leaderboard row of a run that never
happened).

The exceptions are evaluation settings, which each config class lists in `evaluation_keys`
(beam sizes, decoding steps, eval_batch_size: how a trained model is decoded or batched, never its
weights). They may differ from the checkpoint's; the record says so (their origin reads
"..., evaluation only" and the setting label "...; evaluated with beam_size_test=256"), and its
config, hence its config fingerprint, holds the values used, so it lands in a leaderboard row of
its own.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from . import config as cfg
from .errors import UsageError
from .results.upgrade import checkpoint_setting


def saved_run(ckpt: dict, path: str) -> dict | None:
    """What the checkpoint `ckpt` (read from `path`) says of its run (generator, dataset, tokenizer,
    seed, config, setting), with the config flattened to one layer as "flat_config"; None for a
    checkpoint written before checkpoints carried it."""
    run = ckpt.get("run")
    if not isinstance(run, dict) or not isinstance(run.get("config"), dict):
        return None
    try:
        flat = cfg.flatten(run["config"])
    except (ValueError, AttributeError) as exc:
        raise UsageError(f"Checkpoint '{path}': {exc}.") from None
    if not isinstance(run.get("setting"), str):
        run = {**run, **({"setting": found} if (found := checkpoint_setting(Path(path))) else {})}
    return {**run, "flat_config": flat}


def fill_spec(spec, run: dict, registry):
    """`spec` (a runner.RunSpec) with the generator, dataset, tokenizer and seed of the checkpoint's
    run; a name or seed given on the command line that differs from the checkpoint's is a UsageError."""
    saved_seed = run.get("seed")
    if spec.seed is not None and saved_seed is not None and spec.seed != saved_seed:
        raise UsageError(f"--seed {spec.seed}: checkpoint '{spec.checkpoint}' was trained with seed {saved_seed}, and an evaluated "
                         "checkpoint is recorded with the seed it was trained with. Leave --seed out.")
    values = {"seed": spec.seed if spec.seed is not None else (saved_seed if saved_seed is not None else 0)}
    for key, option in (("generator", "--plugin"), ("dataset", "--dataset"), ("tokenizer", "--tokenizer")):
        given, saved = getattr(spec, key), run.get(key)
        if given is not None and saved is not None and given != saved:
            if registry.entry(key, given).name != saved:  # an alias of the same plugin is the same
                raise UsageError(f"{option} {given}: checkpoint '{spec.checkpoint}' was trained with {key} '{saved}'.")
        values[key] = saved if given is None else given
    return replace(spec, **values)


def evaluation_keys(config) -> tuple[str, ...]:
    """The keys of a config (an instance or class) that change how a trained model is evaluated, not its weights."""
    cls = config if isinstance(config, type) else type(config)
    return tuple(getattr(cls, "evaluation_keys", ()))


def check_configs(configs: dict[str, Any], saved: dict[str, Any], origins: dict[tuple[str, str], str], path: str) -> dict[str, Any]:
    """Compare the run's `configs` (section -> config) with the checkpoint's `saved` ones: a value
    that differs is a UsageError naming the key and where it was set, unless the key is an evaluation
    setting of its section; those are marked in `origins` and returned ({key: value})."""
    evaluation: dict[str, Any] = {}
    for section, config in configs.items():
        ours, theirs = cfg.to_dict(config), cfg.to_dict(saved[section])
        allowed = evaluation_keys(config)
        for key, value in ours.items():
            if value == theirs.get(key):
                continue
            origin = origins.get((section, key), "default")
            if key not in allowed:
                given = f"--{key}={value}" if origin == "command line" else f"{key}={value!r} (from {origin})"
                listed = ", ".join(sorted({k for c in configs.values() for k in evaluation_keys(c)})) or "none"
                raise UsageError(
                    f"{given}: checkpoint '{path}' was trained with {key}={theirs.get(key)!r}, and an evaluated checkpoint is "
                    f"recorded with the config it was trained with. Leave {key} out; only evaluation settings may differ "
                    f"from the checkpoint's ({listed}).")
            origins[(section, key)] = f"{origin}, evaluation only"
            evaluation[key] = value
    return evaluation


def setting_label(run: dict, evaluation: dict[str, Any], fallback: str) -> str:
    """The leaderboard's setting label of an evaluation-only run: the checkpoint's (or `fallback`
    for a checkpoint that carries none), and the evaluation settings that differ from it."""
    base = run.get("setting") if isinstance(run.get("setting"), str) else fallback
    if not evaluation:
        return base
    return f"{base}; evaluated with {', '.join(f'{k}={v}' for k, v in evaluation.items())}"
