"""Search spaces: a generator's declared `search_space` or a `--space FILE`, checked against the run's
config fields, turned into Optuna suggestions, and the starting values of trial 0."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import optuna

from .. import config as cfg
from .. import runner
from ..errors import UsageError, did_you_mean

SPACE_TYPES = ("float", "int", "categorical")
SPACE_KEYS = {"float": ("type", "low", "high", "log", "step"), "int": ("type", "low", "high", "log", "step"),
              "categorical": ("type", "choices")}


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


def space_fields(resolved: runner.Resolved) -> dict[str, Any]:
    """{key: type} of every config key a search space may name (run-control keys excluded)."""
    out: dict[str, Any] = {}
    for config in resolved.configs.values():
        for key, tp in cfg.field_types(type(config)).items():
            out.setdefault(key, tp)
    return out


def space_ranges(resolved: runner.Resolved) -> dict[str, cfg.Range]:
    """{key: valid range} of the run's config keys that declare one (the ranges `recbench run` checks)."""
    out: dict[str, cfg.Range] = {}
    for config in resolved.configs.values():
        for key, valid in cfg.field_ranges(type(config)).items():
            out.setdefault(key, valid)
    return out


def parse_space(space: Any, fields: Mapping[str, Any], source: str, path: Path | None = None,
                ranges: Mapping[str, cfg.Range] | None = None) -> dict[str, Param]:
    """Validate a search space against the run's config fields (and their valid `ranges`); {key: Param}.

    `source` names where the space comes from in error messages ("file X" or "generator Y");
    with `path`, messages also give the line of the offending key.
    """

    def where(key: str | None = None) -> str:
        line = cfg.key_line(path, key) if path is not None and key is not None else None
        return f"Search space ({source}{f', line {line}' if line else ''})"

    if not isinstance(space, Mapping) or not space:
        raise UsageError(f"{where()}: expected a non-empty mapping of config key -> {{type: float|int|categorical, ...}}; "
                         f"got {space!r}.")
    params: dict[str, Param] = {}
    for raw_key, spec in space.items():
        key = cfg.normalize_key(str(raw_key))
        at = f"{where(key)}, key '{key}'"
        if key not in fields:
            raise UsageError(f"{at}: not a config field of this run.{did_you_mean(key, fields)} Valid keys: {', '.join(sorted(fields))}.")
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
        valid = (ranges or {}).get(key)
        values = params[key].choices if kind == "categorical" else (params[key].low, params[key].high)
        outside = [v for v in values if valid is not None and isinstance(v, (int, float)) and not isinstance(v, bool) and v not in valid]
        if outside:
            raise UsageError(f"{at}: {outside[0]!r} is outside the field's valid range ({valid}).")
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
    """Trial 0: the resolved value (defaults < dataset preset < named preset < config file < fixed overrides) of every
    searched key."""
    values = {}
    for key in params:
        for config in resolved.configs.values():
            if key in cfg.field_types(type(config)):
                values[key] = getattr(config, key)
                break
    return values


def describe(p: Param) -> str:
    if p.type == "categorical":
        return "one of " + ", ".join(map(repr, p.choices))
    extra = ", log" if p.log else (f", step {p.step}" if p.step is not None else "")
    return f"{p.type} in [{p.low}, {p.high}{extra}]"
