"""`recbench records check DIR...`: every record in the folders loads, is consistent with its own
per-user ranks, is named by its run id, and names the dataset fingerprint of the raw data here
(recbench.results.record_check). Exit 1 lists each refused file and why."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer
from rich.console import Console

app = typer.Typer(help="Result records: checks of record files, e.g. before they join a leaderboard.", no_args_is_help=True)
console = Console(soft_wrap=True, highlight=False)


@app.command("check")
def check(
    folders: List[Path] = typer.Argument(..., help="Folders of record files (searched at any depth), e.g. leaderboards/records."),
    require_data: bool = typer.Option(False, "--require-data", help="Fail where a dataset's raw files are not here to check its fingerprint."),
) -> None:
    """Check every record in FOLDERS: schema, per-user ranks, metrics recomputed from them, file name, dataset fingerprint."""
    from ..results.record_check import check as check_records

    report = check_records(folders, require_data=require_data)
    for dataset, why in sorted(report.unchecked_data.items()):
        console.print(f"{dataset}: dataset fingerprint not checked: {why}")
    for path, why in report.failures:
        console.print(f"refused: {path}: {why}")
    console.print(f"{report.checked} records checked: " + ("all pass." if report.ok else f"{len(report.failures)} refused."))
    if not report.ok:
        raise typer.Exit(1)
