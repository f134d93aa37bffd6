"""`recbench datasets`: the registered datasets; `prepare` and `stats` for one of them."""

import json

import typer
from rich.console import Console
from rich.table import Table

from .. import paths
from .. import registry as plugins
from ..errors import DataError

app = typer.Typer(help="List, prepare and describe datasets.", invoke_without_command=True, no_args_is_help=False)
console = Console(soft_wrap=True)  # long paths stay whole when the output goes to a file


def is_prepared(name: str) -> bool:
    """Whether an intact prepared cache of `name` exists (files checked against their checksums)."""
    from ..data.prepare import verify

    folder = paths.data_dir() / "prepared" / name
    return folder.is_dir() and any(verify(p)[0] is not None for p in folder.iterdir() if p.is_dir())


def raw_files_at(dataset) -> str:
    """Where the raw files are: 'mirror', 'cache' (downloaded), or 'missing'. Never downloads."""
    try:
        from ..data import Source

        files = dataset.locate(Source(dataset.name, download=False))
    except DataError:
        return "missing"
    mirror = paths.mirror_dir()
    return "mirror" if mirror is not None and mirror.resolve() in files[0].resolve().parents else "cache"


@app.callback()
def listing(ctx: typer.Context) -> None:
    """List the registered datasets."""
    if ctx.invoked_subcommand is not None:
        return
    table = Table(title="recbench datasets", header_style="bold")
    for col in ("name", "aliases", "description", "package", "raw files", "prepared"):
        table.add_column(col)
    for entry in sorted(plugins.registry().entries["dataset"].values(), key=lambda e: e.name):
        aliases = ", ".join(getattr(entry.obj, "aliases", ()))
        prepared = "yes" if is_prepared(entry.name) else "no"
        table.add_row(entry.name, aliases, entry.description, entry.package, raw_files_at(entry.obj), prepared)
    console.print(table)


def load(name: str):
    from ..data import prepare

    entry = plugins.registry().entry("dataset", name)
    return prepare(entry.obj, entry.obj.Config(), log=console.print)


@app.command("prepare")
def prepare_command(name: str = typer.Argument(..., help="Dataset name or alias.")) -> None:
    """Read the raw files (mirror, cache or download) and cache the prepared dataset."""
    data = load(name)
    console.print(f"{data.name}: {data.n_users:,} users, {data.n_items:,} items, {data.n_interactions:,} interactions (fingerprint {data.fingerprint})")


@app.command("stats")
def stats_command(
    name: str = typer.Argument(..., help="Dataset name or alias."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Users, items, interactions, sequence lengths, density and item-text coverage."""
    stats = load(name).stats()
    if as_json:
        print(json.dumps(stats, indent=2))
        return
    table = Table(title=f"{stats['dataset']}", header_style="bold")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key, value in stats.items():
        table.add_row(key, stat_text(key, value))
    console.print(table)


SHARES = {"density", "items_with_text"}  # fractions, shown as percentages


def stat_text(key: str, value) -> str:
    """One statistic as a person reads it: counts with thousands separators, shares as percentages
    to three significant digits (a density of 0.000734 reads 0.0734%), other numbers to two
    decimals (a whole one without), yes/no for a flag. `--json` keeps the exact values."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and key in SHARES:
        return f"{100 * value:.3g}%"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)
