"""`recbench config NAME`: every config key of a plugin, with its type, default, valid range and
comment, and the presets that change them; what `--key=value` may set on `recbench run`."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from .. import config as cfg
from .. import plugins
from ..errors import UsageError

console = Console(soft_wrap=True)


def sections(name: str) -> tuple[plugins.Entry, dict[str, list[dict]]]:
    """The plugin called `name` and its config sections: section -> described fields (config.describe).
    A semantic-ID generator also lists its default tokenizer's and the embedding's keys."""
    from ..embeddings import EmbeddingConfig

    registry = plugins.registry()
    found = [registry.entry(kind, name) for kind in ("generator", "tokenizer", "dataset") if registry.has(kind, name)]
    if not found:
        names = ", ".join(registry.names("generator") + registry.names("tokenizer") + registry.names("dataset"))
        raise UsageError(f"Unknown plugin '{name}': no generator, tokenizer or dataset has that name. Known: {names}."
                         f"{registry.failure_note()}")
    entry = found[0]
    out = {entry.kind: cfg.describe(entry.obj.Config)}
    if entry.kind == "generator" and entry.obj.inputs == "semantic_ids" and entry.obj.default_tokenizer:
        tokenizer = registry.entry("tokenizer", entry.obj.default_tokenizer)
        out[f"tokenizer ({tokenizer.name}, the default; --tokenizer to change)"] = cfg.describe(tokenizer.obj.Config)
    if entry.kind != "dataset" and (entry.kind == "tokenizer" or entry.obj.inputs == "semantic_ids"):
        out["embedding"] = cfg.describe(EmbeddingConfig)
    return entry, out


def listing(name: str) -> dict:
    entry, described = sections(name)
    presets = {}
    if entry.kind == "generator":
        presets = {**{f"dataset {k}": v for k, v in entry.obj.presets.items()},
                   **{f"--preset {k}": v for k, v in entry.obj.named_presets.items()}}
    return {"kind": entry.kind, "name": entry.name, "package": entry.package, "sections": described, "presets": presets}


def command(
    name: str = typer.Argument(..., help="A generator, tokenizer or dataset (see `recbench plugins`)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Show every config key of a plugin: type, default, valid range and what it does; and its presets."""
    data = listing(name)
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    for section, rows in data["sections"].items():
        table = Table(title=f"{data['name']} ({data['kind']}, {data['package']}): {section} config", header_style="bold")
        for col in ("key", "type", "default", "range"):
            table.add_column(col, no_wrap=col == "key", overflow="fold")
        table.add_column("what it does", overflow="fold", ratio=1)
        for r in rows:
            table.add_row(r["key"], r["type"], repr(r["default"]), r["range"] or "", r["comment"])
        console.print(table)
    if data["presets"]:
        table = Table(title="presets (applied over the defaults: a dataset's whenever it runs on it, a named one with --preset)",
                      header_style="bold")
        table.add_column("preset")
        table.add_column("settings", overflow="fold")
        for preset, values in data["presets"].items():
            table.add_row(preset, ", ".join(f"{k}={v!r}" for k, v in values.items()))
        console.print(table)
    console.print("Set any key with --key=value on `recbench run` (or in a --config file).", highlight=False)
