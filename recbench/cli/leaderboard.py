"""`recbench leaderboard`: the results so far, rendered from result records."""

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from .. import paths
from ..atomic import write_error
from ..errors import UsageError
from ..results import formats, pages, plots
from ..results import leaderboard as lb

FORMATS = ("table", "markdown", "csv", "html", "json")
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def command(
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="Only this dataset."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, markdown, csv, html or json."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file instead of printing."),
    results: Optional[List[Path]] = typer.Option(None, "--results", help="Folders of records (default: RECBENCH_HOME/results)."),
    no_references: bool = typer.Option(False, "--no-references", help="Hide the published (not measured here) rows."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 if any record had to be left out (they are always named on stderr)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Draw NDCG@10 per row and quality against speed into this .png (or .svg, .pdf)."),
    write_markdown: Optional[Path] = typer.Option(
        None, "--write-markdown", help="Write DIR/<dataset>.md for every dataset and DIR/README.md (the committed leaderboards)."
    ),
) -> None:
    """Show the leaderboard: one row per generator, tokenizer, embedding model and config.

    With --plot or --write-markdown the command writes those files instead of printing the
    leaderboard (--output still writes the --format rendering)."""
    if fmt not in FORMATS:
        raise UsageError(f"Unknown format '{fmt}'. Valid formats: {', '.join(FORMATS)}.")
    if plot is not None and plot.suffix.lower() not in PLOT_SUFFIXES:
        raise UsageError(f"--plot '{plot}': the file must end in {', '.join(PLOT_SUFFIXES)}.")
    if write_markdown is not None and dataset:
        raise UsageError("--write-markdown renders every dataset of the records (one page each and a README); drop --dataset.")
    if fmt == "table" and output:
        raise UsageError("--output needs --format markdown, csv, html or json.")
    if output is not None:
        check_output(output)
    if write_markdown is not None:
        paths.folder(write_markdown, "--write-markdown")
    if dataset:
        from .. import registry as plugin_registry

        dataset = plugin_registry.registry().entry("dataset", dataset).name
    folders = results or [paths.results_dir()]
    console = Console()
    if not console.is_terminal:  # a pipe or file: do not squeeze 17 columns into 80 characters
        console = Console(width=220)
    skipped: list[str] = []
    by_dataset = lb.collect(folders, dataset, skipped)
    for why in skipped:
        Console(stderr=True, soft_wrap=True).print(f"[yellow]Warning:[/] left out: {why}", highlight=False)
    try:
        render(console, by_dataset, folders, dataset, fmt, output, no_references, plot, write_markdown)
    finally:
        if strict and skipped:
            raise typer.Exit(1)


def check_output(output: Path) -> None:
    """--output must name a file in a folder that exists: a typo in the folder is an error before any
    rendering, not a folder created somewhere unexpected."""
    if output.is_dir():
        raise UsageError(f"--output '{output}' is a folder; expected a file name, e.g. '{output / 'leaderboard.md'}'.")
    folder = output.parent
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise UsageError(f"--output '{output}': the folder '{folder}' {what}; expected a file in an existing folder.")


def render(console, by_dataset, folders, dataset, fmt, output, no_references, plot, write_markdown) -> None:
    if not by_dataset:
        where = ", ".join(str(f) for f in folders)
        console.print(f"No result records{' for ' + dataset if dataset else ''} in {where}. Run `recbench run` first.")
        return
    boards = lb.boards(by_dataset, with_references=not no_references)
    if write_markdown is not None:
        for path in pages.write_markdown(boards, folders, write_markdown, with_references=not no_references):
            console.print(f"Wrote {path}")
    if plot is not None:
        console.print(f"Wrote {plots.plot(boards, plot)}")
    if (plot is not None or write_markdown is not None) and output is None:
        return
    if fmt == "table":
        for renderable in formats.rich_tables(boards):
            console.print(renderable)
        return
    text = {"markdown": lb.markdown, "csv": formats.to_csv, "html": formats.to_html, "json": formats.to_json}[fmt](boards)
    if output:
        try:  # the file named, as named: a link the user made (or /dev/stdout) is written through
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise write_error(output, exc) from None
        console.print(f"Wrote {output}")
    else:
        print(text, end="")
