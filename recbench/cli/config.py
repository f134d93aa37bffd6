"""`recbench config NAME`: every config key of a plugin, with its type, default, valid range and
comment, and the presets that change them; what `--key=value` may set on `recbench run`.

On a wide terminal each section is a table; where the table would leave the help text too few
columns (80 columns, the usual terminal, and output to a file without COLUMNS), each key is a line
of its own with its help text below it, so the sentences read as sentences."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import config as cfg
from .. import registry as plugin_registry
from ..errors import UsageError

console = Console(soft_wrap=True)


def sections(name: str) -> tuple[plugin_registry.Entry, dict[str, list[dict]]]:
    """The plugin called `name` and its config sections: section -> described fields (config.describe).
    A semantic-ID generator also lists its default tokenizer's and the embedding's keys."""
    from ..embeddings import EmbeddingConfig

    registry = plugin_registry.registry()
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


MIN_HELP_WIDTH = 48  # columns "what it does" needs to read as sentences; below that, the list form


def table_fits(rows: list[dict], width: int) -> bool:
    """Whether the five-column table leaves "what it does" MIN_HELP_WIDTH columns at `width`: at 80
    columns it does not (a key, a type like "one of 'adamw', 'adafactor'" and a model name as a
    default take the rest), and every help text would wrap a word a line."""
    cells = [[r["key"], r["type"], repr(r["default"]), r["range"] or ""] for r in rows]
    widest = [max([len(header)] + [len(row[i]) for row in cells]) for i, header in enumerate(("key", "type", "default", "range"))]
    return sum(widest) + 16 + MIN_HELP_WIDTH <= width  # 16: a space either side of each of 5 cells, 6 rules


def say_key(r: dict) -> None:
    """`lr: float = 0.001 (> 0)`, the key in bold: a key as the list form shows it, wrapped like `say`."""
    import textwrap

    plain = f"{r['key']}: {r['type']} = {r['default']!r}" + (f" ({r['range']})" if r["range"] else "")
    lines = textwrap.wrap(plain, max(console.width - 2, 20), subsequent_indent="    ", break_on_hyphens=False)
    console.print(f"  [bold]{escape(r['key'])}[/bold]{escape(lines[0][len(r['key']):])}", highlight=False)
    for line in lines[1:]:
        console.print("  " + escape(line), highlight=False)


def say(text: str, indent: int = 0, style: str = "") -> None:
    """`text` wrapped at the terminal's width, every line indented (no trailing spaces to copy)."""
    import textwrap

    for line in textwrap.wrap(text, max(console.width - indent, 20), break_on_hyphens=False) or [""]:
        console.print(" " * indent + (f"[{style}]{escape(line)}[/{style}]" if style else escape(line)), highlight=False)


def print_sections(data: dict, title, wide: bool) -> None:
    for section, rows in data["sections"].items():
        if wide and table_fits(rows, console.width):
            table = Table(title=title(section), header_style="bold")
            for col in ("key", "type", "default", "range"):
                table.add_column(col, no_wrap=col == "key", overflow="fold")
            table.add_column("what it does", overflow="fold", ratio=1)
            for r in rows:
                table.add_row(r["key"], r["type"], repr(r["default"]), r["range"] or "", r["comment"])
            console.print(table)
            continue
        # narrow: one key a line, its help text below it, indented, wrapped at the terminal's width
        say(title(section), style="bold")
        for r in rows:
            say_key(r)
            if r["comment"]:
                say(r["comment"], indent=6)
        console.print()


def command(
    name: str = typer.Argument(..., help="A generator, tokenizer or dataset (see `recbench plugins`)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Show every config key of a plugin: type, default, valid range and what it does; and its presets."""
    data = listing(name)
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    wide = all(table_fits(rows, console.width) for rows in data["sections"].values())  # one form for every section
    print_sections(data, lambda section: f"{data['name']} ({data['kind']}, {data['package']}): {section} config", wide)
    if data["presets"]:
        title = "presets (applied over the defaults: a dataset's whenever it runs on it, a named one with --preset)"
        if wide:
            table = Table(title=title, header_style="bold")
            table.add_column("preset")
            table.add_column("settings", overflow="fold")
            for preset, values in data["presets"].items():
                table.add_row(preset, ", ".join(f"{k}={v!r}" for k, v in values.items()))
            console.print(table)
        else:
            say(title, style="bold")
            for preset, values in data["presets"].items():
                say(preset, indent=2, style="bold")
                say(", ".join(f"{k}={v!r}" for k, v in values.items()), indent=6)
            console.print()
    say("Set any key with --key=value on `recbench run` (or in a --config file).")
