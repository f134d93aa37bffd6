"""Hyperparameter tuning with Optuna, as plain functions under `recbench tune`.

A study searches a generator's declared `search_space` (or a `--space FILE`) on one dataset. Every
trial is an ordinary training run (recbench.runner.run) judged on validation only: the test split
is never evaluated and no result record is written. The trainer reports the validation metric
after each validation, so a pruner can stop a trial that is behind. Trial 0 is always the resolved
default config, so a study never ends worse than the defaults. After the trials, the best trial's
config is re-trained once and evaluated on test as a normal run whose record carries a `tune` field.

Studies live in standard Optuna storage (readable by optuna-dashboard): by default the SQLite file
RECBENCH_HOME/tune/studies.db, one study per (generator, dataset), named `GENERATOR__DATASET`, with
`__` and a short hash appended when the fixed config, the search space, the seed or the tokenizer
differ from the defaults. `n_trials` is the number of finished (complete or pruned) trials the
study should have: re-running a killed command continues the study and runs only the rest. Failed
trials stay recorded as FAIL and are queued again with the same parameters (up to `max_retries`).
"""

from __future__ import annotations

import math
import os
import re
import socket
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import TrialState

from . import config as cfg
from . import paths, records, runner
from .errors import RunError, UsageError
from .train import metric_value, parse_metric

SPACE_TYPES = ("float", "int", "categorical")
SPACE_KEYS = {"float": ("type", "low", "high", "log", "step"), "int": ("type", "low", "high", "log", "step"),
              "categorical": ("type", "choices")}
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "none")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
STUDY_ATTR = "recbench"  # the study's user attribute that records what it tunes


@dataclass
class TuneOptions:
    plugin: str  # the generator to tune
    dataset: str
    n_trials: int = 20  # finished (complete or pruned) trials the study should have, counting earlier runs
    timeout: float | None = None  # seconds after which no new trial starts (None: no limit)
    storage: str | None = None  # Optuna storage URL or journal:PATH (None: sqlite:///RECBENCH_HOME/tune/studies.db)
    study_name: str | None = None  # None: GENERATOR__DATASET[__HASH], see study_name()
    jobs: int = 1  # worker processes sharing the study
    sampler: str = "tpe"  # tpe or random
    pruner: str = "median"  # median or none
    space_file: str | None = None  # a YAML/TOML/JSON search space replacing the generator's declared one
    tokenizer: str | None = None  # semantic-ID generators: the tokenizer of their IDs
    seed: int = 0  # the seed of every trial's run (and of the sampler)
    device: str = "auto"
    config_file: str | None = None  # config values fixed for every trial (as `recbench run --config`)
    overrides: dict[str, Any] = field(default_factory=dict)  # --key=value values fixed for every trial
    results_dir: Path | None = None  # where the best trial's record goes (None: RECBENCH_HOME/results)
    pruner_startup_trials: int = 3  # trials that must complete before the median pruner prunes any
    prune_from_epoch: int = 2  # no trial is pruned before this epoch
    max_retries: int = 1  # a failed trial is queued again with the same parameters this many times
    max_consecutive_failures: int = 5  # a worker gives up after this many failed trials in a row
    heartbeat_interval: int = 60  # seconds between a running trial's heartbeats (RDB storage)
    grace_period: int = 180  # a trial without a heartbeat for this long is stale: failed and retried (RDB storage)


# ---- search spaces -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One searched config key: a float or int range (optionally log-scaled or stepped) or a list of choices."""

    name: str
    type: str  # float, int or categorical
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()


def load_space(path: str | Path) -> dict[str, Any]:
    """A search space file (YAML, TOML or JSON): {key: {type: ..., low: ..., ...}}."""
    return cfg.load_file(path)


