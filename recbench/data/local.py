"""The user's own datasets, by name: `recbench datasets add` keeps each in RECBENCH_HOME/datasets.json
(the files, how to read them, the default k-core), so that the name resolves in every command as a
built-in's does; `path:DIR` names a folder holding both files without registering anything.

The file is rewritten atomically, and only after the new dataset was read and prepared in full: a
failed `add` leaves it, and the cache, as they were. A datasets.json that cannot be read is never
overwritten; it is reported with its path.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from .. import paths
from ..atomic import replacing
from ..errors import DataError, UsageError
from .generic import Layout, LocalDataset

VERSION = 1
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")  # it names folders (prepared data, records) and run ids
PREFIX = "path:"
INTERACTION_NAMES = ("interactions.csv", "interactions.tsv", "interactions.parquet")
ITEM_NAMES = ("items.jsonl", "items.csv", "items.tsv", "items.parquet")


def registry_file() -> Path:
    return paths.home() / "datasets.json"


def entries() -> dict[str, dict[str, Any]]:
    """Name -> the registered dataset (datasets.json as written by `add`); {} where none was added."""
    path = registry_file()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("datasets"), dict):
            raise ValueError("expected an object with a 'datasets' object")
        for name, entry in data["datasets"].items():
            dataset_of(name, entry)  # every entry must make a dataset
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise DataError(f"The list of local datasets {path} cannot be read ({type(exc).__name__}: {exc}). "
                        "Fix or move the file; recbench does not overwrite it.") from None
    return data["datasets"]


def dataset_of(name: str, entry: dict[str, Any]) -> LocalDataset:
    known = {f.name for f in fields(Layout)}
    layout = {k: v for k, v in entry["layout"].items() if k in known}
    if layout.get("text_fields") is not None:
        layout["text_fields"] = tuple(layout["text_fields"])
    return LocalDataset(name, Layout(**layout), k_core=int(entry.get("k_core", 0)))


def datasets() -> list[LocalDataset]:
    """The registered local datasets (what recbench_plugins.local registers)."""
    return [dataset_of(name, entry) for name, entry in sorted(entries().items())]


def check_name(name: str, registry) -> None:
    if not NAME.match(name):
        raise UsageError(f"Dataset name '{name}': use letters, digits and . _ + - (starting with a letter or digit); "
                         "it names folders and result files.")
    if registry.has("dataset", name) and not getattr(registry.get("dataset", name), "local", False):
        owner = registry.entry("dataset", name)
        raise UsageError(f"Dataset name '{name}' is taken by the dataset '{owner.name}' of package '{owner.package}'; choose another.")


def layout_for(interactions: Path, items: Path, **options) -> Layout:
    """The layout of two files given on the command line, which must exist."""
    for role, path in (("interactions", interactions), ("items", items)):
        if not Path(path).is_file():
            raise UsageError(f"The {role} file '{path}' does not exist or is not a file.")
    if options.get("format", "auto") not in ("auto", "generic", "recbole"):
        raise UsageError(f"--format {options['format']!r}: expected auto, generic or recbole.")
    return Layout(str(Path(interactions).resolve()), str(Path(items).resolve()), **options)


def add(name: str, layout: Layout, *, k_core: int = 0, replace: bool = False, registry=None, log=lambda s: None):
    """Register `layout` as dataset `name`: read and prepare it first (any bad input ends here, with
    nothing written), then write datasets.json. Returns the prepared data."""
    from .. import registry as plugin_registry
    from .prepare import prepare

    registry = registry or plugin_registry.registry()
    check_name(name, registry)
    known = entries()
    if name in known and not replace:
        raise UsageError(f"Local dataset '{name}' exists ({known[name]['layout']['interactions']}); pass --replace to "
                         "register other files under its name, or `recbench datasets remove` it.")
    dataset = LocalDataset(name, layout, k_core=k_core)
    prepared = prepare(dataset, dataset.Config(), log=log)
    entry = {"layout": {**asdict(layout), "text_fields": None if layout.text_fields is None else list(layout.text_fields)},
             "k_core": k_core, "added": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write({**entries(), name: entry})
    return prepared


def remove(name: str) -> None:
    known = entries()
    if name not in known:
        raise UsageError(f"No local dataset '{name}'. Local datasets: {', '.join(sorted(known)) or '(none)'}.")
    write({k: v for k, v in known.items() if k != name})


def write(datasets: dict[str, Any]) -> None:
    path = registry_file()
    with replacing(path) as tmp:
        tmp.write_text(json.dumps({"version": VERSION, "datasets": datasets}, indent=1) + "\n", encoding="utf-8")


def folder_dataset(spec: str, registry) -> LocalDataset:
    """The dataset `path:DIR` names: DIR holds one interactions file (NAME.inter, or interactions.csv,
    .tsv or .parquet) and one items file (NAME.item, or items.jsonl, .csv, .tsv or .parquet). It is
    named after the folder, which must not be another dataset's name."""
    folder = Path(spec[len(PREFIX):]).expanduser()
    if not folder.is_dir():
        raise UsageError(f"Dataset '{spec}': '{folder}' is not a folder.")
    folder = folder.resolve()
    found = []
    for role, names, suffix in (("interactions", INTERACTION_NAMES, ".inter"), ("items", ITEM_NAMES, ".item")):
        files = sorted({*(folder / n for n in names if (folder / n).is_file()), *folder.glob(f"*{suffix}")})
        if len(files) != 1:
            what = "none" if not files else ", ".join(f.name for f in files)
            raise UsageError(f"Dataset '{spec}': expected one {role} file in {folder} ({' or '.join(names)}, or *{suffix}); "
                             f"found {what}. Use `recbench datasets add NAME --interactions FILE --items FILE` to name them.")
        found.append(files[0])
    name = folder.name
    check_name(name, registry)
    if registry.has("dataset", name):
        taken = registry.get("dataset", name)
        if (taken.layout.interactions, taken.layout.items) != tuple(map(str, found)):
            raise UsageError(f"Dataset '{spec}': the folder's name '{name}' is already a local dataset of other files "
                             f"({taken.layout.interactions}); rename the folder or `recbench datasets add` it under another name.")
    return LocalDataset(name, Layout(str(found[0]), str(found[1])), aliases=(spec,))
