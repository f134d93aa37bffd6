"""`recbench datasets`: the registered datasets; `prepare` and `stats` for one of them; `add` and
`remove` for the user's own (recbench.data.local)."""

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from .. import paths
from .. import registry as plugin_registry
from ..errors import DataError

app = typer.Typer(help="List, prepare and describe datasets.", invoke_without_command=True, no_args_is_help=False)
console = Console(soft_wrap=True)  # long paths stay whole when the output goes to a file


def is_prepared(name: str) -> bool:
    """Whether an intact prepared cache of `name` exists (files checked against their checksums)."""
    from ..data.prepare import verify

    folder = paths.data_dir() / "prepared" / name
    return folder.is_dir() and any(verify(p)[0] is not None for p in folder.iterdir() if p.is_dir())


def raw_files_at(dataset) -> str:
    """Where the raw files are: 'mirror', 'cache' (downloaded), 'local' (a local dataset's own
    files), or 'missing'. Never downloads."""
    try:
        from ..data import Source

        files = dataset.locate(Source(dataset.name, download=False))
    except DataError:
        return "missing"
    if getattr(dataset, "local", False):
        return "local"
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
    for entry in sorted(plugin_registry.registry().entries["dataset"].values(), key=lambda e: e.name):
        aliases = ", ".join(getattr(entry.obj, "aliases", ()))
        prepared = "yes" if is_prepared(entry.name) else "no"
        package = "(local)" if getattr(entry.obj, "local", False) else entry.package
        table.add_row(entry.name, aliases, entry.description, package, raw_files_at(entry.obj), prepared)
    console.print(table)
    for failure in plugin_registry.registry().failures:  # e.g. a datasets.json that cannot be read
        if failure.plugin == "recbench_plugins.local":
            console.print(f"[yellow]Local datasets not listed:[/] {failure.error}", highlight=False)


def load(name: str):
    from ..data import prepare

    entry = plugin_registry.registry().entry("dataset", name)
    return prepare(entry.obj, entry.obj.Config(), log=console.print)


@app.command("prepare")
def prepare_command(name: str = typer.Argument(..., help="Dataset name or alias.")) -> None:
    """Read the raw files (mirror, cache or download) and cache the prepared dataset."""
    data = load(name)
    console.print(f"{data.name}: {data.n_users:,} users, {data.n_items:,} items, {data.n_interactions:,} interactions (fingerprint {data.fingerprint})")


@app.command("add")
def add_command(
    name: str = typer.Argument(..., help="The name to use in every command (letters, digits, . _ + -)."),
    interactions: Path = typer.Option(..., "--interactions", help="CSV, TSV or Parquet with user_id, item_id (and timestamp); or a RecBole .inter file."),
    items: Path = typer.Option(..., "--items", help="JSON lines, CSV, TSV or Parquet with item_id and text fields; or a RecBole .item file."),
    k_core: int = typer.Option(0, "--k-core", min=0, help="Keep users and items with at least this many interactions (0: all)."),
    text_fields: str = typer.Option(None, "--text-fields", help="Comma-separated item fields that form the item text "
                                    "(default: every field but the item id, in file order; RecBole: its token and token_seq fields)."),
    fmt: str = typer.Option("auto", "--format", help="auto (from the suffix and header), generic, or recbole."),
    user_column: str = typer.Option("user_id", "--user-column", help="The interactions' user id column."),
    item_column: str = typer.Option("item_id", "--item-column", help="The item id column (both files)."),
    time_column: str = typer.Option("timestamp", "--time-column", help="The interactions' time column (optional in the file)."),
    allow_missing_text: bool = typer.Option(False, "--allow-missing-text", help="Keep items without text (counted) instead of refusing them."),
    replace: bool = typer.Option(False, "--replace", help="Register other files under a local dataset's existing name."),
) -> None:
    """Register your own dataset (no plugin needed): it is read, checked and prepared now, then
    usable by name in every command. The format: docs/own-data.md."""
    from ..data import local

    fields = None if text_fields is None else tuple(f.strip() for f in text_fields.split(",") if f.strip())
    layout = local.layout_for(interactions, items, format=fmt, text_fields=fields or None, user_column=user_column,
                              item_column=item_column, time_column=time_column, allow_missing_text=allow_missing_text)
    data = local.add(name, layout, k_core=k_core, replace=replace, log=console.print)
    console.print(f"Added local dataset '{name}': {data.n_users:,} users, {data.n_items:,} items, "
                  f"{data.n_interactions:,} interactions (fingerprint {data.fingerprint}); kept in {local.registry_file()}.")


@app.command("remove")
def remove_command(name: str = typer.Argument(..., help="A local dataset's name.")) -> None:
    """Forget a local dataset (its files and prepared cache stay where they are)."""
    from ..data import local

    local.remove(name)
    console.print(f"Removed local dataset '{name}' from {local.registry_file()}.")


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