def key_line(path: Path, key: str) -> int | None:
    """The line of `path` where `key` is first defined (YAML `key:`, TOML `key =` or `[key]`, JSON `"key":`)."""
    names = "|".join(re.escape(k) for k in dict.fromkeys((key, key.replace("_", "-"))))
    pattern = re.compile(rf"""^\s*(\[\s*)?["']?({names})["']?\s*(\]|:|=)""")
    try:
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
            if pattern.match(line):
                return number
    except OSError:
        return None
    return None


def space_fields(resolved: runner.Resolved) -> dict[str, Any]:
    """{key: type} of every config key a search space may name (run-control keys excluded)."""
    out: dict[str, Any] = {}
    for config in resolved.configs.values():
        for key, tp in cfg.field_types(type(config)).items():
            if key not in runner.RUN_CONTROL:
                out.setdefault(key, tp)
    return out


def parse_space(space: Any, fields: Mapping[str, Any], source: str, path: Path | None = None) -> dict[str, Param]:
    """Validate a search space against the run's config fields; {key: Param}.

    `source` names where the space comes from in error messages ("file X" or "generator Y");
    with `path`, messages also give the line of the offending key.
    """

    def where(key: str | None = None) -> str:
        line = key_line(path, key) if path is not None and key is not None else None
        return f"Search space ({source}{f', line {line}' if line else ''})"

    if not isinstance(space, Mapping) or not space:
        raise UsageError(f"{where()}: expected a non-empty mapping of config key -> {{type: float|int|categorical, ...}}; "
                         f"got {space!r}.")
    params: dict[str, Param] = {}
    for raw_key, spec in space.items():
        key = cfg.normalize_key(str(raw_key))
        at = f"{where(key)}, key '{key}'"
        if key not in fields:
            raise UsageError(f"{at}: not a config field of this run. Valid keys: {', '.join(sorted(fields))}.")
        if not isinstance(spec, Mapping):
            raise UsageError(f"{at}: expected a mapping such as {{type: float, low: 0.0001, high: 0.01, log: true}}; got {spec!r}.")
        kind = spec.get("type")
        if kind not in SPACE_TYPES:
            raise UsageError(f"{at}: unknown type {kind!r}. Valid types: {', '.join(SPACE_TYPES)}.")
        unknown = sorted(set(spec) - set(SPACE_KEYS[kind]))
        if unknown:
            raise UsageError(f"{at}: unknown setting(s) {', '.join(map(repr, unknown))} for type {kind}. "
                             f"Valid: {', '.join(SPACE_KEYS[kind])}.")
        params[key] = categorical(at, key, spec, fields[key]) if kind == "categorical" else numeric(at, key, kind, spec, fields[key])
    return params


