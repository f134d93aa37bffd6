"""The plan of a study, what every worker needs: the options of `recbench tune`, checked; the
resolved default run; the search space and trial 0; the study's identity and its deterministic name."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from .. import config as cfg
from .. import runner
from ..errors import UsageError
from ..results import records
from .space import Param, contains, default_values, describe, load_space, parse_space, space_fields, space_ranges
from .storage import check_storage_url, default_storage

SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "none")


@dataclass
class TuneOptions:
    run: runner.RunSpec  # every trial's run (generator, dataset, tokenizer, preset, seed, device, config file, overrides,
    # results folder for the best trial's record); a trial's values go over its overrides
    n_trials: int = 20  # finished (complete or pruned) trials the study should have, counting earlier runs
    timeout: float | None = None  # seconds after which no new trial starts (None: no limit)
    storage: str | None = None  # Optuna storage URL or journal:PATH (None: sqlite:///RECBENCH_HOME/tune/studies.db)
    study_name: str | None = None  # None: GENERATOR__DATASET[__HASH], see study_name()
    jobs: int = 1  # worker processes sharing the study
    devices: list[str] | None = None  # worker i trains on devices[i mod len] (recbench.tune.devices); None: every worker on run.device
    sampler: str = "tpe"  # tpe or random
    pruner: str = "median"  # median or none
    space_file: str | None = None  # a YAML/TOML/JSON search space replacing the generator's declared one
    pruner_startup_trials: int = 3  # trials that must complete before the median pruner prunes any
    prune_from_epoch: int = 2  # no trial is pruned before this epoch
    max_retries: int = 1  # a failed trial is queued again with the same parameters this many times
    max_consecutive_failures: int = 5  # a worker gives up after this many failed trials in a row
    heartbeat_interval: int = 60  # seconds between a running trial's heartbeats (RDB storage)
    grace_period: int = 180  # a trial without a heartbeat for this long is stale: failed and retried (RDB storage)

    def __post_init__(self):
        if self.run.seed is None:  # the seed of every trial and of the sampler
            self.run = replace(self.run, seed=0)

    @property
    def seed(self) -> int:
        return self.run.seed


@dataclass
class Plan:
    study: str  # study name
    storage: str  # storage URL (sqlite:///..., journal:PATH, ...)
    generator: str
    dataset: str  # canonical names
    params: dict[str, Param]
    defaults: dict[str, Any]  # trial 0
    metric: str  # the validation metric trials are judged on (the generator's val_metric)
    target: int  # finished trials the study should have
    identity: dict[str, Any]  # see identity(); stored with the study, checked when it is continued
    resolved: runner.Resolved = field(repr=False)  # the default trial's resolved run


def base_spec(options: TuneOptions, params: Mapping[str, Any] | None = None) -> runner.RunSpec:
    """The RunSpec of a trial with `params` (or of the defaults): fixed settings, then the trial's values."""
    return replace(options.run, overrides={**options.run.overrides, **(params or {})})


