"""Typed, layered configuration.

Every plugin declares its settings as a dataclass whose defaults are the published values. A run
resolves them in layers, later ones winning:

    plugin defaults < the plugin's preset for the dataset < config file (--config) < command line

Command-line overrides are written as the published code writes them (`--lr=0.003`,
`--n_digit=4`, `--train_sliding=true`, also `--lr 0.003`) and are parsed by the field's type;
nothing is ever `eval`-ed. An unknown key or a value that does not fit its type is a UsageError
that names the key and lists the valid keys (with the closest one, for a typo) or the expected
type; a value from a config file names the file and the key's line, and a key given with no
value (`--lr`) says the value is missing rather than that 'true' is no number.

A run has several config *sections* (the generator's, the dataset's, later the tokenizer's); a key
is applied to every section that has a field of that name.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from .errors import UsageError, did_you_mean

TRUE = {"true", "1", "yes", "y", "on"}
FALSE = {"false", "0", "no", "n", "off"}
_NONE = {"none", "null"}


def normalize_key(key: str) -> str:
    return key.strip().lstrip("-").replace("-", "_")


class Flag(str):
    """The value of a key given alone (`--train_sliding`): 'true' for a boolean field. The type tells
    `from_layers` that no value was written, so that `--lr` followed by nothing (or by another
    --key) is reported as a missing value instead of as the number 'true'."""

    def __new__(cls, value: str = "true") -> Flag:
        return super().__new__(cls, value)


def parse_overrides(args: list[str]) -> dict[str, str]:
    """Turn ['--lr=0.003', '--n_digit', '4', '--flag'] into {'lr': '0.003', 'n_digit': '4', 'flag': 'true'}
    (that last 'true' a `Flag`: a bare key)."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or arg == "--":
            raise UsageError(
                f"Unexpected argument '{arg}': config overrides are written --key=value (e.g. --lr=0.003)."
            )
        if "=" in arg:
            key, value = arg.split("=", 1)
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            key, value = arg, args[i + 1]
            i += 1
        else:
            key, value = arg, Flag()  # a bare flag switches a boolean on
        key = normalize_key(key)
        if not key:
            raise UsageError(f"Malformed override '{arg}': expected --key=value.")
        if key in out and out[key] != value:  # which one was meant? say so rather than pick one
            raise UsageError(f"--{key} is given twice, as {out[key]!r} and as {value!r}: give it once.")
        out[key] = value
        i += 1
    return out


class FileValues(dict):
    """A config file's {key: value}, which remembers its file: an error about one of its values
    names the file and the key's line (`from_layers`)."""

    def __init__(self, values: dict[str, Any], path: Path):
        super().__init__(values)
        self.path = path

    def where(self, key: str) -> str:
        """"Config file 'c.toml', line 3" for `key` (without the line where it cannot be found)."""
        line = key_line(self.path, key)
        return f"Config file '{self.path}'" + (f", line {line}" if line else "")


def key_line(path: str | Path, key: str) -> int | None:
    """The line of `path` where `key` is first defined (YAML `key:`, TOML `key =` or `[key]`, JSON
    `"key":`; also written with hyphens), or None. The parsers keep no positions of what they read,
    and a config file is flat, so the first line that defines the key is the one."""
    names = "|".join(re.escape(k) for k in dict.fromkeys((key, key.replace("_", "-"))))
    pattern = re.compile(rf"""^\s*(\[\s*)?["']?({names})["']?\s*(\]|:|=)""")
    try:
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
            if pattern.match(line):
                return number
    except (OSError, UnicodeDecodeError):
        return None
    return None