def number(at: str, name: str, value: Any, integer: bool) -> float | int:
    """A range bound or step as a number; numeric strings (YAML reads 1e-4 as a string) are accepted."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{at}: '{name}' must be a{'n integer' if integer else ' number'}; got {value!r}.")
    if integer:
        if float(value) != int(value):
            raise UsageError(f"{at}: '{name}' must be an integer for type int; got {value!r}.")
        return int(value)
    return float(value)


def numeric(at: str, key: str, kind: str, spec: Mapping, field_type: Any) -> Param:
    integer = kind == "int"
    for name in ("low", "high"):
        if name not in spec:
            raise UsageError(f"{at}: type {kind} needs 'low' and 'high'; '{name}' is missing.")
    low, high = number(at, "low", spec["low"], integer), number(at, "high", spec["high"], integer)
    if low > high:
        raise UsageError(f"{at}: low ({low}) is greater than high ({high}).")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise UsageError(f"{at}: 'log' must be true or false; got {log!r}.")
    if log and low <= 0:
        raise UsageError(f"{at}: a log range needs low > 0; got low={low}.")
    step = spec.get("step")
    if step is not None:
        step = number(at, "step", step, integer)
        if step <= 0:
            raise UsageError(f"{at}: 'step' must be > 0; got {step}.")
        if log:
            raise UsageError(f"{at}: 'step' and 'log' cannot be combined.")
    for value in (low, high):
        try:
            cfg.coerce(key, value, field_type)
        except UsageError:
            raise UsageError(f"{at}: type {kind} gives values such as {value!r}, but the field is "
                             f"{cfg.type_name(field_type)}.") from None
    return Param(key, kind, low, high, log, step)


def categorical(at: str, key: str, spec: Mapping, field_type: Any) -> Param:
    choices = spec.get("choices")
    if not isinstance(choices, (list, tuple)) or not choices:
        raise UsageError(f"{at}: type categorical needs a non-empty list 'choices'; got {choices!r}.")
    for choice in choices:
        if choice is not None and not isinstance(choice, (bool, int, float, str)):
            raise UsageError(f"{at}: choice {choice!r} is not a single value (number, string, boolean or null).")
        try:
            cfg.coerce(key, choice, field_type)
        except UsageError:
            raise UsageError(f"{at}: choice {choice!r} does not fit the field, which is {cfg.type_name(field_type)}.") from None
    if len(set(map(repr, choices))) != len(choices):
        raise UsageError(f"{at}: 'choices' lists a value twice: {list(choices)!r}.")
    return Param(key, "categorical", choices=tuple(choices))


def contains(param: Param, value: Any) -> bool:
    """Whether `value` is one the space can suggest for `param`."""
    if param.type == "categorical":
        return any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in param.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not param.low <= value <= param.high:
        return False
    if param.step is None:
        return param.type == "float" or float(value).is_integer()
    k = (value - param.low) / param.step
    return abs(k - round(k)) < 1e-9


def suggest(trial: optuna.Trial, params: Mapping[str, Param]) -> dict[str, Any]:
    """The trial's value for every searched key, through trial.suggest_float / suggest_int / suggest_categorical."""
    out = {}
    for key, p in params.items():
        if p.type == "float":
            out[key] = trial.suggest_float(key, p.low, p.high, log=p.log, step=p.step)
        elif p.type == "int":
            out[key] = trial.suggest_int(key, p.low, p.high, log=p.log, step=p.step or 1)
        else:
            out[key] = trial.suggest_categorical(key, list(p.choices))
    return out


def default_values(resolved: runner.Resolved, params: Mapping[str, Param]) -> dict[str, Any]:
    """Trial 0: the resolved value (defaults < preset < config file < fixed overrides) of every searched key."""
    values = {}
    for key in params:
        for config in resolved.configs.values():
            if key in cfg.field_types(type(config)):
                values[key] = getattr(config, key)
                break
    return values


# ---- the plan: what every worker of a study needs ----------------------------------------------


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
    return runner.RunSpec(generator=options.plugin, dataset=options.dataset, tokenizer=options.tokenizer, seed=options.seed,
                          device=options.device, config_file=options.config_file,
                          overrides={**options.overrides, **(params or {})}, results_dir=options.results_dir)


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
        params = parse_space(load_space(path), space_fields(resolved), f"file '{path}'", path)
    else:
        if not gen.obj.search_space:
            raise UsageError(f"Generator '{gen.name}' declares no search_space; pass --space FILE "
                             "(YAML/TOML/JSON: key: {type: float|int|categorical, ...}).")
        params = parse_space(gen.obj.search_space, space_fields(resolved), f"generator '{gen.name}'")
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
                identity(resolved, params, options.seed), resolved)


def describe(p: Param) -> str:
    if p.type == "categorical":
        return "one of " + ", ".join(map(repr, p.choices))
    extra = ", log" if p.log else (f", step {p.step}" if p.step is not None else "")
    return f"{p.type} in [{p.low}, {p.high}{extra}]"


