"""Plugin discovery and the registry of datasets, tokenizers, generators and trackers.

Built-in plugins (the modules in `recbench_plugins`) and third-party packages (entry points in
the group `recbench`) are loaded by the same pluggy manager and registered by the same code. A
plugin that fails to import or to register is recorded as a `Failure` and never breaks a command;
a name registered twice is a failure of the second package that names both. Set
RECBENCH_NO_PLUGINS=1 to load built-ins only.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import traceback
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import __version__, hookspecs
from .errors import UsageError, did_you_mean

BUILTIN_PLUGINS = (
    "recbench_plugins.amazon",
    "recbench_plugins.amazon2018",
    "recbench_plugins.amazon2023",
    "recbench_plugins.movielens",
    "recbench_plugins.pop",
    "recbench_plugins.sasrec",
    "recbench_plugins.llama_rec",
    "recbench_plugins.hstu",
    "recbench_plugins.diff_grm",
    "recbench_plugins.ar_grm",
    "recbench_plugins.rpg",
    "recbench_plugins.tiger",
    "recbench_plugins.tokenizers",
    "recbench_plugins.rqvae",
    "recbench_plugins.trackers",
    "recbench_plugins.local",  # the user's own datasets (recbench datasets add)
)

KINDS = ("dataset", "tokenizer", "generator", "tracker")
HOOKS = {"dataset": "register_datasets", "tokenizer": "register_tokenizers", "generator": "register_generators",
         "tracker": "register_trackers"}


@dataclass
class Entry:
    kind: str
    name: str
    obj: Any
    package: str
    version: str
    plugin: str  # module or entry point it came from

    @property
    def description(self) -> str:
        return getattr(self.obj, "description", "")


@dataclass
class Failure:
    plugin: str
    package: str
    version: str
    error: str
    detail: str = ""


@dataclass
class Registry:
    entries: dict[str, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})
    aliases: dict[str, dict[str, str]] = field(default_factory=lambda: {k: {} for k in KINDS})
    failures: list[Failure] = field(default_factory=list)

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def all(self) -> list[Entry]:
        return [e for kind in KINDS for e in sorted(self.entries[kind].values(), key=lambda e: e.name)]

    def has(self, kind: str, name: str) -> bool:
        return self.aliases[kind].get(name.lower(), name) in self.entries[kind]

    def entry(self, kind: str, name: str) -> Entry:
        if kind == "dataset" and name.startswith("path:") and not self.has(kind, name):
            self.add_folder(name)
        if self.has(kind, name):
            return self.entries[kind][self.aliases[kind].get(name.lower(), name)]
        valid = self.names(kind)
        raise UsageError(
            f"Unknown {kind} '{name}'.{did_you_mean(name, valid)} Valid {kind}s: {', '.join(valid) or '(none)'}.{self.failure_note()}"
        )

    def add_folder(self, name: str) -> None:
        """Register the dataset `path:DIR` names (recbench.data.local.folder_dataset), under `name` as its alias."""
        from .data.local import folder_dataset

        dataset = folder_dataset(name, self)
        if self.has("dataset", dataset.name):  # the same files, registered under the folder's name
            self.aliases["dataset"][name.lower()] = self.aliases["dataset"][dataset.name.lower()]
        else:
            self.add("dataset", dataset, "recbench", __version__, "path:")

    def failure_note(self) -> str:
        """A sentence naming the plugin packages that failed to load ('' if none did)."""
        broken = sorted({f.package for f in self.failures})
        return f" Plugin package(s) that failed to load: {', '.join(broken)} (see `recbench plugins`)." if broken else ""

    def get(self, kind: str, name: str) -> Any:
        return self.entry(kind, name).obj

    def option_aliases(self) -> dict[str, Any]:
        """Flag -> api.OptionAlias, as the generators declare them (`option_aliases`); where two declare
        one flag differently, the generator first by name keeps it."""
        aliases: dict[str, Any] = {}
        for name in self.names("generator"):
            for flag, alias in (getattr(self.entries["generator"][name].obj, "option_aliases", None) or {}).items():
                aliases.setdefault(flag, alias)
        return aliases

    def add(self, kind: str, obj: Any, package: str, version: str, plugin: str) -> None:
        name = getattr(obj, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"a registered {kind} needs a string 'name', got {obj!r}")
        if not getattr(obj, "description", None):
            raise TypeError(f"{kind} '{name}' needs a one-line 'description'")
        for label in (name, *getattr(obj, "aliases", ())):  # a name or alias may stand for one plugin only
            owner = self.aliases[kind].get(label.lower())
            if owner is not None:
                taken = self.entries[kind][owner]
                what = f"name '{name}'" if label == name else f"alias '{label}' of '{name}'"
                raise ValueError(
                    f"{kind} {what} from package '{package}' clashes with {kind} '{owner}' from package "
                    f"'{taken.package}' (plugin {taken.plugin}); the first one registered is kept."
                )
        self.entries[kind][name] = Entry(kind, name, obj, package, version, plugin)
        for alias in (name, *getattr(obj, "aliases", ())):
            self.aliases[kind].setdefault(alias.lower(), name)


def missing_option(option: str, aliases: dict[str, Any]) -> str:
    """"Missing option '--plugin'.", naming the flags that may stand for it (Registry.option_aliases)."""
    flags = [f"--{flag}=..." for flag, alias in aliases.items() if alias.option == option and alias.switch is None]
    return f"Missing option '{option}'" + (f" (or {' / '.join(flags)})" if flags else "") + "."


def _third_party() -> list[tuple[str, Any, str, str]]:
    """(entry point name, loaded object or exception, package, version) per entry point."""
    found = []
    for ep in importlib.metadata.entry_points(group="recbench"):
        dist = getattr(ep, "dist", None)
        package = dist.metadata["Name"] if dist is not None else ep.value.split(":")[0]
        version = dist.version if dist is not None else "?"
        try:
            found.append((ep.name, ep.load(), package, version))
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break recbench
            found.append((ep.name, exc, package, version))
    return found


def load(third_party: bool | None = None, extra: list[tuple[str, Any, str, str]] = ()) -> Registry:
    """Load built-in and (unless RECBENCH_NO_PLUGINS is set) third-party plugins.

    `extra`: further (plugin name, object with hookimpls, package, version) to register, last.
    """
    if third_party is None:
        third_party = os.environ.get("RECBENCH_NO_PLUGINS", "").lower() in ("", "0", "false", "no")
    pm = pluggy.PluginManager("recbench")
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    sources: list[tuple[str, Any, str, str]] = []
    for module in BUILTIN_PLUGINS:
        try:
            sources.append((module, importlib.import_module(module), "recbench", __version__))
        except Exception as exc:  # noqa: BLE001
            sources.append((module, exc, "recbench", __version__))
    if third_party:
        sources.extend(_third_party())
    sources.extend(extra)
    for plugin, obj, package, version in sources:
        if isinstance(obj, BaseException):
            registry.failures.append(_failure(plugin, package, version, "import failed", obj))
            continue
        try:
            pm.register(obj, name=plugin)
        except Exception as exc:  # noqa: BLE001 - e.g. a hook with a misspelt argument
            registry.failures.append(_failure(plugin, package, version, "invalid hooks", exc))
            continue
        for kind in KINDS:
            caller = getattr(pm.hook, HOOKS[kind])
            for impl in caller.get_hookimpls():
                if impl.plugin is not obj:
                    continue
                try:
                    impl.function(register=_registrar(registry, kind, package, version, plugin))
                except Exception as exc:  # noqa: BLE001
                    registry.failures.append(_failure(plugin, package, version, f"{HOOKS[kind]} failed", exc))
    return registry


def _registrar(registry: Registry, kind: str, package: str, version: str, plugin: str):
    def register(obj: Any) -> None:
        try:
            registry.add(kind, obj, package, version, plugin)
        except (TypeError, ValueError) as exc:  # a bad object or a name clash: skip this one only
            registry.failures.append(_failure(plugin, package, version, f"could not register a {kind}", exc))

    return register


def _failure(plugin: str, package: str, version: str, what: str, exc: BaseException) -> Failure:
    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return Failure(plugin, package, version, f"{what}: {type(exc).__name__}: {exc}", detail)


_registry: Registry | None = None


def registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _registry
    if _registry is None:
        _registry = load()
    return _registry


def reset() -> None:
    global _registry
    _registry = None