def load_file(path: str | Path) -> FileValues:
    """Read a YAML (.yaml/.yml), TOML (.toml) or JSON config file into a flat {key: value} mapping."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"Config file '{path}' does not exist.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise UsageError(f"Config file '{path}', line {line}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                         f"{exc.start}); expected a YAML, TOML or JSON file.") from None
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib
            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise UsageError(f"Config file '{path}': expected a .yaml, .yml, .toml or .json file.")
    except UsageError:
        raise
    except Exception as exc:  # the parsers' own errors carry the line
        raise UsageError(f"Config file '{path}' could not be parsed: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"Config file '{path}': expected a mapping of key: value, got {type(data).__name__}.")
    return FileValues({normalize_key(k): v for k, v in data.items()}, path)


def type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        inner = get_args(tp)[0] if get_args(tp) else str
        return f"comma-separated list of {type_name(inner)}"
    if tp is type(None):
        return "none"
    return getattr(tp, "__name__", str(tp))


def coerce(key: str, value: Any, tp: Any) -> Any:
    """Convert `value` (a string from the command line, or a YAML/TOML value) to type `tp`."""

    def bad() -> UsageError:
        return UsageError(f"Config value for '{key}' must be {type_name(tp)}; got {value!r}.")

    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if type(None) in options and (value is None or (isinstance(value, str) and value.lower() in _NONE)):
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(key, value, option)
            except UsageError:
                continue
        raise bad()
    if origin is Literal:
        choices = get_args(tp)
        for choice in choices:
            if value == choice or (isinstance(value, str) and str(choice) == value):
                return choice
        raise bad()
    if origin in (list, tuple):
        inner = (get_args(tp) or (str,))[0]
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise bad()
        converted = [coerce(key, v.strip() if isinstance(v, str) else v, inner) for v in items if v != ""]
        return tuple(converted) if origin is tuple else converted
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in TRUE | FALSE:
            return value.lower() in TRUE
        raise bad()
    if tp is int:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                try:  # 1e5 is a fine way to write an integer
                    f = float(value)
                except ValueError:
                    raise bad() from None
                if f.is_integer():
                    return int(f)
        raise bad()
    if tp is float:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise bad() from None
        raise bad()
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad()
    raise UsageError(f"Config field '{key}' has a type recbench cannot parse: {tp!r}.")


@dataclasses.dataclass(frozen=True)
class Range:
    """The valid values of a numeric field: bounds, each inclusive (ge, le) or exclusive (gt, lt)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def __contains__(self, v: float) -> bool:
        return ((self.ge is None or v >= self.ge) and (self.gt is None or v > self.gt)
                and (self.le is None or v <= self.le) and (self.lt is None or v < self.lt))

    def __str__(self) -> str:
        low = f">= {self.ge:g}" if self.ge is not None else f"> {self.gt:g}" if self.gt is not None else ""
        high = f"<= {self.le:g}" if self.le is not None else f"< {self.lt:g}" if self.lt is not None else ""
        return " and ".join(p for p in (low, high) if p) or "any number"


def ranged(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None):
    """A config field with a valid range, declared where the field is: `lr: float = ranged(1e-3, gt=0)`.
    A subclass that only changes the default (`lr: float = 0.01`) keeps the range."""
    return dataclasses.field(default=default, metadata={"range": Range(ge, gt, le, lt)})


def field_range(cls: type, name: str) -> Range | None:
    """The range declared for field `name` by `cls` or the nearest base class that declares one."""
    for klass in cls.__mro__:
        f = getattr(klass, "__dataclass_fields__", {}).get(name)
        if f is not None and "range" in f.metadata:
            return f.metadata["range"]
    return None


def field_ranges(cls: type) -> dict[str, Range]:
    return {f.name: r for f in dataclasses.fields(cls) if (r := field_range(cls, f.name)) is not None}


class KeyedUsageError(UsageError):
    """A UsageError about one config key, so that the caller can say where its value came from."""

    def __init__(self, message: str, key: str):
        super().__init__(message)
        self.key = key