def identity(resolved: runner.Resolved, params: Mapping[str, Param], seed: int) -> dict[str, Any]:
    """What a study tunes: generator, dataset, tokenizer, the fingerprint of the fixed config (with the
    searched keys at their starting values), the search space and the seed (JSON-ready)."""
    return {"generator": resolved.generator.name, "dataset": resolved.dataset.name,
            "tokenizer": resolved.tokenizer.name if resolved.tokenizer else None, "config": runner.config_fingerprint(resolved),
            "space": {k: {**asdict(p), "choices": list(p.choices)} for k, p in params.items()}, "seed": seed}


def study_name(options: TuneOptions, resolved: runner.Resolved, params: Mapping[str, Param]) -> str:
    """GENERATOR__DATASET, plus `__` and 8 hex digits of a hash of the study's identity when it differs
    from the default one (no config file or overrides, the generator's declared space, seed 0, its
    default tokenizer)."""
    gen = resolved.generator
    default_res = runner.resolve(runner.RunSpec(gen.name, resolved.dataset.name))
    declared = parse_space(gen.obj.search_space, space_fields(default_res), f"generator '{gen.name}'") if gen.obj.search_space else {}
    mine = identity(resolved, params, options.seed)
    base = f"{gen.name}__{resolved.dataset.name}"
    return base if mine == identity(default_res, declared, 0) else f"{base}__{cfg.fingerprint(mine)[:8]}"


# ---- storage and studies -----------------------------------------------------------------------


def default_storage() -> str:
    return f"sqlite:///{(paths.home() / 'tune' / 'studies.db').resolve()}"


def journal_path(url: str) -> Path | None:
    return Path(url[len("journal:"):]).expanduser() if url.startswith("journal:") else None


def sqlite_path(url: str) -> Path | None:
    rest = url[len("sqlite:///"):] if url.startswith("sqlite:///") else None
    return None if rest in (None, "", ":memory:") else Path(rest)


def check_storage_url(url: str) -> None:
    if not url.startswith("journal:") and "://" not in url:
        raise UsageError(f"--storage '{url}' is not a storage URL. Valid: sqlite:///PATH, journal:PATH, or another "
                         "SQLAlchemy database URL (postgresql://..., mysql://...).")


def open_storage(url: str, options: TuneOptions | None = None, create: bool = True) -> optuna.storages.BaseStorage:
    """`journal:PATH` -> a JournalStorage on that file; any other URL -> an RDBStorage (SQLite, PostgreSQL,
    MySQL, ...). With `options` (to run trials), RDB storage gets heartbeats: a running trial whose
    worker stopped beating is failed and queued again (Optuna's stale-trial retry, through `requeue`).
    With create=False a missing SQLite or journal file is a UsageError instead of a new empty storage."""
    local = journal_path(url) or sqlite_path(url)
    if local is not None:
        if not create and not local.is_file():
            raise UsageError(f"--storage {url}: '{local}' does not exist (no study was run with this storage yet).")
        local.parent.mkdir(parents=True, exist_ok=True)
    if journal_path(url) is not None:
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(local)))
    check_storage_url(url)
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite:") else None  # wait for other workers' writes
    heartbeat = {} if options is None else {
        "heartbeat_interval": options.heartbeat_interval, "grace_period": options.grace_period,
        "heartbeat_stale_trial_callback": lambda study, trial: requeue(study, trial, options.max_retries)}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return optuna.storages.RDBStorage(url, engine_kwargs=engine, **heartbeat)
    except Exception as exc:  # noqa: BLE001 - a bad URL, a missing driver, an unreachable server
        raise UsageError(f"--storage '{url}' cannot be opened: {exc}. Valid: sqlite:///PATH, journal:PATH, or another "
                         "SQLAlchemy database URL (postgresql://..., mysql://...).") from exc


