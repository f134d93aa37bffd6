"""`recbench site`: the leaderboard as a static site (recbench.results.site), from result records."""

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from .. import paths
from ..errors import UsageError
from ..results import leaderboard as lb
from ..results import records
from ..results import site as web


def command(
    output: Path = typer.Option(..., "--output", "-o", help="The folder to write the site into (created where missing)."),
    results: Optional[List[Path]] = typer.Option(None, "--results", help="Folders of records (default: RECBENCH_HOME/results)."),
    no_references: bool = typer.Option(False, "--no-references", help="Leave out the published (not measured here) rows."),
    force: bool = typer.Option(False, "--force", help="Write into an existing folder that is not a previous site."),
) -> None:
    """Build a static leaderboard site: an index, a page per dataset (sortable, filterable, with charts)
    and a page per row (config, curves, per-user ranks, paired test, how to reproduce it)."""
    web.check_output(output, force)
    folders = results or [paths.results_dir()]
    skipped: list[str] = []
    by_dataset = lb.collect(folders, None, skipped)
    err = Console(stderr=True, soft_wrap=True)
    for why in skipped:
        err.print(f"[yellow]Warning:[/] left out: {why}", highlight=False)
    if not by_dataset:
        raise UsageError(f"No result records in {', '.join(str(f) for f in folders)}. Run `recbench run` first.")
    boards = lb.boards(by_dataset, with_references=not no_references)
    written = web.build(boards, folders, output, records.command_line(), force)
    Console(soft_wrap=True).print(f"Wrote {len(written)} pages; open {output / 'index.html'}", highlight=False)