def check_ranges(config: Any) -> None:
    """Every number of `config` finite and inside its field's range, else a UsageError naming key, value and range."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise KeyedUsageError(f"Config value for '{f.name}' must be a finite number; got {value}.", f.name)
        valid = field_range(type(config), f.name)
        if valid is not None and value not in valid:
            raise KeyedUsageError(f"Config value for '{f.name}' must be {valid}; got {value!r}.", f.name)


def field_comments(cls: type) -> dict[str, str]:
    """field -> the comment written beside it in the source (`x: int = 1  # what x is`), or in the
    comment lines just above it; the class and its bases are read, each field where it is declared."""
    import inspect
    import io
    import tokenize

    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        names = klass.__dict__.get("__annotations__", {})
        if not names:
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):  # defined where there is no source (an interactive session)
            continue
        comments: dict[int, str] = {}
        code_lines: set[int] = set()
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = tok.string.lstrip("#").strip()
            elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
                code_lines.add(tok.start[0])
        lines = source.splitlines()
        for number, line in enumerate(lines, 1):
            name = line.strip().split(":", 1)[0]
            if name not in names or not line.startswith((" ", "\t")) or ":" not in line:
                continue
            if number in comments:
                out[name] = comments[number]
                continue
            above, n = [], number - 1
            while n in comments and n not in code_lines:
                above.insert(0, comments[n])
                n -= 1
            if above:
                out[name] = " ".join(above)
    return out


def describe(cls: type) -> list[dict[str, Any]]:
    """Every field of config dataclass `cls`: name, type, default, valid range and comment, in order."""
    comments = field_comments(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        valid = field_range(cls, f.name)
        rows.append({"key": f.name, "type": type_name(field_types(cls)[f.name]), "default": default,
                     "range": None if valid is None else str(valid), "comment": comments.get(f.name, "")})
    return rows


def field_types(cls: type) -> dict[str, Any]:
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def from_layers(
    sections: dict[str, type], layers: list[tuple[str, dict[str, Any]]], origins: dict[tuple[str, str], str] | None = None
) -> dict[str, Any]:
    """Build one instance per section from its defaults and the layers, in order.

    sections: {"generator": SASRecConfig, "dataset": MovieLensConfig, ...}
    layers:   [("preset beauty", {...}), ("config.yaml", {...}), ("command line", {...})]
    A key must belong to at least one section; it is applied to all that have it.
    `origins`, if given, receives {(section, key): layer name} for every value not left at its default.
    """
    types_by_section = {name: field_types(cls) for name, cls in sections.items()}
    values: dict[str, dict[str, Any]] = {name: {} for name in sections}
    set_by: dict[str, tuple[str, dict]] = {}  # key -> the (origin, layer) that set it last
    for origin, layer in layers:
        for raw_key, value in layer.items():
            key = normalize_key(raw_key)
            owners = [name for name, fields in types_by_section.items() if key in fields]
            if not owners:
                valid = sorted({k for fields in types_by_section.values() for k in fields})
                what = (f"{layer.where(key)}: unknown config key '{key}'." if isinstance(layer, FileValues)
                        else f"Unknown config key '{key}' (from {origin}).")
                raise UsageError(f"{what}{did_you_mean(key, valid)} Valid keys: {', '.join(valid)}.")
            for name in owners:
                values[name][key] = coerce_from(layer, key, value, types_by_section[name][key])
                if origins is not None:
                    origins[(name, key)] = origin
            set_by[key] = (origin, layer)
    out = {}
    for name, cls in sections.items():
        instance = cls(**values[name])
        try:
            check_ranges(instance)
        except KeyedUsageError as exc:  # a value out of range from a file: name the file and line too
            layer = set_by.get(exc.key, (None, None))[1]
            if isinstance(layer, FileValues):
                raise UsageError(f"{layer.where(exc.key)}: {lower_first(str(exc))}") from None
            raise
        check = getattr(instance, "validate", None)
        if check is not None:
            check()  # a config may check relations between fields and raise UsageError
        out[name] = instance
    return out


def coerce_from(layer: dict, key: str, value: Any, tp: Any) -> Any:
    """`coerce`, with errors that say where the value came from: a bare `--key` whose field is not
    boolean is a missing value; a value from a config file names the file and the key's line."""
    if isinstance(value, Flag) and not accepts_bool(tp):
        raise UsageError(f"--{key} is given without a value: write --{key}=VALUE, where VALUE is {type_name(tp)}.")
    try:
        return coerce(key, value, tp)
    except UsageError as exc:
        if isinstance(layer, FileValues):
            raise UsageError(f"{layer.where(key)}: {lower_first(str(exc))}") from None
        raise


def accepts_bool(tp: Any) -> bool:
    """Whether a field of type `tp` takes true/false, so that a bare `--key` means true."""
    if tp is bool:
        return True
    return get_origin(tp) in (Union, types.UnionType) and any(accepts_bool(a) for a in get_args(tp))


def lower_first(message: str) -> str:
    return message[:1].lower() + message[1:]


def flatten(sections: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """{section: {key: value}} -> {key: value}, one layer for `from_layers` (which sets a key in every
    section that has it); a key with different values in two sections is a ValueError."""
    out: dict[str, Any] = {}
    where: dict[str, str] = {}
    for section, values in sections.items():
        for key, value in values.items():
            if key in out and out[key] != value:
                raise ValueError(f"'{key}' is {out[key]!r} in its {where[key]} config and {value!r} in its {section} config; "
                                 "one layer cannot set both")
            out[key], where[key] = value, section
    return out


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def fingerprint(config: dict[str, Any]) -> str:
    import hashlib

    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


__all__ = [
    "FileValues",
    "Flag",
    "Range",
    "check_ranges",
    "coerce",
    "field_range",
    "field_ranges",
    "fingerprint",
    "key_line",
    "load_file",
    "normalize_key",
    "parse_overrides",
    "ranged",
    "from_layers",
    "to_dict",
]