def open_study(plan: Plan, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """The plan's study, created (maximising the validation metric) or loaded; a study of the same
    name made for another generator, dataset, fixed config, search space or seed is a UsageError."""
    study = optuna.create_study(storage=storage, study_name=plan.study, direction="maximize", load_if_exists=True)
    info = {**plan.identity, "metric": plan.metric}
    stored = study.user_attrs.get(STUDY_ATTR)
    if stored is None and not study.trials:
        study.set_user_attr(STUDY_ATTR, info)
    elif stored != info or study.direction != optuna.study.StudyDirection.MAXIMIZE:
        differ = sorted(k for k in info if (stored or {}).get(k) != info[k]) if isinstance(stored, dict) else ["everything"]
        raise UsageError(f"Study '{plan.study}' in {plan.storage} was made for another run (differs in: {', '.join(differ)}); "
                         "pick another --study-name, or leave it out for the default name.")
    return study


def make_sampler(options: TuneOptions, worker: int, n_existing: int) -> optuna.samplers.BaseSampler:
    """A sampler seeded by (seed, worker, trials so far): workers and resumed runs draw different values."""
    seed = int(np.random.SeedSequence([options.seed, worker, n_existing]).generate_state(1)[0])
    if options.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)  # with workers in parallel, running trials count as provisional (constant liar)


def make_pruner(options: TuneOptions) -> optuna.pruners.BasePruner:
    if options.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=options.pruner_startup_trials, n_warmup_steps=options.prune_from_epoch)


def counts(study: optuna.Study) -> dict[str, int]:
    """Trials per state, by lower-case state name (complete, pruned, fail, running, waiting)."""
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name.lower()] = out.get(t.state.name.lower(), 0) + 1
    return out


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


# ---- failures ----------------------------------------------------------------------------------