def check_choice(what: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise UsageError(f"Unknown {what} '{value}'. Valid {what}s: {', '.join(valid)}.")


MINIMUM = {"n_trials": 1, "jobs": 1, "max_consecutive_failures": 1, "max_retries": 0, "pruner_startup_trials": 0, "prune_from_epoch": 0}


def check_options(options: TuneOptions) -> None:
    check_choice("sampler", options.sampler, SAMPLERS)
    check_choice("pruner", options.pruner, PRUNERS)
    for name, least in MINIMUM.items():
        if getattr(options, name) < least:
            raise UsageError(f"Tune option '{name.replace('_', '-')}' must be >= {least}; got {getattr(options, name)}.")
    if options.timeout is not None and options.timeout <= 0:
        raise UsageError(f"--timeout must be > 0 seconds; got {options.timeout}.")


def make_plan(options: TuneOptions) -> Plan:
    """Resolve the generator, dataset, fixed config and search space; UsageError on anything invalid."""
    check_options(options)
    resolved = runner.resolve(base_spec(options))
    gen = resolved.generator
    if options.space_file:
        path = Path(options.space_file)
        params = parse_space(load_space(path), space_fields(resolved), f"file '{path}'", path, space_ranges(resolved))
    else:
        if not gen.obj.search_space:
            raise UsageError(f"Generator '{gen.name}' declares no search_space; pass --space FILE "
                             "(YAML/TOML/JSON: key: {type: float|int|categorical, ...}).")
        params = parse_space(gen.obj.search_space, space_fields(resolved), f"generator '{gen.name}'", ranges=space_ranges(resolved))
    defaults = default_values(resolved, params)
    for key, value in defaults.items():
        if not contains(params[key], value):
            origin = next((o for (section, k), o in resolved.origins.items() if k == key), "the default")
            raise UsageError(f"The search space for '{key}' ({describe(params[key])}) does not contain its starting value {value!r} "
                             f"(from {origin}); trial 0 runs the defaults, so widen the space or change the value.")
    metric = getattr(resolved.configs["generator"], "val_metric", "ndcg@10")
    storage = options.storage or default_storage()
    check_storage_url(storage)
    name = options.study_name or study_name(options, resolved, params)
    return Plan(name, storage, gen.name, resolved.dataset.name, params, defaults, metric, options.n_trials,
                identity(resolved, params, options.seed, options.run.preset), resolved)


def identity(resolved: runner.Resolved, params: Mapping[str, Param], seed: int, preset: str | None = None) -> dict[str, Any]:
    """What a study tunes: generator, dataset, tokenizer, the fingerprint of the fixed config (with the
    searched keys at their starting values), the search space, the seed and the named preset, if any
    (JSON-ready). The preset counts by name, even where --config or --key=value set the same values; a
    study without one has no `preset` key, so studies made before --preset keep their names."""
    return {"generator": resolved.generator.name, "dataset": resolved.dataset.name,
            "tokenizer": resolved.tokenizer.name if resolved.tokenizer else None, "config": runner.config_fingerprint(resolved),
            "space": {k: {**asdict(p), "choices": list(p.choices)} for k, p in params.items()}, "seed": seed,
            **({"preset": preset} if preset is not None else {})}


def study_name(options: TuneOptions, resolved: runner.Resolved, params: Mapping[str, Param]) -> str:
    """GENERATOR__DATASET, plus `__` and 8 hex digits of a hash of the study's identity when it differs
    from the default one (no config file, overrides or named preset, the generator's declared space,
    seed 0, its default tokenizer)."""
    gen = resolved.generator
    mine = identity(resolved, params, options.seed, options.run.preset)
    base = f"{gen.name}__{resolved.dataset.name}"
    if defaults_only(options) or mine == default_identity(gen, resolved.dataset.name):
        return base
    # the hash takes the fixed config's fingerprint as studies made before fingerprints hashed the
    # whole config did (records.fingerprint_before_full_config): their names stay, so the same options
    # continue them (open_study checks the identity stored with the study)
    tokenizer = resolved.tokenizer.name if resolved.tokenizer else None
    named = {**mine, "config": records.fingerprint_before_full_config(runner.resolved_config(resolved), tokenizer)}
    return f"{base}__{cfg.fingerprint(named)[:8]}"


def defaults_only(options: TuneOptions) -> bool:
    """Whether the options set nothing over the generator's defaults and its declared space: the
    study is then the default one, known without resolving the default run a second time."""
    run = options.run
    return (run.tokenizer is None and run.preset is None and run.config_file is None and not run.overrides
            and options.space_file is None and run.seed == 0 and run.device == "auto")


def default_identity(gen, dataset: str) -> dict[str, Any]:
    """The identity of the default study of `gen` on `dataset`: no config file, overrides or preset,
    the declared space, seed 0, the default tokenizer."""
    default_res = runner.resolve(runner.RunSpec(gen.name, dataset))
    declared = {}
    if gen.obj.search_space:
        declared = parse_space(gen.obj.search_space, space_fields(default_res), f"generator '{gen.name}'", ranges=space_ranges(default_res))
    return identity(default_res, declared, 0)
