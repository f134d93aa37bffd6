"""`recbench plugins`: what is loaded, from which package, and what failed to load."""

import json

import typer
from rich.console import Console
from rich.table import Table

from .. import config as cfg
from .. import registry as registry_mod


def listing() -> dict:
    registry = registry_mod.registry()
    return {
        "plugins": [
            {"kind": e.kind, "name": e.name, "description": e.description, "package": e.package,
             "version": e.version, "aliases": list(getattr(e.obj, "aliases", ())),
             **({"dataset_presets": sorted(e.obj.presets), "presets": sorted(e.obj.named_presets)} if e.kind == "generator" else {}),
             "config": cfg.describe(e.obj.Config)}  # every key: type, default, range, comment (`recbench config NAME`)
            for e in registry.all()
        ],
        "failures": [
            {"plugin": f.plugin, "package": f.package, "version": f.version, "error": f.error} for f in registry.failures
        ],
    }


def dumps(data: dict) -> str:
    return json.dumps(data, indent=2, default=str)  # a default that JSON cannot hold (a tuple is fine) as its text


def command(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List every loaded dataset, tokenizer, generator and tracker, and any plugin that failed to load."""
    data = listing()
    if as_json:
        print(dumps(data))
        return
    console = Console()
    table = Table(title="recbench plugins", header_style="bold")
    for col in ("kind", "name", "description", "package", "version"):
        table.add_column(col)
    for p in data["plugins"]:
        table.add_row(p["kind"], p["name"], p["description"], p["package"], p["version"])
    console.print(table)
    if data["failures"]:
        failed = Table(title="failed to load", header_style="bold red")
        for col in ("plugin", "package", "version", "error"):
            failed.add_column(col)
        for f in data["failures"]:
            failed.add_row(f["plugin"], f["package"], f["version"], f["error"])
        console.print(failed)