def requeue(study: optuna.Study, trial: optuna.trial.FrozenTrial, max_retries: int) -> bool:
    """Queue a failed trial again with the same parameters, unless it was a surplus trial or its
    chain of retries is already `max_retries` long. The copy follows Optuna's retry convention
    (system attributes `failed_trial` and `retry_history`)."""
    if trial.user_attrs.get("surplus"):
        return False
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) > max_retries:
        return False
    user_attrs = {"retry_of": trial.number, **({"defaults": True} if trial.user_attrs.get("defaults") else {})}
    try:
        copy = optuna.trial.create_trial(
            state=TrialState.WAITING, params=trial.params, distributions=trial.distributions, user_attrs=user_attrs,
            system_attrs={"failed_trial": trial.system_attrs.get("failed_trial", trial.number), "retry_history": history},
        )
    except ValueError:  # a value outside its distribution (a hand-enqueued trial) cannot be queued as a trial
        return False
    study.add_trial(copy)
    return True


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def recover(study: optuna.Study, storage: optuna.storages.BaseStorage, max_retries: int) -> list[int]:
    """Before new trials start: fail the RUNNING trials whose worker on this machine has died (a
    killed `recbench tune`), and queue again every failed trial not yet retried. Returns the
    numbers of the trials queued again."""
    host = socket.gethostname()
    study_id = storage.get_study_id_from_name(study.study_name)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker_host, _, pid = str(t.user_attrs.get("worker", "")).rpartition(":")
        if worker_host == host and pid.isdigit() and not alive(int(pid)):
            storage.set_trial_state_values(storage.get_trial_id_from_study_id_trial_number(study_id, t.number), TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    return [t.number for t in trials if t.state == TrialState.FAIL and t.number not in retried and requeue(study, t, max_retries)]


class Surplus(Exception):
    """A trial that started after the study's target was already taken by other workers' trials."""


class TrialFailed(Exception):
    """A trial's run raised; the trial is recorded as FAIL and the study goes on."""


def claim(trial: optuna.Trial, target: int) -> bool:
    """Whether `trial` is within the study's target: fewer than `target` trials are finished or were
    running before it (ordered by start time, then number). Two workers that start at once cannot
    both take the last place, so the study ends with exactly `target` finished trials."""
    me = (trial.datetime_start, trial.number)
    ahead = sum(1 for t in trial.study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
                if t.number != trial.number and (t.state != TrialState.RUNNING or (t.datetime_start, t.number) < me))
    return ahead < target


class AfterTrial:
    """Callback after each trial of a worker: queue a failed trial again, and give up after
    `limit` failures in a row (a config or environment that cannot work)."""

    def __init__(self, max_retries: int, limit: int):
        self.max_retries, self.limit = max_retries, limit
        self.in_a_row, self.last_error = 0, ""

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == TrialState.FAIL and not trial.user_attrs.get("surplus"):
            self.in_a_row += 1
            self.last_error = str(trial.user_attrs.get("error", "unknown error"))
            requeue(study, trial, self.max_retries)
            if self.in_a_row >= self.limit:
                study.stop()
        elif trial.state in FINISHED:
            self.in_a_row = 0


# ---- trials ------------------------------------------------------------------------------------


def objective(trial: optuna.Trial, plan: Plan, options: TuneOptions, log: Callable[[str], None]) -> float:
    """One trial: a training run of the suggested config on validation only; its value is the best
    validation metric of the run. Pruned through the trainer's on_eval hook."""
    trial.set_user_attr("worker", worker_id())
    if not claim(trial, plan.target):
        trial.set_user_attr("surplus", True)
        raise Surplus(f"trial {trial.number}: the study already has its {plan.target} trials")
    params = suggest(trial, plan.params)
    terms = parse_metric(plan.metric)
    start = time.perf_counter()

    def on_eval(epoch: int, value: float) -> None:
        trial.report(value, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch} ({plan.metric} {value:.4f})")

    try:
        record, _ = runner.run(base_spec(options, params), on_eval=on_eval, test=False)
    except optuna.TrialPruned as exc:
        log(f"trial {trial.number} {fmt_params(params)}: {exc} after {time.perf_counter() - start:.0f} s")
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the run is the trial's, recorded as FAIL
        error = f"{type(exc).__name__}: {exc}"
        trial.set_user_attr("error", error[:1000])
        log(f"trial {trial.number} {fmt_params(params)}: failed ({error.splitlines()[0][:200]})")
        raise TrialFailed(error) from exc
    value = metric_value(record["metrics"]["valid"], terms)
    train = record["train"]
    trial.set_user_attr("valid", record["metrics"]["valid"])
    for key in ("epochs", "best_epoch"):
        if key in train:
            trial.set_user_attr(key, train[key])
    if record.get("checkpoints"):
        trial.set_user_attr("run_dir", str(Path(record["checkpoints"]["best"]).parent))
    log(f"trial {trial.number} {fmt_params(params)}: {plan.metric} {value:.4f} "
        f"({train.get('epochs', 0)} epochs, {time.perf_counter() - start:.0f} s)")
    return value


def fmt_params(params: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in params.items()) + "}"


def work(options: TuneOptions, worker: int = 0, log: Callable[[str], None] = print, plan: Plan | None = None,
         study: optuna.Study | None = None) -> None:
    """One worker: run trials of the study until it has its target of finished trials (or the timeout)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plan = plan or make_plan(options)
    study = study or open_study(plan, open_storage(plan.storage, options))
    if finished(study) >= plan.target:
        return
    study.sampler = make_sampler(options, worker, len(study.trials))
    study.pruner = make_pruner(options)
    after = AfterTrial(options.max_retries, options.max_consecutive_failures)
    # stop once finished + running trials reach the target: a running trial that fails is re-run by its own worker
    enough = optuna.study.MaxTrialsCallback(plan.target, states=(*FINISHED, TrialState.RUNNING))
    prefix = f"[worker {worker}] " if options.jobs > 1 else ""
    try:
        study.optimize(lambda trial: objective(trial, plan, options, lambda s: log(prefix + s)), timeout=options.timeout,
                       catch=(TrialFailed,), callbacks=[after, enough], gc_after_trial=True)
    except Surplus:
        pass
    if after.in_a_row >= after.limit:
        raise RunError(f"{after.in_a_row} trials of study '{plan.study}' failed in a row; the last error: {after.last_error}")


def spawned_worker(options: TuneOptions, worker: int) -> None:
    """Entry point of a worker process (`--jobs N`): trials only, one log line each, no progress bars."""
    import contextlib
    import sys

    from . import train
    from .errors import RecbenchError

    train.progress_bar = lambda console=None: contextlib.nullcontext()  # N processes would draw N bars over each other
    try:
        work(options, worker, log=lambda s: print(s, flush=True))
    except RecbenchError as exc:
        print(f"[worker {worker}] Error: {exc}", file=sys.stderr, flush=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


# ---- a whole tuning run ------------------------------------------------------------------------


@dataclass
class TuneResult:
    study: str
    storage: str
    trials: dict[str, int]  # per state, after this run
    ran: int  # trials that finished in this run
    best_trial: int
    best_value: float
    best_params: dict[str, Any]
    record: dict
    record_path: Path
    retrained: bool  # False: the best trial's record already existed and was reused
    seconds: float


def start(options: TuneOptions, log: Callable[[str], None] = print) -> tuple[Plan, optuna.Study, optuna.storages.BaseStorage]:
    """Make the plan, open (or create) the study, recover from a killed run, queue trial 0 (the defaults) in a new study."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plan = make_plan(options)
    from .data import prepare

    prepare(plan.resolved.dataset.obj, plan.resolved.configs["dataset"])  # missing data is a usage error now, not N failed trials
    storage = open_storage(plan.storage, options)
    study = open_study(plan, storage)
    again = recover(study, storage, options.max_retries)
    if again:
        log(f"queued again with the same parameters: trial(s) {', '.join(map(str, again))} (failed or killed)")
    if not study.trials:
        study.enqueue_trial(plan.defaults, user_attrs={"defaults": True})
    return plan, study, storage


def run_study(options: TuneOptions, log: Callable[[str], None] = print, show_config=None) -> TuneResult:
    """Run the study to its target (in `options.jobs` processes), then re-train its best trial and
    evaluate it on test, writing a result record with a `tune` field."""
    t0 = time.perf_counter()
    plan, study, storage = start(options, log)
    before = finished(study)
    log(f"study '{plan.study}' in {plan.storage}: {before} of {plan.target} trials finished; "
        f"searching {', '.join(f'{k} ({describe(p)})' for k, p in plan.params.items())}")
    if before < plan.target:
        if options.jobs == 1:
            work(options, 0, log, plan, study)
        else:
            run_workers(options, min(options.jobs, plan.target - before))
    trials = counts(study)
    if not trials.get("complete"):
        raise RunError(f"Study '{plan.study}' has no completed trial ({trials}); nothing to re-train.")
    best = study.best_trial
    log(f"best: trial {best.number} with {plan.metric} {best.value:.4f} {fmt_params(best.params)}")
    record, path, retrained = evaluate_best(plan, options, study, best, trials, log, show_config)
    return TuneResult(plan.study, plan.storage, trials, finished(study) - before, best.number, best.value, dict(best.params),
                      record, path, retrained, time.perf_counter() - t0)


def run_workers(options: TuneOptions, jobs: int) -> None:
    """Run `jobs` worker processes (spawned) on the study and wait for them."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=spawned_worker, args=(options, i), name=f"recbench-tune-{i}") for i in range(jobs)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.join(timeout=30)
        raise
    failed = [f"worker {i}: exit code {p.exitcode}" for i, p in enumerate(procs) if p.exitcode != 0]
    if failed:
        raise RunError(f"Tuning workers failed ({'; '.join(failed)}); see their messages above.")


def find_record(folder: Path, dataset: str, study: str, storage: str, trial: int) -> Path | None:
    """An existing record that re-trained `trial` of this study, if any."""
    for path in records.find([folder], dataset):
        tune = records.load(path).get("tune") or {}
        if (tune.get("study"), tune.get("storage"), tune.get("trial")) == (study, storage, trial):
            return path
    return None


def evaluate_best(plan: Plan, options: TuneOptions, study: optuna.Study, best: optuna.trial.FrozenTrial, trials: dict[str, int],
                  log: Callable[[str], None], show_config=None) -> tuple[dict, Path, bool]:
    """Re-train the best trial's config and evaluate it once on test (a normal run with a `tune`
    field); if that was already done for this trial, return the existing record."""
    folder = options.results_dir or paths.results_dir()
    existing = find_record(folder, plan.dataset, plan.study, plan.storage, best.number)
    if existing is not None:
        log(f"trial {best.number} was already re-trained and tested: {existing}")
        return records.load(existing), existing, False
    spec = base_spec(options, best.params)
    spec.tune = records.tune_field(plan.study, plan.storage, best.number, plan.metric, best.value, best.params, trials)
    log(f"re-training trial {best.number}'s config and evaluating it on test")
    record, path = runner.run(spec, log=log, show_config=show_config)
    return record, path, True


# ---- showing a study ---------------------------------------------------------------------------


def load_study(name: str, storage_url: str | None = None) -> optuna.Study:
    """An existing study; an unknown name is a UsageError that lists the studies in the storage."""
    url = storage_url or default_storage()
    storage = open_storage(url, create=False)
    names = optuna.study.get_all_study_names(storage)
    if name not in names:
        raise UsageError(f"No study named '{name}' in {url}. Studies there: {', '.join(sorted(names)) or '(none)'}.")
    return optuna.load_study(study_name=name, storage=storage)


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """Per trial: number, value, state (with why: pruned at epoch N, error, surplus), params, duration, notes."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        notes = []
        if t.user_attrs.get("defaults"):
            notes.append("defaults")
        if "retry_of" in t.user_attrs:
            notes.append(f"retry of {t.user_attrs['retry_of']}")
        if t.state == TrialState.PRUNED and t.intermediate_values:
            notes.append(f"pruned at epoch {max(t.intermediate_values)}")
        if t.user_attrs.get("surplus"):
            notes.append("not run: the study's target was reached by other workers")
        elif t.state == TrialState.FAIL:
            notes.append(str(t.user_attrs.get("error", "killed or interrupted")).splitlines()[0][:120])
        if "epochs" in t.user_attrs:
            notes.append(f"{t.user_attrs['epochs']} epochs, best {t.user_attrs.get('best_epoch')}")
        rows.append({"number": t.number, "value": t.value, "state": t.state.name, "params": dict(t.params),
                     "seconds": t.duration.total_seconds() if t.duration else None, "notes": "; ".join(notes)})
    return rows


def write_plots(study: optuna.Study, folder: Path) -> tuple[list[Path], list[str]]:
    """Optimisation history, intermediate values and parameter importance as PNGs in `folder`;
    (files written, messages on plots that could not be drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    written, messages = [], []

    def save(kind: str, draw) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ax = draw()
        fig = ax.figure
        fig.set_size_inches(9, 5.5)
        fig.tight_layout()
        path = folder / f"{study.study_name}_{kind}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    if not complete:
        return [], ["no completed trial yet: nothing to plot"]
    save("history", lambda: ovm.plot_optimization_history(study))
    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        save("intermediate", lambda: ovm.plot_intermediate_values(study))
    varied = [k for k in {k for t in complete for k in t.params} if len({repr(t.params.get(k)) for t in complete}) > 1]
    if len(complete) < 2:
        messages.append(f"parameter importance needs at least 2 completed trials; the study has {len(complete)}")
    elif not varied:
        messages.append("parameter importance needs a parameter that varies across completed trials; none does yet")
    else:
        try:
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
            save("importance", lambda: ovm.plot_param_importances(study, evaluator=evaluator))
        except (ImportError, RuntimeError, ValueError) as exc:
            messages.append(f"parameter importance could not be computed: {exc}")
    return written, messages
